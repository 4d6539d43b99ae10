package vault

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"errors"
	"fmt"
	"net"
	"net/http"
	"slices"
	"strings"

	"github.com/chancery-pki/chancery/signer"
)

var (
	oidBasicConstraints = asn1.ObjectIdentifier{2, 5, 29, 19}
	oidKeyUsage         = asn1.ObjectIdentifier{2, 5, 29, 15}
)

// vaultBasicConstraints is the extension Vault adds to a CSR for
// add_basic_constraints: critical, CA:TRUE, no path length.
var vaultBasicConstraints = func() pkix.Extension {
	v, _ := asn1.Marshal(struct {
		IsCA bool `asn1:"optional"`
	}{true})
	return pkix.Extension{Id: oidBasicConstraints, Critical: true, Value: v}
}()

// CreateCSR returns a DER CSR for the root's own key in Vault, made by
// Vault's intermediate/cross-sign endpoint (the key never leaves Vault),
// with template's subject and extensions, so that another CA can
// cross-sign the Vault root.
//
// Vault builds the CSR from parameters, so the template may ask only for
// what they can say: a subject Vault can build (see the package
// documentation), DNS names in sorted order, IP addresses, a key usage
// extension, and a critical CA:TRUE basic constraints extension without a
// path length. Anything else is refused with ErrUnsupported before Vault is
// asked; the CSR Vault returns is checked against the template (ErrMismatch).
func (s *Signer) CreateCSR(ctx context.Context, template *x509.CertificateRequest) ([]byte, error) {
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("vault: %w", err)
	}
	if template == nil {
		return nil, errors.New("vault: CSR template is missing")
	}
	der := template.RawSubject
	if len(der) == 0 {
		var err error
		if der, err = asn1.Marshal(template.Subject.ToRDNSequence()); err != nil {
			return nil, unsupported("subject", err.Error())
		}
	}
	subj, err := planSubject(der)
	if err != nil {
		return nil, err
	}
	dns, err := planDNSNames(template.DNSNames)
	if err != nil {
		return nil, err
	}
	if !slices.Equal(dns, template.DNSNames) {
		return nil, unsupported("DNS names", "Vault writes them sorted")
	}
	if len(template.EmailAddresses)+len(template.URIs) != 0 {
		return nil, unsupported("names", "Vault's CSR for its own key carries no email or URI names chancery can ask for")
	}
	data := map[string]any{
		"common_name":          subj.CommonName,
		"organization":         nonNil(subj.Organization),
		"ou":                   nonNil(subj.OU),
		"country":              nonNil(subj.Country),
		"locality":             nonNil(subj.Locality),
		"province":             nonNil(subj.Province),
		"street_address":       nonNil(subj.StreetAddress),
		"postal_code":          nonNil(subj.PostalCode),
		"exclude_cn_from_sans": true,
		"format":               "der",
	}
	if len(dns) > 0 {
		data["alt_names"] = strings.Join(dns, ",")
	}
	if len(template.IPAddresses) > 0 {
		ips := make([]string, len(template.IPAddresses))
		for i, ip := range template.IPAddresses {
			ips[i] = ip.String()
		}
		data["ip_sans"] = ips
	}
	for _, ext := range template.ExtraExtensions {
		switch {
		case ext.Id.Equal(oidBasicConstraints) && ext.Critical && bytes.Equal(ext.Value, vaultBasicConstraints.Value):
			data["add_basic_constraints"] = true
		case ext.Id.Equal(oidKeyUsage):
			ku, err := parseKeyUsage(ext.Value)
			if err != nil {
				return nil, unsupported("key usage", err.Error())
			}
			data["key_usage"] = keyUsageList(ku)
		default:
			return nil, unsupported("extensions", fmt.Sprintf("Vault can put only key usage and CA:TRUE basic constraints (critical, no path length) in a CSR, not extension %v", ext.Id))
		}
	}
	keyID, err := s.keyRef(ctx)
	if err != nil {
		return nil, err
	}
	data["key_ref"] = keyID
	path := s.conn.cfg.Mount + "/intermediate/cross-sign"
	sec, err := s.conn.call(ctx, request{op: "create a CSR for the root's key", method: http.MethodPost, path: path, data: data, mountPath: true})
	if err != nil {
		return nil, err
	}
	if sec == nil || sec.Data == nil {
		return nil, &Error{Kind: ErrVault, Op: "create a CSR for the root's key", Path: path, Detail: "Vault returned no data"}
	}
	raw, _ := sec.Data["csr"].(string)
	csrDER, err := decodeDER(raw, "CERTIFICATE REQUEST")
	if err != nil {
		return nil, &Error{Kind: ErrVault, Op: "create a CSR for the root's key", Path: path, Detail: "Vault returned no readable CSR: " + err.Error()}
	}
	if err := s.checkCSR(csrDER, template, der); err != nil {
		return nil, err
	}
	return csrDER, nil
}

