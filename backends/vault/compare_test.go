package vault

import (
	"bytes"
	"context"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"reflect"
	"slices"
	"sort"
	"testing"
	"time"

	"github.com/chancery-pki/chancery/backends/file"
	"github.com/chancery-pki/chancery/ca"
	"github.com/chancery-pki/chancery/signer"
)

// allowedDifference lists the x509.Certificate fields in which a Vault
// certificate may differ from the file backend's for the same request, and
// why. Every other exported field must be equal.
var allowedDifference = map[string]string{
	"Raw":               "the whole certificate (each part below)",
	"RawTBSCertificate": "the signed part (each part below)",
	"Signature":         "a different key signs, with random nonces",
	"SerialNumber":      "random",
	"NotBefore":         "a timestamp: Vault's clock (checked within seconds below)",
	"NotAfter":          "a timestamp (checked equal below)",
	"AuthorityKeyId":    "the issuer's key identifier",
	"Extensions":        "compared below: same extensions, in the same order, but for the authority key ID and SAN order",
	"DNSNames":          "node certificates only: the same names, sorted by Vault",
	"PublicKey":         "compared with Equal below (a pointer)",
}

// TestSameAsFileBackend signs the same requests with a root in Vault and a
// root in a key file (the local issuer) and compares the certificates field
// by field: they may differ only in serial, signature, key identifiers and
// timestamps, and for node certificates in the order of their DNS names, as
// the package documentation says.
func TestSameAsFileBackend(t *testing.T) {
	vs, _ := newTestSigner(t)
	compareWithFileBackend(t, vs, false)
}

// TestTransitSameAsFileBackend does the same with the root key in the
// transit engine: the certificates may differ only in serial, signature and
// authority key ID. Timestamps and DNS name order are the same.
func TestTransitSameAsFileBackend(t *testing.T) {
	ts, _ := newTransitTestSigner(t)
	compareWithFileBackend(t, ts, true)
}

// compareWithFileBackend signs the same requests with vs and with a file
// backend root, and compares the certificates: exact means that only the
// serial, the signature and the authority key ID may differ.
func compareWithFileBackend(t *testing.T, vs signer.Signer, exact bool) {
	now := time.Now()
	key, err := file.GenerateKey(file.P256, nil)
	if err != nil {
		t.Fatal(err)
	}
	fileRoot, err := signer.SelfSign(nil, key, ca.NewRootTemplate("", now))
	if err != nil {
		t.Fatal(err)
	}
	fs, err := file.New(key, "unused", false, []*x509.Certificate{fileRoot}, nil)
	if err != nil {
		t.Fatal(err)
	}
	// Both roots say CN=swarm-ca, as a new cluster's do.
	if !bytes.Equal(vs.Chain()[0].RawSubject, fileRoot.RawSubject) {
		t.Fatalf("root subjects differ: %q and %q", vs.Chain()[0].Subject, fileRoot.Subject)
	}
	issuer := vs.Chain()[0]
	if fileRoot.NotBefore.After(issuer.NotBefore) {
		issuer = fileRoot // requests must fit both roots
	}

	newRootKey := newP256(t)
	newRoot, err := signer.SelfSign(nil, newRootKey, ca.NewRootTemplate("swarm-ca", now))
	if err != nil {
		t.Fatal(err)
	}
	crossReq := &signer.Request{PublicKey: newRootKey.Public(), Profile: signer.ProfileCA, Template: &x509.Certificate{
		RawSubject: newRoot.RawSubject, SubjectKeyId: newRoot.SubjectKeyId,
		NotBefore: newRoot.NotBefore.Add(time.Hour), NotAfter: newRoot.NotAfter.Add(-24 * time.Hour),
		IsCA: true, BasicConstraintsValid: true, MaxPathLen: -1, KeyUsage: x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
	}}

	for _, tc := range []struct {
		name string
		req  *signer.Request
		node bool
	}{
		{"Manager", nodeRequest(t, issuer, ca.RoleManager, now), true},
		{"Worker", nodeRequest(t, issuer, ca.RoleWorker, now), true},
		{"CrossSign", crossReq, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			vc, err := vs.Sign(context.Background(), tc.req)
			if err != nil {
				t.Fatalf("Vault: %v", err)
			}
			fc, err := fs.Sign(context.Background(), tc.req)
			if err != nil {
				t.Fatalf("file: %v", err)
			}
			compareCertificates(t, vc, fc, tc.node && !exact)
		})
	}
}

