// Package rotation holds what a root rotation needs whichever backends hold
// the old and the new root: the cross-signed certificate that carries the
// new root's subject and key under the old root, so that nodes which trust
// only the old root still validate certificates from the new key.
//
// The path is chosen from the backends' declared capabilities
// (signer.Capabilities), never from their names:
//
//   - an old root whose backend signs a CA certificate for a public key
//     alone needs nothing from the new one (PathPublicKey);
//   - an old root that signs only CSRs (an external CFSSL CA) signs a CSR
//     made with the new root's key, when the new root's backend can make one
//     (PathCSR);
//   - when it cannot either (from one external CA to another, which swarm
//     cannot do), the old root certifies a one-time bridge key, through its
//     CSR, and the bridge key certifies the new root's key, which the new
//     root's self-signature binds to its subject; the bridge key is then
//     dropped (PathBridge), only when the caller allows it
//     (Options.AllowBridge). Nodes that trust the old root validate the new
//     root's certificates through both.
package rotation

import (
	"bytes"
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"encoding/hex"
	"errors"
	"fmt"
	"time"

	"github.com/chancery-pki/chancery/ca"
	"github.com/chancery-pki/chancery/signer"
)

var (
	// ErrNeedsBridge means the current CA signs CA certificates only from a
	// CSR, the new root's backend cannot make one, and Options.AllowBridge
	// is not set.
	ErrNeedsBridge = errors.New("rotation: this pair of backends needs a bridge key, which was not allowed")
	// ErrSameRoot means the new root has the old root's key: there is
	// nothing to rotate to.
	ErrSameRoot = errors.New("rotation: the new root has the current root's key")
	// ErrBadCrossSign means the certificate the old root's backend returned
	// is not the cross-sign of the new root; it was discarded.
	ErrBadCrossSign = errors.New("rotation: the cross-signed certificate is not the new root's")
)

// Path says how the old root cross-signs the new one.
type Path int

const (
	// PathPublicKey: the old root's backend signs the new root's public key
	// alone.
	PathPublicKey Path = iota + 1
	// PathCSR: the old root's backend signs a CSR that the new root's
	// backend makes with the new root's key.
	PathCSR
	// PathBridge: the old root's backend signs the CSR of a one-time bridge
	// key, which signs the new root's public key and is then discarded.
	PathBridge
)

func (p Path) String() string {
	switch p {
	case PathPublicKey:
		return "public key"
	case PathCSR:
		return "CSR from the new root's key"
	case PathBridge:
		return "one-time bridge key"
	}
	return "none"
}

// ChoosePath returns how old cross-signs next's root. SignsPublicKey
// decides first: a backend that signs a CA certificate for a public key
// alone needs no CSR for it, even when it needs one for node certificates
// (NeedsCSR, as Vault's PKI engine does). Otherwise a CSR from the new
// root's backend, or else the bridge.
func ChoosePath(old, next signer.Signer) Path {
	oc, nc := signer.CapabilitiesOf(old), signer.CapabilitiesOf(next)
	if oc.SignsPublicKey {
		return PathPublicKey
	}
	if _, ok := next.(signer.CSRCreator); ok && nc.CreatesCSR {
		return PathCSR
	}
	return PathBridge
}

// CrossSignChecker is implemented by Signers whose CA may be set up not to
// sign CA certificates at all (a step-ca whose provisioner's template does
// not issue them), so that a rotation out of it is refused before it
// starts rather than failing at its first step.
type CrossSignChecker interface {
	// CanCrossSign returns nil when the CA signs CA certificates, else why
	// it does not.
	CanCrossSign() error
}

// CheckCanCrossSign returns why old's CA cannot cross-sign a new root, or
// nil: only a CrossSignChecker can say it cannot.
func CheckCanCrossSign(old signer.Signer) error {
	if c, ok := old.(CrossSignChecker); ok {
		return c.CanCrossSign()
	}
	return nil
}

