package ca

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"math/big"
	"strings"
	"testing"
	"time"

	"github.com/chancery-pki/chancery/signer"
)

// chainNow is the time chain tests verify at.
var chainNow = time.Date(2025, 6, 1, 0, 0, 0, 0, time.UTC)

type chainTestCert struct {
	cert *x509.Certificate
	key  *ecdsa.PrivateKey
}

type chainCertOpts struct {
	subject   pkix.Name
	isCA      bool
	notAfter  time.Time         // zero: chainNow + 1 year
	notBefore time.Time         // zero: chainNow - 1 hour
	key       *ecdsa.PrivateKey // nil: a new key
}

// newChainCert issues a P-256 certificate signed by parent, or self-signed
// if parent is nil.
func newChainCert(t *testing.T, parent *chainTestCert, o chainCertOpts) *chainTestCert {
	t.Helper()
	key := o.key
	if key == nil {
		var err error
		if key, err = ecdsa.GenerateKey(elliptic.P256(), rand.Reader); err != nil {
			t.Fatal(err)
		}
	}
	if o.notBefore.IsZero() {
		o.notBefore = chainNow.Add(-time.Hour)
	}
	if o.notAfter.IsZero() {
		o.notAfter = chainNow.AddDate(1, 0, 0)
	}
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 128))
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          serial,
		Subject:               o.subject,
		NotBefore:             o.notBefore,
		NotAfter:              o.notAfter,
		BasicConstraintsValid: true,
		IsCA:                  o.isCA,
		KeyUsage:              x509.KeyUsageDigitalSignature,
	}
	if o.isCA {
		tmpl.KeyUsage = x509.KeyUsageCertSign | x509.KeyUsageCRLSign
	} else {
		tmpl.ExtKeyUsage = []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth}
	}
	parentCert, parentKey := tmpl, key
	if parent != nil {
		parentCert, parentKey = parent.cert, parent.key
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, parentCert, key.Public(), parentKey)
	if err != nil {
		t.Fatal(err)
	}
	c, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return &chainTestCert{cert: c, key: key}
}

func certs(cs ...*chainTestCert) []*x509.Certificate {
	out := make([]*x509.Certificate, len(cs))
	for i, c := range cs {
		out[i] = c.cert
	}
	return out
}

