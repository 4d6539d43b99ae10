package cfssl

import (
	"bytes"
	"crypto"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"fmt"
	"net"
	"slices"
	"strings"
	"time"

	"github.com/chancery-pki/chancery/signer"
)

// This file checks a certificate CFSSL returned against the request, field
// by field. Anything that differs is a *MismatchError and the certificate
// is discarded.

// clockSkew is how far in the future a returned certificate's NotBefore may
// lie, to allow for the CA's clock.
const clockSkew = 5 * time.Minute

var (
	oidKeyUsage       = asn1.ObjectIdentifier{2, 5, 29, 15}
	oidExtKeyUsage    = asn1.ObjectIdentifier{2, 5, 29, 37}
	oidSAN            = asn1.ObjectIdentifier{2, 5, 29, 17}
	oidAuthorityKeyID = asn1.ObjectIdentifier{2, 5, 29, 35}
)

// checkIssued checks cert, returned by the CA at u for req, against the
// request and the issuer: the issuer and its signature, the public key, the
// subject (byte for byte equal to wantSubject), the SANs, key usage,
// extended key usage, basic constraints, subject key ID (CA certificates
// whose template sets one), the extensions present and the version.
//
// Validity comes from the CA's profile, not the request: the certificate
// must be valid at now (allowing clockSkew for the CA's clock) and must not
// outlive the issuer.
func checkIssued(u string, req *signer.Request, cert, issuer *x509.Certificate, wantSubject []byte, now time.Time) error {
	t := req.Template
	differs := func(field, got, want string) error {
		return &MismatchError{URL: u, Field: field, Got: got, Want: want}
	}
	hinted := func(field, got, want, hint string) error {
		return &MismatchError{URL: u, Field: field, Got: got, Want: want, Hint: hint}
	}
	if !bytes.Equal(cert.RawIssuer, issuer.RawSubject) {
		return differs("issuer", quote(cert.Issuer.String()), quote(issuer.Subject.String())+", the subject of the CA certificate reported by /info")
	}
	if err := cert.CheckSignatureFrom(issuer); err != nil {
		return differs("signature", fmt.Sprintf("one that does not verify (%v)", err), "one by the key of the CA certificate reported by /info")
	}
	if !signer.SamePublicKey(cert.PublicKey, req.PublicKey) {
		return differs("public key", describeKey(cert.PublicKey), "the CSR's "+describeKey(req.PublicKey))
	}
	if !bytes.Equal(cert.RawSubject, wantSubject) {
		hint := ""
		if len(cert.RawSubject) > len(wantSubject) {
			hint = "CFSSL copies from the CSR the subject attributes the request leaves empty, such as C, ST and L: the CSR must carry none of them"
		}
		return hinted("subject", quote(cert.Subject.String()), quote(subjectString(t)), hint)
	}
	if !slices.Equal(cert.DNSNames, t.DNSNames) {
		return differs("dns names", fmt.Sprintf("%q", cert.DNSNames), fmt.Sprintf("%q", t.DNSNames))
	}
	if !slices.EqualFunc(cert.IPAddresses, t.IPAddresses, func(a, b net.IP) bool { return a.Equal(b) }) {
		return differs("ip addresses", fmt.Sprint(cert.IPAddresses), fmt.Sprint(t.IPAddresses))
	}
	if len(cert.EmailAddresses)+len(cert.URIs) != 0 {
		return differs("sans", fmt.Sprintf("emails %q, URIs %v", cert.EmailAddresses, cert.URIs), "DNS names and IP addresses only")
	}
	if cert.KeyUsage != t.KeyUsage {
		return hinted("key usage", keyUsages(cert.KeyUsage), keyUsages(t.KeyUsage), "CFSSL takes key usages from its profile's usages")
	}
	if !sameEKUs(cert.ExtKeyUsage, t.ExtKeyUsage) || len(cert.UnknownExtKeyUsage) != 0 {
		return hinted("extended key usage", extKeyUsages(cert.ExtKeyUsage, len(cert.UnknownExtKeyUsage)), extKeyUsages(t.ExtKeyUsage, 0), "CFSSL takes extended key usages from its profile's usages")
	}
	if !cert.BasicConstraintsValid || cert.IsCA != t.IsCA {
		got := "no basic constraints"
		if cert.BasicConstraintsValid {
			got = caFlag(cert.IsCA)
		}
		return hinted("basic constraints", got, caFlag(t.IsCA), "CFSSL sets CA:TRUE only with a profile whose ca_constraint has is_ca")
	}
	if t.IsCA && pathLen(cert) != pathLen(t) {
		return differs("basic constraints", "path length "+pathLenString(pathLen(cert)), "path length "+pathLenString(pathLen(t)))
	}
	if t.IsCA && len(t.SubjectKeyId) > 0 && !bytes.Equal(cert.SubjectKeyId, t.SubjectKeyId) {
		return hinted("subject key id", fmt.Sprintf("%x", cert.SubjectKeyId), fmt.Sprintf("%x, the new root's", t.SubjectKeyId),
			"CFSSL versions that ignore the request's extensions compute the SHA-1 of the public key (RFC 5280 method 1); a root whose key ID was computed otherwise, such as with truncated SHA-256, cannot be cross-signed by them")
	}
	if !t.IsCA {
		if want, err := signer.SubjectKeyID(req.PublicKey); err != nil || !bytes.Equal(cert.SubjectKeyId, want) {
			return hinted("subject key id", fmt.Sprintf("%x", cert.SubjectKeyId), fmt.Sprintf("%x", want),
				"CFSSL's signer gives every certificate the SHA-1 of its public key (RFC 5280 method 1), as chancery's local issuer does")
		}
	}
	if err := checkValidity(u, cert, issuer, now); err != nil {
		return err
	}
	for _, ext := range cert.Extensions {
		switch {
		case ext.Id.Equal(oidKeyUsage), ext.Id.Equal(oidExtKeyUsage), ext.Id.Equal(oidBasicConstraints),
			ext.Id.Equal(oidSAN), ext.Id.Equal(oidAuthorityKeyID), ext.Id.Equal(oidSubjectKeyID):
		default:
			return hinted("extensions", "extension "+ext.Id.String(), "only key usage, extended key usage, basic constraints, SANs and key IDs",
				"the CFSSL profile must not add OCSP, CRL or issuer URLs, policies or other extensions")
		}
	}
	if cert.Version != 3 {
		return differs("version", fmt.Sprint(cert.Version), "3")
	}
	return nil
}

