package cfssl

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/hex"
	"encoding/json"
	"errors"
	"io"
	"math/big"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/chancery-pki/chancery/ca"
	"github.com/chancery-pki/chancery/internal/cfsslwire"
	"github.com/chancery-pki/chancery/signer"
)

func openFake(t *testing.T, cfg Config) *Signer {
	t.Helper()
	s, err := New(context.Background(), cfg)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// workerRequest is a node request under s for a fresh P-256 key.
func workerRequest(t *testing.T, s signer.Signer) *signer.Request {
	t.Helper()
	req, _ := nodeRequest(t, s, &x509.CertificateRequest{})
	return req
}

func TestRemoteRefusalReportsTheCAsMessage(t *testing.T) {
	f := newFakeCFSSL(t)
	f.answer = func(w http.ResponseWriter, r *http.Request, n int) bool {
		cfsslError(w, http.StatusOK, 5300, "Policy violation: O is not allowed here")
		return true
	}
	s := openFake(t, fakeConfig(f))
	_, err := s.Sign(context.Background(), workerRequest(t, s))
	var re *RemoteError
	if !errors.As(err, &re) {
		t.Fatalf("error %v is not a *RemoteError", err)
	}
	if !strings.Contains(err.Error(), "Policy violation: O is not allowed here (code 5300)") || !strings.HasPrefix(err.Error(), "cfssl: ") {
		t.Errorf("error %q does not carry the CA's message", err)
	}
	if n := len(f.signCalls()); n != 1 {
		t.Errorf("the CA was asked %d times, want 1 (a refusal is not retried)", n)
	}
}

func TestServerErrorsAreRetried(t *testing.T) {
	for _, tc := range []struct {
		name      string
		failures  int // answers of 500 before the CA signs
		wantErr   bool
		wantCalls int
	}{
		{"RecoversAfterOne", 1, false, 2},
		{"RecoversAtLastAttempt", 2, false, 3},
		{"SurfacedAfterAllAttempts", 100, true, 3},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newFakeCFSSL(t)
			f.answer = func(w http.ResponseWriter, r *http.Request, n int) bool {
				if n > tc.failures {
					return false
				}
				w.WriteHeader(http.StatusInternalServerError)
				io.WriteString(w, "upstream exploded")
				return true
			}
			s := openFake(t, fakeConfig(f))
			cert, err := s.Sign(context.Background(), workerRequest(t, s))
			if n := len(f.signCalls()); n != tc.wantCalls {
				t.Errorf("the CA was asked %d times, want %d", n, tc.wantCalls)
			}
			if !tc.wantErr {
				if err != nil {
					t.Fatalf("Sign: %v", err)
				}
				if cert == nil {
					t.Fatal("no certificate")
				}
				return
			}
			var re *RemoteError
			if !errors.As(err, &re) || re.StatusCode != http.StatusInternalServerError {
				t.Fatalf("error %v is not the CA's HTTP 500", err)
			}
			if !strings.Contains(err.Error(), "HTTP 500") || !strings.Contains(err.Error(), "after 3 attempts") {
				t.Errorf("error %q does not say HTTP 500 after 3 attempts", err)
			}
		})
	}
}

func TestSlowCATimesOut(t *testing.T) {
	f := newFakeCFSSL(t)
	f.answer = func(w http.ResponseWriter, r *http.Request, n int) bool {
		select {
		case <-r.Context().Done():
		case <-time.After(10 * time.Second):
		}
		// A CA that never answers: no response at all, not even the empty
		// 200 a returning handler would send (which, on a loaded machine,
		// could reach the client just as its deadline passes).
		panic(http.ErrAbortHandler)
	}
	cfg := fakeConfig(f)
	cfg.Timeout = 100 * time.Millisecond
	cfg.MaxAttempts = 2
	s := openFake(t, cfg)
	_, err := s.Sign(context.Background(), workerRequest(t, s))
	var te *TransportError
	if !errors.As(err, &te) || te.Timeout != cfg.Timeout {
		t.Fatalf("error %v is not a timeout of %s", err, cfg.Timeout)
	}
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("error %v does not match context.DeadlineExceeded", err)
	}
	if !strings.Contains(err.Error(), "did not answer within 100ms") {
		t.Errorf("error %q does not say the CA did not answer in time", err)
	}
	if n := len(f.signCalls()); n != 2 {
		t.Errorf("the CA was asked %d times, want 2", n)
	}
}

