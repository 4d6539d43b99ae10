// Package issuer is the one issuing path of a manager: a Signer together
// with the certificates handed out after every leaf it signs, and a holder
// through which the API server, the audit checkpoints and the external CA
// endpoint read the issuer in force, so that a root rotation or a change of
// leader replaces it while they run.
//
// What a node is handed is always the leaf, then the Signer's
// intermediates, then the issuer's appendix (during a root rotation, the
// cross-signed certificate of the new root under the old one). Every leaf
// is checked against its request with signer.CheckIssued, under the
// tolerance its Signer declares, before it is handed out.
package issuer

import (
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"slices"
	"sync/atomic"
	"time"

	"github.com/chancery-pki/chancery/signer"
)

// Issuer is a Signer and the certificates handed out after each leaf it
// signs. It is immutable and safe for concurrent use.
type Issuer struct {
	s     signer.Signer
	after []*x509.Certificate
	name  string
	tol   signer.Tolerance
	now   func() time.Time
}

// Options tune New.
type Options struct {
	// Appendix is handed out after the Signer's intermediates: during a
	// root rotation, what rotation.CrossSign returned.
	Appendix []*x509.Certificate
	// Now is the clock CheckIssued reads for CAs whose profile sets the
	// validity; nil means time.Now.
	Now func() time.Time
}

// New returns the Issuer of s. The certificates handed out after each leaf
// are s's intermediates (its chain without the root), then opts.Appendix.
func New(s signer.Signer, opts Options) (*Issuer, error) {
	if s == nil {
		return nil, errors.New("issuer: no signer")
	}
	chain := s.Chain()
	if len(chain) == 0 {
		return nil, errors.New("issuer: the signer has no CA certificate")
	}
	after := slices.Concat(chain[:len(chain)-1], opts.Appendix)
	for i, c := range after {
		if c == nil {
			return nil, fmt.Errorf("issuer: certificate %d after the leaf is missing", i+1)
		}
	}
	now := opts.Now
	if now == nil {
		now = time.Now
	}
	name := ""
	if d, ok := s.(signer.Describer); ok {
		name = d.Describe().Backend
	}
	return &Issuer{s: s, after: after, name: name, tol: signer.ToleranceOf(s), now: now}, nil
}

// Signer returns the Signer.
func (i *Issuer) Signer() signer.Signer { return i.s }

// CA returns the certificate whose key signs: the Signer's Chain()[0].
func (i *Issuer) CA() *x509.Certificate { return i.s.Chain()[0] }

// Root returns the root at the end of the Signer's chain.
func (i *Issuer) Root() *x509.Certificate {
	c := i.s.Chain()
	return c[len(c)-1]
}

// After returns the certificates handed out after each leaf: the Signer's
// intermediates, then the appendix. It must not be modified.
func (i *Issuer) After() []*x509.Certificate { return i.after }

// Backend names the Signer's backend ("file", "pkcs11", ...), or "" when
// it does not say.
func (i *Issuer) Backend() string { return i.name }

// Issued is a certificate and the chain handed out with it.
type Issued struct {
	// Certificate is the leaf the Signer signed.
	Certificate *x509.Certificate
	// Chain is Certificate followed by After(): what a node writes to its
	// certificate file and presents in TLS.
	Chain []*x509.Certificate
}

// Issue has the Signer sign req, checks the certificate against the
// request (signer.CheckIssued, under the Signer's declared tolerance), and
// returns it with the chain handed out after it. A certificate that
// differs is never returned: the error wraps signer.ErrIssuedMismatch.
func (i *Issuer) Issue(ctx context.Context, req *signer.Request) (*Issued, error) {
	cert, err := i.s.Sign(ctx, req)
	if err != nil {
		return nil, err
	}
	if err := signer.CheckIssued(cert, req, i.CA(), signer.IssuedCheck{Tolerance: i.tol, Now: i.now()}); err != nil {
		return nil, fmt.Errorf("issuer: the %s backend returned a certificate that differs from the request; it was withheld: %w", i.name, err)
	}
	return &Issued{Certificate: cert, Chain: i.ChainFor(cert)}, nil
}

// ChainFor returns leaf followed by After().
func (i *Issuer) ChainFor(leaf *x509.Certificate) []*x509.Certificate {
	return slices.Concat([]*x509.Certificate{leaf}, i.after)
}

// Holder holds the Issuer in force. Readers Load it once per operation, so
// an operation runs under one Issuer from start to end; Store replaces it
// atomically, for the operations that start after. The zero Holder holds
// none.
type Holder struct {
	p      atomic.Pointer[Issuer]
	reason atomic.Pointer[error]
}

// NewHolder returns a Holder of i.
func NewHolder(i *Issuer) *Holder {
	h := &Holder{}
	h.Store(i)
	return h
}

// Load returns the Issuer in force, or nil when none is.
func (h *Holder) Load() *Issuer { return h.p.Load() }

// Store puts i in force. Nil takes the Issuer away: the manager no longer
// issues (it is no longer the leader).
func (h *Holder) Store(i *Issuer) {
	h.reason.Store(nil)
	h.p.Store(i)
}

// Withdraw takes the Issuer away, saying why: Current's error then wraps
// both ErrNoIssuer and reason, which must hold no secret.
func (h *Holder) Withdraw(reason error) {
	h.reason.Store(&reason)
	h.p.Store(nil)
}

// ErrNoIssuer means no Issuer is in force: the manager cannot issue now.
var ErrNoIssuer = errors.New("issuer: this manager does not issue certificates now")

// Current returns the Issuer in force, or ErrNoIssuer.
func (h *Holder) Current() (*Issuer, error) {
	if i := h.p.Load(); i != nil {
		return i, nil
	}
	if r := h.reason.Load(); r != nil && *r != nil {
		return nil, fmt.Errorf("%w: %w", ErrNoIssuer, *r)
	}
	return nil, ErrNoIssuer
}

// Hold returns a Holder of the Issuer of s (see New).
func Hold(s signer.Signer, opts Options) (*Holder, error) {
	i, err := New(s, opts)
	if err != nil {
		return nil, err
	}
	return NewHolder(i), nil
}
