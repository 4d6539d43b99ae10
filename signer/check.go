package signer

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"errors"
	"fmt"
	"time"
)

// ErrInvalidRequest is matched, with errors.Is, by every error that says a
// Request was refused before signing.
var ErrInvalidRequest = errors.New("signer: invalid request")

// ErrInvalidCSR is matched, with errors.Is, by every error that refuses a
// certificate signing request: a bad signature, a key that differs from the
// request's, or (in package ca) one that cannot be parsed.
var ErrInvalidCSR = errors.New("invalid CSR")

// MinRSABits is the smallest RSA modulus accepted for any key.
const MinRSABits = 2048

// RSAExponent is the only RSA public exponent accepted for any key: 65537,
// the one every current library uses. Small exponents such as 3 make
// implementation mistakes (missing or wrong padding checks) exploitable.
const RSAExponent = 65537

// RequestError says which part of a Request was refused and why.
type RequestError struct {
	// Field names the refused part: "public key", "csr", "subject",
	// "validity", "basic constraints", "profile" or "template".
	Field string
	// Reason says what is wrong with it.
	Reason string
}

func (e *RequestError) Error() string {
	return fmt.Sprintf("signer: invalid request: %s: %s", e.Field, e.Reason)
}

// Is reports whether target is ErrInvalidRequest, or ErrInvalidCSR for an
// error about the CSR.
func (e *RequestError) Is(target error) bool {
	return target == ErrInvalidRequest || (target == ErrInvalidCSR && e.Field == "csr")
}

func refuse(field, format string, args ...any) error {
	return &RequestError{Field: field, Reason: fmt.Sprintf(format, args...)}
}

// CheckRequest applies the checks every backend runs before it signs req
// under the CA certificate issuer:
//
//   - the profile is ProfileNode or ProfileCA, and CA:TRUE is asked for
//     exactly when the profile is ProfileCA;
//   - the subject is not empty;
//   - the public key is ECDSA P-256, P-384 or P-521, or RSA of at least
//     MinRSABits bits;
//   - a CSR, when present, has a valid signature made with SHA-256 or
//     stronger (CheckCSRSignature) and the same public key;
//   - NotBefore is before NotAfter, and both lie within the issuer's validity.
func CheckRequest(req *Request, issuer *x509.Certificate) error {
	if req == nil || req.Template == nil {
		return refuse("template", "missing")
	}
	if issuer == nil {
		return errors.New("signer: no issuer certificate")
	}
	t := req.Template
	switch req.Profile {
	case ProfileNode:
		if t.IsCA {
			return refuse("basic constraints", "CA:TRUE is only allowed with the %q profile", ProfileCA)
		}
	case ProfileCA:
		if !t.IsCA || !t.BasicConstraintsValid {
			return refuse("basic constraints", "the %q profile needs CA:TRUE", ProfileCA)
		}
	default:
		return refuse("profile", "unknown profile %q (want %q or %q)", req.Profile, ProfileNode, ProfileCA)
	}
	if subjectEmpty(t) {
		return refuse("subject", "empty")
	}
	if err := CheckPublicKey(req.PublicKey); err != nil {
		return &RequestError{Field: "public key", Reason: err.Error()}
	}
	if req.CSR != nil {
		if err := CheckCSRSignature(req.CSR); err != nil {
			return &RequestError{Field: "csr", Reason: err.Error()}
		}
		if !SamePublicKey(req.CSR.PublicKey, req.PublicKey) {
			return refuse("csr", "its public key differs from the request's")
		}
	}
	if !t.NotBefore.Before(t.NotAfter) {
		return refuse("validity", "not before (%s) is not before not after (%s)", stamp(t.NotBefore), stamp(t.NotAfter))
	}
	if t.NotBefore.Before(issuer.NotBefore) {
		return refuse("validity", "not before (%s) precedes the CA's not before (%s)", stamp(t.NotBefore), stamp(issuer.NotBefore))
	}
	if t.NotAfter.After(issuer.NotAfter) {
		return refuse("validity", "not after (%s) is past the CA's not after (%s)", stamp(t.NotAfter), stamp(issuer.NotAfter))
	}
	return nil
}

