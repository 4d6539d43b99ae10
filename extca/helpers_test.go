package extca

import (
	"bytes"
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/chancery-pki/chancery/audit"
	"github.com/chancery-pki/chancery/ca"
	"github.com/chancery-pki/chancery/internal/cfsslwire"
	"github.com/chancery-pki/chancery/signer"
)

// Identities the tests ask for.
const (
	testCluster      = "7z3w4lnz8n1b9qj5xrkw2e0cd"
	otherCluster     = "0a1b2c3d4e5f6g7h8i9j0k1l2"
	testNode         = "kgwuvt1oqhqjsht0qcsq67rvu"
	testAuthKeyHex   = "0123456789abcdef0123456789abcdef"
	testAuthKeyName  = "ci"
	testManagerNode  = "ax2cmh63ik3ypqeo3xntvjp8t"
	testBodyCapBytes = 256 << 10
)

func newKey(t testing.TB) *ecdsa.PrivateKey {
	t.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

// newIssuer returns a local issuer for a fresh root with common name cn.
func newIssuer(t testing.TB, cn string) (*signer.LocalIssuer, crypto.Signer) {
	t.Helper()
	key := newKey(t)
	root, err := signer.SelfSign(nil, key, ca.NewRootTemplate(cn, time.Now()))
	if err != nil {
		t.Fatal(err)
	}
	iss, err := signer.NewLocalIssuer(signer.LocalConfig{Key: key, Chain: []*x509.Certificate{root},
		Description: signer.Description{Backend: "test"}})
	if err != nil {
		t.Fatal(err)
	}
	issuerKeys.Store(iss, key)
	return iss, key
}

// issuerKeys maps the issuers newIssuer made to their keys.
var issuerKeys sync.Map

// nodeCert issues a node certificate under iss, as a swarm's CA does for
// its managers: the client certificate a manager presents.
func nodeCert(t testing.TB, iss signer.Signer, cluster, node string, role ca.Role) tls.Certificate {
	t.Helper()
	key := newKey(t)
	req, err := ca.NodeCertificateRequest(ca.NodeRequest{
		ClusterID: cluster, NodeID: node, Role: role, CSR: csrPEM(t, key, pkix.Name{}), Now: time.Now(),
	}, iss.Chain()[0])
	if err != nil {
		t.Fatal(err)
	}
	cert, err := iss.Sign(context.Background(), req)
	if err != nil {
		t.Fatal(err)
	}
	return tls.Certificate{Certificate: [][]byte{cert.Raw}, PrivateKey: key, Leaf: cert}
}

func csrPEM(t testing.TB, key crypto.Signer, subject pkix.Name) []byte {
	t.Helper()
	der, err := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{Subject: subject}, key)
	if err != nil {
		t.Fatal(err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE REQUEST", Bytes: der})
}

// nodeRequestJSON is a node certificate request as swarm's PrepareCSR
// sends it, with the fields swarm's cfssl adds.
func nodeRequestJSON(t testing.TB, csr []byte, cluster, node string, role ca.Role) []byte {
	t.Helper()
	hosts := []string{string(role), node}
	if role == ca.RoleManager {
		hosts = append(hosts, ca.CADNSName)
	}
	return mustJSON(t, map[string]any{
		"hosts":               hosts,
		"certificate_request": string(csr),
		"subject":             map[string]any{"CN": node, "names": []map[string]string{{"O": cluster, "OU": string(role)}}},
		"profile":             "",
		"crl_override":        "",
		"label":               "",
		"NotBefore":           "0001-01-01T00:00:00Z",
		"NotAfter":            "0001-01-01T00:00:00Z",
		"ReturnPrecert":       false,
		"metadata":            nil,
	})
}

// crossSignRequestJSON is a cross-sign request as swarm's CrossSignRootCA
// sends it for a root with subject CN=swarm-ca.
func crossSignRequestJSON(t testing.TB, csr []byte) []byte {
	t.Helper()
	return mustJSON(t, map[string]any{
		"hosts":               nil,
		"certificate_request": string(csr),
		"subject":             map[string]any{"CN": "swarm-ca", "names": []any{}},
		"profile":             "CA",
		"crl_override":        "",
		"label":               "",
		"extensions":          []map[string]any{{"id": "2.5.29.19", "critical": true, "value": "30030101ff"}},
		"NotBefore":           "0001-01-01T00:00:00Z",
		"NotAfter":            "0001-01-01T00:00:00Z",
		"ReturnPrecert":       false,
		"metadata":            nil,
	})
}

func mustJSON(t testing.TB, v any) []byte {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// authBody wraps a sign request in CFSSL's authsign envelope.
func authBody(t testing.TB, keyHex string, request []byte, ts time.Time) []byte {
	t.Helper()
	k, err := cfsslwire.ParseAuthKey([]byte(keyHex))
	if err != nil {
		t.Fatal(err)
	}
	ar := cfsslwire.AuthRequest{Token: k.Token(request), Request: request}
	if !ts.IsZero() {
		ar.Timestamp = ts.Unix()
	}
	return mustJSON(t, ar)
}

// memAudit is an in-memory audit log.
type memAudit struct {
	mu     sync.Mutex
	events []audit.Event
	fail   error
}

func (m *memAudit) AppendAudit(_ context.Context, evs ...audit.Event) ([]audit.Entry, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.fail != nil {
		return nil, m.fail
	}
	m.events = append(m.events, evs...)
	return nil, nil
}

// all returns the events recorded so far.
func (m *memAudit) all() []audit.Event {
	m.mu.Lock()
	defer m.mu.Unlock()
	return append([]audit.Event(nil), m.events...)
}

func (m *memAudit) setFail(err error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.fail = err
}

func (m *memAudit) actions() []audit.Action {
	var a []audit.Action
	for _, e := range m.all() {
		a = append(a, e.Action)
	}
	return a
}

// testEnv is a running endpoint: chancery's root signs; a separate swarm
// root is the client CA, and Manager is a manager certificate under it.
type testEnv struct {
	Server    *Server
	URL       string
	Issuer    *signer.LocalIssuer
	SwarmRoot *signer.LocalIssuer
	Manager   tls.Certificate
	Audit     *memAudit
	Roots     *x509.CertPool
}

// envOptions change the default test configuration.
type envOptions struct {
	Policy string
	Config func(*Config)
}

const testPolicy = `# the swarm's managers, for their own cluster
allow cert OU=swarm-manager clusters=own cross-sign
authkey ci ci.hex
allow key ci clusters=` + otherCluster + ` roles=worker
`

func startEnv(t testing.TB, opts envOptions) *testEnv {
	t.Helper()
	iss, _ := newIssuer(t, "chancery-root")
	swarm, _ := newIssuer(t, "swarm-ca")
	dir := t.TempDir()
	if err := writeFile(dir+"/ci.hex", testAuthKeyHex+"\n"); err != nil {
		t.Fatal(err)
	}
	text := opts.Policy
	if text == "" {
		text = testPolicy
	}
	pol, err := ParsePolicy([]byte(text), "policy.conf", dir)
	if err != nil {
		t.Fatal(err)
	}
	clientCAs := x509.NewCertPool()
	clientCAs.AddCert(swarm.Chain()[0])
	aud := &memAudit{}
	cfg := Config{
		Signer: iss, Policy: pol, ClientCAs: clientCAs,
		DNSNames: []string{"localhost"}, IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)},
		Audit: aud, Actor: testManagerNode,
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil)),
	}
	if opts.Config != nil {
		opts.Config(&cfg)
	}
	srv, err := New(context.Background(), cfg)
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
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Serve: %v", err)
		}
	})
	roots := x509.NewCertPool()
	roots.AddCert(iss.Chain()[len(iss.Chain())-1])
	return &testEnv{
		Server: srv, URL: "https://" + ln.Addr().String(), Issuer: iss, SwarmRoot: swarm,
		Manager: nodeCert(t, swarm, testCluster, testManagerNode, ca.RoleManager),
		Audit:   aud, Roots: roots,
	}
}

