package signer

import (
	"bytes"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"slices"
	"strings"
	"time"
)

// This file holds the one check of a certificate a Signer returned against
// the request it was asked: CheckIssued. Remote backends run it on every
// certificate their CA returns, and the issuing path (package issuer) runs
// it on every certificate any Signer returns, so that no certificate that
// differs from what was asked ever leaves a manager.

// ErrIssuedMismatch is matched, with errors.Is, by every error that says an
// issued certificate differs from its request.
var ErrIssuedMismatch = errors.New("signer: the issued certificate differs from the request")

// IssuedError says in which field an issued certificate differs from its
// request.
type IssuedError struct {
	// Field names what differs: "issuer", "signature", "public key",
	// "subject", "basic constraints", "key usage", "extended key usage",
	// "dns names", "ip addresses", "sans", "subject key id",
	// "authority key id", "validity", "signature algorithm", "extensions"
	// or "version".
	Field string
	// Got and Want describe the certificate's value and the expected one.
	Got, Want string
}

func (e *IssuedError) Error() string {
	return fmt.Sprintf("signer: the issued certificate differs from the request in its %s: got %s, want %s", e.Field, e.Got, e.Want)
}

// Is reports whether target is ErrIssuedMismatch.
func (e *IssuedError) Is(target error) bool { return target == ErrIssuedMismatch }

// Tolerance declares how a backend's certificates may differ from the
// local issuer's for the same request, each difference named. The zero
// Tolerance allows none: the local issuer's exact shape.
type Tolerance struct {
	// SortedDNSNames: the CA writes the DNS names sorted, whatever the
	// request's order (Vault's PKI engine).
	SortedDNSNames bool
	// AnyExtKeyUsageOrder: the CA writes the requested extended key usages
	// in an order of its own (CFSSL takes them from its profile).
	AnyExtKeyUsageOrder bool
	// AnySignatureAlgorithm: the CA chooses its signature algorithm; else
	// it must be SignatureAlgorithm of the issuer's key.
	AnySignatureAlgorithm bool
	// ValidityFromCA: the CA's profile sets the validity (CFSSL). The
	// certificate must then be valid at IssuedCheck.Now, allowing
	// NotBeforeSkew, and end by the issuer's NotAfter; otherwise its
	// validity is the request's, NotBefore within NotBeforeSkew.
	ValidityFromCA bool
	// NotBeforeSkew is how far NotBefore may lie from what was asked (or,
	// with ValidityFromCA, after now): the CA's clock may be off.
	NotBeforeSkew time.Duration
	// VerifySignature: always verify the certificate's signature under the
	// issuer. Otherwise it is verified only where the issuer's name and
	// authority key ID cannot tell which key signed (a CA that holds its
	// key, such as the local issuer, checks its own signatures).
	VerifySignature bool
}

// ToleranceReporter is implemented by Signers whose certificates differ
// from the local issuer's in declared ways.
type ToleranceReporter interface {
	// IssuedTolerance returns what CheckIssued allows of the Signer's
	// certificates.
	IssuedTolerance() Tolerance
}

// ToleranceOf returns the tolerance s declares, or none.
func ToleranceOf(s Signer) Tolerance {
	if r, ok := s.(ToleranceReporter); ok {
		return r.IssuedTolerance()
	}
	return Tolerance{}
}

// IssuedCheck tunes CheckIssued.
type IssuedCheck struct {
	Tolerance
	// Now is the time the certificate was issued, for ValidityFromCA;
	// zero means time.Now().
	Now time.Time
}

// issuedExtensions are the extensions a chancery certificate may carry:
// key usage, extended key usage, basic constraints, SANs, and the
// authority and subject key IDs.
var issuedExtensions = []asn1.ObjectIdentifier{
	{2, 5, 29, 15}, {2, 5, 29, 37}, {2, 5, 29, 19}, {2, 5, 29, 17}, {2, 5, 29, 35}, {2, 5, 29, 14},
}

