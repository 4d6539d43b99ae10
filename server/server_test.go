package server

import (
	"bytes"
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"errors"
	"github.com/chancery-pki/chancery/internal/etcddev"
	"io"
	"log/slog"
	"math/big"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chancery-pki/chancery/agent"
	"github.com/chancery-pki/chancery/api"
	_ "github.com/chancery-pki/chancery/backends/file" // registers the file backend
	"github.com/chancery-pki/chancery/ca"
	"github.com/chancery-pki/chancery/certdir"
	"github.com/chancery-pki/chancery/client"
	"github.com/chancery-pki/chancery/clock"
	"github.com/chancery-pki/chancery/cluster"
	"github.com/chancery-pki/chancery/internal/weakcsr"
	"github.com/chancery-pki/chancery/issuer"
	"github.com/chancery-pki/chancery/signer"
	"github.com/chancery-pki/chancery/store"
)

// syncBuffer is a bytes.Buffer that the server's goroutines and the test
// can use at once.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// envOptions change how newEnv builds a cluster.
type envOptions struct {
	// initNow is the clock of cluster.Init (the root and the manager's
	// certificate); nil means time.Now.
	initNow func() time.Time
	// quiet discards the server's log instead of capturing and checking it.
	quiet bool
	// shared serves as a manager of a shared store (Config.Shared).
	shared bool
	// clock is the server's clock; nil means the wall clock.
	clock clock.Clock
	// renewalLimit is the server's; zero means the default.
	renewalLimit cluster.RenewalLimit
	// managers is the server's Config.Managers.
	managers func() []string
	// storeOptions, when set, are the options of an etcd store to use
	// instead of the one CHANCERY_TEST_STORE chooses.
	storeOptions map[string]string
}

// env is a cluster with a manager serving its API over real TLS on
// 127.0.0.1 and its administration socket in the data directory.
type env struct {
	dir     string
	addr    string
	st      store.Store
	sg      signer.Signer
	issuers *issuer.Holder
	auth    *cluster.Authority
	srv     *Server
	init    *cluster.InitResult
	rootPEM []byte
	roots   *x509.CertPool
	// manager is the manager's own node certificate, the one the server
	// presents.
	manager *tls.Certificate
	logs    *syncBuffer

	mu sync.Mutex
	// secrets are join token secrets that must never reach a log line or a
	// metric.
	secrets []string
}

func newEnv(t testing.TB, opts envOptions) *env {
	t.Helper()
	// The administration socket lives in the data directory, and a unix
	// socket path must stay under 108 bytes: t.TempDir() can be too long.
	dir, err := os.MkdirTemp("", "chs")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	if n := len(filepath.Join(dir, api.SocketFile)); n >= 108 {
		t.Fatalf("socket path of %d bytes is too long", n)
	}
	ctx := context.Background()
	req := cluster.InitRequest{
		DataDir:    dir,
		ListenAddr: "127.0.0.1:2378",
		Hostname:   "manager-1",
		Now:        opts.initNow,
	}
	if o := opts.storeOptions; o != nil {
		req.Store = store.Settings{Type: "etcd", Options: o}
	} else if o := etcddev.TestStoreOptions(t); o != nil {
		req.Store = store.Settings{Type: "etcd", Options: o}
	}
	res, err := cluster.Init(ctx, req)
	if err != nil {
		t.Fatalf("cluster.Init: %v", err)
	}
	e := &env{dir: dir, init: res, logs: &syncBuffer{}}
	e.addSecret(res.WorkerToken)
	e.addSecret(res.ManagerToken)

	e.st, err = cluster.OpenStore(dir)
	if err != nil {
		t.Fatal(err)
	}
	c, err := e.st.Cluster(ctx)
	if err != nil {
		t.Fatal(err)
	}
	e.rootPEM = c.RootCAPEM
	roots, err := cluster.Roots(c)
	if err != nil {
		t.Fatal(err)
	}
	e.roots = x509.NewCertPool()
	for _, r := range roots {
		e.roots.AddCert(r)
	}
	e.sg, err = cluster.OpenSigner(ctx, dir, c, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	e.issuers, err = issuer.Hold(e.sg, issuer.Options{})
	if err != nil {
		t.Fatal(err)
	}
	e.auth = cluster.NewAuthority(e.st, e.issuers, nil)

	var logger *slog.Logger
	if opts.quiet {
		logger = slog.New(slog.DiscardHandler)
	} else {
		logger = slog.New(slog.NewTextHandler(e.logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	e.srv, err = New(Config{
		DataDir: dir, Store: e.st, Authority: e.auth, NodeID: res.NodeID, Shared: opts.shared,
		Logger: logger, Backend: c.Backend.Type, Clock: opts.clock, RenewalLimit: opts.renewalLimit,
		Managers: opts.managers,
	})
	if err != nil {
		t.Fatal(err)
	}
	key, chain, err := certdir.In(dir).LoadNode()
	if err != nil {
		t.Fatal(err)
	}
	e.manager = tlsCert(key, chain)
	e.srv.SetCertificate(e.manager)

	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	e.addr = ln.Addr().String()
	sctx, cancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- e.srv.Serve(sctx, ln, nil) }()

	// Cleanups run last registered first: stop the server, close the store,
	// then check the whole run's log.
	if !opts.quiet {
		t.Cleanup(func() { e.checkLogs(t) })
	}
	t.Cleanup(func() { e.st.Close() })
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("Serve: %v", err)
			}
		case <-time.After(15 * time.Second):
			t.Errorf("Serve did not return after its context was cancelled")
		}
	})

	sock := filepath.Join(dir, api.SocketFile)
	for deadline := time.Now().Add(10 * time.Second); ; {
		if _, err := os.Stat(sock); err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the administration socket did not appear")
		}
		time.Sleep(5 * time.Millisecond)
	}
	return e
}