// compareCertificates compares every exported field of two certificates.
// pkiNode marks a node certificate from Vault's PKI engine, whose NotBefore
// comes from Vault's clock and whose DNS names are sorted; otherwise both
// must be exactly the file backend's.
func compareCertificates(t *testing.T, vc, fc *x509.Certificate, pkiNode bool) {
	node := pkiNode
	t.Helper()
	vv, fv := reflect.ValueOf(*vc), reflect.ValueOf(*fc)
	typ := vv.Type()
	for i := 0; i < typ.NumField(); i++ {
		f := typ.Field(i)
		if !f.IsExported() {
			continue
		}
		if _, ok := allowedDifference[f.Name]; ok {
			continue
		}
		if !reflect.DeepEqual(vv.Field(i).Interface(), fv.Field(i).Interface()) {
			t.Errorf("%s: Vault %v, file %v", f.Name, vv.Field(i).Interface(), fv.Field(i).Interface())
		}
	}
	if !signer.SamePublicKey(vc.PublicKey, fc.PublicKey) {
		t.Error("PublicKey differs")
	}
	if !vc.NotAfter.Equal(fc.NotAfter) {
		t.Errorf("NotAfter: Vault %s, file %s", vc.NotAfter, fc.NotAfter)
	}
	if d := vc.NotBefore.Sub(fc.NotBefore); d < 0 || d > roleSlack+time.Second || !node && d != 0 {
		t.Errorf("NotBefore: Vault %s, file %s", vc.NotBefore, fc.NotBefore)
	}
	if len(vc.SerialNumber.Bytes()) != signer.SerialBytes || vc.SerialNumber.Cmp(fc.SerialNumber) == 0 {
		t.Errorf("serial %x: want %d random bytes", vc.SerialNumber, signer.SerialBytes)
	}
	sortedFile := slices.Clone(fc.DNSNames)
	if node {
		sort.Strings(sortedFile)
	}
	if !slices.Equal(vc.DNSNames, sortedFile) {
		t.Errorf("DNSNames: Vault %q, file %q", vc.DNSNames, fc.DNSNames)
	}
	if (len(vc.AuthorityKeyId) == 0) != (len(fc.AuthorityKeyId) == 0) {
		t.Errorf("AuthorityKeyId present in one only: Vault %x, file %x", vc.AuthorityKeyId, fc.AuthorityKeyId)
	}
	compareExtensions(t, vc.Extensions, fc.Extensions, node)
}

var (
	oidSAN          = asn1.ObjectIdentifier{2, 5, 29, 17}
	oidAuthorityKey = asn1.ObjectIdentifier{2, 5, 29, 35}
)

// compareExtensions checks that the two certificates carry the same
// extensions in the same order with the same criticality and values, but
// for the authority key ID's value and the order inside a node
// certificate's SAN.
func compareExtensions(t *testing.T, v, f []pkix.Extension, node bool) {
	t.Helper()
	if len(v) != len(f) {
		t.Fatalf("extensions: Vault %v, file %v", extIDs(v), extIDs(f))
	}
	for i := range v {
		if !v[i].Id.Equal(f[i].Id) || v[i].Critical != f[i].Critical {
			t.Errorf("extension %d: Vault %v (critical %v), file %v (critical %v)", i, v[i].Id, v[i].Critical, f[i].Id, f[i].Critical)
			continue
		}
		switch {
		case v[i].Id.Equal(oidAuthorityKey):
		case v[i].Id.Equal(oidSAN) && node:
			if len(v[i].Value) != len(f[i].Value) {
				t.Errorf("SAN: Vault %x, file %x", v[i].Value, f[i].Value)
			}
		default:
			if !bytes.Equal(v[i].Value, f[i].Value) {
				t.Errorf("extension %v: Vault %x, file %x", v[i].Id, v[i].Value, f[i].Value)
			}
		}
	}
}