// checkValidity checks the validity the CA's profile gave cert.
func checkValidity(u string, cert, issuer *x509.Certificate, now time.Time) error {
	differs := func(got, want string) error {
		return &MismatchError{URL: u, Field: "validity", Got: got, Want: want}
	}
	hinted := func(got, want, hint string) error {
		return &MismatchError{URL: u, Field: "validity", Got: got, Want: want, Hint: hint}
	}
	got := fmt.Sprintf("[%s, %s]", stamp(cert.NotBefore), stamp(cert.NotAfter))
	switch {
	case !cert.NotBefore.Before(cert.NotAfter):
		return differs(got, "not before earlier than not after")
	case cert.NotBefore.After(now.Add(clockSkew)):
		return differs(got, fmt.Sprintf("a certificate valid now (%s)", stamp(now)))
	case !cert.NotAfter.After(now):
		return differs(got, fmt.Sprintf("a certificate valid now (%s)", stamp(now)))
	case cert.NotAfter.After(issuer.NotAfter):
		return hinted(got, fmt.Sprintf("one that ends by the CA certificate's not after (%s)", stamp(issuer.NotAfter)),
			"the profile's expiry reaches past the CA certificate: shorten it, or renew the CA")
	}
	return nil
}

func describeKey(k crypto.PublicKey) string {
	der, err := x509.MarshalPKIXPublicKey(k)
	if err != nil {
		return fmt.Sprintf("%T key", k)
	}
	return fmt.Sprintf("%T key %x...", k, der[len(der)-8:])
}

func quote(s string) string { return fmt.Sprintf("%q", s) }

// subjectString is t's subject as text: RawSubject when set, else Subject.
func subjectString(t *x509.Certificate) string {
	if len(t.RawSubject) == 0 {
		return t.Subject.String()
	}
	var rdns pkix.RDNSequence
	if _, err := asn1.Unmarshal(t.RawSubject, &rdns); err != nil {
		return fmt.Sprintf("%x", t.RawSubject)
	}
	return rdns.String()
}

func sameEKUs(a, b []x509.ExtKeyUsage) bool {
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

func keyUsages(u x509.KeyUsage) string {
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

func extKeyUsages(us []x509.ExtKeyUsage, unknown int) string {
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

func caFlag(isCA bool) string {
	if isCA {
		return "CA:TRUE"
	}
	return "CA:FALSE"
}

func pathLenString(n int) string {
	if n < 0 {
		return "unlimited"
	}
	return fmt.Sprint(n)
}

func stamp(t time.Time) string { return t.UTC().Format(time.RFC3339) }