// client returns an HTTP client that trusts the endpoint through
// chancery's root and presents certs.
func (e *testEnv) client(t testing.TB, certs ...tls.Certificate) *http.Client {
	t.Helper()
	tr := &http.Transport{TLSClientConfig: &tls.Config{RootCAs: e.Roots, Certificates: certs, MinVersion: tls.VersionTLS12}}
	t.Cleanup(tr.CloseIdleConnections)
	return &http.Client{Transport: tr, Timeout: 10 * time.Second}
}

// answer is a decoded answer of the endpoint.
type answer struct {
	Status int
	Body   cfsslwire.Response
	Raw    []byte
}

func post(t testing.TB, c *http.Client, url string, body []byte) answer {
	t.Helper()
	resp, err := c.Post(url, "application/json", bytes.NewReader(body))
	if err != nil {
		t.Fatalf("POST %s: %v", url, err)
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	a := answer{Status: resp.StatusCode, Raw: raw}
	if err := json.Unmarshal(raw, &a.Body); err != nil {
		t.Fatalf("POST %s: answer is not CFSSL's JSON: %v\n%s", url, err, raw)
	}
	return a
}

// certificates returns the certificates of a successful sign answer.
func (a answer) certificates(t testing.TB) []*x509.Certificate {
	t.Helper()
	if a.Status != http.StatusOK || !a.Body.Success {
		t.Fatalf("answer %d: %s", a.Status, a.Raw)
	}
	var res cfsslwire.SignResult
	if err := json.Unmarshal(a.Body.Result, &res); err != nil {
		t.Fatal(err)
	}
	certs, err := ca.ParseCertificatesPEM([]byte(res.Certificate))
	if err != nil {
		t.Fatal(err)
	}
	return certs
}

func writeFile(path, data string) error { return os.WriteFile(path, []byte(data), 0o600) }

// csrPEMRaw makes a CSR with a raw subject, as swarm makes a root's.
func csrPEMRaw(t testing.TB, key crypto.Signer, rawSubject []byte) []byte {
	t.Helper()
	der, err := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{RawSubject: rawSubject}, key)
	if err != nil {
		t.Fatal(err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE REQUEST", Bytes: der})
}

func pkixName() pkix.Name { return pkix.Name{} }
