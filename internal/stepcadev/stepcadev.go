// Package stepcadev starts smallstep step-ca servers for chancery's tests:
// the step-ca binary that scripts/install-stepca.sh builds, with a
// configuration the test writes (a root and an intermediate, a JWK
// provisioner whose key is encrypted with a password kept in a 0600 file,
// chancery's certificate template, a bbolt database), on a free 127.0.0.1
// port, stopped when the test ends. Without the binary a test is skipped,
// or failed when CI=true.
//
// It is a test helper: production code never imports it.
package stepcadev

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"

	"github.com/chancery-pki/chancery/backends"
	"github.com/chancery-pki/chancery/backends/file"
	"github.com/chancery-pki/chancery/backends/stepca"
)

// Version is the step-ca release scripts/install-stepca.sh builds.
const Version = "v0.30.2"

// ErrNoBinary means no step-ca binary was found.
var ErrNoBinary = errors.New("stepcadev: no step-ca binary")

// Find returns the step-ca binary: $CHANCERY_STEPCA_BIN, or where
// scripts/install-stepca.sh puts it.
func Find() (string, error) {
	if p := os.Getenv("CHANCERY_STEPCA_BIN"); p != "" {
		if _, err := os.Stat(p); err != nil {
			return "", fmt.Errorf("%w: CHANCERY_STEPCA_BIN=%s: %v (run scripts/install-stepca.sh, or unset it)", ErrNoBinary, p, err)
		}
		return p, nil
	}
	cache := os.Getenv("XDG_CACHE_HOME")
	if cache == "" {
		home, err := os.UserHomeDir()
		if err != nil {
			return "", err
		}
		cache = filepath.Join(home, ".cache")
	}
	p := filepath.Join(cache, "chancery", "step-ca-"+Version, "step-ca")
	if _, err := os.Stat(p); err != nil {
		return "", fmt.Errorf("%w at %s: run scripts/install-stepca.sh (or set CHANCERY_STEPCA_BIN)", ErrNoBinary, p)
	}
	return p, nil
}

// Need returns the step-ca binary, or skips t without it (fails it when
// CI=true).
func Need(t testing.TB) string {
	t.Helper()
	bin, err := Find()
	if err != nil {
		if os.Getenv("CI") == "true" || !errors.Is(err, ErrNoBinary) {
			t.Fatalf("step-ca: %v", err)
		}
		t.Skipf("step-ca: %v", err)
	}
	return bin
}

// Options shape the step-ca a test starts.
type Options struct {
	// Template is the provisioner's X.509 template; empty means
	// stepca.Template.
	Template string
	// CrossSign lets the provisioner issue CA certificates
	// (stepca.CrossSignTemplateData), and gives the intermediate no path
	// length limit.
	CrossSign bool
	// RootSigns makes step-ca sign with its root, without an intermediate.
	RootSigns bool
	// X5C adds an X5C provisioner (X5CProvisioner), with a certificate
	// and an encrypted key for it (Server.X5CCertFile, X5CKeyFile).
	X5C bool
	// NoDB runs step-ca without a database: used tokens are remembered in
	// memory, and nothing can be revoked.
	NoDB bool
	// MaxCertDuration is the provisioner's maxTLSCertDuration; zero means
	// 40 years, so that a cross-signed certificate may last as long as a
	// root (chancery's last 20 years, these servers' 30).
	MaxCertDuration time.Duration
}

// Provisioner is the name of the JWK provisioner the servers have.
const Provisioner = "chancery"

// X5CProvisioner is the name of the X5C provisioner of servers started
// with Options.X5C.
const X5CProvisioner = "chancery-x5c"

// Server is a running step-ca.
type Server struct {
	// URL is https://127.0.0.1:PORT.
	URL string
	// Fingerprint is the root's SHA-256 fingerprint, in hex.
	Fingerprint string
	// Root and Intermediate are step-ca's certificates; Intermediate is the
	// root when Options.RootSigns.
	Root, Intermediate *x509.Certificate
	// PasswordFile holds the provisioner's password (mode 0600), KeyFile
	// its encrypted key (mode 0600).
	PasswordFile, KeyFile string
	// X5CCertFile and X5CKeyFile are the X5C provisioner's credential
	// (Options.X5C): a certificate under its root, and its key, encrypted
	// with the password of PasswordFile (mode 0600).
	X5CCertFile, X5CKeyFile string
	// Dir is the server's directory.
	Dir string

	cmd     *exec.Cmd
	logPath string
	exited  chan struct{}
}