func TestOversizedAnswerRefused(t *testing.T) {
	f := newFakeCFSSL(t)
	f.answer = func(w http.ResponseWriter, r *http.Request, n int) bool {
		writeJSON(w, http.StatusOK, map[string]any{"success": true, "result": map[string]any{
			"certificate": strings.Repeat("A", DefaultMaxResponseBytes),
		}})
		return true
	}
	s := openFake(t, fakeConfig(f))
	_, err := s.Sign(context.Background(), workerRequest(t, s))
	var ae *AnswerError
	if !errors.As(err, &ae) || !strings.Contains(err.Error(), "larger than 262144 bytes") {
		t.Fatalf("error %v does not refuse the oversized answer", err)
	}
	if n := len(f.signCalls()); n != 1 {
		t.Errorf("the CA was asked %d times, want 1", n)
	}
}

func TestMalformedAnswers(t *testing.T) {
	for _, tc := range []struct {
		name, body, want string
	}{
		{"NotJSON", "<html>hello</html>", "not a CFSSL answer"},
		{"NoCertificate", `{"success":true,"result":{}}`, "has no certificate"},
		{"NotPEM", `{"success":true,"result":{"certificate":"MIIB..."}}`, "no usable certificate"},
		{"SuccessFalseWithoutErrors", `{"success":false}`, "refused the request without saying why"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newFakeCFSSL(t)
			f.answer = func(w http.ResponseWriter, r *http.Request, n int) bool {
				io.WriteString(w, tc.body)
				return true
			}
			s := openFake(t, fakeConfig(f))
			_, err := s.Sign(context.Background(), workerRequest(t, s))
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %v, want one saying %q", err, tc.want)
			}
		})
	}
}

func TestRedirectNotFollowed(t *testing.T) {
	f := newFakeCFSSL(t)
	f.answer = func(w http.ResponseWriter, r *http.Request, n int) bool {
		http.Redirect(w, r, "http://127.0.0.1:1/api/v1/cfssl/sign", http.StatusTemporaryRedirect)
		return true
	}
	s := openFake(t, fakeConfig(f))
	_, err := s.Sign(context.Background(), workerRequest(t, s))
	var re *RemoteError
	if !errors.As(err, &re) || re.StatusCode != http.StatusTemporaryRedirect {
		t.Fatalf("error %v is not the CA's redirect", err)
	}
	if n := len(f.signCalls()); n != 1 {
		t.Errorf("the CA was asked %d times, want 1", n)
	}
}

func TestExternalCAsTriedInOrder(t *testing.T) {
	down := newFakeCFSSL(t)
	up := newFakeCFSSL(t)
	// Both stand for one CA: the second signs with the first's key.
	up.key, up.cert = down.key, down.cert
	down.answer = func(w http.ResponseWriter, r *http.Request, n int) bool {
		w.WriteHeader(http.StatusServiceUnavailable)
		return true
	}
	s := openFake(t, fakeConfig(down, up))
	if _, err := s.Sign(context.Background(), workerRequest(t, s)); err != nil {
		t.Fatalf("Sign: %v", err)
	}
	if a, b := len(down.signCalls()), len(up.signCalls()); a != 1 || b != 1 {
		t.Errorf("asked the first CA %d times and the second %d times, want 1 and 1", a, b)
	}

	// When every CA fails, the error has each one's reason.
	up.answer = func(w http.ResponseWriter, r *http.Request, n int) bool {
		cfsslError(w, http.StatusBadRequest, 400, "authentication required")
		return true
	}
	_, err := s.Sign(context.Background(), workerRequest(t, s))
	if err == nil {
		t.Fatal("Sign succeeded with every CA failing")
	}
	for _, want := range []string{"none of the 2 external CAs answered", "HTTP 503", "authentication required"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not say %q", err, want)
		}
	}
	var re *RemoteError
	if !errors.As(err, &re) {
		t.Errorf("errors.As cannot find the CAs' *RemoteError in %v", err)
	}
}