func TestVerifyChain(t *testing.T) {
	caName := pkix.Name{CommonName: "swarm-ca"}
	leafName := pkix.Name{CommonName: "node1", OrganizationalUnit: []string{"swarm-worker"}, Organization: []string{"cluster1"}}
	root := newChainCert(t, nil, chainCertOpts{subject: caName, isCA: true})
	otherRoot := newChainCert(t, nil, chainCertOpts{subject: caName, isCA: true})
	inter := newChainCert(t, root, chainCertOpts{subject: pkix.Name{CommonName: "intermediate"}, isCA: true})
	leaf := newChainCert(t, inter, chainCertOpts{subject: leafName})
	direct := newChainCert(t, root, chainCertOpts{subject: leafName})
	expired := newChainCert(t, inter, chainCertOpts{subject: leafName, notAfter: chainNow.Add(-time.Minute)})
	early := newChainCert(t, inter, chainCertOpts{subject: leafName, notBefore: chainNow.Add(time.Minute)})
	expiredInter := newChainCert(t, root, chainCertOpts{subject: pkix.Name{CommonName: "old-intermediate"}, isCA: true,
		notBefore: chainNow.AddDate(-2, 0, 0), notAfter: chainNow.AddDate(-1, 0, 0)})
	leafOfExpiredInter := newChainCert(t, expiredInter, chainCertOpts{subject: leafName})
	// An impostor with the intermediate's name but another key.
	impostor := newChainCert(t, root, chainCertOpts{subject: inter.cert.Subject, isCA: true})
	// Root rotation: a leaf from the new root, with the new root cross-signed
	// by the old one, validates for nodes trusting either root.
	newRoot := newChainCert(t, nil, chainCertOpts{subject: caName, isCA: true})
	cross := newChainCert(t, root, chainCertOpts{subject: caName, isCA: true, key: newRoot.key})
	rotated := newChainCert(t, newRoot, chainCertOpts{subject: leafName})

	tests := []struct {
		name   string
		chain  []*x509.Certificate
		roots  []*x509.Certificate
		reason ChainErrorReason
		index  int
		msg    string // substring of the message; "" means success
	}{
		{"leaf and intermediate", certs(leaf, inter), certs(root), 0, 0, ""},
		{"root appended", certs(leaf, inter, root), certs(root), 0, 0, ""},
		{"leaf from root", certs(direct), certs(root), 0, 0, ""},
		{"several roots", certs(leaf, inter), certs(otherRoot, root), 0, 0, ""},
		{"cross-signed, old root", certs(rotated, cross), certs(root), 0, 0, ""},
		{"cross-signed, new root", certs(rotated, cross), certs(newRoot), 0, 0, ""},
		{"empty", nil, certs(root), EmptyChain, -1, "ca: empty chain"},
		{"missing intermediate", certs(leaf, root), certs(root), NotAChain, 0,
			"ca: certificate 0 (CN=node1,OU=swarm-worker,O=cluster1) is not signed by certificate 1 (CN=swarm-ca): not a chain"},
		{"impostor intermediate", certs(leaf, impostor), certs(root), NotAChain, 0,
			"is not signed by certificate 1 (CN=intermediate): not a chain: "},
		{"reversed", certs(inter, leaf), certs(root), NotAChain, 0, "not a chain"},
		{"not a chain before expired", certs(expired, root), certs(root), NotAChain, 0, "not a chain"},
		{"expired leaf", certs(expired, inter), certs(root), Expired, 0,
			"ca: certificate 0 (CN=node1,OU=swarm-worker,O=cluster1) has expired: not after 2025-05-31T23:59:00Z, now 2025-06-01T00:00:00Z"},
		{"expired intermediate", certs(leafOfExpiredInter, expiredInter), certs(root), Expired, 1,
			"ca: certificate 1 (CN=old-intermediate) has expired: not after 2024-06-01T00:00:00Z"},
		{"not yet valid", certs(early, inter), certs(root), NotYetValid, 0,
			"ca: certificate 0 (CN=node1,OU=swarm-worker,O=cluster1) is not yet valid: not before 2025-06-01T00:01:00Z, now 2025-06-01T00:00:00Z"},
		{"other root", certs(leaf, inter), certs(otherRoot), UnknownIssuer, 0,
			"ca: certificate 0 (CN=node1,OU=swarm-worker,O=cluster1) was not issued by a trusted root: x509: "},
		{"no roots", certs(leaf, inter), nil, UnknownIssuer, 0, "was not issued by a trusted root"},
		{"self-signed leaf", certs(otherRoot), certs(root), UnknownIssuer, 0, "was not issued by a trusted root"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := VerifyChain(tt.chain, tt.roots, chainNow)
			if tt.msg == "" {
				if err != nil {
					t.Fatalf("VerifyChain: %v", err)
				}
				return
			}
			var ce *ChainError
			if !errors.As(err, &ce) {
				t.Fatalf("err = %v, want a *ChainError", err)
			}
			if ce.Reason != tt.reason || ce.Index != tt.index {
				t.Errorf("reason, index = %v, %d, want %v, %d", ce.Reason, ce.Index, tt.reason, tt.index)
			}
			if !strings.Contains(err.Error(), tt.msg) {
				t.Errorf("message %q does not contain %q", err, tt.msg)
			}
			if tt.reason == UnknownIssuer {
				var ua x509.UnknownAuthorityError
				if !errors.As(err, &ua) {
					t.Errorf("UnknownIssuer does not wrap x509.UnknownAuthorityError: %#v", ce.Err)
				}
			}
		})
	}
}

func TestChainErrorReasonString(t *testing.T) {
	want := map[ChainErrorReason]string{
		Expired: "expired", NotYetValid: "not yet valid", UnknownIssuer: "unknown issuer",
		NotAChain: "not a chain", EmptyChain: "empty chain", 42: "ChainErrorReason(42)",
	}
	for r, s := range want {
		if r.String() != s {
			t.Errorf("%d.String() = %q, want %q", int(r), r.String(), s)
		}
	}
}

