package extca

import (
	"bytes"
	"crypto/x509"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"

	"github.com/chancery-pki/chancery/ca"
	"github.com/chancery-pki/chancery/internal/cfsslwire"
)

// TestWriteCertificate checks that the hand-written success answer is
// byte for byte what encoding/json writes for CFSSL's envelope around
// ca.EncodeCertificatesPEM, for chains of one and two certificates.
func TestWriteCertificate(t *testing.T) {
	iss, _ := newIssuer(t, "chancery-root")
	leaf := nodeCert(t, iss, testCluster, testNode, ca.RoleManager).Leaf
	for _, chain := range [][]*x509.Certificate{{leaf}, {leaf, iss.Chain()[0]}} {
		rec := httptest.NewRecorder()
		if err := writeCertificate(rec, chain); err != nil {
			t.Fatal(err)
		}
		want, err := successBody(cfsslwire.SignResult{Certificate: string(ca.EncodeCertificatesPEM(chain...))})
		if err != nil {
			t.Fatal(err)
		}
		if got := rec.Body.Bytes(); !bytes.Equal(got, append(want, '\n')) {
			t.Errorf("answer\n%s\nwant\n%s", got, want)
		}
		if rec.Code != http.StatusOK || rec.Header().Get("Content-Type") != "application/json" ||
			rec.Header().Get("Content-Length") != strconv.Itoa(rec.Body.Len()) {
			t.Errorf("status %d, headers %v", rec.Code, rec.Header())
		}
	}
}

// TestPlainHTTPRefused: the handler served without TLS issues nothing.
func TestPlainHTTPRefused(t *testing.T) {
	env := startEnv(t, envOptions{})
	for _, path := range []string{PathSign, PathAuthSign, PathInfo} {
		rec := httptest.NewRecorder()
		env.Server.Handler().ServeHTTP(rec, httptest.NewRequest(http.MethodPost, path, strings.NewReader(`{}`)))
		if rec.Code != http.StatusBadRequest || !strings.Contains(rec.Body.String(), "TLS only") {
			t.Errorf("%s over plain HTTP: %d %s", path, rec.Code, rec.Body)
		}
	}
}
