package agent

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/chancery-pki/chancery/api"
	"github.com/chancery-pki/chancery/ca"
	"github.com/chancery-pki/chancery/extca"
	"github.com/chancery-pki/chancery/signer"
)

// localRoot returns a local issuer for a fresh root named cn.
func localRoot(t *testing.T, cn string) *signer.LocalIssuer {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	root, err := signer.SelfSign(nil, key, ca.NewRootTemplate(cn, time.Now()))
	if err != nil {
		t.Fatal(err)
	}
	iss, err := signer.NewLocalIssuer(signer.LocalConfig{Key: key, Chain: []*x509.Certificate{root}})
	if err != nil {
		t.Fatal(err)
	}
	return iss
}

// endpointManagerCert has the external CA endpoint of chancery's root,
// through its real API (/sign, with a swarm manager's client certificate),
// issue a swarm manager certificate: OU=swarm-manager, with the
// swarm-manager DNS name a chancery manager's certificate carries.
func endpointManagerCert(t *testing.T, root *signer.LocalIssuer) tls.Certificate {
	t.Helper()
	const swarmCluster, swarmNode = "0a1b2c3d4e5f6g7h8i9j0k1l2", "ax2cmh63ik3ypqeo3xntvjp8t"
	swarm := localRoot(t, "swarm-ca")
	mkey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	mreq, err := ca.NodeCertificateRequest(ca.NodeRequest{ClusterID: swarmCluster, NodeID: swarmNode, Role: ca.RoleManager,
		CSR: csrFor(t, mkey), Now: time.Now()}, swarm.Chain()[0])
	if err != nil {
		t.Fatal(err)
	}
	mcert, err := swarm.Sign(context.Background(), mreq)
	if err != nil {
		t.Fatal(err)
	}
	pol, err := extca.ParsePolicy([]byte("allow cert OU=swarm-manager clusters=own\n"), "policy", "")
	if err != nil {
		t.Fatal(err)
	}
	clientCAs := x509.NewCertPool()
	clientCAs.AddCert(swarm.Chain()[0])
	srv, err := extca.New(context.Background(), extca.Config{Signer: root, Policy: pol, ClientCAs: clientCAs,
		IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)}, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ctx, ln) }()
	t.Cleanup(func() { cancel(); <-done })

	roots := x509.NewCertPool()
	roots.AddCert(root.Chain()[0])
	hc := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{
		MinVersion: tls.VersionTLS12, RootCAs: roots,
		Certificates: []tls.Certificate{{Certificate: [][]byte{mcert.Raw}, PrivateKey: mkey, Leaf: mcert}},
	}}}
	defer hc.CloseIdleConnections()
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	body, _ := json.Marshal(map[string]any{
		"hosts":               []string{string(ca.RoleManager), swarmNode, ca.CADNSName},
		"certificate_request": string(csrFor(t, key)),
		"subject":             map[string]any{"CN": swarmNode, "names": []map[string]string{{"O": swarmCluster, "OU": string(ca.RoleManager)}}},
	})
	resp, err := hc.Post("https://"+ln.Addr().String()+extca.PathSign, "application/json", bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var out struct {
		Success bool `json:"success"`
		Result  struct {
			Certificate string `json:"certificate"`
		} `json:"result"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&out); err != nil || !out.Success {
		t.Fatalf("the endpoint did not issue: %d %v", resp.StatusCode, err)
	}
	chain, err := ca.ParseCertificatesPEM([]byte(out.Result.Certificate))
	if err != nil {
		t.Fatal(err)
	}
	if chain[0].Subject.OrganizationalUnit[0] != string(ca.RoleManager) || chain[0].VerifyHostname(client0ServerName) != nil {
		t.Fatalf("the endpoint's certificate %s is not a swarm manager's", chain[0].Subject)
	}
	tc := tls.Certificate{PrivateKey: key, Leaf: chain[0]}
	for _, c := range chain {
		tc.Certificate = append(tc.Certificate, c.Raw)
	}
	return tc
}

const client0ServerName = string(ca.RoleManager)

func csrFor(t *testing.T, key *ecdsa.PrivateKey) []byte {
	t.Helper()
	der, err := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{}, key)
	if err != nil {
		t.Fatal(err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE REQUEST", Bytes: der})
}

// TestJoinRefusesExternalCAManager: a swarm manager that the external CA
// endpoint certified (under the same root, OU=swarm-manager) poses as a
// chancery manager to a node that joins. The node fetches the root (the
// token's digest matches: it is the cluster's), but refuses the TLS
// connection before it sends its token, because the certificate chains
// through the endpoint's intermediate, not the cluster's own issuer.
func TestJoinRefusesExternalCAManager(t *testing.T) {
	root := localRoot(t, "chancery-root")
	rootPEM := ca.EncodeCertificatesPEM(root.Chain()[0])
	token, err := ca.GenerateJoinToken(rootPEM, rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	var joins atomic.Int32
	imposter := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case api.PathRoot:
			json.NewEncoder(w).Encode(api.Root{RootCAPEM: string(rootPEM)})
		case api.PathJoin:
			joins.Add(1) // the token reached the imposter
			http.Error(w, "no", http.StatusInternalServerError)
		default:
			http.NotFound(w, r)
		}
	}))
	imposter.TLS = &tls.Config{MinVersion: tls.VersionTLS12, Certificates: []tls.Certificate{endpointManagerCert(t, root)}}
	imposter.StartTLS()
	defer imposter.Close()

	_, err = Join(context.Background(), JoinRequest{
		DataDir: filepath.Join(t.TempDir(), "node"), Addr: strings.TrimPrefix(imposter.URL, "https://"), Token: token,
	})
	if n := joins.Load(); n != 0 {
		t.Fatalf("the joining node sent its token to a manager the external CA endpoint certified (%d join requests)", n)
	}
	if err == nil || !strings.Contains(err.Error(), "external CA endpoint") {
		t.Fatalf("Join: %v, want a refusal of the endpoint's certificate", err)
	}
}