func TestShortSerialIsAskedAgain(t *testing.T) {
	f := newFakeCFSSL(t)
	f.mutate = func(tmpl *x509.Certificate, pub *crypto.PublicKey, iss *fakeIssuer, n int) {
		if n == 1 {
			tmpl.SerialNumber = new(big.Int).SetBytes([]byte{0x00, 0x7f, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18})
		}
	}
	s := openFake(t, fakeConfig(f))
	cert, err := s.Sign(context.Background(), workerRequest(t, s))
	if err != nil {
		t.Fatalf("Sign: %v", err)
	}
	if n := len(cert.SerialNumber.Bytes()); n != signer.SerialBytes {
		t.Errorf("serial of %d bytes, want %d", n, signer.SerialBytes)
	}
	if n := len(f.signCalls()); n != 2 {
		t.Errorf("the CA was asked %d times, want 2", n)
	}
}

func TestMissingCSRRefusedBeforeAsking(t *testing.T) {
	f := newFakeCFSSL(t)
	s := openFake(t, fakeConfig(f))
	req := workerRequest(t, s)
	req.CSR = nil
	_, err := s.Sign(context.Background(), req)
	if !errors.Is(err, signer.ErrInvalidRequest) || !strings.Contains(err.Error(), "CFSSL signs only certificate requests") {
		t.Fatalf("error %v does not refuse the request for its missing CSR", err)
	}
	if n := len(f.signCalls()); n != 0 {
		t.Errorf("the CA was asked %d times, want 0", n)
	}
}

