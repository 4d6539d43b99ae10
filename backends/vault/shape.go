package vault

import (
	"bytes"
	"crypto/sha256"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/chancery-pki/chancery/signer"
)

// This file predicts what Vault's PKI engine makes of a request, refuses
// requests it cannot honour exactly (ErrUnsupported) before anything is
// sent, and checks the certificate Vault returns against the request
// (ErrMismatch).

// subjectDER returns the subject a template asks for, as the local issuer
// would encode it: RawSubject when set, else Subject.
func subjectDER(t *x509.Certificate) ([]byte, error) {
	if len(t.RawSubject) > 0 {
		return t.RawSubject, nil
	}
	return asn1.Marshal(t.Subject.ToRDNSequence())
}

// vaultSubject is the part of a subject Vault builds from a role (O, OU,
// C, L, ST, street, postal code) and a request (CN).
type vaultSubject struct {
	CommonName                                                               string
	Organization, OU, Country, Locality, Province, StreetAddress, PostalCode []string
}

// name returns the pkix.Name Vault builds: each list without duplicates, in
// order, and nothing else.
func (v vaultSubject) name() pkix.Name {
	return pkix.Name{
		CommonName:         v.CommonName,
		Country:            dedupStable(v.Country),
		Organization:       dedupStable(v.Organization),
		OrganizationalUnit: dedupStable(v.OU),
		Locality:           dedupStable(v.Locality),
		Province:           dedupStable(v.Province),
		StreetAddress:      dedupStable(v.StreetAddress),
		PostalCode:         dedupStable(v.PostalCode),
	}
}

func dedupStable(in []string) []string {
	var out []string
	seen := map[string]bool{}
	for _, s := range in {
		if !seen[s] {
			seen[s] = true
			out = append(out, s)
		}
	}
	return out
}

// planSubject reads the subject a template asks for and returns the Vault
// parameters that make exactly those bytes, or ErrUnsupported.
func planSubject(der []byte) (vaultSubject, error) {
	var rdns pkix.RDNSequence
	if rest, err := asn1.Unmarshal(der, &rdns); err != nil || len(rest) != 0 {
		return vaultSubject{}, unsupported("subject", "it is not a valid distinguished name")
	}
	var n pkix.Name
	n.FillFromRDNSequence(&rdns)
	v := vaultSubject{
		CommonName: n.CommonName, Organization: n.Organization, OU: n.OrganizationalUnit,
		Country: n.Country, Locality: n.Locality, Province: n.Province,
		StreetAddress: n.StreetAddress, PostalCode: n.PostalCode,
	}
	got, err := asn1.Marshal(v.name().ToRDNSequence())
	if err != nil || !bytes.Equal(got, der) {
		return vaultSubject{}, unsupported("subject", fmt.Sprintf("%q: Vault builds a subject from one CN and lists of C, ST, L, street, postal code, O and OU, in Go's order and encoding, and nothing else", n.String()))
	}
	return v, nil
}

// plainSubject is planSubject's fast path, for the usual template: a
// Subject (no RawSubject) with only the fields Vault builds, none twice. Its
// encoding is then Vault's by construction.
func plainSubject(t *x509.Certificate) (vaultSubject, bool) {
	n := t.Subject
	if len(t.RawSubject) != 0 || len(n.ExtraNames) != 0 || n.SerialNumber != "" {
		return vaultSubject{}, false
	}
	for _, l := range [][]string{n.Country, n.Organization, n.OrganizationalUnit, n.Locality, n.Province, n.StreetAddress, n.PostalCode} {
		if len(l) > 1 && len(dedupStable(l)) != len(l) {
			return vaultSubject{}, false
		}
	}
	return vaultSubject{
		CommonName: n.CommonName, Organization: n.Organization, OU: n.OrganizationalUnit,
		Country: n.Country, Locality: n.Locality, Province: n.Province,
		StreetAddress: n.StreetAddress, PostalCode: n.PostalCode,
	}, true
}