// CheckIssued checks cert, which a Signer returned for req under the CA
// certificate issuer, against the request: the issuer and, where needed,
// the signature; the public key; the subject, byte for byte; the basic
// constraints (and a CA's path length); the key usage and extended key
// usage; the SANs; the subject key ID (a node certificate's is the SHA-1 of
// its key, as the local issuer writes it; a CA certificate's the
// template's, when set); the authority key ID; the validity; the signature
// algorithm; no other extensions; version 3. The serial number is left to
// the caller. It returns the first difference as an *IssuedError, in that
// order.
func CheckIssued(cert *x509.Certificate, req *Request, issuer *x509.Certificate, c IssuedCheck) error {
	t := req.Template
	differs := func(field, got, want string) error { return &IssuedError{Field: field, Got: got, Want: want} }
	selfIssued := bytes.Equal(issuer.RawSubject, cert.RawSubject)
	if !bytes.Equal(cert.RawIssuer, issuer.RawSubject) {
		return differs("issuer", quote(cert.Issuer.String()), quote(issuer.Subject.String()))
	}
	if c.VerifySignature || len(issuer.SubjectKeyId) == 0 || selfIssued {
		if err := cert.CheckSignatureFrom(issuer); err != nil {
			return differs("signature", fmt.Sprintf("one that does not verify (%v)", err), "one by the key of "+quote(issuer.Subject.String()))
		}
	}
	if !SamePublicKey(cert.PublicKey, req.PublicKey) {
		return differs("public key", describeKey(cert.PublicKey), describeKey(req.PublicKey))
	}
	wantSubject, err := subjectDER(t)
	if err != nil {
		return differs("subject", quote(cert.Subject.String()), "a subject that encodes")
	}
	if !bytes.Equal(cert.RawSubject, wantSubject) {
		return differs("subject", quote(cert.Subject.String()), quote(nameOf(wantSubject)))
	}
	if !cert.BasicConstraintsValid || cert.IsCA != t.IsCA {
		got := "no basic constraints"
		if cert.BasicConstraintsValid {
			got = caFlag(cert.IsCA)
		}
		return differs("basic constraints", got, caFlag(t.IsCA))
	}
	if t.IsCA && PathLen(cert) != PathLen(t) {
		return differs("basic constraints", "path length "+pathLenString(PathLen(cert)), "path length "+pathLenString(PathLen(t)))
	}
	if cert.KeyUsage != t.KeyUsage {
		return differs("key usage", KeyUsageString(cert.KeyUsage), KeyUsageString(t.KeyUsage))
	}
	sameEKUs := slices.Equal(cert.ExtKeyUsage, t.ExtKeyUsage)
	if !sameEKUs && c.AnyExtKeyUsageOrder {
		sameEKUs = sameSet(cert.ExtKeyUsage, t.ExtKeyUsage)
	}
	if !sameEKUs || len(cert.UnknownExtKeyUsage) != len(t.UnknownExtKeyUsage) ||
		!slices.EqualFunc(cert.UnknownExtKeyUsage, t.UnknownExtKeyUsage, asn1.ObjectIdentifier.Equal) {
		return differs("extended key usage", extKeyUsageString(cert.ExtKeyUsage, len(cert.UnknownExtKeyUsage)), extKeyUsageString(t.ExtKeyUsage, len(t.UnknownExtKeyUsage)))
	}
	wantNames := t.DNSNames
	if c.SortedDNSNames {
		wantNames = slices.Sorted(slices.Values(t.DNSNames))
	}
	if !slices.Equal(cert.DNSNames, wantNames) {
		return differs("dns names", fmt.Sprintf("%q", cert.DNSNames), fmt.Sprintf("%q", wantNames))
	}
	if !slices.EqualFunc(cert.IPAddresses, t.IPAddresses, func(a, b net.IP) bool { return a.Equal(b) }) {
		return differs("ip addresses", fmt.Sprint(cert.IPAddresses), fmt.Sprint(t.IPAddresses))
	}
	if len(cert.EmailAddresses)+len(cert.URIs) != 0 {
		return differs("sans", fmt.Sprintf("emails %q, URIs %v", cert.EmailAddresses, cert.URIs), "DNS names and IP addresses only")
	}
	switch {
	case t.IsCA && len(t.SubjectKeyId) > 0 && !bytes.Equal(cert.SubjectKeyId, t.SubjectKeyId):
		return differs("subject key id", hex.EncodeToString(cert.SubjectKeyId), hex.EncodeToString(t.SubjectKeyId))
	case !t.IsCA:
		if want, err := SubjectKeyID(req.PublicKey); err != nil || !bytes.Equal(cert.SubjectKeyId, want) {
			return differs("subject key id", hex.EncodeToString(cert.SubjectKeyId), hex.EncodeToString(want))
		}
	}
	if len(issuer.SubjectKeyId) > 0 && !selfIssued && !bytes.Equal(cert.AuthorityKeyId, issuer.SubjectKeyId) {
		return differs("authority key id", hex.EncodeToString(cert.AuthorityKeyId), hex.EncodeToString(issuer.SubjectKeyId))
	}
	if err := checkIssuedValidity(cert, t, issuer, c); err != nil {
		return err
	}
	if want := SignatureAlgorithm(issuer.PublicKey); !c.AnySignatureAlgorithm && cert.SignatureAlgorithm != want {
		return differs("signature algorithm", cert.SignatureAlgorithm.String(), want.String())
	}
	for _, ext := range cert.Extensions {
		if !slices.ContainsFunc(issuedExtensions, ext.Id.Equal) {
			return differs("extensions", "extension "+ext.Id.String(), "only key usage, extended key usage, basic constraints, SANs and key IDs")
		}
	}
	if cert.Version != 3 {
		return differs("version", fmt.Sprint(cert.Version), "3")
	}
	return nil
}

