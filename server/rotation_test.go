package server

import (
	"context"
	"encoding/hex"
	"io"
	"testing"

	"github.com/chancery-pki/chancery/api"
	"github.com/chancery-pki/chancery/ca"
	"github.com/chancery-pki/chancery/cluster"
	"github.com/chancery-pki/chancery/issuer"
	"github.com/chancery-pki/chancery/store"
)

// TestConvergedOnceTheNodeSaysSo: during a rotation a node holds a
// certificate from the new key once the store records one and the node
// has said in a heartbeat since that it presents it, not as soon as it was
// issued: until then the node may still present its old certificate, which
// nodes that switched to the new root refuse.
func TestConvergedOnceTheNodeSaysSo(t *testing.T) {
	e := newEnv(t, envOptions{quiet: true})
	ctx := context.Background()
	c, err := cluster.StartRotation(ctx, e.st, cluster.RotateRequest{DataDir: e.dir})
	if err != nil {
		t.Fatal(err)
	}
	target, err := ca.ParseCertificatesPEM(c.Rotation.Target.CertPEM)
	if err != nil {
		t.Fatal(err)
	}
	id := e.init.NodeID
	// A certificate from the new key, issued: the store records it.
	n, err := e.st.UpdateNode(ctx, id, func(n *store.Node) error {
		n.CertIssuerKeyID, n.CertSerial = hex.EncodeToString(target[0].SubjectKeyId), "0a0b"
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name      string
		report    string // the serial a heartbeat says; "" for no heartbeat
		converged bool
	}{
		{"Issued", "", false},
		{"PresentsTheOldOne", "0102", false},
		{"PresentsIt", "0a0b", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if tc.report != "" {
				e.srv.status(n, c, api.StatusRequest{CertSerial: tc.report})
			}
			f, err := e.srv.RotationFacts(ctx, c)
			if err != nil {
				t.Fatal(err)
			}
			for _, nf := range f.Nodes {
				if nf.ID == id && nf.Converged != tc.converged {
					t.Errorf("converged = %v, want %v", nf.Converged, tc.converged)
				}
			}
		})
	}
}

// TestRenewAgainWhenTheNodePresentsAnother: during a rotation, a node whose
// stored certificate is from the signing key but that says it presents
// another (it lost the one issued, or crashed before writing it) is asked
// to renew again; one that presents it is not.
func TestRenewAgainWhenTheNodePresentsAnother(t *testing.T) {
	e := newEnv(t, envOptions{quiet: true})
	ctx := context.Background()
	c, err := cluster.StartRotation(ctx, e.st, cluster.RotateRequest{DataDir: e.dir})
	if err != nil {
		t.Fatal(err)
	}
	// The new key signs, as in the reissue phase.
	sg, err := cluster.OpenRoot(ctx, e.dir, c.Rotation.Target, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	if c, ok := sg.(io.Closer); ok {
		defer c.Close()
	}
	iss, err := issuer.New(sg, issuer.Options{})
	if err != nil {
		t.Fatal(err)
	}
	e.issuers.Store(iss)
	n, err := e.st.UpdateNode(ctx, e.init.NodeID, func(n *store.Node) error {
		n.CertIssuerKeyID, n.CertSerial = hex.EncodeToString(iss.CA().SubjectKeyId), "0a0b"
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		report string
		renew  bool
	}{{"0a0b", false}, {"0102", true}} {
		if got := e.srv.status(n, c, api.StatusRequest{CertSerial: tc.report}).RenewNow; got != tc.renew {
			t.Errorf("presenting %s: RenewNow = %v, want %v", tc.report, got, tc.renew)
		}
	}
}
