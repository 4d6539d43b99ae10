package extca

import (
	"context"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chancery-pki/chancery/ca"
	"github.com/chancery-pki/chancery/internal/cfssldev"
	"github.com/chancery-pki/chancery/internal/cfsslwire"
)

// These tests run the real cfssl CLI (Debian golang-cfssl 1.2.0) against
// the endpoint. Its -remote takes an https:// URL; -tls-remote-ca names
// the PEM bundle that trusts the endpoint's TLS certificate (chancery's
// root), and -mutual-tls-client-cert/-key the client certificate /sign
// needs. Without -tls-remote-ca it trusts the system's roots only.

// cliFiles writes what the cfssl CLI reads: chancery's root, the
// manager's certificate and key, a CSR and subjects.
type cliFiles struct {
	Dir, Root, Cert, Key, CSR string
}

func writeCLIFiles(t *testing.T, env *testEnv) cliFiles {
	t.Helper()
	dir := t.TempDir()
	f := cliFiles{Dir: dir, Root: filepath.Join(dir, "root.pem"), Cert: filepath.Join(dir, "manager.pem"),
		Key: filepath.Join(dir, "manager-key.pem"), CSR: filepath.Join(dir, "csr.pem")}
	keyDER, err := x509.MarshalPKCS8PrivateKey(env.Manager.PrivateKey)
	if err != nil {
		t.Fatal(err)
	}
	files := map[string][]byte{
		f.Root: ca.EncodeCertificatesPEM(env.Issuer.Chain()[0]),
		f.Cert: ca.EncodeCertificatesPEM(env.Manager.Leaf),
		f.Key:  pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER}),
		f.CSR:  csrPEM(t, newKey(t), pkix.Name{CommonName: "ignored"}),
	}
	for p, data := range files {
		if err := os.WriteFile(p, data, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	return f
}

func (f cliFiles) write(t *testing.T, name, data string) string {
	t.Helper()
	p := filepath.Join(f.Dir, name)
	if err := os.WriteFile(p, []byte(data), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// cliRun is what a cfssl command did.
type cliRun struct {
	stdout, stderr string
	err            error
}

// output is everything the command wrote.
func (r cliRun) output() string { return r.stdout + r.stderr }

// runCFSSL runs cfssl.
func runCFSSL(t *testing.T, bin string, args ...string) cliRun {
	t.Helper()
	cmd := exec.Command(bin, args...)
	var out, errOut strings.Builder
	cmd.Stdout, cmd.Stderr = &out, &errOut
	err := cmd.Run()
	return cliRun{stdout: out.String(), stderr: errOut.String(), err: err}
}

// signedCert reads the certificate of `cfssl sign`'s JSON output.
func signedCert(t *testing.T, r cliRun) *x509.Certificate {
	t.Helper()
	if r.err != nil {
		t.Fatalf("cfssl sign: %v\n%s", r.err, r.output())
	}
	var out struct {
		Cert string `json:"cert"`
	}
	if err := json.Unmarshal([]byte(r.stdout), &out); err != nil {
		t.Fatalf("cfssl sign output: %v\n%s", err, r.stdout)
	}
	certs, err := ca.ParseCertificatesPEM([]byte(out.Cert))
	if err != nil {
		t.Fatal(err)
	}
	return certs[0]
}

func TestCFSSLCLIInfo(t *testing.T) {
	bin := cfssldev.Need(t)
	env := startEnv(t, envOptions{})
	f := writeCLIFiles(t, env)
	for _, profile := range []string{"", "CA"} {
		r := runCFSSL(t, bin, "info", "-remote", env.URL, "-tls-remote-ca", f.Root, "-profile", profile)
		if r.err != nil {
			t.Fatalf("cfssl info -profile %q: %v\n%s", profile, r.err, r.output())
		}
		var res cfsslwire.InfoResult
		if err := json.Unmarshal([]byte(r.stdout), &res); err != nil {
			t.Fatalf("cfssl info output: %v\n%s", err, r.stdout)
		}
		certs, err := ca.ParseCertificatesPEM([]byte(res.Certificate))
		if err != nil || !ca.IsExternalCA(certs[0]) || certs[0].CheckSignatureFrom(env.Issuer.Chain()[0]) != nil {
			t.Errorf("cfssl info -profile %q: the certificate is not the endpoint's intermediate under chancery's root (%v)", profile, err)
		}
	}
}

// TestCFSSLCLIUntrusted shows what the CLI needs to trust the endpoint:
// without -tls-remote-ca it checks the endpoint's certificate against the
// system's roots, which do not hold chancery's.
func TestCFSSLCLIUntrusted(t *testing.T) {
	bin := cfssldev.Need(t)
	env := startEnv(t, envOptions{})
	r := runCFSSL(t, bin, "info", "-remote", env.URL)
	if r.err == nil {
		t.Fatalf("cfssl info without -tls-remote-ca succeeded:\n%s", r.stdout)
	}
	if !strings.Contains(r.output(), "certificate signed by unknown authority") {
		t.Errorf("cfssl info: %v\n%s\nwant an unknown authority error", r.err, r.output())
	}
}

// TestCFSSLCLISign has `cfssl sign -remote` get node certificates and a
// cross-signed certificate with mutual TLS, and be refused without a
// client certificate.
func TestCFSSLCLISign(t *testing.T) {
	bin := cfssldev.Need(t)
	env := startEnv(t, envOptions{})
	f := writeCLIFiles(t, env)
	tlsArgs := []string{"-remote", env.URL, "-tls-remote-ca", f.Root, "-mutual-tls-client-cert", f.Cert, "-mutual-tls-client-key", f.Key}
	subject := f.write(t, "worker.json", `{"CN":"`+testNode+`","names":[{"O":"`+testCluster+`","OU":"swarm-worker"}]}`)

	t.Run("Worker", func(t *testing.T) {
		args := append([]string{"sign"}, tlsArgs...)
		cert := signedCert(t, runCFSSL(t, bin, append(args, "-hostname", "swarm-worker,"+testNode, f.CSR, subject)...))
		if id, err := ca.IdentityOf(cert, testCluster); err != nil || id.NodeID != testNode || id.Role != ca.RoleWorker {
			t.Errorf("identity %+v, %v", id, err)
		}
		inter, err := env.Server.Intermediate(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		if err := ca.VerifyChain([]*x509.Certificate{cert, inter}, env.Issuer.Chain(), time.Now()); err != nil {
			t.Error(err)
		}
	})
	t.Run("NoHostname", func(t *testing.T) {
		// hosts null: the node certificate contract's names.
		args := append([]string{"sign"}, tlsArgs...)
		cert := signedCert(t, runCFSSL(t, bin, append(args, f.CSR, subject)...))
		if strings.Join(cert.DNSNames, ",") != "swarm-worker,"+testNode {
			t.Errorf("DNS names %v", cert.DNSNames)
		}
	})
	t.Run("CrossSign", func(t *testing.T) {
		newRoot, key := newIssuer(t, "swarm-ca")
		csr := f.write(t, "root-csr.pem", string(csrPEMRaw(t, key, newRoot.Chain()[0].RawSubject)))
		rootSubject := f.write(t, "root.json", `{"CN":"swarm-ca","names":[]}`)
		args := append([]string{"sign"}, tlsArgs...)
		cert := signedCert(t, runCFSSL(t, bin, append(args, "-profile", "CA", csr, rootSubject)...))
		if !cert.IsCA || string(cert.RawSubject) != string(newRoot.Chain()[0].RawSubject) {
			t.Errorf("cross-signed certificate: CA %v, subject %s", cert.IsCA, cert.Subject)
		}
	})
	t.Run("NoClientCertificate", func(t *testing.T) {
		r := runCFSSL(t, bin, "sign", "-remote", env.URL, "-tls-remote-ca", f.Root, f.CSR, subject)
		if r.err == nil || !strings.Contains(r.output(), "authentication required") {
			t.Errorf("cfssl sign without a client certificate: %v\n%s\nwant a refusal saying authentication is required", r.err, r.output())
		}
	})
	t.Run("PolicyRefusal", func(t *testing.T) {
		other := f.write(t, "other.json", `{"CN":"`+testNode+`","names":[{"O":"`+otherCluster+`","OU":"swarm-worker"}]}`)
		args := append([]string{"sign"}, tlsArgs...)
		r := runCFSSL(t, bin, append(args, f.CSR, other)...)
		if r.err == nil || !strings.Contains(r.output(), "refused by rule policy.conf:2") {
			t.Errorf("cfssl sign for another cluster: %v\n%s\nwant the policy's refusal", r.err, r.output())
		}
	})
}

// TestCFSSLCLIAuthSign has `cfssl sign` use an auth key (a profile with
// auth_remote, as CFSSL configures it), and its replay refused.
func TestCFSSLCLIAuthSign(t *testing.T) {
	bin := cfssldev.Need(t)
	env := startEnv(t, envOptions{})
	f := writeCLIFiles(t, env)
	config := f.write(t, "config.json", `{
  "signing": {"default": {"auth_remote": {"remote": "chancery", "auth_key": "ci"}}},
  "auth_keys": {"ci": {"type": "standard", "key": "`+testAuthKeyHex+`"}},
  "remotes": {"chancery": "`+env.URL+`"}
}`)
	subject := f.write(t, "worker.json", `{"CN":"`+testNode+`","names":[{"O":"`+otherCluster+`","OU":"swarm-worker"}]}`)
	args := []string{"sign", "-config", config, "-tls-remote-ca", f.Root, "-hostname", "swarm-worker," + testNode, f.CSR, subject}
	cert := signedCert(t, runCFSSL(t, bin, args...))
	if cert.Subject.Organization[0] != otherCluster {
		t.Errorf("O %v, want %s", cert.Subject.Organization, otherCluster)
	}
	// The same CSR and subject make the same request and token.
	r := runCFSSL(t, bin, args...)
	if r.err == nil || !strings.Contains(r.output(), "replayed authsign request") {
		t.Errorf("cfssl sign again: %v\n%s\nwant the replay refused", r.err, r.output())
	}
	wrong := f.write(t, "wrong.json", strings.Replace(readFile(t, config), testAuthKeyHex, "ffffffffffffffffffffffffffffffff", 1))
	args[2] = wrong
	r = runCFSSL(t, bin, args...)
	if r.err == nil || !strings.Contains(r.output(), "invalid token") {
		t.Errorf("cfssl sign with another key: %v\n%s\nwant an invalid token", r.err, r.output())
	}
	if strings.Contains(r.output(), testAuthKeyHex) {
		t.Error("the auth key appears in cfssl's output")
	}
}

func readFile(t *testing.T, p string) string {
	t.Helper()
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}
