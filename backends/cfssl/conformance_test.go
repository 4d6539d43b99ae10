package cfssl

import (
	"context"
	"crypto"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"errors"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/chancery-pki/chancery/ca"
	"github.com/chancery-pki/chancery/conformance"
	"github.com/chancery-pki/chancery/internal/cfssldev"
	"github.com/chancery-pki/chancery/signer"
)

// profileValidity is the validity the test configuration's profiles give a
// certificate signed now: backdated by an hour, for the profile's expiry.
// cfssl 1.2.0 takes validity from its profile, not from the request.
func profileValidity(req *signer.Request) (notBefore, notAfter time.Time) {
	expiry := cfssldev.NodeExpiry
	if req.Profile == signer.ProfileCA {
		expiry = cfssldev.CAExpiry
	}
	notBefore = time.Now().Add(-cfssldev.Backdate)
	return notBefore, notBefore.Add(expiry)
}

// profileTolerance allows for cfssl rounding the time to the minute.
const profileTolerance = 2 * time.Minute

// csrCATrueSubtest is the conformance subtest whose CSR carries
// CA:TRUE: cfssl 1.2.0 reads the CSR's basic constraints and refuses to sign
// it with a profile that is not a CA's, and has no setting (csr_whitelist
// came later) to make it ignore them. TestCSRSubjectAndSANsIgnored checks
// the rest of that subtest, and TestCSRAskingCAIsRefused the refusal.
const csrCATrueSubtest = "CSRSubjectAndExtensionsIgnored"

var servedConfigs = []struct {
	name string
	opts serveOptions
}{
	{"Sign", serveOptions{}},
	{"AuthSignP384Intermediate", serveOptions{Auth: true, Intermediate: true, Curve: p384()}},
}

func TestConformance(t *testing.T) {
	cfssldev.Need(t)
	for _, tc := range servedConfigs {
		t.Run(tc.name, func(t *testing.T) {
			conformance.Run(t, func(t *testing.T) signer.Signer {
				if strings.HasSuffix(t.Name(), "/"+csrCATrueSubtest) {
					t.Skip("cfssl 1.2.0 refuses a CSR that asks for CA:TRUE; see TestCSRSubjectAndSANsIgnored and TestCSRAskingCAIsRefused")
				}
				return newTestSigner(t, startCFSSL(t, tc.opts), tc.opts.Auth)
			}, conformance.Options{ValidityFromProfile: profileValidity, ValidityTolerance: profileTolerance})
		})
	}
}

// nodeRequest returns the request for a worker certificate with a CSR made
// from csrTmpl.
func nodeRequest(t *testing.T, s signer.Signer, csrTmpl *x509.CertificateRequest) (*signer.Request, crypto.PublicKey) {
	t.Helper()
	key := newECKey(t, p256())
	csr, err := x509.CreateCertificateRequest(rand.Reader, csrTmpl, key)
	if err != nil {
		t.Fatal(err)
	}
	req, err := ca.NodeCertificateRequest(ca.NodeRequest{
		ClusterID: testClusterID, NodeID: testNodeID, Role: ca.RoleWorker, CSR: csr, Now: time.Now(),
	}, s.Chain()[0])
	if err != nil {
		t.Fatal(err)
	}
	return req, key.Public()
}

const (
	testClusterID = "4h5log5xpip966c6c0000z2cy"
	testNodeID    = "kgwuvt1oqhqjsht0qcsq67rvu"
)

// TestCSRSubjectAndSANsIgnored is the conformance subtest
// CSRSubjectAndExtensionsIgnored without the CSR's CA:TRUE: a subject, SANs
// of every kind and a key usage extension in the CSR do not reach the
// certificate.
func TestCSRSubjectAndSANsIgnored(t *testing.T) {
	for _, tc := range servedConfigs {
		t.Run(tc.name, func(t *testing.T) {
			s := newTestSigner(t, startCFSSL(t, tc.opts), tc.opts.Auth)
			req, pub := nodeRequest(t, s, &x509.CertificateRequest{
				Subject:        pkix.Name{CommonName: "evil", Organization: []string{"other-cluster"}, OrganizationalUnit: []string{"swarm-manager"}},
				DNSNames:       []string{"evil.example"},
				IPAddresses:    []net.IP{net.IPv4(10, 0, 0, 1)},
				EmailAddresses: []string{"evil@example.com"},
				ExtraExtensions: []pkix.Extension{
					{Id: asn1.ObjectIdentifier{2, 5, 29, 15}, Critical: true, Value: []byte{3, 2, 1, 6}},
				},
			})
			cert, err := s.Sign(context.Background(), req)
			if err != nil {
				t.Fatalf("Sign: %v", err)
			}
			nb, na := profileValidity(req)
			conformance.CheckNodeCertificate(t, cert, s.Chain(), conformance.NodeExpectation{
				ClusterID: testClusterID, NodeID: testNodeID, Role: ca.RoleWorker, PublicKey: pub,
				NotBefore: nb, NotAfter: na, ValidityTolerance: profileTolerance,
			})
		})
	}
}

// TestCSRAskingCAIsRefused checks that a node CSR asking for CA:TRUE gets no
// certificate from cfssl 1.2.0, and an error that says why.
func TestCSRAskingCAIsRefused(t *testing.T) {
	srv := startCFSSL(t, serveOptions{})
	s := newTestSigner(t, srv, false)
	bc, err := asn1.Marshal(struct {
		IsCA bool `asn1:"optional"`
	}{true})
	if err != nil {
		t.Fatal(err)
	}
	req, _ := nodeRequest(t, s, &x509.CertificateRequest{
		ExtraExtensions: []pkix.Extension{{Id: asn1.ObjectIdentifier{2, 5, 29, 19}, Critical: true, Value: bc}},
	})
	cert, err := s.Sign(context.Background(), req)
	if err == nil {
		t.Fatalf("a CSR asking for CA:TRUE got a certificate (CA=%v)", cert.IsCA)
	}
	var re *RemoteError
	if !errors.As(err, &re) {
		t.Errorf("error %q is not the CA's refusal", err)
	}
	if !strings.Contains(err.Error(), "the CSR asks for CA:TRUE") {
		t.Errorf("error %q does not say the CSR asks for CA:TRUE", err)
	}
}
