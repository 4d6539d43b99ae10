// Package conformance is the one test suite every signer backend passes
// against its real peer: the file backend, a SoftHSM2 token, a Vault server,
// a cfssl server. A backend's tests call Run with a factory that returns a
// fresh Signer (a fresh key, token, mount or CA) for each subtest.
//
// The suite issues node certificates for both roles and several key types
// and checks every field of the node certificate contract, issues a CA
// certificate of cross-sign shape and checks it, verifies the resulting
// chains with crypto/x509, and checks that bad requests are refused with
// signer.ErrInvalidRequest. "Identical on every backend" means this suite
// passes for each of them.
package conformance

import (
	"bytes"
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"errors"
	"math/big"
	"net"
	"reflect"
	"sort"
	"sync"
	"testing"
	"time"

	"github.com/chancery-pki/chancery/ca"
	"github.com/chancery-pki/chancery/signer"
)

// Factory returns a fresh Signer for one subtest, and arranges its cleanup
// with t.Cleanup. It fails t if the backend's peer is missing and CI is set.
type Factory func(t *testing.T) signer.Signer

// Options tune the suite for a backend.
type Options struct {
	// Now is the issuance time used for requests. Nil means time.Now.
	Now func() time.Time

	// ValidityFromProfile is for backends whose peer takes a certificate's
	// validity from its own configuration rather than from the request (a
	// CFSSL signing profile). When set, the suite expects the validity it
	// returns for the request just signed, called right after Sign
	// returned, instead of the request's NotBefore and NotAfter, and accepts
	// each bound within ValidityTolerance of it. Nil means the certificate
	// must carry the request's validity exactly.
	ValidityFromProfile func(req *signer.Request) (notBefore, notAfter time.Time)
	// ValidityTolerance is how far each validity bound may be from what
	// ValidityFromProfile returns. It is ignored when ValidityFromProfile is
	// nil.
	ValidityTolerance time.Duration

	// NotBeforeTolerance is for backends whose peer sets a node
	// certificate's NotBefore from its own clock instead of taking the
	// request's (Vault: its current time minus the role's
	// not_before_duration, which chancery sets to the request's backdate,
	// in whole seconds, so the two cannot be equal every time). The suite
	// then accepts a NotBefore up to this much after the expected one, never
	// before it; NotAfter is still compared as without it. Zero means no
	// leeway.
	NotBeforeTolerance time.Duration

	// DNSNamesSorted is for backends whose peer writes a node certificate's
	// DNS names in sorted order whatever the request's (Vault's PKI engine
	// sorts alt_names). The suite then expects exactly the request's names,
	// sorted. False means they must be in the request's order.
	DNSNamesSorted bool
}

// Run runs the whole suite against the Signers newSigner returns.
func Run(t *testing.T, newSigner Factory, opts Options) {
	if opts.Now == nil {
		opts.Now = time.Now
	}
	s := &suite{newSigner: newSigner, now: opts.Now, validity: opts.ValidityFromProfile, tolerance: opts.ValidityTolerance}
	if s.validity == nil {
		s.tolerance = 0
	}
	s.notBeforeTolerance, s.dnsNamesSorted = opts.NotBeforeTolerance, opts.DNSNamesSorted
	t.Run("Chain", s.testChain)
	t.Run("NodeCertificates", s.testNodeCertificates)
	t.Run("CSRSubjectAndExtensionsIgnored", s.testCSRIgnored)
	t.Run("CrossSign", s.testCrossSign)
	t.Run("BadRequests", s.testBadRequests)
	t.Run("ConcurrentSerialsUnique", s.testConcurrent)
	t.Run("CanceledContext", s.testCanceled)
}

type suite struct {
	newSigner Factory
	now       func() time.Time
	validity  func(req *signer.Request) (notBefore, notAfter time.Time)
	tolerance time.Duration

	notBeforeTolerance time.Duration
	dnsNamesSorted     bool
}

// expectedValidity returns the validity a certificate signed for req must
// carry: the request's, or the backend's profile's when its peer sets it.
func (s *suite) expectedValidity(req *signer.Request) (notBefore, notAfter time.Time) {
	if s.validity != nil {
		return s.validity(req)
	}
	return req.Template.NotBefore, req.Template.NotAfter
}

