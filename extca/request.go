package extca

import (
	"bytes"
	"encoding/asn1"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"errors"
	"strings"
	"time"

	"github.com/chancery-pki/chancery/ca"
	"github.com/chancery-pki/chancery/internal/cfsslwire"
)

// This file parses and validates CFSSL's sign request, as Docker swarm,
// the cfssl CLI and chancery's own cfssl backend send it. It checks
// everything that needs neither the client's policy nor the CSR's
// signature: those come later, in policy.go and when the Signer signs.

// Profiles the endpoint serves.
const (
	// ProfileDefault ("", CFSSL's default profile) issues node
	// certificates.
	ProfileDefault = cfsslwire.ProfileNode
	// ProfileCA ("CA", as swarm spells it) cross-signs a CA's CSR.
	ProfileCA = cfsslwire.ProfileCA
)

// maxHosts bounds the hosts of a request.
const maxHosts = 16

// Object identifiers of the extensions the CA profile takes.
var (
	oidBasicConstraints = asn1.ObjectIdentifier{2, 5, 29, 19}
	oidSubjectKeyID     = asn1.ObjectIdentifier{2, 5, 29, 14}
)

// wireRequest is the sign request with the fields CFSSL's clients send
// besides those chancery's client sends. Subject shadows the embedded
// SignRequest.Subject (encoding/json prefers the shallower field), so that
// the subject attributes other CFSSL versions send are read, and refused
// when they ask for something, not dropped.
type wireRequest struct {
	cfsslwire.SignRequest
	Subject       *wireSubject    `json:"subject"`
	Hostname      string          `json:"hostname"`
	Label         ignored         `json:"label"`
	Serial        json.RawMessage `json:"serial"`
	NotBefore     json.RawMessage `json:"NotBefore"`
	NotAfter      json.RawMessage `json:"NotAfter"`
	ReturnPrecert bool            `json:"ReturnPrecert"`
	CRLOverride   string          `json:"crl_override"`
	Expiry        string          `json:"expiry"`
	Bundle        bool            `json:"bundle"`
	Metadata      ignored         `json:"metadata"`
}

// wireSubject is a subject as the CFSSL versions send it:
// cfsslwire.Subject, and a SerialNumber attribute (cfssl 1.2.0's CLI sends
// it, empty).
type wireSubject struct {
	CN           string     `json:"CN"`
	Names        []wireName `json:"names"`
	SerialNumber string     `json:"SerialNumber"`
}

// wireName is a names entry as the CFSSL versions send it:
// cfsslwire.SubjectName, and the SerialNumber, E (e-mail) and OID
// attributes of later versions.
type wireName struct {
	cfsslwire.SubjectName
	SerialNumber string            `json:"SerialNumber"`
	E            string            `json:"E"`
	OID          map[string]string `json:"OID"`
}

// ignored is a field that is accepted whatever its (well-formed) value.
type ignored struct{}

// UnmarshalJSON accepts any value: the decoder has checked its syntax.
func (*ignored) UnmarshalJSON([]byte) error { return nil }

// signRequest is a sign request that passed the checks of this file.
type signRequest struct {
	// profile is ProfileDefault or ProfileCA.
	profile string
	// csrDER is the CSR, decoded from PEM but not parsed.
	csrDER []byte

	// For ProfileDefault: the node certificate asked for.
	clusterID string
	nodeID    string
	role      ca.Role

	// For ProfileCA: the request's subject (nil when absent), compared
	// with the CSR's, and what its extensions ask for.
	subject    *cfsslwire.Subject
	maxPathLen int // -1: no limit
	skid       []byte
}

