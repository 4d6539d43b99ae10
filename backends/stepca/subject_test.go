package stepca

import (
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"errors"
	"testing"

	"github.com/chancery-pki/chancery/ca"
	"github.com/chancery-pki/chancery/signer"
)

func TestNodeSubject(t *testing.T) {
	node := ca.NodeSubject("cluster", "node", ca.RoleWorker)
	der := func(rdns pkix.RDNSequence) []byte {
		b, err := asn1.Marshal(rdns)
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	attr := func(oid asn1.ObjectIdentifier, v string) []pkix.AttributeTypeAndValue {
		return []pkix.AttributeTypeAndValue{{Type: oid, Value: v}}
	}
	oidO, oidOU, oidCN := asn1.ObjectIdentifier{2, 5, 4, 10}, asn1.ObjectIdentifier{2, 5, 4, 11}, asn1.ObjectIdentifier{2, 5, 4, 3}
	for _, tc := range []struct {
		name string
		t    *x509.Certificate
		ok   bool
	}{
		{"NodeSubject", &x509.Certificate{Subject: node}, true},
		{"RawNodeSubject", &x509.Certificate{RawSubject: der(node.ToRDNSequence())}, true},
		{"Country", &x509.Certificate{Subject: func() pkix.Name { n := node; n.Country = []string{"FR"}; return n }()}, false},
		{"TwoOUs", &x509.Certificate{Subject: func() pkix.Name { n := node; n.OrganizationalUnit = []string{"a", "b"}; return n }()}, false},
		{"NoCN", &x509.Certificate{Subject: func() pkix.Name { n := node; n.CommonName = ""; return n }()}, false},
		{"RawCNFirst", &x509.Certificate{RawSubject: der(pkix.RDNSequence{attr(oidCN, "node"), attr(oidO, "cluster"), attr(oidOU, "swarm-worker")})}, false},
		{"RawUTF8", &x509.Certificate{RawSubject: der(pkix.RDNSequence{
			attr(oidO, "cluster"), attr(oidOU, "swarm-worker"),
			{{Type: oidCN, Value: asn1.RawValue{Tag: asn1.TagUTF8String, Bytes: []byte("node")}}},
		})}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			o, ou, cn, err := nodeSubject(tc.t)
			if !tc.ok {
				if !errors.Is(err, signer.ErrInvalidRequest) {
					t.Errorf("nodeSubject = %q, %q, %q, %v; want a refusal", o, ou, cn, err)
				}
				return
			}
			if err != nil || o != "cluster" || ou != string(ca.RoleWorker) || cn != "node" {
				t.Errorf("nodeSubject = %q, %q, %q, %v", o, ou, cn, err)
			}
		})
	}
}