// TestCertificateThatDiffersIsRefused has the CA return certificates that
// differ from the request in one field each.
func TestCertificateThatDiffersIsRefused(t *testing.T) {
	otherKey := newECKey(t, p256())
	otherCA, err := signer.SelfSign(nil, otherKey, ca.NewRootTemplate("some-other-ca", time.Now().Add(-24*time.Hour)))
	if err != nil {
		t.Fatal(err)
	}
	// sameName has the fake CA's subject and another key.
	sameNameKey := newECKey(t, p256())
	sameName, err := signer.SelfSign(nil, sameNameKey, ca.NewRootTemplate("fake-cfssl-ca", time.Now().Add(-24*time.Hour)))
	if err != nil {
		t.Fatal(err)
	}
	type mutation = func(tmpl *x509.Certificate, pub *crypto.PublicKey, iss *fakeIssuer)
	tests := []struct {
		name   string
		ca     bool // a cross-sign request
		mutate mutation
		field  string
	}{
		{"ExtraSubjectAttribute", false, func(c *x509.Certificate, _ *crypto.PublicKey, _ *fakeIssuer) { c.Subject.Country = []string{"US"} }, "subject"},
		{"OtherOrganization", false, func(c *x509.Certificate, _ *crypto.PublicKey, _ *fakeIssuer) {
			c.Subject.Organization = []string{"other"}
		}, "subject"},
		{"ExtraDNSName", false, func(c *x509.Certificate, _ *crypto.PublicKey, _ *fakeIssuer) {
			c.DNSNames = append(c.DNSNames, "evil.example")
		}, "dns names"},
		{"DNSNamesReordered", false, func(c *x509.Certificate, _ *crypto.PublicKey, _ *fakeIssuer) {
			c.DNSNames = []string{c.DNSNames[1], c.DNSNames[0]}
		}, "dns names"},
		{"ExtraIP", false, func(c *x509.Certificate, _ *crypto.PublicKey, _ *fakeIssuer) {
			c.IPAddresses = []net.IP{net.IPv4(10, 0, 0, 1)}
		}, "ip addresses"},
		{"ExtraEmail", false, func(c *x509.Certificate, _ *crypto.PublicKey, _ *fakeIssuer) {
			c.EmailAddresses = []string{"a@example.com"}
		}, "sans"},
		{"KeyUsage", false, func(c *x509.Certificate, _ *crypto.PublicKey, _ *fakeIssuer) { c.KeyUsage |= x509.KeyUsageCertSign }, "key usage"},
		{"ServerAuthOnly", false, func(c *x509.Certificate, _ *crypto.PublicKey, _ *fakeIssuer) {
			c.ExtKeyUsage = []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}
		}, "extended key usage"},
		{"CATrue", false, func(c *x509.Certificate, _ *crypto.PublicKey, _ *fakeIssuer) { c.IsCA = true }, "basic constraints"},
		{"NoBasicConstraints", false, func(c *x509.Certificate, _ *crypto.PublicKey, _ *fakeIssuer) { c.BasicConstraintsValid = false }, "basic constraints"},
		{"OtherIssuer", false, func(_ *x509.Certificate, _ *crypto.PublicKey, iss *fakeIssuer) { iss.cert, iss.key = otherCA, otherKey }, "issuer"},
		{"SignedByOtherKey", false, func(_ *x509.Certificate, _ *crypto.PublicKey, iss *fakeIssuer) {
			iss.cert, iss.key = sameName, sameNameKey
		}, "signature"},
		{"OtherPublicKey", false, func(_ *x509.Certificate, pub *crypto.PublicKey, _ *fakeIssuer) { *pub = otherKey.Public() }, "public key"},
		{"OutlivesTheCA", false, func(c *x509.Certificate, _ *crypto.PublicKey, iss *fakeIssuer) {
			c.NotAfter = iss.cert.NotAfter.Add(time.Hour)
		}, "validity"},
		{"NotYetValid", false, func(c *x509.Certificate, _ *crypto.PublicKey, _ *fakeIssuer) { c.NotBefore = time.Now().Add(time.Hour) }, "validity"},
		{"Expired", false, func(c *x509.Certificate, _ *crypto.PublicKey, _ *fakeIssuer) {
			c.NotBefore, c.NotAfter = time.Now().Add(-3*time.Hour), time.Now().Add(-2*time.Hour)
		}, "validity"},
		{"NoSubjectKeyID", false, func(c *x509.Certificate, _ *crypto.PublicKey, _ *fakeIssuer) { c.SubjectKeyId = nil }, "subject key id"},
		{"OCSPURL", false, func(c *x509.Certificate, _ *crypto.PublicKey, _ *fakeIssuer) {
			c.OCSPServer = []string{"http://ocsp.example"}
		}, "extensions"},
		{"CrossSignCAFalse", true, func(c *x509.Certificate, _ *crypto.PublicKey, _ *fakeIssuer) { c.IsCA = false }, "basic constraints"},
		{"CrossSignPathLenZero", true, func(c *x509.Certificate, _ *crypto.PublicKey, _ *fakeIssuer) {
			c.MaxPathLen, c.MaxPathLenZero = 0, true
		}, "basic constraints"},
		{"CrossSignOtherSubjectKeyID", true, func(c *x509.Certificate, _ *crypto.PublicKey, _ *fakeIssuer) { c.SubjectKeyId = []byte{1, 2, 3, 4} }, "subject key id"},
		{"CrossSignOtherSubject", true, func(c *x509.Certificate, _ *crypto.PublicKey, _ *fakeIssuer) { c.Subject.CommonName = "swarm-ca-2" }, "subject"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			f := newFakeCFSSL(t)
			spare := newFakeCFSSL(t)
			f.mutate = func(tmpl *x509.Certificate, pub *crypto.PublicKey, iss *fakeIssuer, n int) {
				tc.mutate(tmpl, pub, iss)
			}
			s := openFake(t, fakeConfig(f, spare))
			req := workerRequest(t, s)
			if tc.ca {
				req = crossSignRequest(t, s, nil)
				f.mutate = func(tmpl *x509.Certificate, pub *crypto.PublicKey, iss *fakeIssuer, n int) {
					tmpl.SubjectKeyId = req.Template.SubjectKeyId
					tc.mutate(tmpl, pub, iss)
				}
			}
			cert, err := s.Sign(context.Background(), req)
			if err == nil {
				t.Fatalf("Sign returned a certificate that differs (serial %x)", cert.SerialNumber)
			}
			var me *MismatchError
			if !errors.As(err, &me) {
				t.Fatalf("error %v is not a *MismatchError", err)
			}
			if me.Field != tc.field {
				t.Errorf("field %q, want %q (error %q)", me.Field, tc.field, err)
			}
			if !strings.Contains(err.Error(), "differs from the request in its "+tc.field) || !strings.Contains(err.Error(), "discarded") {
				t.Errorf("error %q does not name the field %q", err, tc.field)
			}
			if cert != nil {
				t.Error("a certificate was returned with the error")
			}
			if a, b := len(f.signCalls()), len(spare.signCalls()); a != 1 || b != 0 {
				t.Errorf("asked the CA %d times and the next CA %d times, want 1 and 0", a, b)
			}
		})
	}
	// The unchanged fake's certificates are accepted, so each refusal above
	// is due to its one change.
	t.Run("Baseline", func(t *testing.T) {
		f := newFakeCFSSL(t)
		s := openFake(t, fakeConfig(f))
		if _, err := s.Sign(context.Background(), workerRequest(t, s)); err != nil {
			t.Fatalf("node: %v", err)
		}
		req := crossSignRequest(t, s, nil)
		f.mutate = func(tmpl *x509.Certificate, _ *crypto.PublicKey, _ *fakeIssuer, _ int) {
			tmpl.SubjectKeyId = req.Template.SubjectKeyId
		}
		if _, err := s.Sign(context.Background(), req); err != nil {
			t.Fatalf("cross-sign: %v", err)
		}
	})
}