// validityMatches reports whether cert's validity is within tolerance of
// [notBefore, notAfter].
func validityMatches(cert *x509.Certificate, notBefore, notAfter time.Time, tolerance time.Duration) bool {
	within := func(got, want time.Time) bool {
		d := got.Sub(want)
		return d <= tolerance && d >= -tolerance
	}
	return within(cert.NotBefore, notBefore) && within(cert.NotAfter, notAfter)
}

// notBeforeLateMatches reports whether cert's validity is exp's but for a
// NotBefore up to exp.NotBeforeTolerance later (see
// Options.NotBeforeTolerance).
func notBeforeLateMatches(cert *x509.Certificate, exp NodeExpectation) bool {
	if exp.NotBeforeTolerance <= 0 {
		return false
	}
	late := cert.NotBefore.Sub(exp.NotBefore)
	if late < 0 || late > exp.NotBeforeTolerance {
		return false
	}
	return validityMatches(cert, cert.NotBefore, exp.NotAfter, exp.ValidityTolerance)
}

const (
	clusterID = "4h5log5xpip966c6c0000z2cy"
	nodeID    = "kgwuvt1oqhqjsht0qcsq67rvu"
)

func (s *suite) testChain(t *testing.T) {
	sg := s.newSigner(t)
	chain := sg.Chain()
	if len(chain) == 0 {
		t.Fatal("Chain() is empty")
	}
	if !chain[0].IsCA || !chain[0].BasicConstraintsValid {
		t.Errorf("Chain()[0] %q is not a CA", chain[0].Subject)
	}
	if chain[0].KeyUsage&x509.KeyUsageCertSign == 0 {
		t.Errorf("Chain()[0] %q lacks the certificate signing key usage", chain[0].Subject)
	}
	root := chain[len(chain)-1]
	if err := root.CheckSignatureFrom(root); err != nil {
		t.Errorf("the last certificate of Chain(), %q, is not a self-signed root: %v", root.Subject, err)
	}
	for i := 1; i < len(chain); i++ {
		if err := chain[i-1].CheckSignatureFrom(chain[i]); err != nil {
			t.Errorf("Chain()[%d] is not signed by Chain()[%d]: %v", i-1, i, err)
		}
	}
}

type keyCase struct {
	name string
	gen  func() (crypto.Signer, error)
}

var nodeKeys = []keyCase{
	{"P256", func() (crypto.Signer, error) { return ecdsa.GenerateKey(elliptic.P256(), rand.Reader) }},
	{"P384", func() (crypto.Signer, error) { return ecdsa.GenerateKey(elliptic.P384(), rand.Reader) }},
	{"P521", func() (crypto.Signer, error) { return ecdsa.GenerateKey(elliptic.P521(), rand.Reader) }},
	{"RSA2048", func() (crypto.Signer, error) { return rsa.GenerateKey(rand.Reader, 2048) }},
}

func (s *suite) testNodeCertificates(t *testing.T) {
	sg := s.newSigner(t)
	for _, role := range []ca.Role{ca.RoleManager, ca.RoleWorker} {
		for _, kc := range nodeKeys {
			t.Run(role.Short()+"/"+kc.name, func(t *testing.T) {
				key, err := kc.gen()
				if err != nil {
					t.Fatal(err)
				}
				now := s.now()
				cert, req := s.issueNode(t, sg, key, role, 7*24*time.Hour, now, nil)
				notBefore, notAfter := s.expectedValidity(req)
				CheckNodeCertificate(t, cert, sg.Chain(), NodeExpectation{
					ClusterID: clusterID, NodeID: nodeID, Role: role,
					PublicKey: key.Public(),
					NotBefore: notBefore, NotAfter: notAfter, ValidityTolerance: s.tolerance,
					NotBeforeTolerance: s.notBeforeTolerance, DNSNamesSorted: s.dnsNamesSorted,
				})
			})
		}
	}
}