// checkCSR checks the CSR Vault made against the template: signed by the
// root's key, the same subject bytes, names and extensions.
func (s *Signer) checkCSR(der []byte, template *x509.CertificateRequest, subject []byte) error {
	var m mismatch
	csr, err := x509.ParseCertificateRequest(der)
	if err != nil {
		m.add("the CSR", err, "a parsable CSR")
		return m.err("check the CSR from Vault")
	}
	if err := signer.CheckCSRSignature(csr); err != nil {
		m.add("the CSR's signature", err, "valid, SHA-256 or stronger")
	}
	if !signer.SamePublicKey(csr.PublicKey, s.chain[0].PublicKey) {
		m.add("the CSR's public key", "another key", "the root's")
	}
	if !bytes.Equal(csr.RawSubject, subject) {
		m.add("the CSR's subject", csr.Subject, template.Subject)
	}
	if !slices.Equal(csr.DNSNames, template.DNSNames) || !slices.EqualFunc(csr.IPAddresses, template.IPAddresses, net.IP.Equal) {
		m.add("the CSR's names", fmt.Sprint(csr.DNSNames, csr.IPAddresses), fmt.Sprint(template.DNSNames, template.IPAddresses))
	}
	// The extensions Go would write for the template, against Vault's.
	want, err := expectedCSRExtensions(template)
	if err != nil {
		m.add("the template's extensions", err, "encodable")
	} else if !sameExtensions(csr.Extensions, want) {
		m.add("the CSR's extensions", extIDs(csr.Extensions), extIDs(want))
	}
	return m.err("check the CSR from Vault")
}

// expectedCSRExtensions returns the extensions a CSR Go makes from template
// carries.
func expectedCSRExtensions(template *x509.CertificateRequest) ([]pkix.Extension, error) {
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, err
	}
	t := *template
	t.SignatureAlgorithm = 0
	der, err := x509.CreateCertificateRequest(rand.Reader, &t, k)
	if err != nil {
		return nil, err
	}
	csr, err := x509.ParseCertificateRequest(der)
	if err != nil {
		return nil, err
	}
	return csr.Extensions, nil
}

// sameExtensions compares two extension lists as sets.
func sameExtensions(a, b []pkix.Extension) bool {
	if len(a) != len(b) {
		return false
	}
	for _, x := range a {
		if !slices.ContainsFunc(b, func(y pkix.Extension) bool {
			return x.Id.Equal(y.Id) && x.Critical == y.Critical && bytes.Equal(x.Value, y.Value)
		}) {
			return false
		}
	}
	return true
}

func extIDs(exts []pkix.Extension) []string {
	out := []string{}
	for _, e := range exts {
		out = append(out, e.Id.String())
	}
	return out
}

// parseKeyUsage reads a key usage extension's value.
func parseKeyUsage(v []byte) (x509.KeyUsage, error) {
	var bits asn1.BitString
	if rest, err := asn1.Unmarshal(v, &bits); err != nil || len(rest) != 0 {
		return 0, errors.New("malformed key usage extension")
	}
	var ku x509.KeyUsage
	for i := 0; i < 9; i++ {
		if bits.At(i) != 0 {
			ku |= 1 << uint(i)
		}
	}
	return ku, nil
}

func nonNil(v []string) []string {
	if v == nil {
		return []string{}
	}
	return v
}
