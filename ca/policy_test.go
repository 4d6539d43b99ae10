package ca

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/chancery-pki/chancery/signer"
)

const (
	testCluster = "ohgi9ctpbev24dl6daf7insou"
	testNode    = "kgwuvt1oqhqjsht0qcsq67rvu"
)

func mustKey(t testing.TB, curve elliptic.Curve) *ecdsa.PrivateKey {
	t.Helper()
	k, err := ecdsa.GenerateKey(curve, rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func mustCSR(t testing.TB, key crypto.Signer, tmpl *x509.CertificateRequest) []byte {
	t.Helper()
	if tmpl == nil {
		tmpl = &x509.CertificateRequest{}
	}
	der, err := x509.CreateCertificateRequest(rand.Reader, tmpl, key)
	if err != nil {
		t.Fatal(err)
	}
	return der
}

func testRoot(t testing.TB, now time.Time) *x509.Certificate {
	t.Helper()
	root, err := signer.SelfSign(rand.Reader, mustKey(t, elliptic.P256()), NewRootTemplate("", now))
	if err != nil {
		t.Fatal(err)
	}
	return root
}

func TestNodeCertificateRequest(t *testing.T) {
	now := time.Date(2026, 11, 22, 10, 30, 15, 0, time.UTC)
	root := testRoot(t, now.Add(-24*time.Hour))
	key := mustKey(t, elliptic.P256())
	csr := mustCSR(t, key, &x509.CertificateRequest{
		Subject:  pkix.Name{CommonName: "ignored", Organization: []string{"other"}},
		DNSNames: []string{"evil.example"},
	})
	csrPEM := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE REQUEST", Bytes: csr})

	for _, tc := range []struct {
		name      string
		role      Role
		csr       []byte
		expiry    time.Duration
		wantDNS   []string
		wantAfter time.Time
	}{
		{"WorkerDER", RoleWorker, csr, 0, []string{"swarm-worker", testNode}, now.Add(DefaultCertExpiry)},
		{"ManagerPEM", RoleManager, csrPEM, 168 * time.Hour, []string{"swarm-manager", testNode, "swarm-ca"}, now.Add(168 * time.Hour)},
		{"MinimumExpiry", RoleWorker, csr, time.Hour, []string{"swarm-worker", testNode}, now.Add(time.Hour)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			req, err := NodeCertificateRequest(NodeRequest{
				ClusterID: testCluster, NodeID: testNode, Role: tc.role, CSR: tc.csr, Expiry: tc.expiry, Now: now,
			}, root)
			if err != nil {
				t.Fatal(err)
			}
			tm := req.Template
			if req.Profile != signer.ProfileNode || tm.IsCA || !tm.BasicConstraintsValid {
				t.Errorf("profile %q, CA %v, basic constraints %v: want a CA:FALSE node request", req.Profile, tm.IsCA, tm.BasicConstraintsValid)
			}
			if got, want := tm.Subject.String(), "CN="+testNode+",OU="+string(tc.role)+",O="+testCluster; got != want {
				t.Errorf("subject %q, want %q (the CSR's subject is ignored)", got, want)
			}
			if strings.Join(tm.DNSNames, ",") != strings.Join(tc.wantDNS, ",") {
				t.Errorf("DNS names %q, want %q (the CSR's are ignored)", tm.DNSNames, tc.wantDNS)
			}
			if !tm.NotBefore.Equal(now.Add(-CertBackdate)) || !tm.NotAfter.Equal(tc.wantAfter) {
				t.Errorf("validity [%s, %s], want [%s, %s]", tm.NotBefore, tm.NotAfter, now.Add(-CertBackdate), tc.wantAfter)
			}
			if !req.PublicKey.(*ecdsa.PublicKey).Equal(key.Public()) {
				t.Error("the request's key is not the CSR's")
			}
			if err := signer.CheckRequest(req, root); err != nil {
				t.Errorf("the request fails the signer's checks: %v", err)
			}
		})
	}
}

func TestNodeCertificateRequestClampsToIssuer(t *testing.T) {
	now := time.Now()
	// A root made "now" has NotBefore = now-1h; a root near its end cuts
	// node certificates short rather than failing.
	fresh := testRoot(t, now)
	req, err := NodeCertificateRequest(NodeRequest{ClusterID: testCluster, NodeID: testNode, Role: RoleWorker,
		CSR: mustCSR(t, mustKey(t, elliptic.P256()), nil), Now: now.Add(time.Second)}, fresh)
	if err != nil {
		t.Fatal(err)
	}
	if req.Template.NotBefore.Before(fresh.NotBefore) {
		t.Errorf("NotBefore %s precedes the issuer's %s", req.Template.NotBefore, fresh.NotBefore)
	}
	late := now.Add(RootCAExpiry - 24*time.Hour)
	req, err = NodeCertificateRequest(NodeRequest{ClusterID: testCluster, NodeID: testNode, Role: RoleWorker,
		CSR: mustCSR(t, mustKey(t, elliptic.P256()), nil), Now: late}, fresh)
	if err != nil {
		t.Fatal(err)
	}
	if !req.Template.NotAfter.Equal(fresh.NotAfter) {
		t.Errorf("NotAfter %s, want it clamped to the issuer's %s", req.Template.NotAfter, fresh.NotAfter)
	}
	_, err = NodeCertificateRequest(NodeRequest{ClusterID: testCluster, NodeID: testNode, Role: RoleWorker,
		CSR: mustCSR(t, mustKey(t, elliptic.P256()), nil), Now: fresh.NotAfter.Add(time.Hour)}, fresh)
	if err == nil || !strings.Contains(err.Error(), "expired") {
		t.Errorf("issuing under an expired CA: error %v, want one saying it expired", err)
	}
}

func TestNodeCertificateRequestRefusals(t *testing.T) {
	now := time.Now()
	root := testRoot(t, now.Add(-time.Hour))
	good := mustCSR(t, mustKey(t, elliptic.P256()), nil)
	rsaSmall, err := rsa.GenerateKey(rand.Reader, 1024)
	if err != nil {
		t.Fatal(err)
	}
	_, edKey, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	base := NodeRequest{ClusterID: testCluster, NodeID: testNode, Role: RoleWorker, CSR: good, Now: now}
	tests := []struct {
		name    string
		mod     func(*NodeRequest)
		wantCSR bool
		want    string
	}{
		{name: "BadClusterID", mod: func(r *NodeRequest) { r.ClusterID = "Not-An-ID" }, want: "invalid cluster ID"},
		{name: "BadNodeID", mod: func(r *NodeRequest) { r.NodeID = "short" }, want: "invalid node ID"},
		{name: "BadRole", mod: func(r *NodeRequest) { r.Role = "swarm-admin" }, want: "invalid role"},
		{name: "ExpiryBelowMinimum", mod: func(r *NodeRequest) { r.Expiry = 59 * time.Minute }, want: "below the minimum"},
		{name: "NoTime", mod: func(r *NodeRequest) { r.Now = time.Time{} }, want: "no issuance time"},
		{name: "EmptyCSR", mod: func(r *NodeRequest) { r.CSR = nil }, wantCSR: true, want: "empty"},
		{name: "GarbageCSR", mod: func(r *NodeRequest) { r.CSR = []byte("garbage") }, wantCSR: true},
		{name: "WrongPEMType", mod: func(r *NodeRequest) {
			r.CSR = pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: good})
		}, wantCSR: true, want: "CERTIFICATE REQUEST"},
		{name: "TrailingData", mod: func(r *NodeRequest) {
			r.CSR = append(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE REQUEST", Bytes: good}), "junk"...)
		}, wantCSR: true, want: "trailing data"},
		{name: "RSA1024", mod: func(r *NodeRequest) { r.CSR = mustCSR(t, rsaSmall, nil) }, wantCSR: true, want: "too small"},
		{name: "P224", mod: func(r *NodeRequest) { r.CSR = mustCSR(t, mustKey(t, elliptic.P224()), nil) }, wantCSR: true, want: "P-224"},
		{name: "Ed25519", mod: func(r *NodeRequest) { r.CSR = mustCSR(t, edKey, nil) }, wantCSR: true, want: "unsupported key type"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			nr := base
			tt.mod(&nr)
			_, err := NodeCertificateRequest(nr, root)
			if err == nil {
				t.Fatal("accepted")
			}
			if tt.wantCSR != errors.Is(err, ErrInvalidCSR) {
				t.Errorf("errors.Is(%q, ErrInvalidCSR) = %v, want %v", err, !tt.wantCSR, tt.wantCSR)
			}
			if tt.want != "" && !strings.Contains(err.Error(), tt.want) {
				t.Errorf("error %q, want one containing %q", err, tt.want)
			}
		})
	}
}