// testCSRIgnored checks that nothing in the CSR but its key reaches the
// certificate: a subject, SANs and a CA:TRUE extension request are dropped.
func (s *suite) testCSRIgnored(t *testing.T) {
	sg := s.newSigner(t)
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	bc, err := asn1.Marshal(struct {
		IsCA bool `asn1:"optional"`
	}{true})
	if err != nil {
		t.Fatal(err)
	}
	csrTmpl := &x509.CertificateRequest{
		Subject:        pkix.Name{CommonName: "evil", Organization: []string{"other-cluster"}, OrganizationalUnit: []string{"swarm-manager"}},
		DNSNames:       []string{"evil.example"},
		IPAddresses:    []net.IP{net.IPv4(10, 0, 0, 1)},
		EmailAddresses: []string{"evil@example.com"},
		ExtraExtensions: []pkix.Extension{
			{Id: asn1.ObjectIdentifier{2, 5, 29, 19}, Critical: true, Value: bc},
		},
	}
	now := s.now()
	cert, req := s.issueNode(t, sg, key, ca.RoleWorker, 24*time.Hour, now, csrTmpl)
	notBefore, notAfter := s.expectedValidity(req)
	CheckNodeCertificate(t, cert, sg.Chain(), NodeExpectation{
		ClusterID: clusterID, NodeID: nodeID, Role: ca.RoleWorker,
		PublicKey: key.Public(),
		NotBefore: notBefore, NotAfter: notAfter, ValidityTolerance: s.tolerance,
		NotBeforeTolerance: s.notBeforeTolerance, DNSNamesSorted: s.dnsNamesSorted,
	})
}

func (s *suite) issueNode(t *testing.T, sg signer.Signer, key crypto.Signer, role ca.Role, expiry time.Duration, now time.Time, csrTmpl *x509.CertificateRequest) (*x509.Certificate, *signer.Request) {
	t.Helper()
	if csrTmpl == nil {
		csrTmpl = &x509.CertificateRequest{Subject: pkix.Name{CommonName: "ignored"}}
	}
	csr, err := x509.CreateCertificateRequest(rand.Reader, csrTmpl, key)
	if err != nil {
		t.Fatal(err)
	}
	req, err := ca.NodeCertificateRequest(ca.NodeRequest{
		ClusterID: clusterID, NodeID: nodeID, Role: role, CSR: csr, Expiry: expiry, Now: now,
	}, sg.Chain()[0])
	if err != nil {
		t.Fatalf("NodeCertificateRequest: %v", err)
	}
	cert, err := sg.Sign(context.Background(), req)
	if err != nil {
		t.Fatalf("Sign: %v", err)
	}
	return cert, req
}

// NodeExpectation is what a node certificate must say.
type NodeExpectation struct {
	ClusterID, NodeID   string
	Role                ca.Role
	PublicKey           crypto.PublicKey
	NotBefore, NotAfter time.Time
	// ValidityTolerance is how far each validity bound may be from
	// NotBefore and NotAfter; zero means they must be equal.
	ValidityTolerance time.Duration
	// NotBeforeTolerance is how much later than NotBefore (give or take
	// ValidityTolerance) the certificate's NotBefore may be; see
	// Options.NotBeforeTolerance.
	NotBeforeTolerance time.Duration
	// DNSNamesSorted means the certificate's DNS names are expected in
	// sorted order; see Options.DNSNamesSorted.
	DNSNamesSorted bool
}

var (
	oidKeyUsage         = asn1.ObjectIdentifier{2, 5, 29, 15}
	oidExtKeyUsage      = asn1.ObjectIdentifier{2, 5, 29, 37}
	oidBasicConstraints = asn1.ObjectIdentifier{2, 5, 29, 19}
	oidSAN              = asn1.ObjectIdentifier{2, 5, 29, 17}
	oidAuthorityKeyID   = asn1.ObjectIdentifier{2, 5, 29, 35}
	oidSubjectKeyID     = asn1.ObjectIdentifier{2, 5, 29, 14}
)