// Options tune CrossSign.
type Options struct {
	// Now is the time of the rotation. Zero means time.Now().
	Now time.Time
	// MinLifetime is how long the cross-signed certificate must stay valid
	// from Now, at least (capped by when either root expires): it must
	// outlast the rotation, which lasts about a node certificate's
	// lifetime. Zero means ca.DefaultCertExpiry.
	MinLifetime time.Duration
	// AllowBridge lets CrossSign take PathBridge: the current CA then
	// certifies a CA key that chancery makes in memory and drops after one
	// signature. Without it, a pair that needs the bridge is refused with
	// ErrNeedsBridge, so that no such CA certificate is made without the
	// operator's consent.
	AllowBridge bool
}

// clockSkew is how far in the future a certificate from a remote CA may
// start, as swarm allows.
const clockSkew = 5 * time.Minute

// CrossSign has old's CA sign next's root: a CA certificate with the new
// root's subject (byte for byte), public key and subject key ID, no path
// length limit, certificate and CRL signing, asked to be valid while both
// roots are (a remote CA may shorten that: an external CFSSL CA takes the
// validity from its CA profile). It returns the certificates to append to
// every certificate the new root issues during the rotation: the
// cross-signed certificate, then the bridge's certificate on PathBridge,
// then old's intermediates, if any, up to the root the nodes trust.
//
// The result is checked before it is returned, as nodes will check it: it
// must chain to old's root at opts.Now for server and client
// authentication, carry the new root's subject, key and key ID, be a CA
// without a path length limit, extended key usages or name constraints,
// and stay valid for opts.MinLifetime.
//
// next's chain must be a single self-signed root, checked as an imported
// root is (ca.CheckRootCA), and old's chain must be valid at opts.Now.
func CrossSign(ctx context.Context, old, next signer.Signer, opts Options) ([]*x509.Certificate, error) {
	now := opts.Now
	if now.IsZero() {
		now = time.Now()
	}
	minLife := opts.MinLifetime
	if minLife <= 0 {
		minLife = ca.DefaultCertExpiry
	}
	oldChain, nextChain := old.Chain(), next.Chain()
	switch {
	case len(oldChain) == 0:
		return nil, errors.New("rotation: the current signer has no CA certificate")
	case len(nextChain) == 0:
		return nil, errors.New("rotation: the new signer has no CA certificate")
	}
	issuer, oldRoot, newRoot := oldChain[0], oldChain[len(oldChain)-1], nextChain[0]
	if len(nextChain) != 1 {
		return nil, fmt.Errorf("rotation: the new root must be a root alone, not a chain of %d certificates", len(nextChain))
	}
	if !bytes.Equal(newRoot.RawIssuer, newRoot.RawSubject) {
		return nil, fmt.Errorf("rotation: the new CA %q is not a self-signed root (issued by %q)", newRoot.Subject, newRoot.Issuer)
	}
	if err := ca.CheckRootCA(newRoot, newRoot.PublicKey, now.Add(clockSkew)); err != nil {
		return nil, fmt.Errorf("rotation: the new root: %w", err)
	}
	for _, c := range oldChain {
		if signer.SamePublicKey(c.PublicKey, newRoot.PublicKey) {
			return nil, fmt.Errorf("%w: %q in the current chain", ErrSameRoot, c.Subject)
		}
		if now.Add(clockSkew).Before(c.NotBefore) || !now.Before(c.NotAfter) {
			return nil, fmt.Errorf("rotation: the current CA %q is not valid now (valid from %s to %s)", c.Subject, stamp(c.NotBefore), stamp(c.NotAfter))
		}
	}
	if err := CheckCanCrossSign(old); err != nil {
		return nil, fmt.Errorf("rotation: the current CA cannot cross-sign the new root: %w", err)
	}
	path := ChoosePath(old, next)
	if path == PathBridge && !opts.AllowBridge {
		return nil, fmt.Errorf("%w: the current CA signs CA certificates only from a CSR, and the new root's backend cannot make one for its key; "+
			"allow a one-time bridge key, or put the new root in a backend that holds its key (file, pkcs11, vault)", ErrNeedsBridge)
	}
	// Every CA of the current chain must allow the CA certificates that
	// will stand below it: the cross-signed one, and the bridge's.
	below := 1
	if path == PathBridge {
		below = 2
	}
	for i, c := range oldChain {
		if c.BasicConstraintsValid && c.MaxPathLen >= 0 && i+below > c.MaxPathLen {
			return nil, fmt.Errorf("rotation: the current CA %q limits the path length to %d, and the rotation puts %d CA certificates below it", c.Subject, c.MaxPathLen, i+below)
		}
	}
	notBefore, notAfter := newRoot.NotBefore, newRoot.NotAfter
	if issuer.NotBefore.After(notBefore) {
		notBefore = issuer.NotBefore
	}
	if issuer.NotAfter.Before(notAfter) {
		notAfter = issuer.NotAfter
	}
	// It must last as long as asked for, or minLife, whichever is sooner.
	wantUntil := now.Add(minLife)
	if notAfter.Before(wantUntil) {
		wantUntil = notAfter
	}
	wantUntil = wantUntil.Add(-time.Minute)

	var appendix []*x509.Certificate
	switch path {
	case PathPublicKey, PathCSR:
		req := crossRequest(newRoot.RawSubject, newRoot.SubjectKeyId, newRoot.PublicKey, notBefore, notAfter)
		if path == PathCSR {
			csr, err := csrOf(ctx, next.(signer.CSRCreator), newRoot)
			if err != nil {
				return nil, err
			}
			req.CSR = csr
		}
		cross, err := old.Sign(ctx, req)
		if err != nil {
			return nil, fmt.Errorf("rotation: cross-signing the new root: %w", err)
		}
		if err := checkCrossSign(cross, req, issuer, signer.ToleranceOf(old), now, wantUntil); err != nil {
			return nil, err
		}
		appendix = []*x509.Certificate{cross}
	case PathBridge:
		bridge, cross, err := viaBridge(ctx, old, issuer, newRoot, notBefore, notAfter, now, wantUntil)
		if err != nil {
			return nil, err
		}
		appendix = []*x509.Certificate{cross, bridge}
	}
	appendix = append(appendix, oldChain[:len(oldChain)-1]...)
	// At now, or when the last of them starts, within the skew allowed.
	at := now
	for _, c := range appendix {
		if c.NotBefore.After(at) {
			at = c.NotBefore
		}
	}
	if err := verifiesUnder(appendix, oldRoot, at); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrBadCrossSign, err)
	}
	return appendix, nil
}