func (e *env) addSecret(token string) {
	e.mu.Lock()
	defer e.mu.Unlock()
	i := strings.LastIndexByte(token, '-')
	e.secrets = append(e.secrets, token[i+1:])
}

// checkLogs asserts that nothing the server logged holds a join token's
// secret or any PEM.
func (e *env) checkLogs(t testing.TB) {
	logs := e.logs.String()
	e.mu.Lock()
	defer e.mu.Unlock()
	for _, s := range e.secrets {
		if strings.Contains(logs, s) {
			t.Errorf("the server's log holds a join token secret:\n%s", logs)
		}
	}
	if strings.Contains(logs, "BEGIN") {
		t.Errorf("the server's log holds PEM:\n%s", logs)
	}
}

func (e *env) socket() string { return filepath.Join(e.dir, api.SocketFile) }

// client returns a client of the manager trusting the cluster root, that
// presents cert when it is not nil.
func (e *env) client(t testing.TB, cert *tls.Certificate) *client.Client {
	var f func() *tls.Certificate
	if cert != nil {
		f = func() *tls.Certificate { return cert }
	}
	c := client.New(e.addr, e.roots, f)
	t.Cleanup(c.Close)
	return c
}

// join joins a node with token and returns its TLS certificate and the
// manager's answer.
func (e *env) join(t testing.TB, token string) (*tls.Certificate, *api.Certificate) {
	t.Helper()
	key := newKey(t)
	out, err := e.client(t, nil).Join(context.Background(), api.JoinRequest{Token: token, CSR: csrPEM(t, key), Hostname: "node"})
	if err != nil {
		t.Fatalf("join: %v", err)
	}
	chain, err := ca.ParseCertificatesPEM([]byte(out.CertificatePEM))
	if err != nil {
		t.Fatal(err)
	}
	return tlsCert(key, chain), out
}

// state is what the store holds: every node and every issued certificate.
type state struct {
	nodes []store.Node
	certs []store.IssuedCertificate
}

func (e *env) state(t testing.TB) state {
	t.Helper()
	ctx := context.Background()
	nodes, err := e.st.Nodes(ctx)
	if err != nil {
		t.Fatal(err)
	}
	certs, err := e.st.IssuedCertificates(ctx, "")
	if err != nil {
		t.Fatal(err)
	}
	return state{nodes, certs}
}

func (e *env) assertUnchanged(t testing.TB, before state) {
	t.Helper()
	after := e.state(t)
	if !reflect.DeepEqual(before.nodes, after.nodes) {
		t.Errorf("the nodes changed:\nbefore %+v\nafter  %+v", before.nodes, after.nodes)
	}
	if !reflect.DeepEqual(before.certs, after.certs) {
		t.Errorf("the issued certificates changed: %d before, %d after", len(before.certs), len(after.certs))
	}
}

func newKey(t testing.TB) *ecdsa.PrivateKey {
	t.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func csrDER(t testing.TB, key crypto.Signer) []byte {
	t.Helper()
	der, err := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{Subject: pkix.Name{CommonName: "ignored"}}, key)
	if err != nil {
		t.Fatal(err)
	}
	return der
}

func csrPEM(t testing.TB, key crypto.Signer) string {
	t.Helper()
	return string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE REQUEST", Bytes: csrDER(t, key)}))
}

func tlsCert(key crypto.Signer, chain []*x509.Certificate) *tls.Certificate {
	c := &tls.Certificate{PrivateKey: key, Leaf: chain[0]}
	for _, x := range chain {
		c.Certificate = append(c.Certificate, x.Raw)
	}
	return c
}