// crossSignRequest returns a cross-sign request under s for a new root
// (template rootTmpl, ca.NewRootTemplate("swarm-ca", now) when nil) with
// its CSR.
func crossSignRequest(t *testing.T, s signer.Signer, rootTmpl *x509.Certificate) *signer.Request {
	t.Helper()
	return crossSignRequestForKey(t, s, rootTmpl, newECKey(t, p256()))
}

// crossSignRequestForKey is crossSignRequest for the new root key newKey.
func crossSignRequestForKey(t *testing.T, s signer.Signer, rootTmpl *x509.Certificate, newKey *ecdsa.PrivateKey) *signer.Request {
	t.Helper()
	if rootTmpl == nil {
		rootTmpl = ca.NewRootTemplate("swarm-ca", time.Now())
	}
	newRoot, err := signer.SelfSign(nil, newKey, rootTmpl)
	if err != nil {
		t.Fatal(err)
	}
	csrDER, err := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{RawSubject: newRoot.RawSubject}, newKey)
	if err != nil {
		t.Fatal(err)
	}
	csr, err := x509.ParseCertificateRequest(csrDER)
	if err != nil {
		t.Fatal(err)
	}
	issuer := s.Chain()[0]
	return &signer.Request{
		PublicKey: newKey.Public(),
		CSR:       csr,
		Profile:   signer.ProfileCA,
		Template: &x509.Certificate{
			RawSubject:            newRoot.RawSubject,
			SubjectKeyId:          newRoot.SubjectKeyId,
			NotBefore:             later(newRoot.NotBefore, issuer.NotBefore),
			NotAfter:              earlier(newRoot.NotAfter, issuer.NotAfter),
			IsCA:                  true,
			BasicConstraintsValid: true,
			MaxPathLen:            -1,
			KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
		},
	}
}

func later(a, b time.Time) time.Time {
	if a.After(b) {
		return a
	}
	return b
}

func earlier(a, b time.Time) time.Time {
	if a.Before(b) {
		return a
	}
	return b
}