// checkIssuedValidity checks cert's validity: the request's, NotBefore
// within the skew; or, with ValidityFromCA, valid now and within the
// issuer's.
func checkIssuedValidity(cert, t, issuer *x509.Certificate, c IssuedCheck) error {
	got := fmt.Sprintf("[%s, %s]", stamp(cert.NotBefore), stamp(cert.NotAfter))
	differs := func(want string) error { return &IssuedError{Field: "validity", Got: got, Want: want} }
	if !c.ValidityFromCA {
		if d := cert.NotBefore.Sub(t.NotBefore); d > c.NotBeforeSkew || d < -c.NotBeforeSkew || !cert.NotAfter.Equal(t.NotAfter) {
			want := fmt.Sprintf("[%s, %s]", stamp(t.NotBefore), stamp(t.NotAfter))
			if c.NotBeforeSkew > 0 {
				want += fmt.Sprintf(", not before within %s (the CA's clock may be off)", c.NotBeforeSkew)
			}
			return differs(want)
		}
		return nil
	}
	now := c.Now
	if now.IsZero() {
		now = time.Now()
	}
	switch {
	case !cert.NotBefore.Before(cert.NotAfter):
		return differs("not before earlier than not after")
	case cert.NotBefore.After(now.Add(c.NotBeforeSkew)), !cert.NotAfter.After(now):
		return differs(fmt.Sprintf("a certificate valid now (%s)", stamp(now)))
	case cert.NotAfter.After(issuer.NotAfter):
		return differs(fmt.Sprintf("one that ends by the CA certificate's not after (%s)", stamp(issuer.NotAfter)))
	}
	return nil
}

// PathLen is a CA certificate's or template's path length limit, -1 for
// none.
func PathLen(c *x509.Certificate) int {
	if c.MaxPathLen > 0 || (c.MaxPathLen == 0 && c.MaxPathLenZero) {
		return c.MaxPathLen
	}
	return -1
}

func pathLenString(n int) string {
	if n < 0 {
		return "unlimited"
	}
	return fmt.Sprint(n)
}

func caFlag(isCA bool) string {
	if isCA {
		return "CA:TRUE"
	}
	return "CA:FALSE"
}

// subjectDER is the subject a template asks for, as the local issuer
// encodes it: RawSubject when set, else Subject.
func subjectDER(t *x509.Certificate) ([]byte, error) {
	if len(t.RawSubject) > 0 {
		return t.RawSubject, nil
	}
	return asn1.Marshal(t.Subject.ToRDNSequence())
}

// nameOf is a DER subject as text, or its hex when it does not parse.
func nameOf(der []byte) string {
	var rdns pkix.RDNSequence
	if rest, err := asn1.Unmarshal(der, &rdns); err != nil || len(rest) != 0 {
		return hex.EncodeToString(der)
	}
	return rdns.String()
}

func quote(s string) string { return fmt.Sprintf("%q", s) }

func describeKey(k any) string {
	der, err := x509.MarshalPKIXPublicKey(k)
	if err != nil {
		return fmt.Sprintf("%T key", k)
	}
	return fmt.Sprintf("%T key %x...", k, der[len(der)-8:])
}

func sameSet(a, b []x509.ExtKeyUsage) bool {
	if len(a) != len(b) {
		return false
	}
	for _, u := range b {
		if !slices.Contains(a, u) {
			return false
		}
	}
	return true
}

var keyUsageNames = []struct {
	u    x509.KeyUsage
	name string
}{
	{x509.KeyUsageDigitalSignature, "digital signature"},
	{x509.KeyUsageContentCommitment, "content commitment"},
	{x509.KeyUsageKeyEncipherment, "key encipherment"},
	{x509.KeyUsageDataEncipherment, "data encipherment"},
	{x509.KeyUsageKeyAgreement, "key agreement"},
	{x509.KeyUsageCertSign, "cert sign"},
	{x509.KeyUsageCRLSign, "crl sign"},
	{x509.KeyUsageEncipherOnly, "encipher only"},
	{x509.KeyUsageDecipherOnly, "decipher only"},
}

// KeyUsageString lists the key usages set in u, comma-separated, or
// "none".
func KeyUsageString(u x509.KeyUsage) string {
	var s []string
	for _, n := range keyUsageNames {
		if u&n.u != 0 {
			s = append(s, n.name)
		}
	}
	if len(s) == 0 {
		return "none"
	}
	return strings.Join(s, ", ")
}

var extKeyUsageNames = map[x509.ExtKeyUsage]string{
	x509.ExtKeyUsageAny:             "any",
	x509.ExtKeyUsageServerAuth:      "server auth",
	x509.ExtKeyUsageClientAuth:      "client auth",
	x509.ExtKeyUsageCodeSigning:     "code signing",
	x509.ExtKeyUsageEmailProtection: "email protection",
	x509.ExtKeyUsageTimeStamping:    "timestamping",
	x509.ExtKeyUsageOCSPSigning:     "ocsp signing",
}

func extKeyUsageString(us []x509.ExtKeyUsage, unknown int) string {
	var s []string
	for _, u := range us {
		if n, ok := extKeyUsageNames[u]; ok {
			s = append(s, n)
		} else {
			s = append(s, fmt.Sprintf("usage %d", u))
		}
	}
	if unknown > 0 {
		s = append(s, fmt.Sprintf("%d unknown", unknown))
	}
	if len(s) == 0 {
		return "none"
	}
	return strings.Join(s, ", ")
}