// CheckNodeCertificate checks cert, issued under chain, field by field
// against the node certificate contract and exp.
func CheckNodeCertificate(t *testing.T, cert *x509.Certificate, chain []*x509.Certificate, exp NodeExpectation) {
	t.Helper()
	issuer := chain[0]
	if cert.Version != 3 {
		t.Errorf("version = %d, want 3", cert.Version)
	}
	checkSerial(t, cert.SerialNumber)
	wantSubject := pkix.Name{
		Organization:       []string{exp.ClusterID},
		OrganizationalUnit: []string{string(exp.Role)},
		CommonName:         exp.NodeID,
	}
	if got, want := cert.Subject.String(), wantSubject.String(); got != want {
		t.Errorf("subject = %q, want %q", got, want)
	}
	if n := len(cert.Subject.Names); n != 3 {
		t.Errorf("subject has %d attributes, want 3 (O, OU, CN): %v", n, cert.Subject.Names)
	}
	if !bytes.Equal(cert.RawIssuer, issuer.RawSubject) {
		t.Errorf("issuer = %q, want the CA's subject %q", cert.Issuer, issuer.Subject)
	}
	wantDNS := []string{string(exp.Role), exp.NodeID}
	if exp.Role == ca.RoleManager {
		wantDNS = append(wantDNS, ca.CADNSName)
	}
	if exp.DNSNamesSorted {
		sort.Strings(wantDNS)
	}
	if !reflect.DeepEqual(cert.DNSNames, wantDNS) {
		t.Errorf("DNS names = %q, want %q", cert.DNSNames, wantDNS)
	}
	if len(cert.IPAddresses)+len(cert.EmailAddresses)+len(cert.URIs) != 0 {
		t.Errorf("unexpected SANs: IPs %v, emails %v, URIs %v", cert.IPAddresses, cert.EmailAddresses, cert.URIs)
	}
	if want := x509.KeyUsageDigitalSignature | x509.KeyUsageKeyEncipherment; cert.KeyUsage != want {
		t.Errorf("key usage = %b, want digital signature + key encipherment (%b)", cert.KeyUsage, want)
	}
	if want := []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth}; !sameEKUs(cert.ExtKeyUsage, want) || len(cert.UnknownExtKeyUsage) != 0 {
		t.Errorf("extended key usage = %v (unknown %v), want server and client auth", cert.ExtKeyUsage, cert.UnknownExtKeyUsage)
	}
	if !cert.BasicConstraintsValid || cert.IsCA {
		t.Errorf("basic constraints: valid=%v CA=%v, want a CA:FALSE extension", cert.BasicConstraintsValid, cert.IsCA)
	}
	if !validityMatches(cert, exp.NotBefore, exp.NotAfter, exp.ValidityTolerance) && !notBeforeLateMatches(cert, exp) {
		t.Errorf("validity = [%s, %s], want [%s, %s] (tolerance %s, NotBefore up to %s later)", cert.NotBefore, cert.NotAfter, exp.NotBefore, exp.NotAfter, exp.ValidityTolerance, exp.NotBeforeTolerance)
	}
	if pk, ok := cert.PublicKey.(interface{ Equal(crypto.PublicKey) bool }); !ok || !pk.Equal(exp.PublicKey) {
		t.Errorf("the certificate's public key is not the CSR's")
	}
	if want := signer.SignatureAlgorithm(issuer.PublicKey); cert.SignatureAlgorithm != want {
		t.Errorf("signature algorithm = %s, want %s", cert.SignatureAlgorithm, want)
	}
	if len(issuer.SubjectKeyId) > 0 && !bytes.Equal(cert.AuthorityKeyId, issuer.SubjectKeyId) {
		t.Errorf("authority key ID = %x, want the CA's subject key ID %x", cert.AuthorityKeyId, issuer.SubjectKeyId)
	}
	if want, err := signer.SubjectKeyID(exp.PublicKey); err != nil {
		t.Errorf("SubjectKeyID: %v", err)
	} else if !bytes.Equal(cert.SubjectKeyId, want) {
		t.Errorf("subject key ID = %x, want %x (SHA-1 of the public key, as swarm's CA gives)", cert.SubjectKeyId, want)
	}
	for _, ext := range cert.Extensions {
		switch {
		case ext.Id.Equal(oidKeyUsage), ext.Id.Equal(oidExtKeyUsage), ext.Id.Equal(oidBasicConstraints),
			ext.Id.Equal(oidSAN), ext.Id.Equal(oidAuthorityKeyID), ext.Id.Equal(oidSubjectKeyID):
		default:
			t.Errorf("unexpected extension %v", ext.Id)
		}
	}
	full := append([]*x509.Certificate{cert}, chain...)
	root := chain[len(chain)-1]
	if err := ca.VerifyChain(full, []*x509.Certificate{root}, cert.NotBefore.Add(time.Minute)); err != nil {
		t.Errorf("VerifyChain: %v", err)
	}
	pool := x509.NewCertPool()
	pool.AddCert(root)
	inter := x509.NewCertPool()
	for _, c := range chain[:len(chain)-1] {
		inter.AddCert(c)
	}
	for _, eku := range []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth} {
		if _, err := cert.Verify(x509.VerifyOptions{
			Roots: pool, Intermediates: inter, CurrentTime: cert.NotBefore.Add(time.Minute),
			KeyUsages: []x509.ExtKeyUsage{eku}, DNSName: exp.NodeID,
		}); err != nil {
			t.Errorf("crypto/x509 Verify for %v: %v", eku, err)
		}
	}
}

