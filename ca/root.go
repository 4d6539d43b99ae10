package ca

import (
	"crypto"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"fmt"
	"time"

	"github.com/chancery-pki/chancery/signer"
)

const (
	// DefaultRootCN is the common name of a new root CA, as swarm names it.
	DefaultRootCN = "swarm-ca"
	// RootCAExpiry is a new root's lifetime: 20 years, as swarm's.
	RootCAExpiry = 20 * 365 * 24 * time.Hour
	// MinRootRemaining is how long an imported root must still be valid.
	MinRootRemaining = 365 * 24 * time.Hour
)

// NewRootTemplate returns the template of a new root CA: subject CN=cn
// (DefaultRootCN when empty), valid from now backdated by CertBackdate for
// RootCAExpiry, CA:TRUE with no path length limit, key usage certificate
// and CRL signing. Sign it with signer.SelfSign.
func NewRootTemplate(cn string, now time.Time) *x509.Certificate {
	if cn == "" {
		cn = DefaultRootCN
	}
	return &x509.Certificate{
		Subject:               pkix.Name{CommonName: cn},
		NotBefore:             now.Add(-CertBackdate).Truncate(time.Second),
		NotAfter:              now.Add(RootCAExpiry).Truncate(time.Second),
		IsCA:                  true,
		BasicConstraintsValid: true,
		MaxPathLen:            -1,
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
	}
}

// supportedSignatureAlgorithms are the algorithms a root CA certificate may
// be signed with.
var supportedSignatureAlgorithms = map[x509.SignatureAlgorithm]bool{
	x509.SHA256WithRSA:    true,
	x509.SHA384WithRSA:    true,
	x509.SHA512WithRSA:    true,
	x509.SHA256WithRSAPSS: true,
	x509.SHA384WithRSAPSS: true,
	x509.SHA512WithRSAPSS: true,
	x509.ECDSAWithSHA256:  true,
	x509.ECDSAWithSHA384:  true,
	x509.ECDSAWithSHA512:  true,
}

// Errors returned by CheckRootCA, each matched with errors.Is.
var (
	ErrRootNotCA           = errors.New("ca: the certificate is not a CA")
	ErrRootKeyMismatch     = errors.New("ca: the key does not match the certificate")
	ErrRootKeyType         = errors.New("ca: unsupported root key")
	ErrRootSignatureAlg    = errors.New("ca: unsupported signature algorithm")
	ErrRootExpiresTooSoon  = errors.New("ca: the root CA expires too soon")
	ErrRootNotYetValid     = errors.New("ca: the root CA is not yet valid")
	ErrRootNotSelfSigned   = errors.New("ca: the root CA is not self-signed")
	errRootCheckNeedsInput = errors.New("ca: no root certificate to check")
)

// CheckRootCA checks a root CA certificate, and the public half of its key
// when key is not nil, as swarm checks an imported root: the certificate is
// a self-signed CA, its key is ECDSA P-256/384/521 or RSA of at least 2048
// bits and matches key, it is signed with a supported algorithm, it is valid
// now and stays valid for at least MinRootRemaining.
func CheckRootCA(cert *x509.Certificate, key crypto.PublicKey, now time.Time) error {
	if cert == nil {
		return errRootCheckNeedsInput
	}
	if !cert.IsCA || !cert.BasicConstraintsValid {
		return fmt.Errorf("%w: %q lacks CA:TRUE", ErrRootNotCA, cert.Subject)
	}
	if cert.KeyUsage != 0 && cert.KeyUsage&x509.KeyUsageCertSign == 0 {
		return fmt.Errorf("%w: %q lacks the certificate signing key usage", ErrRootNotCA, cert.Subject)
	}
	if err := signer.CheckPublicKey(cert.PublicKey); err != nil {
		return fmt.Errorf("%w: %v", ErrRootKeyType, err)
	}
	if !supportedSignatureAlgorithms[cert.SignatureAlgorithm] {
		return fmt.Errorf("%w: %s", ErrRootSignatureAlg, cert.SignatureAlgorithm)
	}
	if err := cert.CheckSignatureFrom(cert); err != nil {
		return fmt.Errorf("%w: %v", ErrRootNotSelfSigned, err)
	}
	if key != nil {
		if err := signer.CheckPublicKey(key); err != nil {
			return fmt.Errorf("%w: %v", ErrRootKeyType, err)
		}
		if !signer.SamePublicKey(key, cert.PublicKey) {
			return ErrRootKeyMismatch
		}
	}
	if now.Before(cert.NotBefore) {
		return fmt.Errorf("%w: not before %s", ErrRootNotYetValid, cert.NotBefore.UTC().Format(time.RFC3339))
	}
	if now.Add(MinRootRemaining).After(cert.NotAfter) {
		return fmt.Errorf("%w: it expires at %s, less than a year from now", ErrRootExpiresTooSoon, cert.NotAfter.UTC().Format(time.RFC3339))
	}
	return nil
}
