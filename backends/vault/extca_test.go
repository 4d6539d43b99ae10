package vault

import (
	"bytes"
	"context"
	"crypto"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/chancery-pki/chancery/backends/cfssl"
	"github.com/chancery-pki/chancery/ca"
	"github.com/chancery-pki/chancery/extca"
	"github.com/chancery-pki/chancery/signer"
)

// TestExternalCAOverVault serves chancery's external CA endpoint (package
// extca) with the root in Vault, and has chancery's own cfssl backend get a
// manager and a worker node certificate from it through
// /api/v1/cfssl/authsign. Vault signs the endpoint's own intermediate
// (sign-self-issued), which issues the node certificates.
func TestExternalCAOverVault(t *testing.T) {
	s, _ := newTestSigner(t)
	dir := t.TempDir()
	const hexKey = "00112233445566778899aabbccddeeff"
	if err := os.WriteFile(filepath.Join(dir, "k1.hex"), []byte(hexKey+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	policy, err := extca.ParsePolicy([]byte("authkey k1 k1.hex\nallow key k1 clusters=* roles=manager,worker\n"), "policy.conf", dir)
	if err != nil {
		t.Fatal(err)
	}
	roots := x509.NewCertPool()
	roots.AddCert(s.Chain()[0])
	ctx, cancel := context.WithCancel(context.Background())
	srv, err := extca.New(ctx, extca.Config{
		Signer: s, Policy: policy, ClientCAs: roots,
		IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)},
	})
	if err != nil {
		cancel()
		t.Fatalf("extca.New over Vault: %v", err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		cancel()
		t.Fatal(err)
	}
	// The endpoint issues through an intermediate of its own, which Vault
	// signed.
	inter, err := srv.Intermediate(ctx)
	if err != nil {
		cancel()
		t.Fatalf("the endpoint's intermediate over Vault: %v", err)
	}
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ctx, ln) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Serve: %v", err)
		}
	})

	bundle := filepath.Join(dir, "root.pem")
	if err := os.WriteFile(bundle, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: s.Chain()[0].Raw}), 0o644); err != nil {
		t.Fatal(err)
	}
	spec, err := cfssl.ParseExternalCA("protocol=cfssl,url=https://" + ln.Addr().String() + "/api/v1/cfssl/sign,cacert=" + bundle)
	if err != nil {
		t.Fatal(err)
	}
	key, err := cfssl.ParseAuthKey([]byte(hexKey))
	if err != nil {
		t.Fatal(err)
	}
	client, err := cfssl.New(ctx, cfssl.Config{CAs: []cfssl.ExternalCA{spec}, AuthKey: key, Chain: s.Chain()})
	if err != nil {
		t.Fatalf("cfssl.New against the endpoint: %v", err)
	}
	defer client.Close()

	tlsConf := &tls.Config{RootCAs: roots, MinVersion: tls.VersionTLS12}
	hc := &http.Client{Transport: &http.Transport{TLSClientConfig: tlsConf}, Timeout: 30 * time.Second}
	defer hc.CloseIdleConnections()
	for _, role := range []ca.Role{ca.RoleManager, ca.RoleWorker} {
		t.Run(role.Short(), func(t *testing.T) {
			want := ca.NodeDNSNames(testNodeID, role)
			check := func(t *testing.T, cert *x509.Certificate, pub crypto.PublicKey) {
				t.Helper()
				if err := ca.VerifyChain([]*x509.Certificate{cert, inter}, s.Chain(), time.Now()); err != nil {
					t.Errorf("the certificate does not chain to the Vault root through the endpoint's intermediate: %v", err)
				}
				got, sorted := slices.Clone(cert.DNSNames), slices.Clone(want)
				slices.Sort(got)
				slices.Sort(sorted)
				if !slices.Equal(got, sorted) || cert.Subject.CommonName != testNodeID ||
					!slices.Equal(cert.Subject.OrganizationalUnit, []string{string(role)}) ||
					!slices.Equal(cert.Subject.Organization, []string{testClusterID}) {
					t.Errorf("certificate %q with DNS names %v, want %v", cert.Subject, cert.DNSNames, want)
				}
				if !signer.SamePublicKey(cert.PublicKey, pub) {
					t.Error("the certificate is not for the CSR's key")
				}
			}

			// The endpoint itself, asked as swarm asks it: the
			// certificate leaves it.
			nodeKey := newP256(t)
			csrDER, err := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{}, nodeKey)
			if err != nil {
				t.Fatal(err)
			}
			cert := authsign(t, hc, "https://"+ln.Addr().String()+"/api/v1/cfssl/authsign", key, map[string]any{
				"hosts":               want,
				"certificate_request": string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE REQUEST", Bytes: csrDER})),
				"subject":             map[string]any{"CN": testNodeID, "names": []map[string]string{{"O": testClusterID, "OU": string(role)}}},
				"profile":             "",
			})
			check(t, cert, nodeKey.Public())

			// chancery's own cfssl backend, which holds a CFSSL CA to the
			// node contract's DNS name order: Vault signs only the
			// endpoint's intermediate, whose key (in the endpoint) signs
			// the leaves, so the order is kept.
			req := nodeRequest(t, s.Chain()[0], role, time.Now())
			got, err := client.Sign(ctx, req)
			if err != nil {
				t.Fatalf("a %s certificate through chancery's cfssl backend: %v", role, err)
			}
			check(t, got, req.PublicKey)
		})
	}
}

// authsign asks a CFSSL authsign endpoint for a certificate and returns it.
func authsign(t *testing.T, hc *http.Client, url string, key *cfssl.AuthKey, request map[string]any) *x509.Certificate {
	t.Helper()
	reqJSON, err := json.Marshal(request)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := json.Marshal(map[string]any{
		"token":     base64.StdEncoding.EncodeToString(key.Token(reqJSON)),
		"request":   base64.StdEncoding.EncodeToString(reqJSON),
		"timestamp": time.Now().Unix(),
	})
	resp, err := hc.Post(url, "application/json", bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var answer struct {
		Success bool `json:"success"`
		Result  struct {
			Certificate string `json:"certificate"`
		} `json:"result"`
		Errors []struct {
			Message string `json:"message"`
		} `json:"errors"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&answer); err != nil {
		t.Fatalf("authsign: HTTP %d, %v", resp.StatusCode, err)
	}
	if !answer.Success || resp.StatusCode != http.StatusOK {
		t.Fatalf("authsign refused: HTTP %d %+v", resp.StatusCode, answer.Errors)
	}
	b, _ := pem.Decode([]byte(answer.Result.Certificate))
	if b == nil {
		t.Fatalf("authsign returned no certificate: %q", answer.Result.Certificate)
	}
	cert, err := x509.ParseCertificate(b.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	return cert
}