// crossRequest asks for a CA certificate of the given subject, key ID and
// key, with no path length limit, valid from notBefore to notAfter.
func crossRequest(rawSubject, keyID []byte, pub crypto.PublicKey, notBefore, notAfter time.Time) *signer.Request {
	return &signer.Request{
		PublicKey: pub,
		Profile:   signer.ProfileCA,
		Template: &x509.Certificate{
			RawSubject:            rawSubject,
			SubjectKeyId:          keyID,
			NotBefore:             notBefore,
			NotAfter:              notAfter,
			IsCA:                  true,
			BasicConstraintsValid: true,
			MaxPathLen:            -1,
			KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
		},
	}
}

// csrOf has the new root's backend make a CSR for its key, with its subject.
func csrOf(ctx context.Context, c signer.CSRCreator, newRoot *x509.Certificate) (*x509.CertificateRequest, error) {
	der, err := c.CreateCSR(ctx, &x509.CertificateRequest{RawSubject: newRoot.RawSubject})
	if err != nil {
		return nil, fmt.Errorf("rotation: a CSR for the new root's key: %w", err)
	}
	csr, err := x509.ParseCertificateRequest(der)
	if err != nil {
		return nil, fmt.Errorf("rotation: the new root's backend made an unreadable CSR: %w", err)
	}
	if !signer.SamePublicKey(csr.PublicKey, newRoot.PublicKey) {
		return nil, errors.New("rotation: the new root's backend made a CSR for another key")
	}
	return csr, nil
}

