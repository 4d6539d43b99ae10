//go:debug x509sha256skid=0

// The directive above makes crypto/x509 compute the subject key ID of the
// roots these tests make (among them the conformance suite's new root) as
// SHA-1 of the key, as swarm, cfssl and Go before 1.25 do: cfssl 1.2.0
// ignores the SKI chancery sends and computes it that way, so only such a
// root can be cross-signed by it. TestCrossSignSHA256KeyIDRefused shows the
// refusal for a root whose key ID was computed otherwise.

package cfssl

import (
	"context"
	"crypto/elliptic"
	"crypto/x509"
	"testing"

	"github.com/chancery-pki/chancery/internal/cfssldev"
)

// serveOptions choose the CA a test cfssl serves.
type serveOptions = cfssldev.Options

// testCFSSL is a running `cfssl serve`.
type testCFSSL struct {
	// Spec is the external CA: the sign URL and the cacert bundle that
	// trusts the server's TLS certificate (and holds the root when the
	// signing CA is an intermediate).
	Spec ExternalCA
	// Cert is the signing CA's certificate, Root the root's (the same
	// unless Intermediate).
	Cert, Root *x509.Certificate
	// AuthKeyHex is the auth key of the configuration.
	AuthKeyHex string
	// AuthKeyFile holds AuthKeyHex.
	AuthKeyFile string
}

// startCFSSL starts `cfssl serve` (cfssldev.Start), stopped when t ends.
func startCFSSL(t testing.TB, opts serveOptions) *testCFSSL {
	t.Helper()
	s := cfssldev.Start(t, opts)
	return &testCFSSL{
		Spec:        ExternalCA{URL: s.SignURL, CACertFile: s.BundleFile},
		Cert:        s.Cert,
		Root:        s.Root,
		AuthKeyHex:  s.AuthKeyHex,
		AuthKeyFile: s.AuthKeyFile,
	}
}

func p256() elliptic.Curve { return elliptic.P256() }
func p384() elliptic.Curve { return elliptic.P384() }

// issueCert and newECKey are cfssldev's helpers, under the names the
// package's tests use.
var (
	issueCert = cfssldev.IssueCert
	newECKey  = cfssldev.NewECKey
)

// newTestSigner opens a Signer on srv, with its auth key when auth is set.
func newTestSigner(t testing.TB, srv *testCFSSL, auth bool) *Signer {
	t.Helper()
	cfg := Config{CAs: []ExternalCA{srv.Spec}}
	if auth {
		k, err := ReadAuthKey(srv.AuthKeyFile, "")
		if err != nil {
			t.Fatal(err)
		}
		cfg.AuthKey, cfg.AuthKeySource = k, "file "+srv.AuthKeyFile
	}
	s, err := New(context.Background(), cfg)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}
