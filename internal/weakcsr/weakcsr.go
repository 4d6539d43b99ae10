// Package weakcsr makes certificate signing requests that chancery must
// refuse, for tests: CSRs signed with a broken hash (SHA-1, MD5), which
// crypto/x509 no longer creates, and RSA keys with a small public exponent,
// which crypto/rsa never generates.
package weakcsr

import (
	"crypto"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
)

// Algorithm OIDs of RFC 3279.
var (
	oidSHA1WithRSA = asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 1, 5}
	oidMD5WithRSA  = asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 1, 4}
)

// SignedWith returns a PEM CSR for key, subject CN=cn, signed with RSA
// PKCS #1 v1.5 over hash, which must be crypto.SHA1 or crypto.MD5.
func SignedWith(key *rsa.PrivateKey, hash crypto.Hash, cn string) ([]byte, error) {
	var oid asn1.ObjectIdentifier
	switch hash {
	case crypto.SHA1:
		oid = oidSHA1WithRSA
	case crypto.MD5:
		oid = oidMD5WithRSA
	default:
		return nil, fmt.Errorf("weakcsr: hash %v is not a weak one", hash)
	}
	// crypto/x509 writes the request info; only the signature is redone.
	der, err := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{Subject: pkix.Name{CommonName: cn}}, key)
	if err != nil {
		return nil, err
	}
	csr, err := x509.ParseCertificateRequest(der)
	if err != nil {
		return nil, err
	}
	h := hash.New()
	h.Write(csr.RawTBSCertificateRequest)
	sig, err := rsa.SignPKCS1v15(rand.Reader, key, hash, h.Sum(nil))
	if err != nil {
		return nil, err
	}
	out, err := asn1.Marshal(struct {
		Info      asn1.RawValue
		Algorithm pkix.AlgorithmIdentifier
		Signature asn1.BitString
	}{
		Info:      asn1.RawValue{FullBytes: csr.RawTBSCertificateRequest},
		Algorithm: pkix.AlgorithmIdentifier{Algorithm: oid, Parameters: asn1.NullRawValue},
		Signature: asn1.BitString{Bytes: sig, BitLength: 8 * len(sig)},
	})
	if err != nil {
		return nil, err
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE REQUEST", Bytes: out}), nil
}

// RSAKey returns an RSA key of bits bits with the public exponent e (odd,
// at least 3).
func RSAKey(bits, e int) (*rsa.PrivateKey, error) {
	if e < 3 || e%2 == 0 {
		return nil, errors.New("weakcsr: the exponent must be odd and at least 3")
	}
	E := big.NewInt(int64(e))
	one := big.NewInt(1)
	for range 100 {
		p, err := rand.Prime(rand.Reader, bits/2)
		if err != nil {
			return nil, err
		}
		q, err := rand.Prime(rand.Reader, bits-bits/2)
		if err != nil {
			return nil, err
		}
		if p.Cmp(q) == 0 {
			continue
		}
		n := new(big.Int).Mul(p, q)
		if n.BitLen() != bits {
			continue
		}
		phi := new(big.Int).Mul(new(big.Int).Sub(p, one), new(big.Int).Sub(q, one))
		d := new(big.Int).ModInverse(E, phi)
		if d == nil {
			continue
		}
		k := &rsa.PrivateKey{PublicKey: rsa.PublicKey{N: n, E: e}, D: d, Primes: []*big.Int{p, q}}
		if err := k.Validate(); err != nil {
			return nil, err
		}
		k.Precompute()
		return k, nil
	}
	return nil, errors.New("weakcsr: no key found")
}

// CSR returns a PEM CSR for key, signed with SHA-256, subject CN=cn.
func CSR(key crypto.Signer, cn string) ([]byte, error) {
	der, err := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{Subject: pkix.Name{CommonName: cn}}, key)
	if err != nil {
		return nil, err
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE REQUEST", Bytes: der}), nil
}
