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
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/chancery-pki/chancery/ca"
	"github.com/chancery-pki/chancery/signer"
)

// Profiles of the cfssl configuration the tests serve. README's
// configuration for an external CA is the same, without the
// "authenticated" profile.
const (
	testNodeExpiry = 2160 * time.Hour
	testCAExpiry   = 43800 * time.Hour
	testBackdate   = time.Hour
	testAuthKeyID  = "chancery"
)

// cfsslConfig returns cfss serve's configuration: the default profile for
// node certificates, the CA profile for cross-signing, and a profile named
// "authenticated" that needs the auth key. With auth, the default and CA
// profiles need the auth key too, so that chancery must use /authsign.
func cfsslConfig(authKeyHex string, auth bool) []byte {
	profile := func(p map[string]any) map[string]any {
		if auth {
			p["auth_key"] = testAuthKeyID
		}
		return p
	}
	cfg := map[string]any{
		"signing": map[string]any{
			"default": profile(map[string]any{
				"usages":   []string{"digital signature", "key encipherment", "server auth", "client auth"},
				"expiry":   "2160h",
				"backdate": "1h",
			}),
			"profiles": map[string]any{
				"CA": profile(map[string]any{
					"usages":             []string{"cert sign", "crl sign"},
					"expiry":             "43800h",
					"backdate":           "1h",
					"ca_constraint":      map[string]any{"is_ca": true},
					"allowed_extensions": []string{"2.5.29.19", "2.5.29.14"},
				}),
				"authenticated": map[string]any{
					"usages":   []string{"digital signature", "key encipherment", "server auth", "client auth"},
					"expiry":   "2160h",
					"auth_key": testAuthKeyID,
				},
			},
		},
		"auth_keys": map[string]any{
			testAuthKeyID: map[string]any{"type": "standard", "key": authKeyHex},
		},
	}
	b, err := json.MarshalIndent(cfg, "", "  ")
	if err != nil {
		panic(err)
	}
	return b
}

// serveOptions choose the CA a test cfssl serves.
type serveOptions struct {
	// Curve is the signing CA's key; nil means P-256.
	Curve elliptic.Curve
	// Intermediate makes the signing CA an intermediate under a root that
	// only the cacert bundle holds.
	Intermediate bool
	// Auth makes the default and CA profiles need the auth key.
	Auth bool
}

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

// needCFSSL returns the cfssl binary's path. It skips t when cfssl is
// missing, or fails it under CI.
func needCFSSL(t testing.TB) string {
	t.Helper()
	path, err := exec.LookPath("cfssl")
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatal("cfssl is missing and CI=true: install golang-cfssl (scripts/setup.sh does)")
		}
		t.Skip("cfssl is missing: install golang-cfssl (scripts/setup.sh does) to run the tests against a real cfssl serve")
	}
	return path
}