// A CSR with a bad signature is refused once per issuance, by the signer's
// request checks, and by ParseCSR; both errors match ErrInvalidCSR.
func TestBadCSRSignature(t *testing.T) {
	now := time.Now()
	root := testRoot(t, now.Add(-time.Hour))
	badSig := mustCSR(t, mustKey(t, elliptic.P256()), nil)
	badSig[len(badSig)-3] ^= 0xff
	if _, err := ParseCSR(badSig); !errors.Is(err, ErrInvalidCSR) || !strings.Contains(err.Error(), "bad signature") {
		t.Errorf("ParseCSR: error %v, want a bad signature matching ErrInvalidCSR", err)
	}
	req, err := NodeCertificateRequest(NodeRequest{ClusterID: testCluster, NodeID: testNode, Role: RoleWorker, CSR: badSig, Now: now}, root)
	if err != nil {
		t.Fatal(err)
	}
	if err := signer.CheckRequest(req, root); !errors.Is(err, ErrInvalidCSR) || !errors.Is(err, signer.ErrInvalidRequest) {
		t.Errorf("CheckRequest: error %v, want one matching ErrInvalidCSR and signer.ErrInvalidRequest", err)
	}
}

func TestIdentityOf(t *testing.T) {
	mk := func(subject pkix.Name, isCA bool) *x509.Certificate {
		return &x509.Certificate{Subject: subject, IsCA: isCA}
	}
	tests := []struct {
		name string
		cert *x509.Certificate
		ok   bool
	}{
		{"Worker", mk(NodeSubject(testCluster, testNode, RoleWorker), false), true},
		{"Manager", mk(NodeSubject(testCluster, testNode, RoleManager), false), true},
		{"OtherCluster", mk(NodeSubject("othercluster0000000000000", testNode, RoleWorker), false), false},
		{"UnknownRole", mk(pkix.Name{Organization: []string{testCluster}, OrganizationalUnit: []string{"swarm-admin"}, CommonName: testNode}, false), false},
		{"TwoRoles", mk(pkix.Name{Organization: []string{testCluster}, OrganizationalUnit: []string{"swarm-worker", "swarm-manager"}, CommonName: testNode}, false), false},
		{"BadNodeID", mk(NodeSubject(testCluster, "node1", RoleWorker), false), false},
		{"CA", mk(NodeSubject(testCluster, testNode, RoleManager), true), false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			id, err := IdentityOf(tt.cert, testCluster)
			if (err == nil) != tt.ok {
				t.Fatalf("IdentityOf: %v, want ok=%v", err, tt.ok)
			}
			if tt.ok && (id.NodeID != testNode || id.ClusterID != testCluster || !id.Role.Valid()) {
				t.Errorf("identity %+v", id)
			}
		})
	}
}