func apiError(t testing.TB, err error, status int, code string) *client.APIError {
	t.Helper()
	var aerr *client.APIError
	if !errors.As(err, &aerr) {
		t.Fatalf("error %v (%T) is not an API error", err, err)
	}
	if aerr.Status != status || aerr.Code != code {
		t.Fatalf("got %d %q (%s), want %d %q", aerr.Status, aerr.Code, aerr.Message, status, code)
	}
	return aerr
}

// selfSigned makes a CA certificate and key outside any cluster.
func selfSigned(t testing.TB, cn string) (*x509.Certificate, *ecdsa.PrivateKey) {
	t.Helper()
	key := newKey(t)
	tmpl := ca.NewRootTemplate(cn, time.Now())
	tmpl.SerialNumber = big.NewInt(1)
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return cert, key
}

func TestJoinTokenDigestMismatch(t *testing.T) {
	e := newEnv(t, envOptions{})
	other, _ := selfSigned(t, ca.DefaultRootCN)
	otherPEM := ca.EncodeCertificatesPEM(other)
	token, err := ca.GenerateJoinToken(otherPEM, nil)
	if err != nil {
		t.Fatal(err)
	}
	e.addSecret(token)
	nodeDir := t.TempDir()
	before := e.state(t)

	_, err = agent.Join(context.Background(), agent.JoinRequest{DataDir: nodeDir, Addr: e.addr, Token: token, Hostname: "node"})
	var mismatch *ca.DigestMismatchError
	if !errors.As(err, &mismatch) {
		t.Fatalf("Join: got %v, want a *ca.DigestMismatchError", err)
	}
	want := ca.RootDigest(otherPEM)
	if exp := "sha256:" + hexString(want[:]); mismatch.Expected != exp || !strings.Contains(err.Error(), exp) {
		t.Errorf("the error %q does not name the expected digest %s", err, exp)
	}
	if got := ca.RootDigest(e.rootPEM); mismatch.Actual != "sha256:"+hexString(got[:]) {
		t.Errorf("Actual = %s, want the cluster root's digest", mismatch.Actual)
	}
	entries, err := os.ReadDir(nodeDir)
	if err != nil {
		t.Fatal(err)
	}
	if len(entries) != 0 {
		t.Errorf("the joining node's data directory holds %v", entries)
	}
	e.assertUnchanged(t, before)
}

func hexString(b []byte) string {
	const digits = "0123456789abcdef"
	out := make([]byte, 0, 2*len(b))
	for _, c := range b {
		out = append(out, digits[c>>4], digits[c&15])
	}
	return string(out)
}

func TestJoinWrongSecret(t *testing.T) {
	e := newEnv(t, envOptions{})
	for _, role := range []struct {
		name, token string
	}{{"worker", e.init.WorkerToken}, {"manager", e.init.ManagerToken}} {
		t.Run(role.name, func(t *testing.T) {
			token, err := ca.RotateJoinToken(role.token, nil)
			if err != nil {
				t.Fatal(err)
			}
			e.addSecret(token)
			nodeDir := filepath.Join(t.TempDir(), "node")
			before := e.state(t)
			_, err = agent.Join(context.Background(), agent.JoinRequest{DataDir: nodeDir, Addr: e.addr, Token: token, Hostname: "node"})
			aerr := apiError(t, err, http.StatusUnauthorized, api.CodeInvalidToken)
			if !strings.Contains(aerr.Message, "A valid join token is necessary to join this cluster") {
				t.Errorf("message %q", aerr.Message)
			}
			if strings.Contains(err.Error(), token[len(token)-25:]) {
				t.Errorf("the error %q holds the token's secret", err)
			}
			if _, err := os.Stat(nodeDir); !errors.Is(err, os.ErrNotExist) {
				t.Errorf("the joining node's data directory was created")
			}
			e.assertUnchanged(t, before)
		})
	}
}

func TestJoinMalformedToken(t *testing.T) {
	e := newEnv(t, envOptions{})
	good := e.init.WorkerToken
	cases := []struct{ name, token string }{
		{"empty", ""},
		{"garbage", "not-a-token"},
		{"prefix", "XWMTKN" + good[6:]},
		{"version", "SWMTKN-2" + good[8:]},
		{"short secret", good[:len(good)-1]},
		{"long secret", good + "0"},
		{"upper case", strings.ToUpper(good)},
		{"extra part", good + "-0"},
	}
	c := e.client(t, nil)
	key := newKey(t)
	csr := csrPEM(t, key)
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			before := e.state(t)
			_, err := c.Join(context.Background(), api.JoinRequest{Token: tc.token, CSR: csr, Hostname: "node"})
			aerr := apiError(t, err, http.StatusUnauthorized, api.CodeInvalidToken)
			if !strings.Contains(aerr.Message, "invalid join token") {
				t.Errorf("message %q does not say invalid join token", aerr.Message)
			}
			e.assertUnchanged(t, before)
		})
	}
}