func checkSerial(t *testing.T, serial *big.Int) {
	t.Helper()
	if serial.Sign() <= 0 {
		t.Errorf("serial %x is not positive", serial)
	}
	if n := len(serial.Bytes()); n != signer.SerialBytes {
		t.Errorf("serial %x has %d bytes, want %d", serial, n, signer.SerialBytes)
	}
}

func sameEKUs(a, b []x509.ExtKeyUsage) bool {
	if len(a) != len(b) {
		return false
	}
	seen := map[x509.ExtKeyUsage]bool{}
	for _, u := range a {
		seen[u] = true
	}
	for _, u := range b {
		if !seen[u] {
			return false
		}
	}
	return true
}

// testCrossSign issues a CA certificate of cross-sign shape: a new root's
// subject and key, signed by the backend's CA. A leaf of the new root must
// then verify against the old root through it, and against the new root
// alone.
func (s *suite) testCrossSign(t *testing.T) {
	sg := s.newSigner(t)
	issuer := sg.Chain()[0]
	now := s.now()
	newKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	newRoot, err := signer.SelfSign(rand.Reader, newKey, ca.NewRootTemplate("swarm-ca", now))
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		RawSubject:            newRoot.RawSubject,
		SubjectKeyId:          newRoot.SubjectKeyId,
		NotBefore:             later(newRoot.NotBefore, issuer.NotBefore),
		NotAfter:              earlier(newRoot.NotAfter, issuer.NotAfter),
		IsCA:                  true,
		BasicConstraintsValid: true,
		MaxPathLen:            -1,
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
	}
	req := &signer.Request{PublicKey: newKey.Public(), Template: tmpl, Profile: signer.ProfileCA}
	if signer.CapabilitiesOf(sg).NeedsCSR {
		csrDER, err := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{RawSubject: newRoot.RawSubject}, newKey)
		if err != nil {
			t.Fatal(err)
		}
		if req.CSR, err = x509.ParseCertificateRequest(csrDER); err != nil {
			t.Fatal(err)
		}
	}
	cross, err := sg.Sign(context.Background(), req)
	if err != nil {
		t.Fatalf("Sign (cross-sign): %v", err)
	}
	if !bytes.Equal(cross.RawSubject, newRoot.RawSubject) {
		t.Errorf("cross-signed subject %q differs from the new root's %q byte for byte", cross.Subject, newRoot.Subject)
	}
	if !bytes.Equal(cross.RawIssuer, issuer.RawSubject) {
		t.Errorf("cross-signed issuer = %q, want %q", cross.Issuer, issuer.Subject)
	}
	if !cross.PublicKey.(*ecdsa.PublicKey).Equal(newKey.Public()) {
		t.Error("cross-signed public key is not the new root's")
	}
	if !cross.IsCA || !cross.BasicConstraintsValid {
		t.Error("cross-signed certificate lacks CA:TRUE")
	}
	if cross.MaxPathLen > 0 || cross.MaxPathLenZero {
		t.Errorf("cross-signed certificate has a path length limit (%d): nodes below it could not chain", cross.MaxPathLen)
	}
	if want := x509.KeyUsageCertSign | x509.KeyUsageCRLSign; cross.KeyUsage != want {
		t.Errorf("cross-signed key usage = %b, want cert sign + CRL sign (%b)", cross.KeyUsage, want)
	}
	if len(cross.ExtKeyUsage) != 0 {
		t.Errorf("cross-signed certificate has extended key usages %v, want none", cross.ExtKeyUsage)
	}
	if !bytes.Equal(cross.SubjectKeyId, newRoot.SubjectKeyId) {
		t.Errorf("cross-signed subject key ID %x, want the new root's %x", cross.SubjectKeyId, newRoot.SubjectKeyId)
	}
	if wantNB, wantNA := s.expectedValidity(req); !validityMatches(cross, wantNB, wantNA, s.tolerance) {
		t.Errorf("cross-signed validity = [%s, %s], want [%s, %s] (tolerance %s)", cross.NotBefore, cross.NotAfter, wantNB, wantNA, s.tolerance)
	}
	checkSerial(t, cross.SerialNumber)

	// A node certificate from the new root's key.
	newIssuer, err := signer.NewLocalIssuer(signer.LocalConfig{Key: newKey, Chain: []*x509.Certificate{newRoot}})
	if err != nil {
		t.Fatal(err)
	}
	leafKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	leaf, _ := s.issueNode(t, newIssuer, leafKey, ca.RoleWorker, 24*time.Hour, now, nil)
	at := leaf.NotBefore.Add(time.Minute)
	oldChain := append([]*x509.Certificate{leaf, cross}, sg.Chain()...)
	if err := ca.VerifyChain(oldChain, sg.Chain()[len(sg.Chain())-1:], at); err != nil {
		t.Errorf("a new-root leaf does not verify against the old root through the cross-signed certificate: %v", err)
	}
	if err := ca.VerifyChain([]*x509.Certificate{leaf, cross}, []*x509.Certificate{newRoot}, at); err != nil {
		t.Errorf("a new-root leaf with the cross-signed certificate appended does not verify against the new root: %v", err)
	}
}