// TestWireRequest checks what chancery sends: swarm's shape of a node
// request and of a cross-sign request, and the authsign envelope.
func TestWireRequest(t *testing.T) {
	f := newFakeCFSSL(t)
	f.authKy = []byte("0123456789abcdef")
	cfg := fakeConfig(f)
	key, err := ParseAuthKey([]byte(hex.EncodeToString(f.authKy)))
	if err != nil {
		t.Fatal(err)
	}
	cfg.AuthKey = key
	s := openFake(t, cfg)

	node := workerRequest(t, s)
	if _, err := s.Sign(context.Background(), node); err != nil {
		t.Fatalf("node: %v", err)
	}
	cross := crossSignRequest(t, s, nil)
	f.mutate = func(tmpl *x509.Certificate, _ *crypto.PublicKey, _ *fakeIssuer, _ int) {
		tmpl.SubjectKeyId = cross.Template.SubjectKeyId
	}
	if _, err := s.Sign(context.Background(), cross); err != nil {
		t.Fatalf("cross-sign: %v", err)
	}
	calls := f.signCalls()
	if len(calls) != 2 {
		t.Fatalf("%d sign calls, want 2", len(calls))
	}
	for _, c := range calls {
		if c.path != "/api/v1/cfssl/authsign" {
			t.Errorf("asked %s, want /api/v1/cfssl/authsign", c.path)
		}
		var env map[string]json.RawMessage
		if err := json.Unmarshal(c.body, &env); err != nil {
			t.Fatal(err)
		}
		for _, k := range []string{"token", "request"} {
			if _, ok := env[k]; !ok {
				t.Errorf("authsign envelope lacks %q: %s", k, c.body)
			}
		}
	}

	got := calls[0].sign
	if got.Profile != "" {
		t.Errorf("node profile %q, want the default profile \"\"", got.Profile)
	}
	if want := []string{"swarm-worker", testNodeID}; strings.Join(got.Hosts, ",") != strings.Join(want, ",") {
		t.Errorf("hosts %q, want %q", got.Hosts, want)
	}
	if got.Subject == nil || got.Subject.CN != testNodeID || len(got.Subject.Names) != 1 ||
		got.Subject.Names[0] != (cfsslwire.SubjectName{O: testClusterID, OU: "swarm-worker"}) {
		t.Errorf("subject %+v, want CN=%s and names [{O:%s OU:swarm-worker}]", got.Subject, testNodeID, testClusterID)
	}
	if !strings.HasPrefix(got.Request, "-----BEGIN CERTIFICATE REQUEST-----") {
		t.Errorf("certificate_request is not a PEM CSR: %.40q", got.Request)
	}
	if len(got.Extensions) != 0 {
		t.Errorf("node request has extensions %+v", got.Extensions)
	}

	got = calls[1].sign
	if got.Profile != "CA" {
		t.Errorf("cross-sign profile %q, want \"CA\"", got.Profile)
	}
	if got.Hosts == nil || len(got.Hosts) != 0 {
		t.Errorf("cross-sign hosts %q, want [] (so that no SAN of the CSR is kept)", got.Hosts)
	}
	if got.Subject == nil || got.Subject.CN != "swarm-ca" || len(got.Subject.Names) != 0 {
		t.Errorf("cross-sign subject %+v, want CN=swarm-ca and no names", got.Subject)
	}
	wantExt := []cfsslwire.Extension{
		{ID: "2.5.29.19", Critical: true, Value: "30030101ff"},
		{ID: "2.5.29.14", Critical: false, Value: "0414" + hex.EncodeToString(cross.Template.SubjectKeyId)},
	}
	if len(got.Extensions) != 2 || got.Extensions[0] != wantExt[0] || got.Extensions[1] != wantExt[1] {
		t.Errorf("cross-sign extensions %+v, want %+v", got.Extensions, wantExt)
	}
	// The raw JSON carries the keys swarm's CFSSL reads.
	var raw map[string]json.RawMessage
	var ar cfsslwire.AuthRequest
	if err := json.Unmarshal(calls[1].body, &ar); err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(ar.Request, &raw); err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{"certificate_request", "hosts", "subject", "profile", "extensions"} {
		if _, ok := raw[k]; !ok {
			t.Errorf("the sign request lacks %q: %s", k, ar.Request)
		}
	}
}

// TestSubjectsCFSSLCannotExpress checks that a subject CFSSL would not
// reproduce byte for byte is refused before the CA is asked.
func TestSubjectsCFSSLCannotExpress(t *testing.T) {
	f := newFakeCFSSL(t)
	s := openFake(t, fakeConfig(f))
	for _, tc := range []struct {
		name string
		tmpl *x509.Certificate
	}{
		{"StreetAddress", func() *x509.Certificate {
			t := ca.NewRootTemplate("swarm-ca", time.Now())
			t.Subject.StreetAddress = []string{"1 Main St"}
			return t
		}()},
		{"ExtraNames", func() *x509.Certificate {
			t := ca.NewRootTemplate("swarm-ca", time.Now())
			t.Subject.ExtraNames = []pkix.AttributeTypeAndValue{{Type: []int{2, 5, 4, 46}, Value: "qualifier"}}
			return t
		}()},
	} {
		t.Run(tc.name, func(t *testing.T) {
			req := crossSignRequest(t, s, tc.tmpl)
			_, err := s.Sign(context.Background(), req)
			if err == nil || !strings.Contains(err.Error(), "cannot be asked of CFSSL byte for byte") {
				t.Fatalf("error %v, want a refusal of the subject", err)
			}
		})
	}
	if n := len(f.signCalls()); n != 0 {
		t.Errorf("the CA was asked %d times, want 0", n)
	}
}

