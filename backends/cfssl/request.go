package cfssl

import (
	"bytes"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"fmt"

	"github.com/chancery-pki/chancery/internal/cfsslwire"
	"github.com/chancery-pki/chancery/signer"
)

// This file turns a signer.Request into CFSSL's sign request.

var (
	oidBasicConstraints = asn1.ObjectIdentifier{2, 5, 29, 19}
	oidSubjectKeyID     = asn1.ObjectIdentifier{2, 5, 29, 14}
)

// buildRequest returns the sign request for req, which CheckRequest
// accepted and which has a CSR, and the DER subject the certificate must
// carry.
func buildRequest(req *signer.Request) (*cfsslwire.SignRequest, []byte, error) {
	t := req.Template
	subj, rawSubject, err := subjectOf(t)
	if err != nil {
		return nil, nil, err
	}
	hosts := make([]string, 0, len(t.DNSNames)+len(t.IPAddresses))
	hosts = append(hosts, t.DNSNames...)
	for _, ip := range t.IPAddresses {
		hosts = append(hosts, ip.String())
	}
	wire := &cfsslwire.SignRequest{
		Hosts:   hosts,
		Request: string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE REQUEST", Bytes: req.CSR.Raw})),
		Subject: subj,
		Profile: cfsslwire.ProfileNode,
	}
	if req.Profile == signer.ProfileCA {
		wire.Profile = cfsslwire.ProfileCA
		bc, err := basicConstraints(t)
		if err != nil {
			return nil, nil, err
		}
		wire.Extensions = append(wire.Extensions, cfsslwire.Extension{ID: oidBasicConstraints.String(), Critical: true, Value: hex.EncodeToString(bc)})
		if len(t.SubjectKeyId) > 0 {
			ski, err := asn1.Marshal(t.SubjectKeyId)
			if err != nil {
				return nil, nil, fmt.Errorf("cfssl: failed to encode the subject key ID: %w", err)
			}
			wire.Extensions = append(wire.Extensions, cfsslwire.Extension{ID: oidSubjectKeyID.String(), Value: hex.EncodeToString(ski)})
		}
	}
	return wire, rawSubject, nil
}

// basicConstraints returns the DER BasicConstraints of a CA template, as
// crypto/x509 writes it: 30030101ff when there is no path length limit.
func basicConstraints(t *x509.Certificate) ([]byte, error) {
	bc := struct {
		IsCA       bool `asn1:"optional"`
		MaxPathLen int  `asn1:"optional,default:-1"`
	}{IsCA: t.IsCA, MaxPathLen: pathLen(t)}
	der, err := asn1.Marshal(bc)
	if err != nil {
		return nil, fmt.Errorf("cfssl: failed to encode basic constraints: %w", err)
	}
	return der, nil
}

// pathLen is a CA template's or certificate's path length limit, -1 for
// none.
func pathLen(c *x509.Certificate) int {
	if c.MaxPathLen > 0 || (c.MaxPathLen == 0 && c.MaxPathLenZero) {
		return c.MaxPathLen
	}
	return -1
}

// subjectOf returns CFSSL's form of t's subject (RawSubject when set, else
// Subject) and its DER. CFSSL builds a subject from CN, C, ST, L, O and OU
// alone, with Go's pkix.Name in Go's order; a subject that this does not
// reproduce byte for byte is refused here, before the CA is asked.
func subjectOf(t *x509.Certificate) (*cfsslwire.Subject, []byte, error) {
	var name pkix.Name
	raw := t.RawSubject
	if len(raw) > 0 {
		var rdns pkix.RDNSequence
		rest, err := asn1.Unmarshal(raw, &rdns)
		if err != nil || len(rest) != 0 {
			return nil, nil, errors.New("cfssl: the request's raw subject does not parse")
		}
		name.FillFromRDNSequence(&rdns)
	} else {
		name = t.Subject
		var err error
		if raw, err = asn1.Marshal(t.Subject.ToRDNSequence()); err != nil {
			return nil, nil, fmt.Errorf("cfssl: failed to encode the subject %q: %w", t.Subject, err)
		}
	}
	ws := &cfsslwire.Subject{CN: name.CommonName, Names: []cfsslwire.SubjectName{}}
	n := max(len(name.Country), len(name.Province), len(name.Locality), len(name.Organization), len(name.OrganizationalUnit))
	for i := range n {
		ws.Names = append(ws.Names, cfsslwire.SubjectName{
			C: at(name.Country, i), ST: at(name.Province, i), L: at(name.Locality, i),
			O: at(name.Organization, i), OU: at(name.OrganizationalUnit, i),
		})
	}
	if !bytes.Equal(cfsslSubject(ws), raw) {
		return nil, nil, fmt.Errorf("cfssl: the subject %q cannot be asked of CFSSL byte for byte: CFSSL builds a subject from CN, C, ST, L, O and OU only, as printable or UTF-8 strings in Go's order", name)
	}
	return ws, raw, nil
}

func at(s []string, i int) string {
	if i < len(s) {
		return s[i]
	}
	return ""
}

// cfsslSubject is the DER subject CFSSL builds from ws (signer.Subject.Name
// and crypto/x509), when the CSR adds nothing.
func cfsslSubject(ws *cfsslwire.Subject) []byte {
	name := pkix.Name{CommonName: ws.CN}
	add := func(v string, to *[]string) {
		if v != "" {
			*to = append(*to, v)
		}
	}
	for _, n := range ws.Names {
		add(n.C, &name.Country)
		add(n.ST, &name.Province)
		add(n.L, &name.Locality)
		add(n.O, &name.Organization)
		add(n.OU, &name.OrganizationalUnit)
	}
	der, err := asn1.Marshal(name.ToRDNSequence())
	if err != nil {
		return nil
	}
	return der
}
