package signer_test

import (
	"bytes"
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha1"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"errors"
	"io"
	"math/big"
	"strings"
	"testing"
	"time"

	"github.com/chancery-pki/chancery/ca"
	"github.com/chancery-pki/chancery/signer"
)

const (
	testClusterID = "4h5log5xpip966c6c0000z2cy"
	testNodeID    = "kgwuvt1oqhqjsht0qcsq67rvu"
)

// testNow is a whole second, so truncation in the templates changes nothing.
var testNow = time.Date(2025, 6, 1, 12, 0, 0, 0, time.UTC)

func newP256(t testing.TB) *ecdsa.PrivateKey {
	t.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

// newRoot makes a P-256 root as a new cluster's root is made.
func newRoot(t testing.TB) (*ecdsa.PrivateKey, *x509.Certificate) {
	t.Helper()
	key := newP256(t)
	root, err := signer.SelfSign(nil, key, ca.NewRootTemplate("", testNow))
	if err != nil {
		t.Fatal(err)
	}
	return key, root
}

func newIssuer(t testing.TB) *signer.LocalIssuer {
	t.Helper()
	key, root := newRoot(t)
	iss, err := signer.NewLocalIssuer(signer.LocalConfig{Key: key, Chain: []*x509.Certificate{root}})
	if err != nil {
		t.Fatal(err)
	}
	return iss
}

// nodeRequest builds a node certificate request for a fresh P-256 key under
// issuer, with ca.NodeCertificateRequest.
func nodeRequest(t testing.TB, issuer *x509.Certificate) *signer.Request {
	t.Helper()
	key := newP256(t)
	csr, err := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{}, key)
	if err != nil {
		t.Fatal(err)
	}
	req, err := ca.NodeCertificateRequest(ca.NodeRequest{
		ClusterID: testClusterID, NodeID: testNodeID, Role: ca.RoleWorker,
		CSR: csr, Expiry: ca.DefaultCertExpiry, Now: testNow,
	}, issuer)
	if err != nil {
		t.Fatal(err)
	}
	return req
}

func TestNewLocalIssuerRefuses(t *testing.T) {
	key, root := newRoot(t)
	otherKey := newP256(t)

	leafTmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "not-a-ca"},
		NotBefore:             testNow.Add(-time.Hour),
		NotAfter:              testNow.Add(time.Hour),
		BasicConstraintsValid: true,
		IsCA:                  false,
	}
	leafDER, err := x509.CreateCertificate(rand.Reader, leafTmpl, leafTmpl, key.Public(), key)
	if err != nil {
		t.Fatal(err)
	}
	leaf, err := x509.ParseCertificate(leafDER)
	if err != nil {
		t.Fatal(err)
	}

	for _, tc := range []struct {
		name string
		cfg  signer.LocalConfig
		want string
	}{
		{"NilKey", signer.LocalConfig{Chain: []*x509.Certificate{root}}, "needs a key"},
		{"NoChain", signer.LocalConfig{Key: key}, "needs a CA certificate"},
		{"EmptyChain", signer.LocalConfig{Key: key, Chain: []*x509.Certificate{}}, "needs a CA certificate"},
		{"NilCertificate", signer.LocalConfig{Key: key, Chain: []*x509.Certificate{nil}}, "needs a CA certificate"},
		{"NotACA", signer.LocalConfig{Key: key, Chain: []*x509.Certificate{leaf}}, "is not a CA"},
		{"KeyMismatch", signer.LocalConfig{Key: otherKey, Chain: []*x509.Certificate{root}}, "does not match"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			iss, err := signer.NewLocalIssuer(tc.cfg)
			if err == nil {
				t.Fatalf("NewLocalIssuer succeeded (%v), want an error", iss)
			}
			if iss != nil {
				t.Errorf("NewLocalIssuer returned an issuer with its error %v", err)
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error %q does not say %q", err, tc.want)
			}
		})
	}
}

func TestNewLocalIssuerCopiesChain(t *testing.T) {
	key, root := newRoot(t)
	chain := []*x509.Certificate{root}
	iss, err := signer.NewLocalIssuer(signer.LocalConfig{Key: key, Chain: chain})
	if err != nil {
		t.Fatal(err)
	}
	chain[0] = nil
	if got := iss.Chain(); len(got) != 1 || got[0] != root {
		t.Errorf("the issuer's chain changed with the caller's slice: %v", got)
	}
}

// scriptedReader returns data, then io.EOF, and counts what was read.
type scriptedReader struct {
	data []byte
	read int
}