// CheckPublicKey reports whether pub is a supported key type: ECDSA P-256,
// P-384 or P-521, or RSA of at least MinRSABits bits with the public
// exponent RSAExponent.
func CheckPublicKey(pub crypto.PublicKey) error {
	switch k := pub.(type) {
	case *ecdsa.PublicKey:
		switch k.Curve {
		case elliptic.P256(), elliptic.P384(), elliptic.P521():
			return nil
		}
		return fmt.Errorf("unsupported ECDSA curve %s (want P-256, P-384 or P-521)", k.Curve.Params().Name)
	case *rsa.PublicKey:
		if k.N.BitLen() < MinRSABits {
			return fmt.Errorf("RSA key of %d bits is too small (want at least %d)", k.N.BitLen(), MinRSABits)
		}
		if k.E != RSAExponent {
			return fmt.Errorf("RSA public exponent %d is refused (want %d): make a new key with a current tool", k.E, RSAExponent)
		}
		return nil
	case nil:
		return errors.New("missing")
	default:
		return fmt.Errorf("unsupported key type %T (want ECDSA or RSA)", pub)
	}
}

// weakCSRAlgorithms are the signature algorithms a CSR may not be signed
// with: their hash functions (MD2, MD5, SHA-1) have practical collisions.
var weakCSRAlgorithms = map[x509.SignatureAlgorithm]bool{
	x509.MD2WithRSA: true, x509.MD5WithRSA: true,
	x509.SHA1WithRSA: true, x509.DSAWithSHA1: true, x509.ECDSAWithSHA1: true,
}

// CheckCSRSignature checks a certificate signing request's signature: it
// must be made with SHA-256 or stronger (MD2, MD5 and SHA-1 are refused,
// though crypto/x509 still verifies SHA-1 CSRs) and verify under the CSR's
// own public key. Every path that accepts a CSR calls it.
func CheckCSRSignature(csr *x509.CertificateRequest) error {
	if csr == nil {
		return errors.New("missing")
	}
	if weakCSRAlgorithms[csr.SignatureAlgorithm] {
		return fmt.Errorf("signed with %s: MD5 and SHA-1 signatures are refused; sign the CSR with SHA-256 or stronger", csr.SignatureAlgorithm)
	}
	if err := csr.CheckSignature(); err != nil {
		return fmt.Errorf("bad signature: %v", err)
	}
	return nil
}

// subjectEmpty reports whether the template names no subject: RawSubject,
// when set, is what gets signed, so it is the one that counts.
func subjectEmpty(t *x509.Certificate) bool {
	if len(t.RawSubject) == 0 {
		return len(t.Subject.ToRDNSequence()) == 0
	}
	var rdns pkix.RDNSequence
	rest, err := asn1.Unmarshal(t.RawSubject, &rdns)
	return err != nil || len(rest) != 0 || len(rdns) == 0
}

// SamePublicKey reports whether a and b are the same public key. Keys of
// the standard library's types are compared with their Equal method.
func SamePublicKey(a, b crypto.PublicKey) bool {
	ea, ok := a.(interface{ Equal(crypto.PublicKey) bool })
	return ok && ea.Equal(b)
}

func stamp(t time.Time) string { return t.UTC().Format(time.RFC3339) }

// SignatureAlgorithm is the signature algorithm a CA key implies, the one
// the local issuer signs with (crypto/x509's choice): ECDSA with SHA-256,
// SHA-384 or SHA-512 by curve, SHA-256 with RSA (PKCS #1 v1.5) for RSA.
// Remote backends ask their CA for the same.
func SignatureAlgorithm(pub crypto.PublicKey) x509.SignatureAlgorithm {
	switch k := pub.(type) {
	case *ecdsa.PublicKey:
		switch k.Curve {
		case elliptic.P384():
			return x509.ECDSAWithSHA384
		case elliptic.P521():
			return x509.ECDSAWithSHA512
		}
		return x509.ECDSAWithSHA256
	case *rsa.PublicKey:
		return x509.SHA256WithRSA
	}
	return x509.UnknownSignatureAlgorithm
}
