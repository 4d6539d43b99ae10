package vault

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"errors"
	"fmt"
	"net"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chancery-pki/chancery/audit"
	"github.com/chancery-pki/chancery/backends"
	"github.com/chancery-pki/chancery/backends/file"
	"github.com/chancery-pki/chancery/ca"
	"github.com/chancery-pki/chancery/conformance"
	"github.com/chancery-pki/chancery/signer"
)

// TestCreateRootShape checks the root Vault generates for each key
// algorithm against ca.NewRootTemplate, and a node certificate under it.
func TestCreateRootShape(t *testing.T) {
	for _, tc := range []struct {
		alg    string
		check  func(pub any) bool
		sigAlg x509.SignatureAlgorithm
	}{
		{"", func(p any) bool { k, ok := p.(*ecdsa.PublicKey); return ok && k.Curve == elliptic.P256() }, x509.ECDSAWithSHA256},
		{"P-384", func(p any) bool { k, ok := p.(*ecdsa.PublicKey); return ok && k.Curve == elliptic.P384() }, x509.ECDSAWithSHA384},
		{"RSA-3072", func(p any) bool { k, ok := p.(*rsa.PublicKey); return ok && k.N.BitLen() == 3072 }, x509.SHA256WithRSA},
	} {
		t.Run("Alg"+tc.alg, func(t *testing.T) {
			e := newEnv(t)
			now := time.Now()
			s, settings := createRoot(t, e.settings(), tc.alg)
			root := s.Chain()[0]
			want := ca.NewRootTemplate("", now)
			if !tc.check(root.PublicKey) || root.SignatureAlgorithm != tc.sigAlg {
				t.Errorf("root key %T, signature %s", root.PublicKey, root.SignatureAlgorithm)
			}
			if root.Subject.String() != "CN=swarm-ca" || !root.IsCA || root.MaxPathLen != -1 || root.KeyUsage != want.KeyUsage {
				t.Errorf("root: subject %q CA %v pathlen %d usage %b", root.Subject, root.IsCA, root.MaxPathLen, root.KeyUsage)
			}
			if !root.NotAfter.Equal(want.NotAfter) {
				t.Errorf("root NotAfter %s, want %s", root.NotAfter, want.NotAfter)
			}
			if d := root.NotBefore.Sub(want.NotBefore); d < 0 || d > roleSlack+time.Second {
				t.Errorf("root NotBefore %s, want %s", root.NotBefore, want.NotBefore)
			}
			if n := len(root.SerialNumber.Bytes()); n != signer.SerialBytes {
				t.Errorf("root serial has %d bytes", n)
			}
			if settings[SettingIssuer] != s.IssuerID() || settings[SettingGenerated] != "true" || settings[SettingKeyID] == "" {
				t.Errorf("settings %v", settings)
			}
			for k := range settings {
				if k == SettingAppRoleSecretIDFile || k == SettingAppRoleRoleIDFile {
					continue
				}
				if v := settings[k]; v == e.role.secretID || v == e.role.roleID {
					t.Errorf("setting %s holds a secret", k)
				}
			}
			req := nodeRequest(t, root, ca.RoleManager, time.Now())
			cert, err := s.Sign(context.Background(), req)
			if err != nil {
				t.Fatal(err)
			}
			conformance.CheckNodeCertificate(t, cert, s.Chain(), conformance.NodeExpectation{
				ClusterID: testClusterID, NodeID: testNodeID, Role: ca.RoleManager, PublicKey: req.PublicKey,
				NotBefore: req.Template.NotBefore, NotAfter: req.Template.NotAfter,
				NotBeforeTolerance: roleSlack + time.Second, DNSNamesSorted: true,
			})
		})
	}
}

