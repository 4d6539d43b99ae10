package signer

import (
	"bytes"
	"context"
	"crypto"
	"crypto/rand"
	"crypto/sha1"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"math/big"
)

// SerialBytes is the length of the random serial numbers the local issuer
// draws, as swarm's CA does.
const SerialBytes = 20

// LocalConfig configures NewLocalIssuer.
type LocalConfig struct {
	// Key is the CA's private key. Its public half must match Chain[0].
	Key crypto.Signer
	// Chain is the chain the issuer signs under: Chain[0] is the CA
	// certificate of Key, then any intermediates up to the root.
	Chain []*x509.Certificate
	// Capabilities are what the backend that holds Key can do; the local
	// issuer adds CreatesCSR and SignsPublicKey, which holding a key gives.
	Capabilities Capabilities
	// Description says where the key lives, for `chancery info`.
	Description Description
	// Rand is the source of serial numbers and signature randomness. Nil
	// means crypto/rand.
	Rand io.Reader
}

// LocalIssuer turns a crypto.Signer and its CA certificate into a Signer. It
// is the only code in chancery that builds certificates from a key: the file
// and PKCS#11 backends, and any future backend that holds a key, go through
// it.
type LocalIssuer struct {
	key   crypto.Signer
	chain []*x509.Certificate
	caps  Capabilities
	desc  Description
	rand  io.Reader
}

var (
	_ Signer             = (*LocalIssuer)(nil)
	_ CapabilityReporter = (*LocalIssuer)(nil)
	_ CSRCreator         = (*LocalIssuer)(nil)
	_ Describer          = (*LocalIssuer)(nil)
)

// NewLocalIssuer checks that cfg.Key matches cfg.Chain[0] and that
// cfg.Chain[0] is a CA, and returns the issuer.
func NewLocalIssuer(cfg LocalConfig) (*LocalIssuer, error) {
	if cfg.Key == nil {
		return nil, errors.New("signer: local issuer needs a key")
	}
	if len(cfg.Chain) == 0 || cfg.Chain[0] == nil {
		return nil, errors.New("signer: local issuer needs a CA certificate")
	}
	ca := cfg.Chain[0]
	if !ca.IsCA || !ca.BasicConstraintsValid {
		return nil, fmt.Errorf("signer: certificate %q is not a CA (CA:TRUE is missing)", ca.Subject)
	}
	if !SamePublicKey(cfg.Key.Public(), ca.PublicKey) {
		return nil, fmt.Errorf("signer: the key does not match the public key of CA certificate %q", ca.Subject)
	}
	r := cfg.Rand
	if r == nil {
		r = rand.Reader
	}
	caps := cfg.Capabilities
	caps.CreatesCSR = true
	caps.SignsPublicKey = true
	caps.NeedsCSR = false
	return &LocalIssuer{
		key:   cfg.Key,
		chain: append([]*x509.Certificate(nil), cfg.Chain...),
		caps:  caps,
		desc:  cfg.Description,
		rand:  r,
	}, nil
}

// Chain returns the chain the issuer signs under.
func (l *LocalIssuer) Chain() []*x509.Certificate { return l.chain }

// Capabilities returns what the issuer and its backend can do.
func (l *LocalIssuer) Capabilities() Capabilities { return l.caps }

// Describe says where the issuer's key lives.
func (l *LocalIssuer) Describe() Description { return l.desc }

// Sign checks req with CheckRequest and issues the certificate: a serial of
// SerialBytes random bytes, the template's subject, names, validity, basic
// constraints and usages, the issuer's subject key ID as authority key ID,
// and the signature algorithm that the CA key implies.
func (l *LocalIssuer) Sign(ctx context.Context, req *Request) (*x509.Certificate, error) {
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("signer: %w", err)
	}
	ca := l.chain[0]
	if err := CheckRequest(req, ca); err != nil {
		return nil, err
	}
	serial, err := RandomSerial(l.rand)
	if err != nil {
		return nil, err
	}
	t := req.Template
	tmpl := &x509.Certificate{
		SerialNumber:          serial,
		RawSubject:            t.RawSubject,
		Subject:               t.Subject,
		DNSNames:              t.DNSNames,
		IPAddresses:           t.IPAddresses,
		NotBefore:             t.NotBefore,
		NotAfter:              t.NotAfter,
		KeyUsage:              t.KeyUsage,
		ExtKeyUsage:           t.ExtKeyUsage,
		BasicConstraintsValid: true,
		IsCA:                  t.IsCA,
		MaxPathLen:            t.MaxPathLen,
		MaxPathLenZero:        t.MaxPathLenZero,
	}
	if t.IsCA {
		// A cross-signed certificate keeps the subject key ID of the root it
		// stands for, so that path builders match it to the same key.
		tmpl.SubjectKeyId = t.SubjectKeyId
	} else {
		tmpl.MaxPathLen = -1
		tmpl.MaxPathLenZero = false
		// Leaves carry the method-1 subject key ID that swarm's CA (CFSSL's
		// signer) and Vault's PKI engine give every certificate.
		if tmpl.SubjectKeyId, err = SubjectKeyID(req.PublicKey); err != nil {
			return nil, err
		}
	}
	// Go computes a subject key ID itself for CA certificates that have
	// none.
	der, err := x509.CreateCertificate(l.rand, tmpl, ca, req.PublicKey, WithContext(ctx, l.key))
	if err != nil {
		return nil, fmt.Errorf("signer: failed to sign certificate for %q: %w", t.Subject, err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, fmt.Errorf("signer: failed to parse the certificate just signed: %w", err)
	}
	if !bytes.Equal(cert.RawIssuer, ca.RawSubject) {
		return nil, errors.New("signer: the signed certificate's issuer differs from the CA's subject")
	}
	return cert, nil
}