func TestCertificatesPEM(t *testing.T) {
	root := newChainCert(t, nil, chainCertOpts{subject: pkix.Name{CommonName: "swarm-ca"}, isCA: true})
	leaf := newChainCert(t, root, chainCertOpts{subject: pkix.Name{CommonName: "node"}})
	one := EncodeCertificatesPEM(root.cert)
	two := EncodeCertificatesPEM(leaf.cert, root.cert)
	if !bytes.Equal(two, append(EncodeCertificatesPEM(leaf.cert), one...)) {
		t.Fatal("EncodeCertificatesPEM does not concatenate")
	}
	keyPEM := pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: []byte{1, 2, 3}})
	badDER := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: []byte{1, 2, 3}})
	broken := []byte("-----BEGIN CERTIFICATE-----\n!!!!\n-----END CERTIFICATE-----\n")
	cat := func(parts ...[]byte) []byte { return bytes.Join(parts, nil) }

	tests := []struct {
		name string
		data []byte
		want int    // number of certificates
		err  string // substring of the error
	}{
		{"one", one, 1, ""},
		{"two", two, 2, ""},
		{"white space", cat([]byte("\n \r\n\t"), two, []byte("\n\n  \n")), 2, ""},
		{"no trailing newline", bytes.TrimSuffix(one, []byte("\n")), 1, ""},
		{"empty", nil, 0, "ca: no certificate in PEM data"},
		{"blank", []byte(" \n"), 0, "ca: no certificate in PEM data"},
		{"not PEM", []byte("hello"), 0, "ca: no certificate in PEM data"},
		{"der", root.cert.Raw, 0, "ca: no certificate in PEM data"},
		{"trailing garbage", cat(two, []byte("garbage")), 0, "ca: unexpected data after certificate 1 in PEM data"},
		{"garbage between", cat(one, []byte("x\n"), one), 0, "ca: unexpected data after certificate 0 in PEM data"},
		{"leading garbage", cat([]byte("x\n"), one), 0, "ca: unexpected data before the first PEM block"},
		{"key block", cat(one, keyPEM), 0, `ca: unexpected PEM block "EC PRIVATE KEY" after certificate 0, want CERTIFICATE`},
		{"bad DER", cat(one, badDER), 0, "ca: certificate 1 in PEM data: x509: "},
		{"malformed block", cat(broken, one), 0, "ca: malformed PEM block before the first PEM block"},
		{"truncated", one[:len(one)-10], 0, "ca: malformed PEM block"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ParseCertificatesPEM(tt.data)
			if tt.err != "" {
				if err == nil || !strings.Contains(err.Error(), tt.err) {
					t.Fatalf("err = %v, want one containing %q", err, tt.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if len(got) != tt.want {
				t.Fatalf("got %d certificates, want %d", len(got), tt.want)
			}
			if want := map[int][]byte{1: one, 2: two}[tt.want]; !bytes.Equal(EncodeCertificatesPEM(got...), want) {
				t.Error("parse and encode do not round-trip")
			}
		})
	}
}

func FuzzParseCertificatesPEM(f *testing.F) {
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	root, _ := signer.SelfSign(rand.Reader, key, NewRootTemplate("", time.Now()))
	good := EncodeCertificatesPEM(root)
	f.Add(good)
	f.Add(append(append([]byte{}, good...), good...))
	f.Add([]byte("-----BEGIN CERTIFICATE-----\nMAA=\n-----END CERTIFICATE-----\n"))
	f.Add([]byte("junk" + string(good)))
	f.Fuzz(func(t *testing.T, data []byte) {
		certs, err := ParseCertificatesPEM(data)
		if err != nil {
			return
		}
		if len(certs) == 0 {
			t.Fatal("no error and no certificate")
		}
		// What parses re-encodes to certificates that parse the same.
		again, err := ParseCertificatesPEM(EncodeCertificatesPEM(certs...))
		if err != nil || len(again) != len(certs) {
			t.Fatalf("re-encoded certificates do not parse back: %v", err)
		}
	})
}