// viaBridge certifies a fresh P-256 bridge key by old (through the bridge's
// CSR, as a CA that signs only CSRs needs), then the new root's key by the
// bridge, and drops the bridge key: it exists only in memory, for the two
// signatures (Go does not wipe it). The bridge's subject names the root it
// bridges to (OU: its subject key ID). The bridge states what the public-key
// path states: the new root, whose self-signature ca.CheckRootCA checked,
// as given by the backend chancery was configured with. The old CA's CA
// profile decides the bridge's constraints and validity where it sets them
// (an external CFSSL CA does); the result is checked either way.
func viaBridge(ctx context.Context, old signer.Signer, issuer, newRoot *x509.Certificate, notBefore, notAfter, now, until time.Time) (bridge, cross *x509.Certificate, err error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, nil, fmt.Errorf("rotation: a bridge key: %w", err)
	}
	var id [8]byte
	rand.Read(id[:]) // crypto/rand.Read does not fail
	name := pkix.Name{CommonName: "chancery-rotation-bridge-" + hex.EncodeToString(id[:])}
	if len(newRoot.SubjectKeyId) > 0 {
		name.OrganizationalUnit = []string{"bridge to root " + hex.EncodeToString(newRoot.SubjectKeyId)}
	}
	subject, err := asn1.Marshal(name.ToRDNSequence())
	if err != nil {
		return nil, nil, fmt.Errorf("rotation: the bridge's subject: %w", err)
	}
	keyID, err := signer.SubjectKeyID(key.Public())
	if err != nil {
		return nil, nil, fmt.Errorf("rotation: the bridge's key ID: %w", err)
	}
	csrDER, err := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{RawSubject: subject}, key)
	if err != nil {
		return nil, nil, fmt.Errorf("rotation: the bridge's CSR: %w", err)
	}
	req := crossRequest(subject, keyID, key.Public(), notBefore, notAfter)
	if req.CSR, err = x509.ParseCertificateRequest(csrDER); err != nil {
		return nil, nil, fmt.Errorf("rotation: the bridge's CSR: %w", err)
	}
	bridge, err = old.Sign(ctx, req)
	if err != nil {
		return nil, nil, fmt.Errorf("rotation: certifying the bridge key: %w", err)
	}
	if err := checkCrossSign(bridge, req, issuer, signer.ToleranceOf(old), now, until); err != nil {
		return nil, nil, fmt.Errorf("rotation: the bridge's certificate: %w", err)
	}
	bi, err := signer.NewLocalIssuer(signer.LocalConfig{Key: key, Chain: []*x509.Certificate{bridge}})
	if err != nil {
		return nil, nil, fmt.Errorf("rotation: the bridge: %w", err)
	}
	// Within the bridge's own validity, which the old CA may have set.
	if bridge.NotBefore.After(notBefore) {
		notBefore = bridge.NotBefore
	}
	if bridge.NotAfter.Before(notAfter) {
		notAfter = bridge.NotAfter
	}
	creq := crossRequest(newRoot.RawSubject, newRoot.SubjectKeyId, newRoot.PublicKey, notBefore, notAfter)
	cross, err = bi.Sign(ctx, creq)
	if err != nil {
		return nil, nil, fmt.Errorf("rotation: the bridge certifying the new root: %w", err)
	}
	if err := checkCrossSign(cross, creq, bridge, signer.Tolerance{}, now, until); err != nil {
		return nil, nil, err
	}
	return bridge, cross, nil
}

func stamp(t time.Time) string { return t.UTC().Format(time.RFC3339) }