func later(a, b time.Time) time.Time {
	if a.After(b) {
		return a
	}
	return b
}

func earlier(a, b time.Time) time.Time {
	if a.Before(b) {
		return a
	}
	return b
}

func (s *suite) testBadRequests(t *testing.T) {
	sg := s.newSigner(t)
	issuer := sg.Chain()[0]
	now := s.now()
	good, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	other, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	p224, err := ecdsa.GenerateKey(elliptic.P224(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	rsa1024, err := rsa.GenerateKey(rand.Reader, 1024)
	if err != nil {
		t.Fatal(err)
	}
	edPub, _, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	csrFor := func(k crypto.Signer) *x509.CertificateRequest {
		der, err := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{Subject: pkix.Name{CommonName: "x"}}, k)
		if err != nil {
			t.Fatal(err)
		}
		csr, err := x509.ParseCertificateRequest(der)
		if err != nil {
			t.Fatal(err)
		}
		return csr
	}
	goodCSR := csrFor(good)
	nodeReq := func(mod func(r *signer.Request)) *signer.Request {
		r := &signer.Request{
			PublicKey: good.Public(),
			CSR:       goodCSR,
			Profile:   signer.ProfileNode,
			Template: &x509.Certificate{
				Subject:               ca.NodeSubject(clusterID, nodeID, ca.RoleWorker),
				DNSNames:              ca.NodeDNSNames(nodeID, ca.RoleWorker),
				NotBefore:             later(now.Add(-time.Hour), issuer.NotBefore).Truncate(time.Second).Add(time.Second),
				NotAfter:              now.Add(24 * time.Hour).Truncate(time.Second),
				KeyUsage:              x509.KeyUsageDigitalSignature | x509.KeyUsageKeyEncipherment,
				ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
				BasicConstraintsValid: true,
			},
		}
		if mod != nil {
			mod(r)
		}
		return r
	}
	// The unmodified request is accepted, so each refusal below is due to
	// its one change.
	if _, err := sg.Sign(context.Background(), nodeReq(nil)); err != nil {
		t.Fatalf("the baseline request was refused: %v", err)
	}
	tests := []struct {
		name string
		mod  func(r *signer.Request)
	}{
		{"CATrueWithNodeProfile", func(r *signer.Request) { r.Template.IsCA = true }},
		{"CAProfileWithoutCATrue", func(r *signer.Request) { r.Profile = signer.ProfileCA }},
		{"UnknownProfile", func(r *signer.Request) { r.Profile = "server" }},
		{"EmptyProfile", func(r *signer.Request) { r.Profile = "" }},
		{"EmptySubject", func(r *signer.Request) { r.Template.Subject = pkix.Name{} }},
		{"NilTemplate", func(r *signer.Request) { r.Template = nil }},
		{"NoPublicKey", func(r *signer.Request) { r.PublicKey = nil; r.CSR = nil }},
		{"Ed25519Key", func(r *signer.Request) { r.PublicKey = edPub; r.CSR = nil }},
		{"RSA1024Key", func(r *signer.Request) { r.PublicKey = rsa1024.Public(); r.CSR = csrFor(rsa1024) }},
		{"P224Key", func(r *signer.Request) { r.PublicKey = p224.Public(); r.CSR = nil }},
		{"CSRKeyDiffers", func(r *signer.Request) { r.CSR = csrFor(other) }},
		{"NotAfterPastCA", func(r *signer.Request) { r.Template.NotAfter = issuer.NotAfter.Add(time.Hour) }},
		{"NotBeforeBeforeCA", func(r *signer.Request) { r.Template.NotBefore = issuer.NotBefore.Add(-time.Hour) }},
		{"NotBeforeAfterNotAfter", func(r *signer.Request) { r.Template.NotBefore = r.Template.NotAfter.Add(time.Second) }},
		{"ZeroLifetime", func(r *signer.Request) { r.Template.NotBefore = r.Template.NotAfter }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cert, err := sg.Sign(context.Background(), nodeReq(tt.mod))
			if err == nil {
				t.Fatalf("Sign accepted the request and issued serial %x", cert.SerialNumber)
			}
			if !errors.Is(err, signer.ErrInvalidRequest) {
				t.Errorf("error %q does not match signer.ErrInvalidRequest", err)
			}
		})
	}
	if signer.CapabilitiesOf(sg).NeedsCSR {
		t.Run("MissingCSR", func(t *testing.T) {
			if _, err := sg.Sign(context.Background(), nodeReq(func(r *signer.Request) { r.CSR = nil })); err == nil {
				t.Fatal("a backend that needs a CSR signed without one")
			}
		})
	}
}