func TestJoinInvalidCSR(t *testing.T) {
	e := newEnv(t, envOptions{})
	good := csrDER(t, newKey(t))
	badSig := append([]byte(nil), good...)
	badSig[len(badSig)-1] ^= 0xff // the last byte is in the signature
	rsaKey, err := rsa.GenerateKey(rand.Reader, 1024)
	if err != nil {
		t.Fatal(err)
	}
	_, edKey, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	p384, err := ecdsa.GenerateKey(elliptic.P224(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	toPEM := func(der []byte) string {
		return string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE REQUEST", Bytes: der}))
	}
	rsa2048, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	weak := func(h crypto.Hash) string {
		b, err := weakcsr.SignedWith(rsa2048, h, "node")
		if err != nil {
			t.Fatal(err)
		}
		return string(b)
	}
	e3Key, err := weakcsr.RSAKey(2048, 3)
	if err != nil {
		t.Fatal(err)
	}
	cases := []struct{ name, csr, want string }{
		{"SHA-1 signature", weak(crypto.SHA1), "signed with SHA1-RSA: MD5 and SHA-1 signatures are refused"},
		{"MD5 signature", weak(crypto.MD5), "signed with MD5-RSA: MD5 and SHA-1 signatures are refused"},
		{"RSA exponent 3", csrPEM(t, e3Key), "RSA public exponent 3 is refused (want 65537)"},
		{"empty", "", ""},
		{"garbage", "this is not a CSR", ""},
		{"garbage PEM", toPEM([]byte("garbage")), ""},
		{"wrong PEM type", string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: good})), ""},
		{"bad signature", toPEM(badSig), ""},
		{"RSA-1024", csrPEM(t, rsaKey), ""},
		{"Ed25519", csrPEM(t, edKey), ""},
		{"P-224", csrPEM(t, p384), ""},
	}
	c := e.client(t, nil)
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			before := e.state(t)
			_, err := c.Join(context.Background(), api.JoinRequest{Token: e.init.WorkerToken, CSR: tc.csr, Hostname: "node"})
			aerr := apiError(t, err, http.StatusBadRequest, api.CodeInvalidCSR)
			if !strings.Contains(aerr.Message, tc.want) {
				t.Errorf("message %q does not say %q", aerr.Message, tc.want)
			}
			e.assertUnchanged(t, before)
		})
	}
}

// post sends body to path over TLS, without a client certificate, and
// returns the status and the decoded error body.
func (e *env) post(t testing.TB, path string, body []byte) (int, api.Error) {
	t.Helper()
	hc := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{
		RootCAs: e.roots, ServerName: client.ServerName, MinVersion: tls.VersionTLS12,
	}}, Timeout: 30 * time.Second}
	defer hc.CloseIdleConnections()
	resp, err := hc.Post("https://"+e.addr+path, "application/json", bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var out api.Error
	data, _ := io.ReadAll(resp.Body)
	if resp.StatusCode >= 300 {
		if err := json.Unmarshal(data, &out); err != nil {
			t.Fatalf("error body %q: %v", data, err)
		}
	}
	return resp.StatusCode, out
}

func TestBadBodies(t *testing.T) {
	e := newEnv(t, envOptions{})
	token, csr := e.init.WorkerToken, csrPEM(t, newKey(t))
	valid, err := json.Marshal(api.JoinRequest{Token: token, CSR: csr, Hostname: "node"})
	if err != nil {
		t.Fatal(err)
	}
	unknown := append(valid[:len(valid)-1:len(valid)-1], []byte(`,"role":"swarm-manager"}`)...)
	huge, err := json.Marshal(api.JoinRequest{Token: token, CSR: strings.Repeat("A", api.MaxBodyBytes), Hostname: "node"})
	if err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name   string
		body   []byte
		status int
		code   string
	}{
		{"oversized", huge, http.StatusRequestEntityTooLarge, api.CodeTooLarge},
		{"unknown field", unknown, http.StatusBadRequest, api.CodeBadRequest},
		{"two values", append(append([]byte(nil), valid...), valid...), http.StatusBadRequest, api.CodeBadRequest},
		{"trailing garbage", append(append([]byte(nil), valid...), " x"...), http.StatusBadRequest, api.CodeBadRequest},
		{"not JSON", []byte("token=x"), http.StatusBadRequest, api.CodeBadRequest},
		{"array", []byte("[]"), http.StatusBadRequest, api.CodeBadRequest},
		{"empty", nil, http.StatusBadRequest, api.CodeBadRequest},
		{"wrong type", []byte(`{"token":1}`), http.StatusBadRequest, api.CodeBadRequest},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			before := e.state(t)
			status, body := e.post(t, api.PathJoin, tc.body)
			if status != tc.status || body.Code != tc.code {
				t.Errorf("got %d %q (%s), want %d %q", status, body.Code, body.Message, tc.status, tc.code)
			}
			e.assertUnchanged(t, before)
		})
	}
	// The oversized body through the client, as a node would send it.
	before := e.state(t)
	_, err = e.client(t, nil).Join(context.Background(), api.JoinRequest{Token: token, CSR: strings.Repeat("A", api.MaxBodyBytes+1)})
	apiError(t, err, http.StatusRequestEntityTooLarge, api.CodeTooLarge)
	e.assertUnchanged(t, before)
	// And the valid body is accepted, so the refusals above are about the
	// bodies alone.
	if status, body := e.post(t, api.PathJoin, valid); status != http.StatusOK {
		t.Errorf("the valid body: %d %+v", status, body)
	}
}