func unsupported(field, reason string) error {
	return &Error{Kind: ErrUnsupported, Detail: field + ": " + reason,
		Advice: "this certificate can only come from a backend that holds the key (file, pkcs11)"}
}

// hostnameRegex is Vault's test of a DNS name (builtin/logical/pki/issuing):
// names that fail it are silently dropped, so chancery refuses them first.
var hostnameRegex = regexp.MustCompile(`^(\*\.)?(([a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9\-]*[a-zA-Z0-9])\.)*([a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9\-]*[a-zA-Z0-9])\.?$`)

// planDNSNames checks DNS names Vault is given in alt_names and returns
// them in the order Vault writes them: sorted.
func planDNSNames(names []string) ([]string, error) {
	seen := map[string]bool{}
	for _, n := range names {
		switch {
		case seen[n]:
			return nil, unsupported("DNS names", fmt.Sprintf("%q appears twice, and Vault removes duplicates", n))
		case strings.ContainsAny(n, ",@ ") || !hostnameRegex.MatchString(n) || strings.ToLower(n) != n:
			return nil, unsupported("DNS names", fmt.Sprintf("%q is not a lower-case host name that Vault accepts as is", n))
		}
		seen[n] = true
	}
	sorted := slices.Clone(names)
	sort.Strings(sorted)
	return sorted, nil
}

// Vault's names of key usages, by bit.
var keyUsageNames = []struct {
	bit  x509.KeyUsage
	name string
}{
	{x509.KeyUsageDigitalSignature, "DigitalSignature"},
	{x509.KeyUsageContentCommitment, "ContentCommitment"},
	{x509.KeyUsageKeyEncipherment, "KeyEncipherment"},
	{x509.KeyUsageDataEncipherment, "DataEncipherment"},
	{x509.KeyUsageKeyAgreement, "KeyAgreement"},
	{x509.KeyUsageCertSign, "CertSign"},
	{x509.KeyUsageCRLSign, "CRLSign"},
	{x509.KeyUsageEncipherOnly, "EncipherOnly"},
	{x509.KeyUsageDecipherOnly, "DecipherOnly"},
}

// Vault's extended key usages, in the order it writes them
// (certutil.AddKeyUsages).
var extKeyUsageOrder = []struct {
	eku  x509.ExtKeyUsage
	name string
}{
	{x509.ExtKeyUsageAny, "Any"},
	{x509.ExtKeyUsageServerAuth, "ServerAuth"},
	{x509.ExtKeyUsageClientAuth, "ClientAuth"},
	{x509.ExtKeyUsageCodeSigning, "CodeSigning"},
	{x509.ExtKeyUsageEmailProtection, "EmailProtection"},
	{x509.ExtKeyUsageIPSECEndSystem, "IPSECEndSystem"},
	{x509.ExtKeyUsageIPSECTunnel, "IPSECTunnel"},
	{x509.ExtKeyUsageIPSECUser, "IPSECUser"},
	{x509.ExtKeyUsageTimeStamping, "TimeStamping"},
	{x509.ExtKeyUsageOCSPSigning, "OCSPSigning"},
	{x509.ExtKeyUsageMicrosoftServerGatedCrypto, "MicrosoftServerGatedCrypto"},
	{x509.ExtKeyUsageNetscapeServerGatedCrypto, "NetscapeServerGatedCrypto"},
}

func keyUsageList(ku x509.KeyUsage) []string {
	out := []string{}
	for _, k := range keyUsageNames {
		if ku&k.bit != 0 {
			out = append(out, k.name)
		}
	}
	return out
}

