package vault

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"io"
	"testing"
	"time"

	"github.com/chancery-pki/chancery/backends"
	"github.com/chancery-pki/chancery/ca"
	"github.com/chancery-pki/chancery/signer"
)

const (
	testClusterID = "4h5log5xpip966c6c0000z2cy"
	testNodeID    = "kgwuvt1oqhqjsht0qcsq67rvu"
)

// fastRetry keeps the tests' retries short.
var fastRetry = Retry{Attempts: 3, Min: 10 * time.Millisecond, Max: 50 * time.Millisecond}

// env is a fresh PKI mount and an AppRole limited to Policy(mount).
type env struct {
	srv   *devServer
	mount string
	role  *appRole
}

func newEnv(t testing.TB) *env {
	t.Helper()
	srv := vaultServer(t)
	m := srv.newMount(t)
	return &env{srv: srv, mount: m, role: srv.newAppRole(t, Policy(m), nil)}
}

// settings are the init settings that reach e's mount with its AppRole.
func (e *env) settings() backends.Settings {
	return backends.Settings{
		SettingAddress:             e.srv.Addr,
		SettingMount:               e.mount,
		SettingAppRoleRoleIDFile:   e.role.roleIDFile,
		SettingAppRoleSecretIDFile: e.role.secretIDFile,
	}
}

// createRoot runs the registered backend's CreateRoot, as `chancery init
// --backend vault` does, and closes the Signer when the test ends.
func createRoot(t testing.TB, settings backends.Settings, alg string) (*Signer, backends.Settings) {
	t.Helper()
	s, out := createWith(t, settings, alg)
	return s.(*Signer), out
}

// createWith runs the registered backend's CreateRoot and closes the
// Signer when the test ends.
func createWith(t testing.TB, settings backends.Settings, alg string) (signer.Signer, backends.Settings) {
	t.Helper()
	b, err := backends.Get(Name)
	if err != nil {
		t.Fatal(err)
	}
	s, out, err := b.CreateRoot(context.Background(), backends.CreateRootRequest{
		Settings: settings, KeyAlgorithm: alg, Now: time.Now(),
	})
	if err != nil {
		t.Fatalf("CreateRoot: %v", err)
	}
	t.Cleanup(func() { s.(io.Closer).Close() })
	return s, out
}

// newTestSigner is a fresh mount, AppRole and root.
func newTestSigner(t testing.TB) (*Signer, *env) {
	t.Helper()
	e := newEnv(t)
	s, _ := createRoot(t, e.settings(), "")
	return s, e
}

func newP256(t testing.TB) *ecdsa.PrivateKey {
	t.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

// nodeRequest builds a node certificate request for a fresh P-256 key
// under issuer, with ca.NodeCertificateRequest.
func nodeRequest(t testing.TB, issuer *x509.Certificate, role ca.Role, now time.Time) *signer.Request {
	t.Helper()
	csr, err := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{}, newP256(t))
	if err != nil {
		t.Fatal(err)
	}
	req, err := ca.NodeCertificateRequest(ca.NodeRequest{
		ClusterID: testClusterID, NodeID: testNodeID, Role: role, CSR: csr, Expiry: ca.DefaultCertExpiry, Now: now,
	}, issuer)
	if err != nil {
		t.Fatal(err)
	}
	return req
}
