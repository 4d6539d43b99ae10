package ca

import (
	"bytes"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"strconv"
	"time"
)

// ChainErrorReason is why VerifyChain refused a chain.
type ChainErrorReason int

// The reasons VerifyChain refuses a chain.
const (
	// Expired: a certificate's NotAfter is before now.
	Expired ChainErrorReason = iota
	// NotYetValid: a certificate's NotBefore is after now.
	NotYetValid
	// UnknownIssuer: the chain does not lead to one of the trusted roots.
	UnknownIssuer
	// NotAChain: a certificate is not signed by the one after it.
	NotAChain
	// EmptyChain: there is no certificate at all.
	EmptyChain
)

// String returns a short lower-case name for the reason.
func (r ChainErrorReason) String() string {
	switch r {
	case Expired:
		return "expired"
	case NotYetValid:
		return "not yet valid"
	case UnknownIssuer:
		return "unknown issuer"
	case NotAChain:
		return "not a chain"
	case EmptyChain:
		return "empty chain"
	}
	return "ChainErrorReason(" + strconv.Itoa(int(r)) + ")"
}

// ChainError is returned by VerifyChain, in the style of crypto/x509's
// CertificateInvalidError.
type ChainError struct {
	// Reason is why the chain was refused.
	Reason ChainErrorReason
	// Index is the position in the chain of the offending certificate, -1
	// if there is none.
	Index int
	// Subject is the offending certificate's subject, "" if there is none.
	Subject string
	// Detail says what exactly is wrong; for NotAChain it starts with the
	// certificate that should have signed the offending one.
	Detail string
	// Err is the underlying error, if any (the crypto/x509 error for
	// UnknownIssuer, the signature error for NotAChain).
	Err error
}

// Error describes the offending certificate and what is wrong with it.
func (e *ChainError) Error() string {
	what, sep := "", ": "
	switch e.Reason {
	case Expired:
		what = "has expired"
	case NotYetValid:
		what = "is not yet valid"
	case UnknownIssuer:
		what = "was not issued by a trusted root"
	case NotAChain:
		what, sep = "is not signed by", " " // Detail names the next certificate
	default:
		what = e.Reason.String()
	}
	msg := "ca: "
	if e.Index >= 0 {
		msg += fmt.Sprintf("certificate %d (%s) %s", e.Index, e.Subject, what)
	} else {
		msg += what
	}
	if e.Detail != "" {
		msg += sep + e.Detail
	}
	return msg
}

// Unwrap returns the underlying error, if any.
func (e *ChainError) Unwrap() error { return e.Err }

// VerifyChain checks chain, a leaf followed by its intermediates (and
// possibly the root), against roots at time now. In order: the chain is not
// empty (EmptyChain); each certificate is issued and signed by the next one
// (NotAChain); each certificate is valid at now (Expired, NotYetValid); the
// leaf verifies with crypto/x509 against roots, with the rest of the chain
// as intermediates (UnknownIssuer). Failures are *ChainError.
func VerifyChain(chain []*x509.Certificate, roots []*x509.Certificate, now time.Time) error {
	if len(chain) == 0 {
		return &ChainError{Reason: EmptyChain, Index: -1}
	}
	for i := 1; i < len(chain); i++ {
		child, parent := chain[i-1], chain[i]
		e := &ChainError{Reason: NotAChain, Index: i - 1, Subject: child.Subject.String()}
		next := fmt.Sprintf("certificate %d (%s)", i, parent.Subject.String())
		if !bytes.Equal(child.RawIssuer, parent.RawSubject) {
			e.Detail = fmt.Sprintf("%s: not a chain: its issuer is %s", next, child.Issuer.String())
			return e
		}
		if err := child.CheckSignatureFrom(parent); err != nil {
			e.Detail = fmt.Sprintf("%s: not a chain: %v", next, err)
			e.Err = err
			return e
		}
	}
	for i, c := range chain {
		switch {
		case now.After(c.NotAfter):
			return &ChainError{Reason: Expired, Index: i, Subject: c.Subject.String(),
				Detail: fmt.Sprintf("not after %s, now %s", formatTime(c.NotAfter), formatTime(now))}
		case now.Before(c.NotBefore):
			return &ChainError{Reason: NotYetValid, Index: i, Subject: c.Subject.String(),
				Detail: fmt.Sprintf("not before %s, now %s", formatTime(c.NotBefore), formatTime(now))}
		}
	}
	opts := x509.VerifyOptions{
		Roots:         x509.NewCertPool(),
		Intermediates: x509.NewCertPool(),
		CurrentTime:   now,
		KeyUsages:     []x509.ExtKeyUsage{x509.ExtKeyUsageAny},
	}
	for _, r := range roots {
		opts.Roots.AddCert(r)
	}
	for _, c := range chain[1:] {
		opts.Intermediates.AddCert(c)
	}
	if _, err := chain[0].Verify(opts); err != nil {
		return &ChainError{Reason: UnknownIssuer, Index: 0, Subject: chain[0].Subject.String(),
			Detail: err.Error(), Err: err}
	}
	return nil
}

func formatTime(t time.Time) string {
	return t.UTC().Format(time.RFC3339)
}

var pemBegin = []byte("-----BEGIN ")

// ParseCertificatesPEM parses every certificate in PEM data. It refuses
// data with no certificate, blocks other than CERTIFICATE, malformed blocks
// and any text between or around blocks other than white space.
func ParseCertificatesPEM(data []byte) ([]*x509.Certificate, error) {
	var certs []*x509.Certificate
	rest := bytes.TrimLeft(data, " \t\r\n")
	for len(rest) > 0 {
		where := "before the first PEM block"
		if len(certs) > 0 {
			where = fmt.Sprintf("after certificate %d", len(certs)-1)
		}
		if !bytes.HasPrefix(rest, pemBegin) {
			if len(certs) == 0 && !bytes.Contains(rest, pemBegin) {
				break
			}
			return nil, fmt.Errorf("ca: unexpected data %s in PEM data", where)
		}
		block, next := pem.Decode(rest)
		// pem.Decode skips malformed blocks: a second BEGIN in what it
		// consumed means the block at the start was malformed.
		if block == nil || bytes.Count(rest[:len(rest)-len(next)], pemBegin) != 1 {
			return nil, fmt.Errorf("ca: malformed PEM block %s", where)
		}
		if block.Type != "CERTIFICATE" {
			return nil, fmt.Errorf("ca: unexpected PEM block %q %s, want CERTIFICATE", block.Type, where)
		}
		c, err := x509.ParseCertificate(block.Bytes)
		if err != nil {
			return nil, fmt.Errorf("ca: certificate %d in PEM data: %w", len(certs), err)
		}
		certs = append(certs, c)
		rest = bytes.TrimLeft(next, " \t\r\n")
	}
	if len(certs) == 0 {
		return nil, errNoCertificate
	}
	return certs, nil
}

var errNoCertificate = errors.New("ca: no certificate in PEM data")

// EncodeCertificatesPEM returns certs as concatenated CERTIFICATE PEM blocks.
func EncodeCertificatesPEM(certs ...*x509.Certificate) []byte {
	var buf bytes.Buffer
	for _, c := range certs {
		// Writing to a bytes.Buffer cannot fail.
		_ = pem.Encode(&buf, &pem.Block{Type: "CERTIFICATE", Bytes: c.Raw})
	}
	return buf.Bytes()
}