// planExtKeyUsages returns Vault's names for ekus, or ErrUnsupported when
// Vault cannot write them in that order.
func planExtKeyUsages(ekus []x509.ExtKeyUsage) ([]string, error) {
	var names []string
	next := 0
	for _, e := range ekus {
		i := slices.IndexFunc(extKeyUsageOrder, func(k struct {
			eku  x509.ExtKeyUsage
			name string
		}) bool {
			return k.eku == e
		})
		switch {
		case i < 0:
			return nil, unsupported("extended key usage", fmt.Sprintf("Vault cannot write extended key usage %d", e))
		case i < next:
			return nil, unsupported("extended key usage", "Vault writes extended key usages in a fixed order (server auth before client auth, ...), and this request asks for another")
		}
		names = append(names, extKeyUsageOrder[i].name)
		next = i + 1
	}
	if names == nil {
		names = []string{}
	}
	return names, nil
}

// signatureBits is Vault's signature_bits for the algorithm.
func signatureBits(alg x509.SignatureAlgorithm) int {
	switch alg {
	case x509.ECDSAWithSHA384, x509.SHA384WithRSA:
		return 384
	case x509.ECDSAWithSHA512, x509.SHA512WithRSA:
		return 512
	}
	return 256
}

// roleSpec is everything a node certificate's shape takes from a Vault
// role. Requests with the same spec share a role, named after its hash.
type roleSpec struct {
	Organization, OU, Country, Locality, Province, StreetAddress, PostalCode []string
	KeyUsage                                                                 []string
	ExtKeyUsage                                                              []string
	BasicConstraints                                                         bool
	SignatureBits                                                            int
}

// key is a canonical text of the spec, for looking up its role.
func (r roleSpec) key() string {
	var b strings.Builder
	for _, l := range [][]string{r.Organization, r.OU, r.Country, r.Locality, r.Province, r.StreetAddress, r.PostalCode, r.KeyUsage, r.ExtKeyUsage} {
		for _, v := range l {
			b.WriteString(strconv.Quote(v))
			b.WriteByte(',')
		}
		b.WriteByte('|')
	}
	fmt.Fprintf(&b, "%v|%d", r.BasicConstraints, r.SignatureBits)
	return b.String()
}

// name is the role's name under the mount: chancery-, the issuer's ID, and
// a hash of the spec, so that different shapes and issuers never share one.
func (r roleSpec) name(issuerID string) string {
	b, _ := json.Marshal(r)
	sum := sha256.Sum256(b)
	return "chancery-" + issuerID + "-" + hex.EncodeToString(sum[:8])
}

// nodePlan is how a node certificate request is sent to Vault and what
// Vault must return.
type nodePlan struct {
	spec     roleSpec
	cn       string
	dnsNames []string // in Vault's order
	ips      []net.IP
}

// planNode checks that Vault can issue req (a node profile request) under
// issuer, and returns how.
func planNode(req *signer.Request, issuer *x509.Certificate) (*nodePlan, error) {
	t := req.Template
	der, err := subjectDER(t)
	if err != nil {
		return nil, unsupported("subject", err.Error())
	}
	subj, ok := plainSubject(t)
	if !ok {
		if subj, err = planSubject(der); err != nil {
			return nil, err
		}
	}
	dns, err := planDNSNames(t.DNSNames)
	if err != nil {
		return nil, err
	}
	ekus, err := planExtKeyUsages(t.ExtKeyUsage)
	if err != nil {
		return nil, err
	}
	if len(t.UnknownExtKeyUsage) != 0 {
		return nil, unsupported("extended key usage", "Vault writes unknown extended key usages after the known ones")
	}
	alg := signer.SignatureAlgorithm(issuer.PublicKey)
	return &nodePlan{
		spec: roleSpec{
			Organization: subj.Organization, OU: subj.OU, Country: subj.Country, Locality: subj.Locality,
			Province: subj.Province, StreetAddress: subj.StreetAddress, PostalCode: subj.PostalCode,
			KeyUsage: keyUsageList(t.KeyUsage), ExtKeyUsage: ekus,
			BasicConstraints: t.BasicConstraintsValid, SignatureBits: signatureBits(alg),
		},
		cn: subj.CommonName, dnsNames: dns, ips: t.IPAddresses,
	}, nil
}

