package extca

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"math/big"
	"testing"
	"time"

	"github.com/chancery-pki/chancery/ca"
	"github.com/chancery-pki/chancery/signer"
)

// TestCSRRefusalMessage pins what the endpoint answers for a CSR that
// package ca or a Signer refused: what is wrong with it, without the
// refusing package's prefix.
func TestCSRRefusalMessage(t *testing.T) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	other, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	parse := func(data []byte) error { _, err := ca.ParseCSR(data); return err }
	csr, err := ca.ParseCSR(csrPEM(t, key, pkix.Name{}))
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "swarm-ca"},
		NotBefore: now.Add(-time.Hour), NotAfter: now.Add(time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
	if err != nil {
		t.Fatal(err)
	}
	root, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	// A request for another key than the CSR's, refused by the Signer's
	// request checks.
	otherKey := func() error {
		req, err := ca.NodeCertificateRequest(ca.NodeRequest{
			ClusterID: testCluster, NodeID: testNode, Role: ca.RoleWorker, CSR: csr.Raw, Now: now,
		}, root)
		if err != nil {
			return err
		}
		req.PublicKey = other.Public()
		return signer.CheckRequest(req, root)
	}()
	for _, tc := range []struct {
		name string
		err  error
		want string
	}{
		{"Empty", parse(nil), "certificate_request: invalid CSR: empty"},
		{"WrongPEMType", parse(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: []byte{1}})),
			`certificate_request: invalid CSR: PEM block is "CERTIFICATE", want "CERTIFICATE REQUEST"`},
		{"Trailing", parse(append(csrPEM(t, key, pkix.Name{}), "x"...)),
			"certificate_request: invalid CSR: trailing data after the PEM block"},
		{"OtherKey", otherKey, "certificate_request: invalid request: csr: its public key differs from the request's"},
		{"Wrapped", fmt.Errorf("issuing: %w", parse(nil)), "certificate_request: invalid CSR: empty"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if tc.err == nil {
				t.Fatal("no error to refuse with")
			}
			r := csrRefusal(tc.err)
			if r.Message != tc.want || r.Code != CodeCSRParse || r.Reason != reasonBadCSR {
				t.Errorf("csrRefusal(%q) = %d %s %q, want %d %s %q", tc.err, r.Code, r.Reason, r.Message, CodeCSRParse, reasonBadCSR, tc.want)
			}
		})
	}
}