// parseSignRequest decodes and checks a sign request's JSON.
func parseSignRequest(body []byte) (*signRequest, *Refusal) {
	var w wireRequest
	if err := json.Unmarshal(body, &w); err != nil {
		return nil, jsonRefusal(err)
	}
	req := &signRequest{profile: w.Profile, maxPathLen: -1}
	switch w.Profile {
	case ProfileDefault, ProfileCA:
	default:
		return nil, withCode(CodeUnknownProfile, reasonUnknownProfile,
			"unknown profile %s: this CA has the default profile (\"\") for node certificates and %q for cross-signing a CA",
			quote(w.Profile), ProfileCA)
	}
	if r := checkIgnoredFields(&w); r != nil {
		return nil, r
	}
	der, r := decodeCSR(w.Request)
	if r != nil {
		return nil, r
	}
	req.csrDER = der
	hosts, r := hostsOf(&w)
	if r != nil {
		return nil, r
	}
	subject, r := w.Subject.toCFSSL()
	if r != nil {
		return nil, r
	}
	if w.Profile == ProfileCA {
		if len(hosts) > 0 {
			return nil, policyRefusal("hosts: a CA certificate carries no SANs; send hosts null or []")
		}
		req.subject = subject
		if r := req.readCAExtensions(w.Extensions); r != nil {
			return nil, r
		}
		return req, nil
	}
	if len(w.Extensions) > 0 {
		return nil, policyRefusal("extensions: a node certificate takes none (its extensions are fixed by the node certificate contract); only the %q profile takes basic constraints and subject key id", ProfileCA)
	}
	if r := req.readNodeSubject(subject); r != nil {
		return nil, r
	}
	if hosts != nil {
		want := ca.NodeDNSNames(req.nodeID, req.role)
		if !equalStrings(hosts, want) {
			return nil, policyRefusal("hosts: got %s, want %s: a %s certificate names [OU, CN%s], in that order (or send hosts null)",
				jsonList(hosts), jsonList(want), req.role, managerSuffix(req.role))
		}
	}
	return req, nil
}

// jsonRefusal describes a decoding error without quoting the input.
func jsonRefusal(err error) *Refusal {
	var syn *json.SyntaxError
	var typ *json.UnmarshalTypeError
	switch {
	case errors.As(err, &syn):
		return malformed("not JSON (%s at byte %d)", oneLine(syn.Error()), syn.Offset)
	case errors.As(err, &typ):
		// Fields of the embedded cfsslwire.SignRequest are named after it.
		field := strings.TrimPrefix(typ.Field, "SignRequest.")
		if field == "" {
			return malformed("the body is a JSON %s, want an object", typ.Value)
		}
		return malformed("field %s is a JSON %s, want %s", quote(field), typ.Value, typ.Type)
	}
	return malformed("%s", oneLine(err.Error()))
}

// checkIgnoredFields accepts the fields swarm and CFSSL's clients always
// send, with the values that mean "nothing": they are ignored. Any other
// value asks for something the node certificate contract decides (validity,
// serial) or this endpoint does not do, and is refused.
func checkIgnoredFields(w *wireRequest) *Refusal {
	for _, f := range []struct {
		name string
		raw  json.RawMessage
	}{{"NotBefore", w.NotBefore}, {"NotAfter", w.NotAfter}} {
		if isNull(f.raw) {
			continue
		}
		var t time.Time
		if err := json.Unmarshal(f.raw, &t); err != nil {
			return malformed("%s is not a time (want an RFC 3339 string such as \"0001-01-01T00:00:00Z\")", f.name)
		}
		if !t.IsZero() {
			return badRequest(reasonUnsupported, "%s: this CA sets the validity itself (NotBefore backdated 1h, NotAfter from its cert-expiry); send the zero time \"0001-01-01T00:00:00Z\" or leave it out", f.name)
		}
	}
	switch {
	case !isNull(w.Serial):
		return badRequest(reasonUnsupported, "serial: this CA draws serial numbers itself; leave serial out")
	case w.ReturnPrecert:
		return badRequest(reasonUnsupported, "ReturnPrecert: this CA issues no certificate transparency precertificates; send false")
	case w.CRLOverride != "":
		return badRequest(reasonUnsupported, "crl_override: this CA puts no CRL distribution point in certificates; send \"\"")
	case w.Expiry != "":
		return badRequest(reasonUnsupported, "expiry: this CA sets the validity from its cert-expiry; leave expiry out")
	case w.Bundle:
		return badRequest(reasonUnsupported, "bundle: this CA builds no bundles (the certificate is followed by the CA's intermediates, if any); send false")
	}
	return nil
}