// Settings returns the stepca backend's settings for s.
func (s *Server) Settings() backends.Settings {
	return backends.Settings{
		stepca.SettingURL:             s.URL,
		stepca.SettingRootFingerprint: s.Fingerprint,
		stepca.SettingProvisioner:     Provisioner,
		stepca.SettingPasswordFile:    s.PasswordFile,
	}
}

// X5CSettings returns the stepca backend's settings for s's X5C
// provisioner.
func (s *Server) X5CSettings() backends.Settings {
	return backends.Settings{
		stepca.SettingURL:             s.URL,
		stepca.SettingRootFingerprint: s.Fingerprint,
		stepca.SettingProvisioner:     X5CProvisioner,
		stepca.SettingPasswordFile:    s.PasswordFile,
		stepca.SettingX5CCertFile:     s.X5CCertFile,
		stepca.SettingX5CKeyFile:      s.X5CKeyFile,
	}
}

// Start starts a step-ca of t's own, stopped when t ends. Without a step-ca
// binary it skips t, or fails it when CI=true.
func Start(t testing.TB, opts Options) *Server {
	t.Helper()
	bin := Need(t)
	var lastErr error
	for try := 0; try < 3; try++ {
		s, err := start(bin, opts)
		if err == nil {
			t.Cleanup(s.Stop)
			return s
		}
		lastErr = err
	}
	t.Fatalf("step-ca: %v", lastErr)
	return nil
}