func TestNewRefusesBadCAs(t *testing.T) {
	t.Run("NotACA", func(t *testing.T) {
		f := newFakeCFSSL(t)
		f.cert = issueCert(t, f.cert, f.key, f.key.Public(), &x509.Certificate{
			Subject: pkix.Name{CommonName: "leaf"}, NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
			BasicConstraintsValid: true,
		})
		if _, err := New(context.Background(), fakeConfig(f)); err == nil || !strings.Contains(err.Error(), "is not a CA") {
			t.Fatalf("New: error %v, want one saying the certificate is not a CA", err)
		}
	})
	t.Run("IntermediateWithoutItsRoot", func(t *testing.T) {
		f := newFakeCFSSL(t)
		interKey := newECKey(t, p256())
		f.cert = issueCert(t, f.cert, f.key, interKey.Public(), &x509.Certificate{
			Subject: pkix.Name{CommonName: "intermediate"}, NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
			IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign,
		})
		if _, err := New(context.Background(), fakeConfig(f)); err == nil || !strings.Contains(err.Error(), "cacert=FILE") {
			t.Fatalf("New: error %v, want one saying to give the chain in cacert", err)
		}
	})
	t.Run("Unreachable", func(t *testing.T) {
		f := newFakeCFSSL(t)
		f.srv.Close()
		cfg := fakeConfig(f)
		cfg.MaxAttempts = 2
		_, err := New(context.Background(), cfg)
		var te *TransportError
		if !errors.As(err, &te) || !strings.Contains(err.Error(), "after 2 attempts") {
			t.Fatalf("New: error %v, want a transport error after 2 attempts", err)
		}
	})
	t.Run("UntrustedTLS", func(t *testing.T) {
		f := newFakeCFSSL(t)
		cfg := fakeConfig(f)
		cfg.CAs[0].CACertFile = "" // the system's roots do not know the test server
		cfg.MaxAttempts = 1
		_, err := New(context.Background(), cfg)
		if err == nil || !strings.Contains(err.Error(), "certificate") {
			t.Fatalf("New: error %v, want a TLS verification failure", err)
		}
	})
	t.Run("OtherRootThanTheCluster", func(t *testing.T) {
		f := newFakeCFSSL(t)
		other, err := signer.SelfSign(nil, newECKey(t, p256()), ca.NewRootTemplate("swarm-ca", time.Now()))
		if err != nil {
			t.Fatal(err)
		}
		cfg := fakeConfig(f)
		cfg.Chain = []*x509.Certificate{other}
		if _, err := New(context.Background(), cfg); err == nil || !strings.Contains(err.Error(), "not under the cluster's root") {
			t.Fatalf("New: error %v, want one saying the CA's root is not the cluster's", err)
		}
	})
}

func TestDescribeAndCapabilities(t *testing.T) {
	f := newFakeCFSSL(t)
	cfg := fakeConfig(f)
	key, err := ParseAuthKey([]byte(strings.Repeat("deadbeef", 4)))
	if err != nil {
		t.Fatal(err)
	}
	cfg.AuthKey, cfg.AuthKeySource = key, "file /etc/chancery/cfssl.key"
	s := openFake(t, cfg)
	if c := s.Capabilities(); c != (signer.Capabilities{NeedsCSR: true}) {
		t.Errorf("capabilities %v, want needs-csr only", c)
	}
	d := s.Describe().String()
	for _, want := range []string{"cfssl", f.spec.URL, "authsign", "/etc/chancery/cfssl.key", "validity=set by the CA's profiles", "2160h"} {
		if !strings.Contains(d, want) {
			t.Errorf("description %q lacks %q", d, want)
		}
	}
	if strings.Contains(d, "deadbeef") {
		t.Errorf("description %q shows the auth key", d)
	}
}