func TestOpenAndDeleteRoot(t *testing.T) {
	e := newEnv(t)
	s, settings := createRoot(t, e.settings(), "")
	if _, err := s.Sign(context.Background(), nodeRequest(t, s.Chain()[0], ca.RoleWorker, time.Now())); err != nil {
		t.Fatal(err)
	}
	b, _ := backends.Get(Name)
	opened, err := b.Open(context.Background(), backends.OpenRequest{Settings: settings, Chain: s.Chain()})
	if err != nil {
		t.Fatal(err)
	}
	defer opened.(*Signer).Close()
	if _, err := opened.Sign(context.Background(), nodeRequest(t, s.Chain()[0], ca.RoleManager, time.Now())); err != nil {
		t.Fatal(err)
	}
	if d := opened.(signer.Describer).Describe().String(); !strings.HasPrefix(d, "vault address="+e.srv.Addr+" engine=pki mount="+e.mount+" issuer="+s.IssuerID()+" auth=approle dns_names=sorted by Vault") {
		t.Errorf("Describe() = %q", d)
	}

	// Another root's chain is refused.
	other, _ := createRoot(t, e.settings(), "")
	_, err = b.Open(context.Background(), backends.OpenRequest{Settings: settings, Chain: other.Chain()})
	if !errors.Is(err, ErrIssuerNotFound) {
		t.Errorf("Open with another root's chain: %v", err)
	}

	if st := e.state(t); len(st.issuers) != 2 || len(st.roles) != 2 {
		t.Fatalf("before DeleteRoot: %+v", st)
	}
	if err := b.(backends.RootDeleter).DeleteRoot(context.Background(), "", settings); err != nil {
		t.Fatal(err)
	}
	st := e.state(t)
	if len(st.issuers) != 1 || st.issuers[0] != other.IssuerID() || len(st.keys) != 1 || len(st.roles) != 0 {
		t.Errorf("after DeleteRoot: %+v, want only the other root's issuer and key", st)
	}
}

// TestAdoptIssuer: init with --vault-issuer uses an existing root, and
// DeleteRoot leaves it alone.
func TestAdoptIssuer(t *testing.T) {
	e := newEnv(t)
	sec := e.srv.write(t, e.mount+"/root/generate/internal", map[string]any{"common_name": "corp-root", "not_after": time.Now().AddDate(10, 0, 0).UTC().Format(time.RFC3339), "key_type": "ec"})
	id := sec.Data["issuer_id"].(string)
	settings := e.settings()
	settings[SettingIssuer] = id
	s, out := createRoot(t, settings, "")
	if s.IssuerID() != id || s.Chain()[0].Subject.CommonName != "corp-root" || out[SettingGenerated] != "false" {
		t.Fatalf("adopted %s %q, settings %v", s.IssuerID(), s.Chain()[0].Subject, out)
	}
	if _, err := s.Sign(context.Background(), nodeRequest(t, s.Chain()[0], ca.RoleWorker, time.Now())); err != nil {
		t.Fatal(err)
	}
	if err := (Backend{}).DeleteRoot(context.Background(), "", out); err != nil {
		t.Fatal(err)
	}
	if st := e.state(t); len(st.issuers) != 1 {
		t.Errorf("DeleteRoot removed an adopted root: %+v", st)
	}

	// A root that expires within a year is refused, as an import is.
	short := e.srv.write(t, e.mount+"/root/generate/internal", map[string]any{"common_name": "short", "ttl": "720h", "key_type": "ec"})
	settings[SettingIssuer] = short.Data["issuer_id"].(string)
	_, _, err := Backend{}.CreateRoot(context.Background(), backends.CreateRootRequest{Settings: settings, Now: time.Now()})
	if !errors.Is(err, ErrUnsupported) {
		t.Errorf("adopting a root that expires in 30 days: %v", err)
	}
}