func start(bin string, opts Options) (*Server, error) {
	dir, err := os.MkdirTemp("", "chancery-stepca-")
	if err != nil {
		return nil, err
	}
	s := &Server{Dir: dir, logPath: filepath.Join(dir, "step-ca.log"), exited: make(chan struct{})}
	fail := func(err error) (*Server, error) {
		os.RemoveAll(dir)
		return nil, err
	}
	port, err := freePort()
	if err != nil {
		return fail(err)
	}
	s.URL = fmt.Sprintf("https://127.0.0.1:%d", port)
	cfg, err := s.writeConfig(port, opts)
	if err != nil {
		return fail(err)
	}
	logf, err := os.Create(s.logPath)
	if err != nil {
		return fail(err)
	}
	s.cmd = exec.Command(bin, cfg)
	// A private STEPPATH and HOME: nothing of the caller's step setup.
	s.cmd.Env = []string{"HOME=" + dir, "STEPPATH=" + filepath.Join(dir, "step"), "PATH=" + os.Getenv("PATH")}
	s.cmd.Stdout, s.cmd.Stderr = logf, logf
	s.cmd.SysProcAttr = procAttr()
	if err := s.cmd.Start(); err != nil {
		logf.Close()
		return fail(fmt.Errorf("starting %s: %w", bin, err))
	}
	go func() { s.cmd.Wait(); logf.Close(); close(s.exited) }()
	if err := s.waitHealthy(30 * time.Second); err != nil {
		s.Stop()
		return nil, err
	}
	return s, nil
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// writeConfig writes the PKI, the provisioner's key and password, and
// ca.json, and returns ca.json's path.
func (s *Server) writeConfig(port int, opts Options) (string, error) {
	now := time.Now()
	rootKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return "", err
	}
	s.Root, err = certify(&x509.Certificate{
		Subject: pkix.Name{CommonName: "stepcadev Root CA " + randHex(4)}, NotBefore: now.Add(-time.Hour), NotAfter: now.Add(30 * 365 * 24 * time.Hour),
		IsCA: true, BasicConstraintsValid: true, MaxPathLen: -1, KeyUsage: x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
	}, nil, rootKey.Public(), rootKey)
	if err != nil {
		return "", err
	}
	signKey, signCert := rootKey, s.Root
	if !opts.RootSigns {
		if signKey, err = ecdsa.GenerateKey(elliptic.P256(), rand.Reader); err != nil {
			return "", err
		}
		maxPath, zero := 0, true
		if opts.CrossSign {
			maxPath, zero = -1, false
		}
		if signCert, err = certify(&x509.Certificate{
			Subject: pkix.Name{CommonName: "stepcadev Intermediate CA"}, NotBefore: now.Add(-time.Hour), NotAfter: now.Add(25 * 365 * 24 * time.Hour),
			IsCA: true, BasicConstraintsValid: true, MaxPathLen: maxPath, MaxPathLenZero: zero, KeyUsage: x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
		}, s.Root, signKey.Public(), rootKey); err != nil {
			return "", err
		}
	}
	s.Intermediate = signCert
	sum := sha256.Sum256(s.Root.Raw)
	s.Fingerprint = hex.EncodeToString(sum[:])

	keyDER, err := x509.MarshalECPrivateKey(signKey)
	if err != nil {
		return "", err
	}
	files := map[string][]byte{
		"root_ca.crt":         pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: s.Root.Raw}),
		"intermediate_ca.crt": pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: signCert.Raw}),
		"intermediate_ca_key": pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: keyDER}),
	}
	// The JWK provisioner: its public key in ca.json, its private key
	// encrypted with a password, as `step ca provisioner add` writes them.
	provKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return "", err
	}
	pub := jose.JSONWebKey{Key: provKey.Public(), Algorithm: string(jose.ES256), Use: "sig"}
	thumb, err := pub.Thumbprint(crypto.SHA256)
	if err != nil {
		return "", err
	}
	pub.KeyID = base64.RawURLEncoding.EncodeToString(thumb)
	priv := jose.JSONWebKey{Key: provKey, KeyID: pub.KeyID, Algorithm: string(jose.ES256), Use: "sig"}
	password := []byte(randHex(16))
	encrypted, err := EncryptKey(priv, password)
	if err != nil {
		return "", err
	}
	files["password"] = password
	files["provisioner.key"] = []byte(encrypted)
	for name, data := range files {
		if err := os.WriteFile(filepath.Join(s.Dir, name), data, 0o600); err != nil {
			return "", err
		}
	}
	s.PasswordFile, s.KeyFile = filepath.Join(s.Dir, "password"), filepath.Join(s.Dir, "provisioner.key")

	tmpl := opts.Template
	if tmpl == "" {
		tmpl = stepca.Template
	}
	x509Opts := map[string]any{"template": tmpl}
	if opts.CrossSign {
		x509Opts["templateData"] = json.RawMessage(stepca.CrossSignTemplateData)
	}
	maxDur := opts.MaxCertDuration
	if maxDur == 0 {
		maxDur = 40 * 365 * 24 * time.Hour
	}
	pubJSON, err := pub.MarshalJSON()
	if err != nil {
		return "", err
	}
	claims := map[string]any{
		"minTLSCertDuration": "1m", "maxTLSCertDuration": maxDur.String(), "defaultTLSCertDuration": "24h",
		"disableSmallstepExtensions": true,
	}
	provisioners := []any{map[string]any{
		"type": "JWK", "name": Provisioner, "key": json.RawMessage(pubJSON), "encryptedKey": encrypted,
		"claims": claims, "options": map[string]any{"x509": x509Opts},
	}}
	if opts.X5C {
		roots, err := s.writeX5C(now, password)
		if err != nil {
			return "", err
		}
		provisioners = append(provisioners, map[string]any{
			"type": "X5C", "name": X5CProvisioner, "roots": roots, "claims": claims, "options": map[string]any{"x509": x509Opts},
		})
	}
	cfg := map[string]any{
		"root":      filepath.Join(s.Dir, "root_ca.crt"),
		"crt":       filepath.Join(s.Dir, "intermediate_ca.crt"),
		"key":       filepath.Join(s.Dir, "intermediate_ca_key"),
		"address":   fmt.Sprintf("127.0.0.1:%d", port),
		"dnsNames":  []string{"127.0.0.1"},
		"logger":    map[string]any{"format": "text"},
		"authority": map[string]any{"provisioners": provisioners},
		"tls":       map[string]any{"minVersion": 1.2, "maxVersion": 1.3},
	}
	if !opts.NoDB {
		// A database, so that certificates can be revoked.
		cfg["db"] = map[string]any{"type": "bbolt", "dataSource": filepath.Join(s.Dir, "db")}
	}
	data, err := json.MarshalIndent(cfg, "", "  ")
	if err != nil {
		return "", err
	}
	path := filepath.Join(s.Dir, "ca.json")
	return path, os.WriteFile(path, data, 0o600)
}