// startCFSSL generates a CA and a TLS certificate, starts `cfssl serve`
// over TLS on a free 127.0.0.1 port, waits until it answers, and stops it
// when t ends.
func startCFSSL(t testing.TB, opts serveOptions) *testCFSSL {
	t.Helper()
	bin := needCFSSL(t)
	dir := t.TempDir()
	now := time.Now()
	curve := opts.Curve
	if curve == nil {
		curve = elliptic.P256()
	}

	rootKey := newECKey(t, curve)
	root, err := signer.SelfSign(nil, rootKey, ca.NewRootTemplate("cfssl-test-root", now.Add(-24*time.Hour)))
	if err != nil {
		t.Fatal(err)
	}
	caCert, caKey := root, rootKey
	if opts.Intermediate {
		caKey = newECKey(t, curve)
		caCert = issueCert(t, root, rootKey, caKey.Public(), &x509.Certificate{
			Subject:               pkix.Name{CommonName: "cfssl-test-intermediate", Organization: []string{"chancery tests"}},
			NotBefore:             now.Add(-23 * time.Hour),
			NotAfter:              now.Add(15 * 365 * 24 * time.Hour),
			IsCA:                  true,
			BasicConstraintsValid: true,
			KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
		})
	}

	// The TLS server certificate comes from a TLS root of its own: cacert
	// is what the connection trusts, not the signing CA.
	tlsRootKey := newECKey(t, elliptic.P256())
	tlsRoot, err := signer.SelfSign(nil, tlsRootKey, ca.NewRootTemplate("cfssl-test-tls-root", now))
	if err != nil {
		t.Fatal(err)
	}
	tlsKey := newECKey(t, elliptic.P256())
	tlsCert := issueCert(t, tlsRoot, tlsRootKey, tlsKey.Public(), &x509.Certificate{
		Subject:     pkix.Name{CommonName: "127.0.0.1"},
		IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)},
		NotBefore:   now.Add(-time.Hour),
		NotAfter:    now.Add(24 * time.Hour),
		KeyUsage:    x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	})

	authKey := make([]byte, 16)
	if _, err := rand.Read(authKey); err != nil {
		t.Fatal(err)
	}
	authHex := hex.EncodeToString(authKey)
	bundle := ca.EncodeCertificatesPEM(tlsRoot)
	if opts.Intermediate {
		bundle = append(bundle, ca.EncodeCertificatesPEM(root)...)
	}
	files := map[string][]byte{
		"ca.pem":       ca.EncodeCertificatesPEM(caCert),
		"ca-key.pem":   ecKeyPEM(t, caKey),
		"tls.pem":      ca.EncodeCertificatesPEM(tlsCert),
		"tls-key.pem":  ecKeyPEM(t, tlsKey),
		"bundle.pem":   bundle,
		"config.json":  cfsslConfig(authHex, opts.Auth),
		"auth-key.hex": []byte(authHex + "\n"),
	}
	for name, data := range files {
		if err := os.WriteFile(filepath.Join(dir, name), data, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	pool := x509.NewCertPool()
	pool.AddCert(tlsRoot)
	probe := &http.Client{
		Timeout:   time.Second,
		Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}},
	}
	defer probe.CloseIdleConnections()

	// A free port can be taken between asking and binding: try a few.
	var lastLog string
	for try := 0; try < 3; try++ {
		port := freePort(t)
		logPath := filepath.Join(dir, fmt.Sprintf("serve-%d.log", try))
		logFile, err := os.Create(logPath)
		if err != nil {
			t.Fatal(err)
		}
		cmd := exec.Command(bin, "serve",
			"-address", "127.0.0.1", "-port", strconv.Itoa(port),
			"-ca", filepath.Join(dir, "ca.pem"), "-ca-key", filepath.Join(dir, "ca-key.pem"),
			"-config", filepath.Join(dir, "config.json"),
			"-tls-cert", filepath.Join(dir, "tls.pem"), "-tls-key", filepath.Join(dir, "tls-key.pem"),
			"-loglevel", "2")
		cmd.Stdout, cmd.Stderr = logFile, logFile
		if err := cmd.Start(); err != nil {
			logFile.Close()
			t.Fatalf("failed to start cfssl serve: %v", err)
		}
		exited := make(chan struct{})
		go func() { cmd.Wait(); logFile.Close(); close(exited) }()
		stop := func() {
			cmd.Process.Kill()
			<-exited
		}
		base := "https://127.0.0.1:" + strconv.Itoa(port) + "/api/v1/cfssl/"
		if waitServing(probe, base+"info", exited) {
			t.Cleanup(stop)
			return &testCFSSL{
				Spec:        ExternalCA{URL: base + "sign", CACertFile: filepath.Join(dir, "bundle.pem")},
				Cert:        caCert,
				Root:        root,
				AuthKeyHex:  authHex,
				AuthKeyFile: filepath.Join(dir, "auth-key.hex"),
			}
		}
		stop()
		data, _ := os.ReadFile(logPath)
		lastLog = string(data)
	}
	t.Fatalf("cfssl serve did not start; its last log:\n%s", lastLog)
	return nil
}

// waitServing polls url until it answers 200, for up to 15s, or until the
// server exits.
func waitServing(c *http.Client, url string, exited <-chan struct{}) bool {
	deadline := time.Now().Add(15 * time.Second)
	for time.Now().Before(deadline) {
		select {
		case <-exited:
			return false
		default:
		}
		resp, err := c.Post(url, "application/json", strings.NewReader("{}"))
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return true
			}
		}
		time.Sleep(20 * time.Millisecond)
	}
	return false
}

func freePort(t testing.TB) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

func p256() elliptic.Curve { return elliptic.P256() }
func p384() elliptic.Curve { return elliptic.P384() }

func newECKey(t testing.TB, curve elliptic.Curve) *ecdsa.PrivateKey {
	t.Helper()
	k, err := ecdsa.GenerateKey(curve, rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func ecKeyPEM(t testing.TB, k *ecdsa.PrivateKey) []byte {
	t.Helper()
	der, err := x509.MarshalECPrivateKey(k)
	if err != nil {
		t.Fatal(err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: der})
}

// issueCert signs tmpl for pub with the CA parent and its key, with a
// random 20-byte serial unless tmpl has one.
func issueCert(t testing.TB, parent *x509.Certificate, key crypto.Signer, pub crypto.PublicKey, tmpl *x509.Certificate) *x509.Certificate {
	t.Helper()
	if tmpl.SerialNumber == nil {
		serial, err := signer.RandomSerial(rand.Reader)
		if err != nil {
			t.Fatal(err)
		}
		tmpl.SerialNumber = serial
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, parent, pub, key)
	if err != nil {
		t.Fatal(err)
	}
	c, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

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