func TestAdminNeedsManager(t *testing.T) {
	e := newEnv(t, envOptions{})
	worker, _ := e.join(t, e.init.WorkerToken)
	ctx := context.Background()
	before := e.state(t)

	_, err := e.client(t, worker).Nodes(ctx)
	apiError(t, err, http.StatusForbidden, api.CodeForbidden)
	// The other administration calls are refused the same way.
	_, err = e.client(t, worker).Promote(ctx, worker.Leaf.Subject.CommonName)
	apiError(t, err, http.StatusForbidden, api.CodeForbidden)
	_, err = e.client(t, worker).JoinToken(ctx, ca.RoleManager, false)
	apiError(t, err, http.StatusForbidden, api.CodeForbidden)
	// Without a certificate: unauthenticated.
	_, err = e.client(t, nil).Nodes(ctx)
	apiError(t, err, http.StatusUnauthorized, api.CodeUnauthorized)
	e.assertUnchanged(t, before)

	nodes, err := e.client(t, e.manager).Nodes(ctx)
	if err != nil {
		t.Fatalf("a manager's node ls: %v", err)
	}
	if len(nodes) != 2 {
		t.Errorf("node ls: %d nodes, want 2", len(nodes))
	}
}

func TestForeignCertificate(t *testing.T) {
	e := newEnv(t, envOptions{})
	root, rootKey := selfSigned(t, ca.DefaultRootCN)
	key := newKey(t)
	nodeID, err := ca.NewID(nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, role := range []ca.Role{ca.RoleWorker, ca.RoleManager} {
		t.Run(role.Short(), func(t *testing.T) {
			tmpl := &x509.Certificate{
				SerialNumber:          big.NewInt(2),
				Subject:               ca.NodeSubject(e.init.ClusterID, nodeID, role),
				DNSNames:              ca.NodeDNSNames(nodeID, role),
				NotBefore:             time.Now().Add(-time.Hour),
				NotAfter:              time.Now().Add(time.Hour),
				KeyUsage:              x509.KeyUsageDigitalSignature | x509.KeyUsageKeyEncipherment,
				ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
				BasicConstraintsValid: true,
			}
			der, err := x509.CreateCertificate(rand.Reader, tmpl, root, key.Public(), rootKey)
			if err != nil {
				t.Fatal(err)
			}
			leaf, err := x509.ParseCertificate(der)
			if err != nil {
				t.Fatal(err)
			}
			cert := tlsCert(key, []*x509.Certificate{leaf})
			before := e.state(t)
			c := e.client(t, cert)
			_, err = c.Renew(context.Background(), api.RenewRequest{CSR: csrPEM(t, newKey(t))})
			assertRefused(t, err)
			_, err = c.Nodes(context.Background())
			assertRefused(t, err)
			e.assertUnchanged(t, before)
		})
	}
}

// assertRefused checks that err is the manager refusing the client's
// certificate in the TLS handshake, explained as such.
func assertRefused(t testing.TB, err error) {
	t.Helper()
	if err == nil {
		t.Fatal("the call succeeded")
	}
	var aerr *client.APIError
	if errors.As(err, &aerr) {
		t.Fatalf("got an API answer %d %q, want a TLS handshake failure", aerr.Status, aerr.Code)
	}
	if !strings.Contains(err.Error(), "refused this node's certificate") {
		t.Errorf("error %q does not say the manager refused the certificate", err)
	}
}

func TestRemovedNode(t *testing.T) {
	e := newEnv(t, envOptions{})
	ctx := context.Background()
	worker, out := e.join(t, e.init.WorkerToken)
	if _, err := cluster.RemoveNode(ctx, e.st, out.NodeID, true, false, nil); err != nil {
		t.Fatal(err)
	}
	c := e.client(t, worker)
	before := e.state(t)
	_, err := c.Renew(ctx, api.RenewRequest{CSR: csrPEM(t, newKey(t))})
	aerr := apiError(t, err, http.StatusForbidden, api.CodeNodeRemoved)
	if !strings.Contains(aerr.Message, "join again") {
		t.Errorf("message %q does not say to join again", aerr.Message)
	}
	_, err = c.Status(ctx, api.StatusRequest{Hostname: "renamed"})
	apiError(t, err, http.StatusForbidden, api.CodeNodeRemoved)
	e.assertUnchanged(t, before)
}

func TestExpiredCertificate(t *testing.T) {
	// The root must be older than the expired certificate.
	e := newEnv(t, envOptions{initNow: func() time.Time { return time.Now().Add(-24 * time.Hour) }})
	ctx := context.Background()
	if err := cluster.SetCertExpiry(ctx, e.st, time.Hour); err != nil {
		t.Fatal(err)
	}
	past := cluster.NewAuthority(e.st, e.issuers, func() time.Time { return time.Now().Add(-3 * time.Hour) })
	key := newKey(t)
	nodeID, err := ca.NewID(nil)
	if err != nil {
		t.Fatal(err)
	}
	issued, err := past.IssueNodeCertificate(ctx, cluster.IssueRequest{NodeID: nodeID, Role: ca.RoleWorker, CSR: csrDER(t, key)})
	if err != nil {
		t.Fatal(err)
	}
	if !issued.Certificate.NotAfter.Before(time.Now()) {
		t.Fatalf("the certificate is valid until %s", issued.Certificate.NotAfter)
	}
	cert := tlsCert(key, issued.Chain)
	c := e.client(t, cert)
	before := e.state(t)
	_, err = c.Renew(ctx, api.RenewRequest{CSR: csrPEM(t, newKey(t))})
	assertRefused(t, err)
	_, err = c.Status(ctx, api.StatusRequest{})
	assertRefused(t, err)
	e.assertUnchanged(t, before)

	nodeDir := t.TempDir()
	dir := certdir.In(nodeDir)
	if err := dir.WriteRoot(e.rootPEM); err != nil {
		t.Fatal(err)
	}
	if err := dir.WriteNode(key, issued.Chain); err != nil {
		t.Fatal(err)
	}
	if err := agent.WriteState(nodeDir, agent.State{Managers: []string{e.addr}}); err != nil {
		t.Fatal(err)
	}
	_, err = agent.New(agent.Config{DataDir: nodeDir, Logger: slog.New(slog.DiscardHandler)})
	if !errors.Is(err, agent.ErrExpired) {
		t.Fatalf("agent.New: got %v, want ErrExpired", err)
	}
	for _, want := range []string{"expired", "join again", "chancery join --token-file"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("agent.New: %q does not say %q", err, want)
		}
	}
}