// writeX5C makes the X5C provisioner's root and a certificate under it
// (valid from two days ago for 31 years, so that backdated and
// cross-signed certificates fit in it), writes the certificate and its
// key encrypted with password, and returns the root in PEM.
func (s *Server) writeX5C(now time.Time, password []byte) ([]byte, error) {
	caKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, err
	}
	root, err := certify(&x509.Certificate{
		Subject: pkix.Name{CommonName: "stepcadev X5C Root"}, NotBefore: now.Add(-72 * time.Hour), NotAfter: now.Add(40 * 365 * 24 * time.Hour),
		IsCA: true, BasicConstraintsValid: true, MaxPathLen: -1, KeyUsage: x509.KeyUsageCertSign,
	}, nil, caKey.Public(), caKey)
	if err != nil {
		return nil, err
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, err
	}
	leaf, err := certify(&x509.Certificate{
		Subject: pkix.Name{CommonName: "chancery"}, NotBefore: now.Add(-48 * time.Hour), NotAfter: now.Add(31 * 365 * 24 * time.Hour),
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
	}, root, key.Public(), caKey)
	if err != nil {
		return nil, err
	}
	keyPEM, err := file.MarshalKey(key, password)
	if err != nil {
		return nil, err
	}
	s.X5CCertFile, s.X5CKeyFile = filepath.Join(s.Dir, "x5c.crt"), filepath.Join(s.Dir, "x5c.key")
	if err := os.WriteFile(s.X5CCertFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: leaf.Raw}), 0o600); err != nil {
		return nil, err
	}
	if err := os.WriteFile(s.X5CKeyFile, keyPEM, 0o600); err != nil {
		return nil, err
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: root.Raw}), nil
}

// EncryptKey encrypts a JWK with password as step does: a compact JWE,
// PBES2-HS256+A128KW and A256GCM, 100000 iterations.
func EncryptKey(key jose.JSONWebKey, password []byte) (string, error) {
	plain, err := key.MarshalJSON()
	if err != nil {
		return "", err
	}
	enc, err := jose.NewEncrypter(jose.A256GCM, jose.Recipient{Algorithm: jose.PBES2_HS256_A128KW, Key: password, PBES2Count: 100000},
		(&jose.EncrypterOptions{}).WithContentType("jwk+json"))
	if err != nil {
		return "", err
	}
	obj, err := enc.Encrypt(plain)
	if err != nil {
		return "", err
	}
	return obj.CompactSerialize()
}

func certify(tmpl, parent *x509.Certificate, pub crypto.PublicKey, key crypto.Signer) (*x509.Certificate, error) {
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
	if err != nil {
		return nil, err
	}
	tmpl.SerialNumber = serial
	if parent == nil {
		parent = tmpl
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, parent, pub, key)
	if err != nil {
		return nil, err
	}
	return x509.ParseCertificate(der)
}

func randHex(n int) string {
	b := make([]byte, n)
	rand.Read(b)
	return hex.EncodeToString(b)
}

// waitHealthy polls /health over TLS verified under the root.
func (s *Server) waitHealthy(timeout time.Duration) error {
	pool := x509.NewCertPool()
	pool.AddCert(s.Root)
	c := &http.Client{Timeout: 2 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}}}
	defer c.CloseIdleConnections()
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) {
		select {
		case <-s.exited:
			return fmt.Errorf("step-ca exited: %s", s.LogTail())
		default:
		}
		if res, err := c.Get(s.URL + "/health"); err == nil {
			res.Body.Close()
			if res.StatusCode == http.StatusOK {
				return nil
			}
		}
		time.Sleep(100 * time.Millisecond)
	}
	return fmt.Errorf("step-ca not healthy after %s: %s", timeout, s.LogTail())
}

// LogTail returns the end of step-ca's log.
func (s *Server) LogTail() string {
	b, _ := os.ReadFile(s.logPath)
	if len(b) > 2000 {
		b = b[len(b)-2000:]
	}
	return string(b)
}

// Kill ends step-ca without removing its directory.
func (s *Server) Kill() {
	if s.cmd != nil && s.cmd.Process != nil {
		s.cmd.Process.Signal(os.Interrupt)
		select {
		case <-s.exited:
		case <-time.After(10 * time.Second):
			s.cmd.Process.Kill()
			<-s.exited
		}
	}
}

// Stop ends step-ca and removes its directory.
func (s *Server) Stop() {
	s.Kill()
	os.RemoveAll(s.Dir)
}
