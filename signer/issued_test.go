package signer_test

import (
	"context"
	"crypto"
	"crypto/rand"
	"crypto/x509"
	"errors"
	"slices"
	"testing"
	"time"

	"github.com/chancery-pki/chancery/signer"
)

// TestCheckIssuedTolerances has a CA return a node certificate that differs
// from the local issuer's in one way each, and checks which tolerance
// allows it: each difference is refused without its tolerance and accepted
// with it.
func TestCheckIssuedTolerances(t *testing.T) {
	key, root := newRoot(t)
	li, err := signer.NewLocalIssuer(signer.LocalConfig{Key: key, Chain: []*x509.Certificate{root}})
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name  string
		edit  func(c *x509.Certificate)
		field string
		tol   signer.Tolerance
		now   time.Time
	}{
		{"SortedDNSNames", func(c *x509.Certificate) { slices.Sort(c.DNSNames) }, "dns names", signer.Tolerance{SortedDNSNames: true}, testNow},
		{"ExtKeyUsageOrder", func(c *x509.Certificate) { slices.Reverse(c.ExtKeyUsage) }, "extended key usage", signer.Tolerance{AnyExtKeyUsageOrder: true}, testNow},
		{"NotBeforeFromTheCAClock", func(c *x509.Certificate) { c.NotBefore = c.NotBefore.Add(2 * time.Minute) }, "validity", signer.Tolerance{NotBeforeSkew: 5 * time.Minute}, testNow},
		{"ValidityFromTheProfile", func(c *x509.Certificate) { c.NotAfter = c.NotAfter.Add(-24 * time.Hour) }, "validity", signer.Tolerance{ValidityFromCA: true}, testNow},
		{"SignatureAlgorithm", func(c *x509.Certificate) { c.SignatureAlgorithm = x509.ECDSAWithSHA384 }, "signature algorithm", signer.Tolerance{AnySignatureAlgorithm: true}, testNow},
	} {
		t.Run(tc.name, func(t *testing.T) {
			req := nodeRequest(t, root)
			cert := reissued(t, li, key, req, tc.edit)
			err := signer.CheckIssued(cert, req, root, signer.IssuedCheck{Now: tc.now})
			var ie *signer.IssuedError
			if !errors.As(err, &ie) || ie.Field != tc.field || !errors.Is(err, signer.ErrIssuedMismatch) {
				t.Fatalf("without the tolerance: %v, want a difference in the %s", err, tc.field)
			}
			if err := signer.CheckIssued(cert, req, root, signer.IssuedCheck{Tolerance: tc.tol, Now: tc.now}); err != nil {
				t.Errorf("with the tolerance: %v", err)
			}
		})
	}
}

// TestCheckIssuedValidityFromCA checks what a CA that sets the validity
// itself must still meet: valid now, within the skew, and not past the
// issuer.
func TestCheckIssuedValidityFromCA(t *testing.T) {
	key, root := newRoot(t)
	li, err := signer.NewLocalIssuer(signer.LocalConfig{Key: key, Chain: []*x509.Certificate{root}})
	if err != nil {
		t.Fatal(err)
	}
	tol := signer.Tolerance{ValidityFromCA: true, NotBeforeSkew: 5 * time.Minute}
	for _, tc := range []struct {
		name string
		edit func(c *x509.Certificate)
		now  time.Time
		ok   bool
	}{
		{"ValidNow", func(*x509.Certificate) {}, testNow, true},
		{"StartsWithinTheSkew", func(c *x509.Certificate) { c.NotBefore = testNow.Add(4 * time.Minute) }, testNow, true},
		{"StartsLater", func(c *x509.Certificate) { c.NotBefore = testNow.Add(time.Hour) }, testNow, false},
		{"Expired", func(c *x509.Certificate) { c.NotAfter = testNow.Add(-time.Minute) }, testNow, false},
		{"OutlivesTheIssuer", func(c *x509.Certificate) { c.NotAfter = root.NotAfter.Add(time.Hour) }, testNow, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			req := nodeRequest(t, root)
			cert := reissued(t, li, key, req, tc.edit)
			err := signer.CheckIssued(cert, req, root, signer.IssuedCheck{Tolerance: tol, Now: tc.now})
			if tc.ok != (err == nil) {
				t.Errorf("CheckIssued = %v, want ok=%v", err, tc.ok)
			}
			var ie *signer.IssuedError
			if err != nil && (!errors.As(err, &ie) || ie.Field != "validity") {
				t.Errorf("error %v does not name the validity", err)
			}
		})
	}
}

// TestCheckIssuedSignature checks that a certificate of the issuer's name
// and key ID but signed by another key is refused where the signature is
// verified, and that the local issuer's own certificates pass untouched.
func TestCheckIssuedSignature(t *testing.T) {
	key, root := newRoot(t)
	li, err := signer.NewLocalIssuer(signer.LocalConfig{Key: key, Chain: []*x509.Certificate{root}})
	if err != nil {
		t.Fatal(err)
	}
	req := nodeRequest(t, root)
	good, err := li.Sign(context.Background(), req)
	if err != nil {
		t.Fatal(err)
	}
	if err := signer.CheckIssued(good, req, root, signer.IssuedCheck{Tolerance: signer.Tolerance{VerifySignature: true}}); err != nil {
		t.Fatalf("the local issuer's certificate: %v", err)
	}
	// An impostor CA with the root's name and key ID, and another key.
	otherKey := newP256(t)
	tmpl := *root
	tmpl.PublicKey = nil
	impostor, err := signer.SelfSign(nil, otherKey, &tmpl)
	if err != nil {
		t.Fatal(err)
	}
	der, err := x509.CreateCertificate(rand.Reader, good, impostor, good.PublicKey, otherKey)
	if err != nil {
		t.Fatal(err)
	}
	forged, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	if err := signer.CheckIssued(forged, req, root, signer.IssuedCheck{}); err != nil {
		t.Fatalf("without verifying the signature, the forgery should pass the name and key ID checks: %v", err)
	}
	err = signer.CheckIssued(forged, req, root, signer.IssuedCheck{Tolerance: signer.Tolerance{VerifySignature: true}})
	var ie *signer.IssuedError
	if !errors.As(err, &ie) || ie.Field != "signature" {
		t.Fatalf("a forged signature: %v, want a difference in the signature", err)
	}
}

// reissued is the local issuer's certificate for req, edited and signed
// again with key under li's CA certificate.
func reissued(t *testing.T, li *signer.LocalIssuer, key crypto.Signer, req *signer.Request, edit func(*x509.Certificate)) *x509.Certificate {
	t.Helper()
	c, err := li.Sign(context.Background(), req)
	if err != nil {
		t.Fatal(err)
	}
	edit(c)
	der, err := x509.CreateCertificate(rand.Reader, c, li.Chain()[0], c.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	out, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return out
}