func (r *scriptedReader) Read(p []byte) (int, error) {
	if r.read >= len(r.data) {
		return 0, io.EOF
	}
	n := copy(p, r.data[r.read:])
	r.read += n
	return n, nil
}

// block returns SerialBytes bytes: first, then rest repeated.
func block(first, rest byte) []byte {
	b := bytes.Repeat([]byte{rest}, signer.SerialBytes)
	b[0] = first
	return b
}

func TestRandomSerialDeterministic(t *testing.T) {
	cat := func(bs ...[]byte) []byte { return bytes.Join(bs, nil) }
	for _, tc := range []struct {
		name     string
		input    []byte
		want     []byte // the serial's bytes; nil means an error is expected
		consumed int
	}{
		{"FirstDrawUsed", block(0x12, 0x34), block(0x12, 0x34), signer.SerialBytes},
		{"TopBitCleared", block(0xff, 0xaa), block(0x7f, 0xaa), signer.SerialBytes},
		{"LeadingZeroRetried", cat(block(0x00, 0x55), block(0x01, 0x66)), block(0x01, 0x66), 2 * signer.SerialBytes},
		{"TopBitOnlyRetried", cat(block(0x80, 0x55), block(0x81, 0x66)), block(0x01, 0x66), 2 * signer.SerialBytes},
		{"SeveralRetries", cat(block(0x00, 1), block(0x80, 2), block(0x00, 3), block(0x42, 4)), block(0x42, 4), 4 * signer.SerialBytes},
		{"ShortRead", block(0x12, 0x34)[:signer.SerialBytes-1], nil, signer.SerialBytes - 1},
		{"EmptyReader", nil, nil, 0},
		{"ZeroThenEOF", block(0x00, 0x55), nil, signer.SerialBytes},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := &scriptedReader{data: tc.input}
			got, err := signer.RandomSerial(r)
			if tc.want == nil {
				if err == nil {
					t.Fatalf("RandomSerial = %x, want an error", got)
				}
				if !errors.Is(err, io.EOF) && !errors.Is(err, io.ErrUnexpectedEOF) {
					t.Errorf("error %v does not wrap the reader's error", err)
				}
			} else {
				if err != nil {
					t.Fatal(err)
				}
				if !bytes.Equal(got.Bytes(), tc.want) {
					t.Errorf("serial = %x, want %x", got.Bytes(), tc.want)
				}
			}
			if r.read != tc.consumed {
				t.Errorf("read %d bytes, want %d", r.read, tc.consumed)
			}
		})
	}
}

func TestRandomSerialShape(t *testing.T) {
	seen := map[string]bool{}
	for i := 0; i < 2000; i++ {
		s, err := signer.RandomSerial(rand.Reader)
		if err != nil {
			t.Fatal(err)
		}
		if s.Sign() <= 0 {
			t.Fatalf("serial %x is not positive", s)
		}
		if n := len(s.Bytes()); n != signer.SerialBytes {
			t.Fatalf("serial %x has %d bytes, want %d", s, n, signer.SerialBytes)
		}
		if s.BitLen() > 8*signer.SerialBytes-1 {
			t.Fatalf("serial %x has its top bit set", s)
		}
		// DER encodes a positive integer with a leading 0x00 when its top
		// bit is set; a clear top bit keeps it at 20 octets.
		der, err := asn1.Marshal(s)
		if err != nil {
			t.Fatal(err)
		}
		if n := len(der) - 2; n != signer.SerialBytes {
			t.Fatalf("serial %x encodes to %d DER octets, want %d", s, n, signer.SerialBytes)
		}
		if seen[s.String()] {
			t.Fatalf("serial %x drawn twice", s)
		}
		seen[s.String()] = true
	}
}