// CreateCSR returns a DER CSR for the CA's own public key, signed by its key,
// with template's subject and extensions.
func (l *LocalIssuer) CreateCSR(ctx context.Context, template *x509.CertificateRequest) ([]byte, error) {
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("signer: %w", err)
	}
	if template == nil {
		return nil, errors.New("signer: CSR template is missing")
	}
	der, err := x509.CreateCertificateRequest(l.rand, template, WithContext(ctx, l.key))
	if err != nil {
		return nil, fmt.Errorf("signer: failed to create CSR for the CA key: %w", err)
	}
	return der, nil
}

// SerialHex writes a serial number as chancery records it everywhere (the
// store, the audit log, logs): the lower-case hex of its big-endian bytes.
func SerialHex(serial *big.Int) string { return hex.EncodeToString(serial.Bytes()) }

// RandomSerial draws a positive serial number of SerialBytes random bytes
// from r. Its top bit is cleared so that the DER encoding stays within the
// 20 octets RFC 5280 allows.
func RandomSerial(r io.Reader) (*big.Int, error) {
	var b [SerialBytes]byte
	for {
		if _, err := io.ReadFull(r, b[:]); err != nil {
			return nil, fmt.Errorf("signer: failed to draw a serial number: %w", err)
		}
		b[0] &= 0x7f
		if b[0] != 0 {
			// A leading zero byte would make the serial shorter than
			// SerialBytes; draw again (probability 1/128).
			return new(big.Int).SetBytes(b[:]), nil
		}
	}
}

// SelfSign builds a self-signed CA certificate for key from template, as a
// new root is made. The template must ask for CA:TRUE; its subject, validity,
// key usage and path length are used, the serial is drawn with RandomSerial.
// r nil means crypto/rand.
func SelfSign(r io.Reader, key crypto.Signer, template *x509.Certificate) (*x509.Certificate, error) {
	if key == nil || template == nil {
		return nil, errors.New("signer: self-signing needs a key and a template")
	}
	if !template.IsCA || !template.BasicConstraintsValid {
		return nil, errors.New("signer: a self-signed root must be a CA (CA:TRUE)")
	}
	if err := CheckPublicKey(key.Public()); err != nil {
		return nil, fmt.Errorf("signer: root key: %w", err)
	}
	if r == nil {
		r = rand.Reader
	}
	serial, err := RandomSerial(r)
	if err != nil {
		return nil, err
	}
	tmpl := *template
	tmpl.SerialNumber = serial
	if len(tmpl.SubjectKeyId) == 0 {
		if tmpl.SubjectKeyId, err = SubjectKeyID(key.Public()); err != nil {
			return nil, err
		}
	}
	der, err := x509.CreateCertificate(r, &tmpl, &tmpl, key.Public(), key)
	if err != nil {
		return nil, fmt.Errorf("signer: failed to self-sign %q: %w", template.Subject, err)
	}
	return x509.ParseCertificate(der)
}

// SubjectKeyID returns the key identifier of pub by RFC 5280's method 1: the
// SHA-1 of the subjectPublicKey bit string. It is what swarm's roots and
// CFSSL use (Go itself now uses a truncated SHA-256), so that chancery's
// roots can be cross-signed by CAs that compute the identifier themselves.
// It is an identifier, not a security property.
func SubjectKeyID(pub crypto.PublicKey) ([]byte, error) {
	der, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		return nil, fmt.Errorf("signer: %w", err)
	}
	var spki struct {
		Algorithm pkix.AlgorithmIdentifier
		PublicKey asn1.BitString
	}
	if _, err := asn1.Unmarshal(der, &spki); err != nil {
		return nil, fmt.Errorf("signer: %w", err)
	}
	sum := sha1.Sum(spki.PublicKey.Bytes)
	return sum[:], nil
}