func TestRenewTakesStoredRole(t *testing.T) {
	e := newEnv(t, envOptions{})
	ctx := context.Background()
	worker, out := e.join(t, e.init.WorkerToken)
	if out.Role != string(ca.RoleWorker) {
		t.Fatalf("joined as %s", out.Role)
	}
	if _, err := cluster.SetRole(ctx, e.st, out.NodeID, ca.RoleManager, nil); err != nil {
		t.Fatal(err)
	}
	key := newKey(t)
	renewed, err := e.client(t, worker).Renew(ctx, api.RenewRequest{CSR: csrPEM(t, key)})
	if err != nil {
		t.Fatal(err)
	}
	chain, err := ca.ParseCertificatesPEM([]byte(renewed.CertificatePEM))
	if err != nil {
		t.Fatal(err)
	}
	leaf := chain[0]
	if ou := leaf.Subject.OrganizationalUnit; len(ou) != 1 || ou[0] != string(ca.RoleManager) || renewed.Role != string(ca.RoleManager) {
		t.Errorf("renewed with OU %v, role %s; want %s", ou, renewed.Role, ca.RoleManager)
	}
	if leaf.Subject.CommonName != out.NodeID || renewed.NodeID != out.NodeID {
		t.Errorf("renewed for %s, want %s", leaf.Subject.CommonName, out.NodeID)
	}
	if !slices.Contains(leaf.DNSNames, ca.CADNSName) {
		t.Errorf("a manager certificate without %s: %v", ca.CADNSName, leaf.DNSNames)
	}
	// The renewed certificate now administers the cluster.
	if _, err := e.client(t, tlsCert(key, chain)).Nodes(ctx); err != nil {
		t.Errorf("node ls with the renewed certificate: %v", err)
	}
	n, err := e.st.Node(ctx, out.NodeID)
	if err != nil {
		t.Fatal(err)
	}
	if want := hexString(leaf.SerialNumber.Bytes()); n.CertSerial != want {
		t.Errorf("the store's serial %s, want %s", n.CertSerial, want)
	}
}

