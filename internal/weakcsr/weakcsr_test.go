package weakcsr

import (
	"crypto"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/pem"
	"testing"
)

// The CSRs parse, carry the weak algorithm, and their signatures verify,
// so that a refusal of them is a refusal of the algorithm alone.
func TestWeakCSRs(t *testing.T) {
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	e3, err := RSAKey(2048, 3)
	if err != nil {
		t.Fatal(err)
	}
	e3CSR, err := CSR(e3, "e3")
	if err != nil {
		t.Fatal(err)
	}
	sha1CSR, err := SignedWith(key, crypto.SHA1, "sha1")
	if err != nil {
		t.Fatal(err)
	}
	md5CSR, err := SignedWith(key, crypto.MD5, "md5")
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		pem  []byte
		alg  x509.SignatureAlgorithm
		e    int
	}{
		{"SHA1", sha1CSR, x509.SHA1WithRSA, 65537},
		{"MD5", md5CSR, x509.MD5WithRSA, 65537},
		{"Exponent3", e3CSR, x509.SHA256WithRSA, 3},
	} {
		t.Run(tc.name, func(t *testing.T) {
			block, _ := pem.Decode(tc.pem)
			csr, err := x509.ParseCertificateRequest(block.Bytes)
			if err != nil {
				t.Fatal(err)
			}
			if csr.SignatureAlgorithm != tc.alg {
				t.Errorf("algorithm %v, want %v", csr.SignatureAlgorithm, tc.alg)
			}
			if pub := csr.PublicKey.(*rsa.PublicKey); pub.E != tc.e {
				t.Errorf("exponent %d, want %d", pub.E, tc.e)
			}
			if tc.alg != x509.MD5WithRSA {
				if err := csr.CheckSignature(); err != nil {
					t.Errorf("signature: %v", err)
				}
			}
		})
	}
}
