package cfssl

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/hmac"
	"crypto/sha256"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chancery-pki/chancery/ca"
	"github.com/chancery-pki/chancery/internal/cfsslwire"
	"github.com/chancery-pki/chancery/signer"
)

// fakeCFSSL is a fault-injecting stand-in for a CFSSL CA, over TLS. It
// signs what it is asked as cfssl would (subject from the request, SANs
// from hosts, usages and CA:TRUE from the profile, validity from now), lets
// a test change the certificate before it is signed, or answer in its place.
type fakeCFSSL struct {
	t      *testing.T
	srv    *httptest.Server
	key    *ecdsa.PrivateKey
	cert   *x509.Certificate
	spec   ExternalCA
	authKy []byte

	mu    sync.Mutex
	calls []fakeCall
	// answer, when set, answers sign requests instead of signing; n counts
	// sign requests from 1. It returns false to sign after all.
	answer func(w http.ResponseWriter, r *http.Request, n int) bool
	// mutate changes the template (and may replace the public key or the
	// issuer) before the certificate is signed; n counts from 1.
	mutate func(tmpl *x509.Certificate, pub *crypto.PublicKey, iss *fakeIssuer, n int)
}

// fakeIssuer is who signs a fake certificate.
type fakeIssuer struct {
	cert *x509.Certificate
	key  crypto.Signer
}

// fakeCall is one request the fake received.
type fakeCall struct {
	path string
	body []byte
	// sign is the sign request, unwrapped from authsign.
	sign *cfsslwire.SignRequest
}

func newFakeCFSSL(t *testing.T) *fakeCFSSL {
	t.Helper()
	f := &fakeCFSSL{t: t, key: newECKey(t, p256())}
	root, err := signer.SelfSign(nil, f.key, ca.NewRootTemplate("fake-cfssl-ca", time.Now().Add(-24*time.Hour)))
	if err != nil {
		t.Fatal(err)
	}
	f.cert = root
	f.srv = httptest.NewUnstartedServer(http.HandlerFunc(f.serve))
	f.srv.Config.ErrorLog = log.New(io.Discard, "", 0) // TLS tests provoke handshake errors
	f.srv.StartTLS()
	t.Cleanup(f.srv.Close)
	bundle := filepath.Join(t.TempDir(), "cacert.pem")
	if err := os.WriteFile(bundle, ca.EncodeCertificatesPEM(f.srv.Certificate()), 0o600); err != nil {
		t.Fatal(err)
	}
	f.spec = ExternalCA{URL: f.srv.URL + "/api/v1/cfssl/sign", CACertFile: bundle}
	return f
}

// signCalls returns the sign and authsign requests received.
func (f *fakeCFSSL) signCalls() []fakeCall {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []fakeCall
	for _, c := range f.calls {
		if c.sign != nil || strings.HasSuffix(c.path, "sign") {
			out = append(out, c)
		}
	}
	return out
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(v)
}

func cfsslError(w http.ResponseWriter, status, code int, msg string) {
	writeJSON(w, status, map[string]any{"success": false, "result": nil,
		"errors": []map[string]any{{"code": code, "message": msg}}, "messages": []any{}})
}