func TestCheckRootCA(t *testing.T) {
	now := time.Now()
	key := mustKey(t, elliptic.P256())
	self := func(mod func(*x509.Certificate)) *x509.Certificate {
		tmpl := NewRootTemplate("", now)
		tmpl.SerialNumber, _ = signer.RandomSerial(rand.Reader)
		if mod != nil {
			mod(tmpl)
		}
		der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
		if err != nil {
			t.Fatal(err)
		}
		c, err := x509.ParseCertificate(der)
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	// A CA certificate for key, issued by another root: not self-signed.
	other := mustKey(t, elliptic.P256())
	otherRoot, err := signer.SelfSign(rand.Reader, other, NewRootTemplate("other", now))
	if err != nil {
		t.Fatal(err)
	}
	tmpl := NewRootTemplate("swarm-ca", now)
	tmpl.SerialNumber, _ = signer.RandomSerial(rand.Reader)
	der, err := x509.CreateCertificate(rand.Reader, tmpl, otherRoot, key.Public(), other)
	if err != nil {
		t.Fatal(err)
	}
	intermediate, _ := x509.ParseCertificate(der)

	tests := []struct {
		name string
		cert *x509.Certificate
		key  crypto.PublicKey
		want error
	}{
		{"Good", self(nil), key.Public(), nil},
		{"GoodWithoutKey", self(nil), nil, nil},
		{"KeyMismatch", self(nil), mustKey(t, elliptic.P256()).Public(), ErrRootKeyMismatch},
		{"NotCA", self(func(c *x509.Certificate) { c.IsCA = false; c.KeyUsage = x509.KeyUsageDigitalSignature }), nil, ErrRootNotCA},
		{"NoCertSign", self(func(c *x509.Certificate) { c.KeyUsage = x509.KeyUsageCRLSign }), nil, ErrRootNotCA},
		{"ExpiresWithinAYear", self(func(c *x509.Certificate) { c.NotAfter = now.Add(364 * 24 * time.Hour) }), nil, ErrRootExpiresTooSoon},
		{"NotYetValid", self(func(c *x509.Certificate) { c.NotBefore = now.Add(time.Hour) }), nil, ErrRootNotYetValid},
		{"NotSelfSigned", intermediate, nil, ErrRootNotSelfSigned},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := CheckRootCA(tt.cert, tt.key, now)
			if tt.want == nil {
				if err != nil {
					t.Fatal(err)
				}
				return
			}
			if !errors.Is(err, tt.want) {
				t.Errorf("error %v, want %v", err, tt.want)
			}
		})
	}
}

func FuzzParseCSR(f *testing.F) {
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	der, _ := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{Subject: pkix.Name{CommonName: "x"}}, key)
	f.Add(der)
	f.Add(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE REQUEST", Bytes: der}))
	f.Add([]byte("-----BEGIN CERTIFICATE REQUEST-----\nMAA=\n-----END CERTIFICATE REQUEST-----\n"))
	f.Add([]byte{0x30, 0x03, 0x02, 0x01, 0x00})
	f.Fuzz(func(t *testing.T, data []byte) {
		csr, err := ParseCSR(data)
		if err != nil {
			if !errors.Is(err, ErrInvalidCSR) {
				t.Fatalf("error %v does not match ErrInvalidCSR", err)
			}
			return
		}
		if csr.CheckSignature() != nil || signer.CheckPublicKey(csr.PublicKey) != nil {
			t.Fatal("ParseCSR accepted a CSR with a bad signature or key")
		}
	})
}
