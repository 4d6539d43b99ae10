package server

import (
	"context"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/chancery-pki/chancery/api"
	"github.com/chancery-pki/chancery/ca"
	"github.com/chancery-pki/chancery/store"
)

// TestAdminRoots lists the roots of the cluster's record, to managers
// only, without backend settings.
func TestAdminRoots(t *testing.T) {
	e := newEnv(t, envOptions{})
	ctx := context.Background()
	worker, _ := e.join(t, e.init.WorkerToken)
	_, err := e.client(t, worker).Roots(ctx)
	apiError(t, err, http.StatusForbidden, api.CodeForbidden)

	c, err := e.st.Cluster(ctx)
	if err != nil {
		t.Fatal(err)
	}
	newRoot, _ := selfSigned(t, ca.DefaultRootCN)
	switchAt := c.CreatedAt.Add(time.Hour).UTC()
	tests := []struct {
		name   string
		change func(*store.Cluster)
		want   []api.RootRecord
	}{
		{"one root", nil, []api.RootRecord{{CertificatePEM: string(e.rootPEM), Backend: "file", ActiveFrom: c.CreatedAt}}},
		{"after a rotation", func(c *store.Cluster) {
			old := c.Roots()[0]
			old.ActiveUntil = switchAt
			c.RootHistory = []store.Root{old}
			c.RootCAPEM, c.Backend, c.RootSince = ca.EncodeCertificatesPEM(newRoot), store.BackendConfig{Type: "vault", Settings: map[string]string{"mount": "pki-secret-mount"}}, switchAt
		}, []api.RootRecord{
			{CertificatePEM: string(e.rootPEM), Backend: "file", ActiveFrom: c.CreatedAt, ActiveUntil: switchAt},
			{CertificatePEM: string(ca.EncodeCertificatesPEM(newRoot)), Backend: "vault", ActiveFrom: switchAt},
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if tt.change != nil {
				if _, err := e.st.UpdateCluster(ctx, func(c *store.Cluster) error { tt.change(c); return nil }); err != nil {
					t.Fatal(err)
				}
			}
			got, err := e.client(t, e.manager).Roots(ctx)
			if err != nil {
				t.Fatalf("Roots: %v", err)
			}
			if len(got) != len(tt.want) {
				t.Fatalf("Roots = %+v, want %+v", got, tt.want)
			}
			for i, w := range tt.want {
				g := got[i]
				if g.CertificatePEM != w.CertificatePEM || g.Backend != w.Backend || !g.ActiveFrom.Equal(w.ActiveFrom) || !g.ActiveUntil.Equal(w.ActiveUntil) {
					t.Errorf("root %d = %+v, want %+v", i, g, w)
				}
			}
			if code, body := e.socketGet(t, api.PathAdminRoots); code != http.StatusOK || strings.Contains(body, "settings") || strings.Contains(body, "key_path") || strings.Contains(body, "pki-secret-mount") {
				t.Errorf("GET %s over the socket: %d %s; want 200 without backend settings", api.PathAdminRoots, code, body)
			}
		})
	}
}