func (f *fakeCFSSL) serve(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	call := fakeCall{path: r.URL.Path, body: body}
	switch r.URL.Path {
	case "/api/v1/cfssl/info":
		f.mu.Lock()
		f.calls = append(f.calls, call)
		f.mu.Unlock()
		writeJSON(w, http.StatusOK, map[string]any{"success": true, "result": map[string]any{
			"certificate": string(ca.EncodeCertificatesPEM(f.cert)), "usages": []string{"signing"}, "expiry": "2160h",
		}})
		return
	case "/api/v1/cfssl/sign", "/api/v1/cfssl/authsign":
	default:
		http.NotFound(w, r)
		return
	}
	inner := body
	if r.URL.Path == "/api/v1/cfssl/authsign" {
		var ar cfsslwire.AuthRequest
		if err := json.Unmarshal(body, &ar); err != nil {
			cfsslError(w, http.StatusBadRequest, 400, "bad authsign request")
			return
		}
		m := hmac.New(sha256.New, f.authKy)
		m.Write(ar.Request)
		if !hmac.Equal(m.Sum(nil), ar.Token) {
			cfsslError(w, http.StatusBadRequest, 400, "invalid token")
			return
		}
		inner = ar.Request
	}
	var sr cfsslwire.SignRequest
	if err := json.Unmarshal(inner, &sr); err != nil {
		cfsslError(w, http.StatusBadRequest, 400, "Unable to parse sign request")
		return
	}
	call.sign = &sr
	f.mu.Lock()
	f.calls = append(f.calls, call)
	n := 0
	for _, c := range f.calls {
		if c.sign != nil {
			n++
		}
	}
	answer, mutate := f.answer, f.mutate
	f.mu.Unlock()
	if answer != nil && answer(w, r, n) {
		return
	}
	block, _ := pem.Decode([]byte(sr.Request))
	if block == nil {
		cfsslError(w, http.StatusBadRequest, 9002, "CSR Decode failed")
		return
	}
	csr, err := x509.ParseCertificateRequest(block.Bytes)
	if err != nil {
		cfsslError(w, http.StatusBadRequest, 9002, "CSR parse failed")
		return
	}
	now := time.Now()
	tmpl := &x509.Certificate{
		Subject:               wireName2pkix(sr.Subject),
		DNSNames:              sr.Hosts,
		NotBefore:             now.Add(-time.Hour).Truncate(time.Minute),
		NotAfter:              now.Add(2160 * time.Hour).Truncate(time.Minute),
		KeyUsage:              x509.KeyUsageDigitalSignature | x509.KeyUsageKeyEncipherment,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
		BasicConstraintsValid: true,
	}
	// CFSSL's signer gives every certificate the SHA-1 subject key ID.
	ski, err := signer.SubjectKeyID(csr.PublicKey)
	if err != nil {
		cfsslError(w, http.StatusBadRequest, 9002, "bad public key")
		return
	}
	tmpl.SubjectKeyId = ski
	if sr.Profile == "CA" {
		tmpl.KeyUsage = x509.KeyUsageCertSign | x509.KeyUsageCRLSign
		tmpl.ExtKeyUsage = nil
		tmpl.IsCA = true
		tmpl.DNSNames = nil
	}
	var pub crypto.PublicKey = csr.PublicKey
	iss := &fakeIssuer{cert: f.cert, key: f.key}
	if mutate != nil {
		mutate(tmpl, &pub, iss, n)
	}
	cert := issueCert(f.t, iss.cert, iss.key, pub, tmpl)
	writeJSON(w, http.StatusOK, map[string]any{"success": true, "result": map[string]any{
		"certificate": string(ca.EncodeCertificatesPEM(cert)),
	}, "errors": []any{}, "messages": []any{}})
}

func wireName2pkix(s *cfsslwire.Subject) pkix.Name {
	if s == nil {
		return pkix.Name{}
	}
	n := pkix.Name{CommonName: s.CN}
	for _, w := range s.Names {
		if w.C != "" {
			n.Country = append(n.Country, w.C)
		}
		if w.ST != "" {
			n.Province = append(n.Province, w.ST)
		}
		if w.L != "" {
			n.Locality = append(n.Locality, w.L)
		}
		if w.O != "" {
			n.Organization = append(n.Organization, w.O)
		}
		if w.OU != "" {
			n.OrganizationalUnit = append(n.OrganizationalUnit, w.OU)
		}
	}
	return n
}

// fakeConfig is a Config for the fakes, in order, with quick retries.
func fakeConfig(fakes ...*fakeCFSSL) Config {
	cfg := Config{Timeout: 2 * time.Second, MaxAttempts: 3, Backoff: 10 * time.Millisecond}
	for _, f := range fakes {
		cfg.CAs = append(cfg.CAs, f.spec)
	}
	return cfg
}