func TestJoinAsManager(t *testing.T) {
	e := newEnv(t, envOptions{})
	cert, out := e.join(t, e.init.ManagerToken)
	leaf := cert.Leaf
	if ou := leaf.Subject.OrganizationalUnit; len(ou) != 1 || ou[0] != string(ca.RoleManager) {
		t.Errorf("OU %v, want %s", ou, ca.RoleManager)
	}
	if out.Role != string(ca.RoleManager) {
		t.Errorf("role %s", out.Role)
	}
	if org := leaf.Subject.Organization; len(org) != 1 || org[0] != e.init.ClusterID {
		t.Errorf("O %v, want %s", org, e.init.ClusterID)
	}
	want := []string{string(ca.RoleManager), out.NodeID, ca.CADNSName}
	for _, n := range want {
		if !slices.Contains(leaf.DNSNames, n) {
			t.Errorf("DNS names %v lack %s", leaf.DNSNames, n)
		}
	}
	if out.RootCAPEM != string(e.rootPEM) {
		t.Errorf("the answer's root differs from the cluster's")
	}
	// A worker token gives a worker, without swarm-ca.
	wcert, _ := e.join(t, e.init.WorkerToken)
	if ou := wcert.Leaf.Subject.OrganizationalUnit; len(ou) != 1 || ou[0] != string(ca.RoleWorker) {
		t.Errorf("worker OU %v", ou)
	}
	if slices.Contains(wcert.Leaf.DNSNames, ca.CADNSName) {
		t.Errorf("a worker certificate with %s", ca.CADNSName)
	}
}