func isNull(raw json.RawMessage) bool {
	return len(raw) == 0 || bytes.Equal(bytes.TrimSpace(raw), []byte("null"))
}

// decodeCSR returns the DER of a PEM certificate request, as CFSSL takes
// it: one CERTIFICATE REQUEST block and nothing else but white space.
func decodeCSR(s string) ([]byte, *Refusal) {
	if strings.TrimSpace(s) == "" {
		return nil, badRequest(reasonBadCSR, "missing parameter 'certificate_request': want the CSR, PEM")
	}
	block, rest := pem.Decode([]byte(s))
	if block == nil {
		return nil, withCode(CodeCSRDecode, reasonBadCSR, "certificate_request is not PEM: want a \"CERTIFICATE REQUEST\" PEM block")
	}
	if block.Type != "CERTIFICATE REQUEST" && block.Type != "NEW CERTIFICATE REQUEST" {
		return nil, withCode(CodeCSRDecode, reasonBadCSR, "certificate_request is a %s PEM block, want \"CERTIFICATE REQUEST\"", quote(block.Type))
	}
	if len(bytes.TrimSpace(rest)) != 0 {
		return nil, withCode(CodeCSRDecode, reasonBadCSR, "certificate_request has data after its PEM block: send one CSR")
	}
	if len(block.Bytes) == 0 {
		return nil, withCode(CodeCSRDecode, reasonBadCSR, "certificate_request's PEM block is empty")
	}
	return block.Bytes, nil
}

// hostsOf returns the request's hosts, from hosts or from CFSSL's
// comma-separated hostname; nil when neither names any.
func hostsOf(w *wireRequest) ([]string, *Refusal) {
	hosts := w.Hosts
	if w.Hostname != "" {
		if len(hosts) > 0 {
			return nil, malformed("both hosts and hostname are given: send one")
		}
		hosts = strings.Split(w.Hostname, ",")
	}
	if len(hosts) == 0 {
		return nil, nil
	}
	if len(hosts) > maxHosts {
		return nil, malformed("%d hosts, at most %d are accepted", len(hosts), maxHosts)
	}
	for i, h := range hosts {
		if h == "" {
			return nil, malformed("host %d is empty", i)
		}
	}
	return hosts, nil
}

// toCFSSL returns the subject as CFSSL reads it (nil when absent or
// null), refusing the attributes the endpoint cannot honour when they are
// not empty.
func (ws *wireSubject) toCFSSL() (*cfsslwire.Subject, *Refusal) {
	if ws == nil {
		return nil, nil
	}
	unsupported := func(attr string) *Refusal {
		return badRequest(reasonUnsupported, "subject: attribute %q is not supported: a subject has CN and names entries of C, ST, L, O and OU", attr)
	}
	if ws.SerialNumber != "" {
		return nil, unsupported("SerialNumber")
	}
	s := &cfsslwire.Subject{CN: ws.CN}
	for _, n := range ws.Names {
		switch {
		case n.SerialNumber != "":
			return nil, unsupported("SerialNumber")
		case n.E != "":
			return nil, unsupported("E")
		case len(n.OID) > 0:
			return nil, unsupported("OID")
		}
		s.Names = append(s.Names, n.SubjectName)
	}
	return s, nil
}