func TestSelfSign(t *testing.T) {
	key := newP256(t)
	p224, err := ecdsa.GenerateKey(elliptic.P224(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	notCA := ca.NewRootTemplate("", testNow)
	notCA.IsCA = false
	noBC := ca.NewRootTemplate("", testNow)
	noBC.BasicConstraintsValid = false

	for _, tc := range []struct {
		name string
		key  crypto.Signer
		tmpl *x509.Certificate
		want string // "" means success
	}{
		{"OK", key, ca.NewRootTemplate("", testNow), ""},
		{"NotCA", key, notCA, "must be a CA"},
		{"NoBasicConstraints", key, noBC, "must be a CA"},
		{"P224", p224, ca.NewRootTemplate("", testNow), "unsupported ECDSA curve"},
		{"NilKey", nil, ca.NewRootTemplate("", testNow), "needs a key and a template"},
		{"NilTemplate", key, nil, "needs a key and a template"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cert, err := signer.SelfSign(nil, tc.key, tc.tmpl)
			if tc.want != "" {
				if err == nil {
					t.Fatalf("SelfSign succeeded, want an error saying %q", tc.want)
				}
				if cert != nil {
					t.Errorf("SelfSign returned a certificate with its error %v", err)
				}
				if !strings.Contains(err.Error(), tc.want) {
					t.Errorf("error %q does not say %q", err, tc.want)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if err := cert.CheckSignatureFrom(cert); err != nil {
				t.Errorf("not self-signed: %v", err)
			}
			if !cert.IsCA || !cert.BasicConstraintsValid {
				t.Errorf("CA:TRUE missing")
			}
			if n := len(cert.SerialNumber.Bytes()); n != signer.SerialBytes || cert.SerialNumber.Sign() <= 0 {
				t.Errorf("serial %x: %d bytes, want %d and positive", cert.SerialNumber, n, signer.SerialBytes)
			}
			if len(cert.SubjectKeyId) == 0 {
				t.Errorf("the root has no subject key ID")
			}
			if !cert.NotBefore.Equal(tc.tmpl.NotBefore) || !cert.NotAfter.Equal(tc.tmpl.NotAfter) {
				t.Errorf("validity [%s, %s], want the template's [%s, %s]", cert.NotBefore, cert.NotAfter, tc.tmpl.NotBefore, tc.tmpl.NotAfter)
			}
			if tc.tmpl.SerialNumber != nil {
				t.Errorf("SelfSign changed the caller's template")
			}
		})
	}
}

func TestCheckRequestRawSubject(t *testing.T) {
	iss := newIssuer(t)
	issuer := iss.Chain()[0]

	emptyRDN, err := asn1.Marshal(pkix.RDNSequence{})
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(emptyRDN, []byte{0x30, 0x00}) {
		t.Fatalf("empty RDN sequence = %x, want 3000", emptyRDN)
	}
	validRDN, err := asn1.Marshal(ca.NodeSubject(testClusterID, testNodeID, ca.RoleWorker).ToRDNSequence())
	if err != nil {
		t.Fatal(err)
	}
	trailing := append(append([]byte(nil), validRDN...), 0x00)

	for _, tc := range []struct {
		name       string
		rawSubject []byte
		subject    pkix.Name
		ok         bool
	}{
		{"EmptyRDNSequence", emptyRDN, pkix.Name{}, false},
		// RawSubject is what gets signed, so a non-empty Subject does not
		// make up for an empty RawSubject.
		{"EmptyRDNSequenceWithSubject", emptyRDN, pkix.Name{CommonName: "x"}, false},
		{"Garbage", []byte{0x04, 0x01, 0x00}, pkix.Name{CommonName: "x"}, false},
		{"TrailingData", trailing, pkix.Name{CommonName: "x"}, false},
		{"Valid", validRDN, pkix.Name{}, true},
		{"NoRawSubjectEmptySubject", nil, pkix.Name{}, false},
		{"NoRawSubjectWithSubject", nil, pkix.Name{CommonName: "x"}, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			req := nodeRequest(t, issuer)
			req.Template.Subject = tc.subject
			req.Template.RawSubject = tc.rawSubject
			err := signer.CheckRequest(req, issuer)
			if !tc.ok {
				var re *signer.RequestError
				if !errors.As(err, &re) || re.Field != "subject" {
					t.Fatalf("CheckRequest = %v, want a RequestError on the subject", err)
				}
				if !errors.Is(err, signer.ErrInvalidRequest) {
					t.Errorf("error %v does not match ErrInvalidRequest", err)
				}
				if cert, err := iss.Sign(context.Background(), req); err == nil {
					t.Errorf("Sign issued %q for a request CheckRequest refuses", cert.Subject)
				}
				return
			}
			if err != nil {
				t.Fatalf("CheckRequest: %v", err)
			}
			cert, err := iss.Sign(context.Background(), req)
			if err != nil {
				t.Fatal(err)
			}
			if tc.rawSubject != nil && !bytes.Equal(cert.RawSubject, tc.rawSubject) {
				t.Errorf("subject = %x, want the template's RawSubject %x byte for byte", cert.RawSubject, tc.rawSubject)
			}
		})
	}
}

func TestCapabilitiesString(t *testing.T) {
	for _, tc := range []struct {
		caps signer.Capabilities
		want string
	}{
		{signer.Capabilities{}, "none"},
		{signer.Capabilities{GeneratesKeys: true}, "generates-keys"},
		{signer.Capabilities{CreatesCSR: true}, "creates-csr"},
		{signer.Capabilities{SignsPublicKey: true}, "signs-public-key"},
		{signer.Capabilities{NeedsCSR: true}, "needs-csr"},
		{signer.Capabilities{GeneratesKeys: true, NeedsCSR: true}, "generates-keys,needs-csr"},
		{signer.Capabilities{GeneratesKeys: true, CreatesCSR: true, SignsPublicKey: true, NeedsCSR: true},
			"generates-keys,creates-csr,signs-public-key,needs-csr"},
	} {
		if got := tc.caps.String(); got != tc.want {
			t.Errorf("%+v.String() = %q, want %q", tc.caps, got, tc.want)
		}
	}
}

func TestLocalIssuerCapabilities(t *testing.T) {
	key, root := newRoot(t)
	for _, tc := range []struct {
		name string
		in   signer.Capabilities
		want string
	}{
		{"None", signer.Capabilities{}, "creates-csr,signs-public-key"},
		{"GeneratesKeys", signer.Capabilities{GeneratesKeys: true}, "generates-keys,creates-csr,signs-public-key"},
		// Holding the key, the local issuer never needs a CSR.
		{"NeedsCSRCleared", signer.Capabilities{NeedsCSR: true}, "creates-csr,signs-public-key"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			iss, err := signer.NewLocalIssuer(signer.LocalConfig{Key: key, Chain: []*x509.Certificate{root}, Capabilities: tc.in})
			if err != nil {
				t.Fatal(err)
			}
			if got := iss.Capabilities().String(); got != tc.want {
				t.Errorf("Capabilities() = %q, want %q", got, tc.want)
			}
			if got := signer.CapabilitiesOf(iss); got != iss.Capabilities() {
				t.Errorf("CapabilitiesOf = %+v, want %+v", got, iss.Capabilities())
			}
		})
	}
}

// bareSigner implements Signer only, not CapabilityReporter.
type bareSigner struct{ inner signer.Signer }

func (b bareSigner) Chain() []*x509.Certificate { return b.inner.Chain() }
func (b bareSigner) Sign(ctx context.Context, req *signer.Request) (*x509.Certificate, error) {
	return b.inner.Sign(ctx, req)
}

func TestCapabilitiesOfWithoutReporter(t *testing.T) {
	var s signer.Signer = bareSigner{newIssuer(t)}
	if _, ok := s.(signer.CapabilityReporter); ok {
		t.Fatal("bareSigner must not implement CapabilityReporter")
	}
	got := signer.CapabilitiesOf(s)
	if got != (signer.Capabilities{}) {
		t.Errorf("CapabilitiesOf = %+v, want none", got)
	}
	if got.String() != "none" {
		t.Errorf("String() = %q, want \"none\"", got.String())
	}
}

// BenchmarkLocalIssuerSign measures the bare local issuer: a P-256 root and
// one node certificate request, prepared once; the loop only signs.
func BenchmarkLocalIssuerSign(b *testing.B) {
	iss := newIssuer(b)
	req := nodeRequest(b, iss.Chain()[0])
	ctx := context.Background()
	if _, err := iss.Sign(ctx, req); err != nil {
		b.Fatal(err)
	}

	b.Run("serial", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, err := iss.Sign(ctx, req); err != nil {
				b.Fatal(err)
			}
		}
		b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "certs/s")
	})
	b.Run("parallel", func(b *testing.B) {
		b.ReportAllocs()
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				if _, err := iss.Sign(ctx, req); err != nil {
					b.Error(err)
					return
				}
			}
		})
		b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "certs/s")
	})
}

// A new root's subject key ID is RFC 5280's method 1 (SHA-1 of the key bits),
// as swarm's and CFSSL's are, and Go's own cross-signing keeps it.
func TestSelfSignSubjectKeyID(t *testing.T) {
	key := newP256(t)
	root, err := signer.SelfSign(rand.Reader, key, ca.NewRootTemplate("", time.Now()))
	if err != nil {
		t.Fatal(err)
	}
	ek, err := key.PublicKey.ECDH() // its Bytes are the uncompressed point: the subjectPublicKey bits
	if err != nil {
		t.Fatal(err)
	}
	want := sha1.Sum(ek.Bytes())
	if !bytes.Equal(root.SubjectKeyId, want[:]) {
		t.Errorf("subject key ID %x, want SHA-1 of the key %x", root.SubjectKeyId, want)
	}
}
