package signer_test

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/pem"
	"strings"
	"testing"

	"github.com/chancery-pki/chancery/internal/weakcsr"
	"github.com/chancery-pki/chancery/signer"
)

// CheckCSRSignature refuses CSRs signed with MD5 or SHA-1, which
// crypto/x509 verifies, and CheckPublicKey RSA exponents other than 65537.
func TestCheckCSRSignatureAndExponent(t *testing.T) {
	parseCSR := func(data []byte, err error) *x509.CertificateRequest {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
		block, _ := pem.Decode(data)
		csr, err := x509.ParseCertificateRequest(block.Bytes)
		if err != nil {
			t.Fatal(err)
		}
		return csr
	}
	rsaKey, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	ecKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	e3, err := weakcsr.RSAKey(2048, 3)
	if err != nil {
		t.Fatal(err)
	}
	e17, err := weakcsr.RSAKey(2048, 17)
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name    string
		csr     *x509.CertificateRequest
		wantSig string // "" when CheckCSRSignature accepts it
		wantKey string // "" when CheckPublicKey accepts the key
	}{
		{"RSA-SHA256", parseCSR(weakcsr.CSR(rsaKey, "n")), "", ""},
		{"ECDSA-SHA256", parseCSR(weakcsr.CSR(ecKey, "n")), "", ""},
		{"RSA-SHA1", parseCSR(weakcsr.SignedWith(rsaKey, crypto.SHA1, "n")), "signed with SHA1-RSA: MD5 and SHA-1 signatures are refused; sign the CSR with SHA-256 or stronger", ""},
		{"RSA-MD5", parseCSR(weakcsr.SignedWith(rsaKey, crypto.MD5, "n")), "signed with MD5-RSA", ""},
		{"Exponent3", parseCSR(weakcsr.CSR(e3, "n")), "", "RSA public exponent 3 is refused (want 65537)"},
		{"Exponent17", parseCSR(weakcsr.CSR(e17, "n")), "", "RSA public exponent 17 is refused (want 65537)"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			check := func(what string, err error, want string) {
				t.Helper()
				switch {
				case want == "" && err != nil:
					t.Errorf("%s refused: %v", what, err)
				case want != "" && (err == nil || !strings.Contains(err.Error(), want)):
					t.Errorf("%s: error %v, want %q", what, err, want)
				}
			}
			check("CheckCSRSignature", signer.CheckCSRSignature(tc.csr), tc.wantSig)
			check("CheckPublicKey", signer.CheckPublicKey(tc.csr.PublicKey), tc.wantKey)
		})
	}
	if err := signer.CheckCSRSignature(nil); err == nil {
		t.Error("CheckCSRSignature(nil) accepted")
	}
}