// mismatch describes how a CSR or a root from Vault differs from what was
// asked.
type mismatch []string

func (m *mismatch) add(field string, got, want any) {
	*m = append(*m, fmt.Sprintf("%s is %v, want %v", field, got, want))
}

func (m mismatch) err(what string) error {
	if len(m) == 0 {
		return nil
	}
	return mismatchError(what, errors.New(strings.Join(m, "; ")))
}

// Extensions a root from Vault may carry: key usage, extended key usage,
// basic constraints, SAN, authority and subject key IDs.
var allowedExtensions = []asn1.ObjectIdentifier{
	{2, 5, 29, 15}, {2, 5, 29, 37}, {2, 5, 29, 19}, {2, 5, 29, 17}, {2, 5, 29, 35}, {2, 5, 29, 14},
}

// mismatchError wraps how a certificate from Vault differs from what was
// asked (signer.CheckIssued's error, or a detail of Vault's own).
func mismatchError(what string, err error) error {
	if err == nil {
		return nil
	}
	detail := err.Error()
	var ie *signer.IssuedError
	if errors.As(err, &ie) {
		detail = fmt.Sprintf("the %s is %s, want %s", ie.Field, ie.Got, ie.Want)
	}
	return &Error{Kind: ErrMismatch, Op: what, Detail: detail,
		Advice: "the certificate was not used; check the PKI mount's settings (config/urls, the issuer's leaf_not_after_behavior) and Vault's clock"}
}

// serialOK reports whether a serial has the local issuer's shape: positive,
// signer.SerialBytes bytes.
func serialOK(cert *x509.Certificate) bool {
	return cert.SerialNumber.Sign() > 0 && len(cert.SerialNumber.Bytes()) == signer.SerialBytes
}

// nodeTolerance is how Vault's PKI engine's node certificates may differ
// from the local issuer's: DNS names sorted, and NotBefore from Vault's
// clock, up to skew away from the request's.
func nodeTolerance(skew time.Duration) signer.Tolerance {
	return signer.Tolerance{SortedDNSNames: true, NotBeforeSkew: skew}
}

// checkNode checks a node certificate from Vault against the request (see
// nodeTolerance). Its serial is checked apart, with serialOK, as a short
// one calls for another try rather than an error.
func checkNode(cert *x509.Certificate, req *signer.Request, issuer *x509.Certificate, skew time.Duration) error {
	return mismatchError("check the node certificate from Vault",
		signer.CheckIssued(cert, req, issuer, signer.IssuedCheck{Tolerance: nodeTolerance(skew)}))
}

// checkCA checks a CA certificate from sign-self-issued: Vault signs the
// certificate chancery built, so everything but the signature and the
// authority key ID must be exactly the request's, serial and subject key
// ID included, and the signature is verified.
func checkCA(cert, built *x509.Certificate, req *signer.Request, issuer *x509.Certificate) error {
	const what = "check the CA certificate from Vault"
	if err := signer.CheckIssued(cert, req, issuer, signer.IssuedCheck{Tolerance: signer.Tolerance{VerifySignature: true}}); err != nil {
		return mismatchError(what, err)
	}
	switch {
	case cert.SerialNumber.Cmp(built.SerialNumber) != 0:
		return mismatchError(what, fmt.Errorf("the serial number is %v, want %v", cert.SerialNumber, built.SerialNumber))
	case !bytes.Equal(cert.SubjectKeyId, built.SubjectKeyId):
		return mismatchError(what, fmt.Errorf("the subject key ID is %x, want %x", cert.SubjectKeyId, built.SubjectKeyId))
	}
	return nil
}

func stamp(t time.Time) string { return t.UTC().Format(time.RFC3339) }