func TestTLSVersion(t *testing.T) {
	e := newEnv(t, envOptions{})
	for _, tc := range []struct {
		name     string
		min, max uint16
		ok       bool
	}{
		{"TLS 1.0", tls.VersionTLS10, tls.VersionTLS10, false},
		{"TLS 1.1", tls.VersionTLS10, tls.VersionTLS11, false},
		{"TLS 1.2", tls.VersionTLS12, tls.VersionTLS12, true},
		{"TLS 1.3", tls.VersionTLS13, tls.VersionTLS13, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			conn, err := tls.Dial("tcp", e.addr, &tls.Config{
				RootCAs: e.roots, ServerName: client.ServerName, MinVersion: tc.min, MaxVersion: tc.max,
			})
			if !tc.ok {
				if err == nil {
					conn.Close()
					t.Fatal("the handshake succeeded")
				}
				if !strings.Contains(err.Error(), "version") {
					t.Errorf("error %q does not name the version", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			defer conn.Close()
			if v := conn.ConnectionState().Version; v != tc.max {
				t.Errorf("version %x, want %x", v, tc.max)
			}
		})
	}
}

// socketGet GETs path on the administration socket.
func (e *env) socketGet(t testing.TB, path string) (int, string) {
	t.Helper()
	hc := &http.Client{Transport: &http.Transport{DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
		var d net.Dialer
		return d.DialContext(ctx, "unix", e.socket())
	}}, Timeout: 30 * time.Second}
	defer hc.CloseIdleConnections()
	resp, err := hc.Get("http://chancery" + path)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, string(data)
}

func TestSocket(t *testing.T) {
	e := newEnv(t, envOptions{})
	fi, err := os.Stat(e.socket())
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Type() != os.ModeSocket {
		t.Errorf("%s is %v, not a socket", e.socket(), fi.Mode())
	}
	if perm := fi.Mode().Perm(); perm != 0o600 {
		t.Errorf("socket mode %o, want 600", perm)
	}
	_, out := e.join(t, e.init.WorkerToken)
	c := client.NewSocket(e.socket())
	defer c.Close()
	ctx := context.Background()
	nodes, err := c.Nodes(ctx)
	if err != nil {
		t.Fatal(err)
	}
	ids := map[string]api.Node{}
	for _, n := range nodes {
		ids[n.ID] = n
	}
	if len(nodes) != 2 {
		t.Errorf("node ls: %v", nodes)
	}
	if n := ids[e.init.NodeID]; n.Role != string(ca.RoleManager) || n.ManagerStatus != "Leader" || n.Status != "Ready" {
		t.Errorf("the manager: %+v", n)
	}
	if n := ids[out.NodeID]; n.Role != string(ca.RoleWorker) || n.Hostname != "node" || n.Status != "Ready" {
		t.Errorf("the worker: %+v", n)
	}
	info, err := c.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if info.ClusterID != e.init.ClusterID || info.Nodes != 2 || info.Managers != 1 {
		t.Errorf("info: %+v", info)
	}
}

func TestMetricsAndLogs(t *testing.T) {
	e := newEnv(t, envOptions{})
	ctx := context.Background()
	worker, _ := e.join(t, e.init.WorkerToken)
	e.join(t, e.init.ManagerToken)
	if _, err := e.client(t, worker).Renew(ctx, api.RenewRequest{CSR: csrPEM(t, newKey(t))}); err != nil {
		t.Fatal(err)
	}
	// Refusals, whose logs must not hold what was sent either.
	wrong, err := ca.RotateJoinToken(e.init.WorkerToken, nil)
	if err != nil {
		t.Fatal(err)
	}
	e.addSecret(wrong)
	c := e.client(t, nil)
	c.Join(ctx, api.JoinRequest{Token: wrong, CSR: csrPEM(t, newKey(t))})
	c.Join(ctx, api.JoinRequest{Token: e.init.WorkerToken + "x", CSR: csrPEM(t, newKey(t))})
	c.Join(ctx, api.JoinRequest{Token: e.init.ManagerToken, CSR: "-----BEGIN CERTIFICATE REQUEST-----\ngarbage\n-----END CERTIFICATE REQUEST-----\n"})
	e.post(t, api.PathJoin, []byte(`{"token":"`+e.init.WorkerToken+`","bogus":1}`))
	// A token rotation through the socket, whose new token must not be
	// logged.
	tok, err := client.NewSocket(e.socket()).JoinToken(ctx, ca.RoleWorker, true)
	if err != nil {
		t.Fatal(err)
	}
	e.addSecret(tok.Token)

	status, body := e.socketGet(t, "/metrics")
	if status != http.StatusOK {
		t.Fatalf("/metrics: %d", status)
	}
	for _, want := range []string{
		"chancery_certificates_issued_total",
		`chancery_certificates_issued_total{kind="join",role="worker"} 1`,
		`chancery_certificates_issued_total{kind="join",role="manager"} 1`,
		`chancery_certificates_issued_total{kind="renew",role="worker"} 1`,
		"chancery_signing_seconds",
		`chancery_signing_seconds_count{backend="file"} 3`,
		"chancery_failures_total",
		"chancery_nodes",
		`chancery_node_certificate_expiry_seconds_bucket{role="worker",le="0"} 0`,
		`chancery_node_certificate_expiry_seconds_count{role="worker"} 1`,
		`chancery_node_certificate_expiry_seconds_count{role="manager"} 2`,
		`chancery_node_certificate_soonest_expiry_seconds{role="manager"}`,
	} {
		if !strings.Contains(body, want) {
			t.Errorf("/metrics lacks %q:\n%s", want, body)
		}
	}
	// One series per node would not scale: the per-node expiry is in node
	// inspect.
	if strings.Contains(body, "node_id=") {
		t.Errorf("/metrics has a series per node")
	}
	e.mu.Lock()
	for _, s := range e.secrets {
		if strings.Contains(body, s) {
			t.Errorf("/metrics holds a join token secret")
		}
	}
	e.mu.Unlock()
	if strings.Contains(body, "BEGIN") {
		t.Errorf("/metrics holds PEM")
	}
	// The log saw the issuances (checkLogs, at cleanup, checks what it
	// must not hold).
	if logs := e.logs.String(); !strings.Contains(logs, "certificate issued") || !strings.Contains(logs, "request refused") {
		t.Errorf("the log lacks issuances or refusals:\n%s", logs)
	}
}

// TestListenSocketMode: the administration socket never exists under its
// name with a mode other than 0600, not even between its creation and its
// chmod, and closing the listener removes it.
func TestListenSocketMode(t *testing.T) {
	dir, err := os.MkdirTemp("", "sock")
	if err != nil {
		t.Fatal(err)
	}
	defer os.RemoveAll(dir)
	sock := filepath.Join(dir, api.SocketFile)
	stop := make(chan struct{})
	seen := make(chan os.FileMode, 1)
	go func() {
		defer close(seen)
		for {
			select {
			case <-stop:
				return
			default:
			}
			if fi, err := os.Lstat(sock); err == nil && fi.Mode().Perm() != 0o600 {
				seen <- fi.Mode()
				return
			}
		}
	}()
	for i := 0; i < 300; i++ {
		ln, err := ListenSocket(dir)
		if err != nil {
			t.Fatal(err)
		}
		if got := ln.Addr().String(); got != sock {
			t.Fatalf("Addr() = %s, want %s", got, sock)
		}
		ln.Close()
		ln.Close()
		if _, err := os.Lstat(sock); !errors.Is(err, os.ErrNotExist) {
			t.Fatalf("the socket is still there after Close: %v", err)
		}
	}
	close(stop)
	if m, ok := <-seen; ok {
		t.Fatalf("%s was seen with mode %v", sock, m)
	}
	if ents, _ := os.ReadDir(dir); len(ents) != 0 {
		t.Errorf("left behind: %v", ents)
	}
}