// readNodeSubject checks that s names a node certificate: CN a node ID,
// exactly one O (a cluster ID) and one OU (a role), and nothing else.
func (req *signRequest) readNodeSubject(s *cfsslwire.Subject) *Refusal {
	if s == nil {
		return policyRefusal("subject is missing: a node certificate's subject comes from the request, never from the CSR; send {\"CN\": node ID, \"names\": [{\"O\": cluster ID, \"OU\": role}]}")
	}
	var os, ous []string
	for _, n := range s.Names {
		if n.C != "" || n.ST != "" || n.L != "" {
			return policyRefusal("subject: a node certificate's subject is O=cluster ID, OU=role, CN=node ID, without C, ST or L")
		}
		if n.O != "" {
			os = append(os, n.O)
		}
		if n.OU != "" {
			ous = append(ous, n.OU)
		}
	}
	switch {
	case !ca.ValidID(s.CN):
		return policyRefusal("subject CN %s is not a node ID (25 lower-case base-36 characters)", quote(s.CN))
	case len(os) != 1:
		return policyRefusal("subject has %d O values, want exactly one: the cluster ID", len(os))
	case !ca.ValidID(os[0]):
		return policyRefusal("subject O %s is not a cluster ID (25 lower-case base-36 characters)", quote(os[0]))
	case len(ous) != 1:
		return policyRefusal("subject has %d OU values, want exactly one: %s or %s", len(ous), ca.RoleManager, ca.RoleWorker)
	case !ca.Role(ous[0]).Valid():
		return policyRefusal("subject OU %s is not a role (want %s or %s)", quote(ous[0]), ca.RoleManager, ca.RoleWorker)
	}
	req.nodeID, req.clusterID, req.role = s.CN, os[0], ca.Role(ous[0])
	return nil
}

// readCAExtensions reads the extensions of a cross-sign request: basic
// constraints (2.5.29.19, critical, CA:TRUE, as swarm sends
// "30030101ff") and the subject key ID (2.5.29.14, not critical), each at
// most once. CFSSL ignores a CSR's extensions, so these are how a client
// says what the CA certificate carries.
func (req *signRequest) readCAExtensions(exts []cfsslwire.Extension) *Refusal {
	seen := map[string]bool{}
	for _, e := range exts {
		if seen[e.ID] {
			return policyRefusal("extensions: %s is given twice", quote(e.ID))
		}
		seen[e.ID] = true
		value, err := hex.DecodeString(e.Value)
		if err != nil {
			return malformed("extension %s: value is not hex", quote(e.ID))
		}
		switch e.ID {
		case oidBasicConstraints.String():
			if !e.Critical {
				return policyRefusal("extension 2.5.29.19 (basic constraints) must be critical in a CA certificate (RFC 5280, 4.2.1.9)")
			}
			var bc struct {
				IsCA       bool `asn1:"optional"`
				MaxPathLen int  `asn1:"optional,default:-1"`
			}
			rest, err := asn1.Unmarshal(value, &bc)
			if err != nil || len(rest) != 0 {
				return malformed("extension 2.5.29.19: value is not DER basic constraints (CA:TRUE without a path length is 30030101ff)")
			}
			if !bc.IsCA {
				return policyRefusal("extension 2.5.29.19: the %q profile issues CA certificates, and these basic constraints say CA:FALSE", ProfileCA)
			}
			if bc.MaxPathLen < -1 {
				return policyRefusal("extension 2.5.29.19: negative path length %d", bc.MaxPathLen)
			}
			req.maxPathLen = bc.MaxPathLen
		case oidSubjectKeyID.String():
			if e.Critical {
				return policyRefusal("extension 2.5.29.14 (subject key id) must not be critical (RFC 5280, 4.2.1.2)")
			}
			var skid []byte
			rest, err := asn1.Unmarshal(value, &skid)
			if err != nil || len(rest) != 0 || len(skid) == 0 || len(skid) > 64 {
				return malformed("extension 2.5.29.14: value is not a DER OCTET STRING of 1 to 64 bytes")
			}
			req.skid = skid
		default:
			return policyRefusal("extension %s is not allowed: the %q profile takes 2.5.29.19 (basic constraints) and 2.5.29.14 (subject key id)", quote(e.ID), ProfileCA)
		}
	}
	return nil
}

func equalStrings(a, b []string) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

func jsonList(s []string) string {
	b, _ := json.Marshal(s)
	return string(b)
}

func managerSuffix(r ca.Role) string {
	if r == ca.RoleManager {
		return ", " + ca.CADNSName
	}
	return ""
}
