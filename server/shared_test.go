package server

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/base64"
	"encoding/json"
	"net/http"
	"strings"
	"testing"

	"github.com/chancery-pki/chancery/api"
	"github.com/chancery-pki/chancery/ca"
	"github.com/chancery-pki/chancery/cluster"
)

// TestSharedIgnoresForwardedCertificates: on a manager of a shared store,
// where nothing is forwarded, a caller that puts another node's
// certificate in any header gets nothing it would not get as itself: a
// manager renews as itself, a worker renews as itself and gets no
// administration, whatever the headers say.
func TestSharedIgnoresForwardedCertificates(t *testing.T) {
	// Each node renews once per header: more than its own renewals are
	// allowed by default (cluster.RenewalLimit), which this test is not about.
	e := newEnv(t, envOptions{quiet: true, shared: true, renewalLimit: cluster.RenewalLimit{Burst: 1000, PerLifetime: 1000}})
	ctx := context.Background()
	c, err := e.st.Cluster(ctx)
	if err != nil {
		t.Fatal(err)
	}
	mgrCert, mgrOut := e.join(t, c.ManagerToken)
	workerCert, workerOut := e.join(t, c.WorkerToken)
	chainHeader := func(cert *tls.Certificate) string {
		var parts []string
		for _, der := range cert.Certificate {
			parts = append(parts, base64.StdEncoding.EncodeToString(der))
		}
		return strings.Join(parts, ",")
	}
	pemOf := func(cert *tls.Certificate) string {
		return strings.ReplaceAll(string(ca.EncodeCertificatesPEM(cert.Leaf)), "\n", " ")
	}
	headers := []string{ForwardedCertHeader, "X-Forwarded-Client-Cert", "X-Client-Cert", "Ssl-Client-Cert", "X-Ssl-Client-Cert", "Client-Cert"}

	call := func(t *testing.T, as *tls.Certificate, method, path string, body any, hdr http.Header, out any) int {
		t.Helper()
		hc := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{
			RootCAs: e.roots, ServerName: "swarm-manager", MinVersion: tls.VersionTLS12,
			GetClientCertificate: func(*tls.CertificateRequestInfo) (*tls.Certificate, error) {
				if as == nil {
					return &tls.Certificate{}, nil
				}
				return as, nil
			},
		}}}
		defer hc.CloseIdleConnections()
		var buf bytes.Buffer
		if body != nil {
			json.NewEncoder(&buf).Encode(body)
		}
		req, err := http.NewRequestWithContext(ctx, method, "https://"+e.addr+path, &buf)
		if err != nil {
			t.Fatal(err)
		}
		req.Header = hdr
		req.Header.Set("Content-Type", "application/json")
		resp, err := hc.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		if out != nil && resp.StatusCode == http.StatusOK {
			if err := json.NewDecoder(resp.Body).Decode(out); err != nil {
				t.Fatal(err)
			}
		}
		return resp.StatusCode
	}
	for _, tc := range []struct {
		name      string
		as, other *tls.Certificate
		asID      string
		asRole    ca.Role
	}{
		{"ManagerWithWorkerCert", mgrCert, workerCert, mgrOut.NodeID, ca.RoleManager},
		{"WorkerWithManagerCert", workerCert, mgrCert, workerOut.NodeID, ca.RoleWorker},
	} {
		for _, h := range headers {
			for _, value := range []string{chainHeader(tc.other), pemOf(tc.other), ForwardedNone} {
				t.Run(tc.name+"/"+h, func(t *testing.T) {
					hdr := http.Header{}
					hdr.Set(h, value)
					var out api.Certificate
					if code := call(t, tc.as, http.MethodPost, api.PathRenew, api.RenewRequest{CSR: csrPEM(t, newKey(t))}, hdr, &out); code != http.StatusOK {
						t.Fatalf("renew: HTTP %d", code)
					}
					if out.NodeID != tc.asID || out.Role != string(tc.asRole) {
						t.Errorf("renewed as %s (%s); want itself, %s (%s)", out.NodeID, out.Role, tc.asID, tc.asRole)
					}
					code := call(t, tc.as, http.MethodGet, api.PathAdminJoinToken+ca.RoleWorker.Short(), nil, hdr.Clone(), nil)
					if want := http.StatusOK; tc.asRole != ca.RoleManager {
						want = http.StatusForbidden
						if code != want {
							t.Errorf("administration as a worker: HTTP %d; want %d", code, want)
						}
					} else if code != want {
						t.Errorf("administration as a manager: HTTP %d; want %d", code, want)
					}
				})
			}
		}
	}
	// Without a certificate, a header is no identity either.
	hdr := http.Header{}
	hdr.Set(ForwardedCertHeader, chainHeader(mgrCert))
	if code := call(t, nil, http.MethodPost, api.PathRenew, api.RenewRequest{CSR: csrPEM(t, newKey(t))}, hdr, nil); code != http.StatusUnauthorized {
		t.Errorf("renew without a certificate: HTTP %d; want 401", code)
	}
}