// TestCreateCSR: the CSR Vault makes for the root's key can be cross-signed
// by a root in a key file, and the result chains.
func TestCreateCSR(t *testing.T) {
	s, _ := newTestSigner(t)
	der, err := s.CreateCSR(context.Background(), &x509.CertificateRequest{
		RawSubject: s.Chain()[0].RawSubject, ExtraExtensions: []pkix.Extension{vaultBasicConstraints},
	})
	if err != nil {
		t.Fatal(err)
	}
	csr, err := x509.ParseCertificateRequest(der)
	if err != nil {
		t.Fatal(err)
	}
	if !signer.SamePublicKey(csr.PublicKey, s.Chain()[0].PublicKey) || !bytes.Equal(csr.RawSubject, s.Chain()[0].RawSubject) {
		t.Fatal("the CSR is not for the root's key and subject")
	}
	// Another root (a file key) cross-signs the Vault root from the CSR.
	key, _ := file.GenerateKey(file.P256, nil)
	now := time.Now()
	fileRoot, err := signer.SelfSign(nil, key, ca.NewRootTemplate("other-ca", now))
	if err != nil {
		t.Fatal(err)
	}
	fs, err := file.New(key, "unused", false, []*x509.Certificate{fileRoot}, nil)
	if err != nil {
		t.Fatal(err)
	}
	vroot := s.Chain()[0]
	cross, err := fs.Sign(context.Background(), &signer.Request{PublicKey: csr.PublicKey, CSR: csr, Profile: signer.ProfileCA,
		Template: &x509.Certificate{RawSubject: csr.RawSubject, SubjectKeyId: vroot.SubjectKeyId,
			NotBefore: later(vroot.NotBefore, fileRoot.NotBefore), NotAfter: fileRoot.NotAfter.Add(-time.Hour),
			IsCA: true, BasicConstraintsValid: true, MaxPathLen: -1, KeyUsage: x509.KeyUsageCertSign | x509.KeyUsageCRLSign}})
	if err != nil {
		t.Fatal(err)
	}
	leaf, err := s.Sign(context.Background(), nodeRequest(t, vroot, ca.RoleWorker, now))
	if err != nil {
		t.Fatal(err)
	}
	if err := ca.VerifyChain([]*x509.Certificate{leaf, cross}, []*x509.Certificate{fileRoot}, leaf.NotBefore.Add(time.Minute)); err != nil {
		t.Errorf("a Vault leaf does not verify against the other root through the cross-signed certificate: %v", err)
	}
}

// TestUnsupportedRefusedBeforeVault: requests Vault cannot honour exactly
// are refused with ErrUnsupported, and Vault is never asked (the mount is
// unchanged and no role is made).
func TestUnsupportedRefusedBeforeVault(t *testing.T) {
	s, e := newTestSigner(t)
	before := e.state(t)
	issuer := s.Chain()[0]
	for _, tc := range []struct {
		name string
		mod  func(r *signer.Request)
	}{
		{"ExtraSubjectAttribute", func(r *signer.Request) {
			r.Template.Subject.ExtraNames = []pkix.AttributeTypeAndValue{{Type: []int{2, 5, 4, 12}, Value: "title"}}
		}},
		{"SubjectOrder", func(r *signer.Request) {
			rdn, _ := asn1Marshal(pkix.RDNSequence{
				{{Type: []int{2, 5, 4, 3}, Value: testNodeID}},
				{{Type: []int{2, 5, 4, 10}, Value: testClusterID}},
			})
			r.Template.RawSubject = rdn
		}},
		{"DuplicateDNSName", func(r *signer.Request) { r.Template.DNSNames = append(r.Template.DNSNames, testNodeID) }},
		{"UpperCaseDNSName", func(r *signer.Request) { r.Template.DNSNames = []string{"Node"} }},
		{"NotAHostName", func(r *signer.Request) { r.Template.DNSNames = []string{"a,b"} }},
		{"EKUOrder", func(r *signer.Request) {
			r.Template.ExtKeyUsage = []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth, x509.ExtKeyUsageServerAuth}
		}},
		{"UnknownEKU", func(r *signer.Request) { r.Template.UnknownExtKeyUsage = []asn1OID{{1, 2, 3}} }},
		{"StartsInTheFuture", func(r *signer.Request) { r.Template.NotBefore = time.Now().Add(time.Hour).Truncate(time.Second) }},
		{"CSRWithUserID", func(r *signer.Request) {
			k := newP256(t)
			der, _ := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{Subject: pkix.Name{
				ExtraNames: []pkix.AttributeTypeAndValue{{Type: oidUserID, Value: "uid"}}}}, k)
			r.CSR, _ = x509.ParseCertificateRequest(der)
			r.PublicKey = k.Public()
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			req := nodeRequest(t, issuer, ca.RoleWorker, time.Now())
			tc.mod(req)
			_, err := s.Sign(context.Background(), req)
			wantError(t, err, ErrUnsupported)
		})
	}
	// IP addresses are fine.
	req := nodeRequest(t, issuer, ca.RoleWorker, time.Now())
	req.Template.IPAddresses = []net.IP{net.IPv4(10, 0, 0, 1), net.ParseIP("::1")}
	cert, err := s.Sign(context.Background(), req)
	if err != nil {
		t.Fatal(err)
	}
	if len(cert.IPAddresses) != 2 || !cert.IPAddresses[0].Equal(req.Template.IPAddresses[0]) {
		t.Errorf("IP addresses %v", cert.IPAddresses)
	}
	if after := e.state(t); len(after.roles) != 1 || !slicesEqual(after.issuers, before.issuers) {
		t.Errorf("the mount after refusals: %+v, was %+v", after, before)
	}
}