func (s *suite) testConcurrent(t *testing.T) {
	sg := s.newSigner(t)
	const n = 16
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	csr, err := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{}, key)
	if err != nil {
		t.Fatal(err)
	}
	req, err := ca.NodeCertificateRequest(ca.NodeRequest{
		ClusterID: clusterID, NodeID: nodeID, Role: ca.RoleWorker, CSR: csr, Expiry: time.Hour, Now: s.now(),
	}, sg.Chain()[0])
	if err != nil {
		t.Fatal(err)
	}
	var (
		wg      sync.WaitGroup
		mu      sync.Mutex
		serials = map[string]bool{}
		errs    []error
	)
	for i := 0; i < n; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			cert, err := sg.Sign(context.Background(), req)
			mu.Lock()
			defer mu.Unlock()
			if err != nil {
				errs = append(errs, err)
				return
			}
			serials[cert.SerialNumber.String()] = true
		}()
	}
	wg.Wait()
	for _, err := range errs {
		t.Error(err)
	}
	if len(serials) != n-len(errs) {
		t.Errorf("%d certificates share serials: %d unique", n-len(errs), len(serials))
	}
}

func (s *suite) testCanceled(t *testing.T) {
	sg := s.newSigner(t)
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	csr, err := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{}, key)
	if err != nil {
		t.Fatal(err)
	}
	req, err := ca.NodeCertificateRequest(ca.NodeRequest{
		ClusterID: clusterID, NodeID: nodeID, Role: ca.RoleWorker, CSR: csr, Expiry: time.Hour, Now: s.now(),
	}, sg.Chain()[0])
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := sg.Sign(ctx, req); !errors.Is(err, context.Canceled) {
		t.Errorf("Sign with a canceled context: error %v, want one matching context.Canceled", err)
	}
}