// checkCrossSign checks a CA certificate that issuer's backend (declaring
// tol) returned for req: signer.CheckIssued, with the validity left to the
// CA's profile (an external CA sets it) but valid now, and then what every
// node relies on beyond the request: that it outlasts until. Each
// difference has its own message.
func checkCrossSign(cross *x509.Certificate, req *signer.Request, issuer *x509.Certificate, tol signer.Tolerance, now, until time.Time) error {
	bad := func(what string) error { return fmt.Errorf("%w: %s", ErrBadCrossSign, what) }
	tol.ValidityFromCA, tol.VerifySignature, tol.NotBeforeSkew = true, true, clockSkew
	err := signer.CheckIssued(cross, req, issuer, signer.IssuedCheck{Tolerance: tol, Now: now})
	var ie *signer.IssuedError
	if errors.As(err, &ie) {
		switch ie.Field {
		case "subject":
			return bad(fmt.Sprintf("its subject %s differs from the new root's %s", ie.Got, ie.Want))
		case "public key":
			return bad("its public key is not the new root's")
		case "issuer":
			return bad(fmt.Sprintf("its issuer %q is not the current CA %q", cross.Issuer, issuer.Subject))
		case "basic constraints":
			if !cross.IsCA || !cross.BasicConstraintsValid {
				return bad("it lacks CA:TRUE")
			}
			return bad(fmt.Sprintf("it limits the path length to %d", cross.MaxPathLen))
		case "key usage":
			if cross.KeyUsage&x509.KeyUsageCertSign == 0 {
				return bad("it lacks the certificate signing key usage")
			}
			return bad(fmt.Sprintf("its key usage is %s, want %s", ie.Got, ie.Want))
		case "extended key usage":
			return bad("it has extended key usages, which would restrict the node certificates below it")
		case "extensions":
			if hasNameConstraints(cross) {
				return bad("it has name constraints, which would restrict the node certificates below it")
			}
			if len(cross.UnhandledCriticalExtensions) != 0 {
				return bad(fmt.Sprintf("it has critical extensions nodes do not know: %v", cross.UnhandledCriticalExtensions))
			}
		case "subject key id":
			return bad("its subject key ID is not the new root's")
		case "validity":
			if now.Add(clockSkew).Before(cross.NotBefore) {
				return bad(fmt.Sprintf("it is valid only from %s", stamp(cross.NotBefore)))
			}
		case "signature":
			return bad(fmt.Sprintf("its signature does not verify under the current CA: %s", ie.Got))
		}
		return bad(fmt.Sprintf("its %s is %s, want %s", ie.Field, ie.Got, ie.Want))
	}
	if err != nil {
		return bad(err.Error())
	}
	if cross.NotAfter.Before(until) {
		return bad(fmt.Sprintf("it expires at %s, before %s: the rotation could outlast it (an external CA's CA profile sets this)", stamp(cross.NotAfter), stamp(until)))
	}
	return nil
}

func hasNameConstraints(c *x509.Certificate) bool {
	return len(c.PermittedDNSDomains)+len(c.ExcludedDNSDomains)+len(c.PermittedIPRanges)+len(c.ExcludedIPRanges)+
		len(c.PermittedEmailAddresses)+len(c.ExcludedEmailAddresses)+len(c.PermittedURIDomains)+len(c.ExcludedURIDomains) != 0
}

// verifiesUnder checks, as Go's TLS stack does on a node, that the chain
// reaches root at now for both server and client authentication.
func verifiesUnder(chain []*x509.Certificate, root *x509.Certificate, now time.Time) error {
	roots, inter := x509.NewCertPool(), x509.NewCertPool()
	roots.AddCert(root)
	for _, c := range chain[1:] {
		inter.AddCert(c)
	}
	for _, usage := range []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth} {
		if _, err := chain[0].Verify(x509.VerifyOptions{Roots: roots, Intermediates: inter, CurrentTime: now, KeyUsages: []x509.ExtKeyUsage{usage}}); err != nil {
			return fmt.Errorf("it does not chain to the current root %q: %v", root.Subject, err)
		}
	}
	return nil
}