type asn1OID = asn1.ObjectIdentifier

func asn1Marshal(v any) ([]byte, error) { return asn1.Marshal(v) }

func slicesEqual(a, b []string) bool { return slices.Equal(a, b) }

// TestAuditCheckpoint: the audit log's checkpoint certificates (another
// node-profile shape: digital signature only, no EKU) come out of Vault as
// asked, through their own role.
func TestAuditCheckpoint(t *testing.T) {
	s, e := newTestSigner(t)
	key := newP256(t)
	der, err := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{}, key)
	if err != nil {
		t.Fatal(err)
	}
	csr, _ := x509.ParseCertificateRequest(der)
	head := audit.Head{Seq: 42, Hash: strings.Repeat("ab", 32)}
	req := audit.CheckpointRequest(testClusterID, head, key.Public(), csr, s.Chain()[0], time.Now())
	cert, err := s.Sign(context.Background(), req)
	if err != nil {
		t.Fatal(err)
	}
	if cert.KeyUsage != x509.KeyUsageDigitalSignature || len(cert.ExtKeyUsage) != 0 || cert.Subject.CommonName != "42" ||
		!slices.Equal(cert.DNSNames, []string{audit.CheckpointName(head)}) {
		t.Errorf("checkpoint certificate: usage %b, EKU %v, CN %q, DNS %v", cert.KeyUsage, cert.ExtKeyUsage, cert.Subject.CommonName, cert.DNSNames)
	}
	if d := cert.NotBefore.Sub(req.Template.NotBefore); d < 0 || d > roleSlack+time.Second {
		t.Errorf("NotBefore %s, want %s (a one-minute backdate)", cert.NotBefore, req.Template.NotBefore)
	}
	if roles := e.state(t).roles; len(roles) != 1 {
		t.Errorf("roles %v", roles)
	}
}

// TestBackdates: requests of one shape with different backdates (a young
// root clamps NotBefore to its own) share a role whose not_before_duration
// chancery rewrites, and each certificate starts when its request says,
// also when they come concurrently.
func TestBackdates(t *testing.T) {
	s, e := newTestSigner(t)
	issuer := s.Chain()[0]
	sign := func(backdate time.Duration) error {
		req := nodeRequest(t, issuer, ca.RoleWorker, time.Now())
		req.Template.NotBefore = later(time.Now().Add(-backdate).Truncate(time.Second), issuer.NotBefore)
		cert, err := s.Sign(context.Background(), req)
		if err != nil {
			return err
		}
		if d := cert.NotBefore.Sub(req.Template.NotBefore); d < 0 || d > roleSlack+time.Second {
			return fmt.Errorf("backdate %s: NotBefore %s, want %s", backdate, cert.NotBefore, req.Template.NotBefore)
		}
		return nil
	}
	for _, bd := range []time.Duration{time.Hour, time.Minute, 10 * time.Minute, 0, time.Hour} {
		if err := sign(bd); err != nil {
			t.Error(err)
		}
	}
	var wg sync.WaitGroup
	errs := make(chan error, 16)
	for i := 0; i < 16; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs <- sign([]time.Duration{time.Hour, 10 * time.Minute}[i%2])
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Error(err)
		}
	}
	if roles := e.srv.list(t, e.mount+"/roles"); len(roles) != 1 {
		t.Errorf("roles %v, want one for the one shape", roles)
	}
}
