// Package cfssldev starts a real `cfssl serve` for chancery's tests: a CA
// and a TLS certificate made for the test, the server over TLS on a free
// 127.0.0.1 port, stopped when the test ends. Tests that need cfssl get a
// server with Start, which skips them when the cfssl binary is missing, or
// fails them when CI=true.
//
// cfssl 1.2.0 ignores the subject key ID chancery sends when it
// cross-signs a root and computes it as SHA-1 of the key, so only a root
// whose key ID was computed that way can be cross-signed by it: a package
// whose tests have this server cross-sign a root they make needs
// //go:debug x509sha256skid=0 in its tests, as backends/cfssl's have.
//
// It is a test helper: production code never imports it.
package cfssldev

import (
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

// Profiles of the cfssl configuration Start serves (Config). README's
// configuration for an external CA is the same, without the
// "authenticated" profile.
const (
	// NodeExpiry is the validity the default profile gives a node
	// certificate.
	NodeExpiry = 2160 * time.Hour
	// CAExpiry is the validity the CA profile gives a cross-signed
	// certificate.
	CAExpiry = 43800 * time.Hour
	// Backdate is how far before signing the default and CA profiles
	// start a certificate's validity.
	Backdate = time.Hour
	// AuthKeyID names the configuration's auth key.
	AuthKeyID = "chancery"
)

// Config returns cfssl serve's configuration: the default profile for node
// certificates, the CA profile for cross-signing, and a profile named
// "authenticated" that needs the auth key, authKeyHex. With auth, the
// default and CA profiles need the auth key too, so that chancery must use
// /authsign.
func Config(authKeyHex string, auth bool) []byte {
	profile := func(p map[string]any) map[string]any {
		if auth {
			p["auth_key"] = AuthKeyID
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
					"auth_key": AuthKeyID,
				},
			},
		},
		"auth_keys": map[string]any{
			AuthKeyID: map[string]any{"type": "standard", "key": authKeyHex},
		},
	}
	b, err := json.MarshalIndent(cfg, "", "  ")
	if err != nil {
		panic(err)
	}
	return b
}

// Options choose the CA a test cfssl serve signs with.
type Options struct {
	// Curve is the signing CA's key; nil means P-256.
	Curve elliptic.Curve
	// Intermediate makes the signing CA an intermediate under a root that
	// only the bundle holds.
	Intermediate bool
	// Auth makes the default and CA profiles need the auth key
	// (/authsign).
	Auth bool
}

// Server is a running cfssl serve.
type Server struct {
	// SignURL is the server's sign endpoint,
	// https://127.0.0.1:PORT/api/v1/cfssl/sign.
	SignURL string
	// BundleFile is a PEM bundle that trusts the server's TLS certificate
	// (and holds the root when the signing CA is an intermediate).
	BundleFile string
	// Cert is the signing CA's certificate, Root the root's (the same
	// unless Intermediate).
	Cert, Root *x509.Certificate
	// AuthKeyHex is the auth key of the configuration, in hex.
	AuthKeyHex string
	// AuthKeyFile holds AuthKeyHex.
	AuthKeyFile string
}

// Need returns the cfssl binary's path. It skips t when cfssl is missing,
// or fails it when CI=true.
func Need(t testing.TB) string {
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

// Start generates a CA and a TLS certificate, starts `cfssl serve` over TLS
// on a free 127.0.0.1 port, waits until it answers, and stops it when t
// ends. Without a cfssl binary it skips t, or fails it when CI=true (Need).
func Start(t testing.TB, opts Options) *Server {
	t.Helper()
	bin := Need(t)
	dir := t.TempDir()
	now := time.Now()
	curve := opts.Curve
	if curve == nil {
		curve = elliptic.P256()
	}

	rootKey := NewECKey(t, curve)
	root, err := signer.SelfSign(nil, rootKey, ca.NewRootTemplate("cfssl-test-root", now.Add(-24*time.Hour)))
	if err != nil {
		t.Fatal(err)
	}
	caCert, caKey := root, rootKey
	if opts.Intermediate {
		caKey = NewECKey(t, curve)
		caCert = IssueCert(t, root, rootKey, caKey.Public(), &x509.Certificate{
			Subject:               pkix.Name{CommonName: "cfssl-test-intermediate", Organization: []string{"chancery tests"}},
			NotBefore:             now.Add(-23 * time.Hour),
			NotAfter:              now.Add(15 * 365 * 24 * time.Hour),
			IsCA:                  true,
			BasicConstraintsValid: true,
			KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
		})
	}

	// The TLS server certificate comes from a TLS root of its own: the
	// bundle is what the connection trusts, not the signing CA.
	tlsRootKey := NewECKey(t, elliptic.P256())
	tlsRoot, err := signer.SelfSign(nil, tlsRootKey, ca.NewRootTemplate("cfssl-test-tls-root", now))
	if err != nil {
		t.Fatal(err)
	}
	tlsKey := NewECKey(t, elliptic.P256())
	tlsCert := IssueCert(t, tlsRoot, tlsRootKey, tlsKey.Public(), &x509.Certificate{
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
		"config.json":  Config(authHex, opts.Auth),
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
			return &Server{
				SignURL:     base + "sign",
				BundleFile:  filepath.Join(dir, "bundle.pem"),
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

// freePort returns a port free on 127.0.0.1 when asked.
func freePort(t testing.TB) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// NewECKey generates an ECDSA key on curve, failing t on error.
func NewECKey(t testing.TB, curve elliptic.Curve) *ecdsa.PrivateKey {
	t.Helper()
	k, err := ecdsa.GenerateKey(curve, rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

// ecKeyPEM encodes k as an "EC PRIVATE KEY" PEM block, the form cfssl
// serve reads.
func ecKeyPEM(t testing.TB, k *ecdsa.PrivateKey) []byte {
	t.Helper()
	der, err := x509.MarshalECPrivateKey(k)
	if err != nil {
		t.Fatal(err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: der})
}

// IssueCert signs tmpl for pub with the CA parent and its key, with a
// random 20-byte serial unless tmpl has one, failing t on error. It makes
// the test CAs and TLS certificates around a cfssl serve, not certificates
// chancery issues.
func IssueCert(t testing.TB, parent *x509.Certificate, key crypto.Signer, pub crypto.PublicKey, tmpl *x509.Certificate) *x509.Certificate {
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
