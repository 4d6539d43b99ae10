//go:build cgo

package pkcs11

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"log/slog"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/chancery-pki/chancery/backends"
	"github.com/chancery-pki/chancery/ca"
	"github.com/chancery-pki/chancery/signer"
	"github.com/chancery-pki/chancery/softhsm"
)

// Every test that needs a token gets a fresh one from softhsm.NewToken, in
// this process's private SoftHSM2 configuration; they do not run in
// parallel (see package softhsm).
func TestMain(m *testing.M) { os.Exit(softhsm.Main(m)) }

const (
	testClusterID = "4h5log5xpip966c6c0000z2cy"
	testNodeID    = "kgwuvt1oqhqjsht0qcsq67rvu"
)

// newTestKey makes a fresh token and generates a key of alg labeled "root" in
// it, closed when the test ends.
func newTestKey(t testing.TB, alg Algorithm, opts ...func(*Config)) (*Key, *softhsm.Token) {
	t.Helper()
	tok := softhsm.NewToken(t)
	cfg := Config{URI: tok.URI("root")}
	for _, o := range opts {
		o(&cfg)
	}
	k, generated, err := EnsureKey(context.Background(), cfg, alg)
	if err != nil {
		t.Fatal(err)
	}
	if !generated {
		t.Fatal("EnsureKey found a key in a fresh token")
	}
	t.Cleanup(func() { k.Close() })
	return k, tok
}

// createRoot makes a fresh token and runs the registered backend's
// CreateRoot on it, as `chancery init --backend pkcs11` does.
func createRoot(t testing.TB, alg Algorithm) (*Signer, backends.Settings, *softhsm.Token) {
	t.Helper()
	tok := softhsm.NewToken(t)
	b, err := backends.Get(Name)
	if err != nil {
		t.Fatal(err)
	}
	sg, settings, err := b.CreateRoot(context.Background(), backends.CreateRootRequest{
		Settings:     backends.Settings{SettingURI: tok.URI("root")},
		KeyAlgorithm: string(alg),
		Now:          time.Now(),
	})
	if err != nil {
		t.Fatal(err)
	}
	s := sg.(*Signer)
	t.Cleanup(func() { s.Close() })
	return s, settings, tok
}

// nodeRequest builds a node certificate request for a fresh P-256 key
// under issuer.
func nodeRequest(t testing.TB, issuer *x509.Certificate) *signer.Request {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	csr, err := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{}, key)
	if err != nil {
		t.Fatal(err)
	}
	req, err := ca.NodeCertificateRequest(ca.NodeRequest{
		ClusterID: testClusterID, NodeID: testNodeID, Role: ca.RoleWorker,
		CSR: csr, Expiry: ca.DefaultCertExpiry, Now: time.Now(),
	}, issuer)
	if err != nil {
		t.Fatal(err)
	}
	return req
}

// logBuffer is a slog handler's output, safe for concurrent writes.
type logBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *logBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *logBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// captureLogs returns a logger that writes to the returned buffer.
func captureLogs() (*slog.Logger, *logBuffer) {
	b := &logBuffer{}
	return slog.New(slog.NewTextHandler(b, &slog.HandlerOptions{Level: slog.LevelDebug})), b
}
