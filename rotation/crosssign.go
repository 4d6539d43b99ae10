// Package rotation holds what a root rotation needs whichever backends hold
// the old and the new root: the cross-signed certificate that carries the
// new root's subject and key under the old root, so that nodes which trust
// only the old root still validate certificates from the new key.
//
// The path is chosen from the backends' declared capabilities
// (signer.Capabilities), never from their names: an old root whose backend
// signs a CA certificate for a public key alone needs nothing from the new
// one; an old root that signs only CSRs (an external CFSSL CA) needs a CSR
// signed by the new root's key, which the new root's backend must be able to
// make (signer.CSRCreator). A pair that no path connects is refused with
// ErrNoPath, before anything is signed.
package rotation

import (
	"bytes"
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"time"

	"github.com/chancery-pki/chancery/ca"
	"github.com/chancery-pki/chancery/signer"
)

var (
	// ErrNoPath means the old root's backend cannot cross-sign the new
	// root: it signs CA certificates only from a CSR, and the new root's
	// backend cannot make one for its key.
	ErrNoPath = errors.New("rotation: no cross-signing path between these backends")
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
)

func (p Path) String() string {
	switch p {
	case PathPublicKey:
		return "public key"
	case PathCSR:
		return "CSR from the new root's key"
	}
	return "none"
}

// ChoosePath returns how old can cross-sign next's root, or ErrNoPath.
func ChoosePath(old, next signer.Signer) (Path, error) {
	oc, nc := signer.CapabilitiesOf(old), signer.CapabilitiesOf(next)
	if oc.SignsPublicKey {
		return PathPublicKey, nil
	}
	if _, ok := next.(signer.CSRCreator); ok && nc.CreatesCSR {
		return PathCSR, nil
	}
	return 0, fmt.Errorf("%w: the current root's backend (%s) signs CA certificates only from a CSR, and the new root's backend (%s) cannot make a CSR for its key",
		ErrNoPath, describe(old), describe(next))
}

func describe(s signer.Signer) string {
	if d, ok := s.(signer.Describer); ok {
		return d.Describe().Backend
	}
	return "unknown"
}

// CrossSign has old's CA sign next's root: a CA certificate with the new
// root's subject (byte for byte), public key and subject key ID, no path
// length limit, certificate and CRL signing, valid while both roots are
// (from the later NotBefore to the earlier NotAfter). The result is checked
// before it is returned: issued by old's CA, with its signature, for the
// new root's key and subject.
//
// next's chain must be a single self-signed root, checked as an imported
// root is (ca.CheckRootCA at now).
func CrossSign(ctx context.Context, old, next signer.Signer, now time.Time) (*x509.Certificate, error) {
	oldChain, nextChain := old.Chain(), next.Chain()
	if len(oldChain) == 0 || len(nextChain) == 0 {
		return nil, errors.New("rotation: a signer without a CA certificate")
	}
	issuer, newRoot := oldChain[0], nextChain[0]
	if len(nextChain) != 1 || !bytes.Equal(newRoot.RawIssuer, newRoot.RawSubject) {
		return nil, fmt.Errorf("rotation: the new root %q is not a self-signed root", newRoot.Subject)
	}
	if err := ca.CheckRootCA(newRoot, newRoot.PublicKey, now); err != nil {
		return nil, fmt.Errorf("rotation: the new root: %w", err)
	}
	for _, c := range oldChain {
		if signer.SamePublicKey(c.PublicKey, newRoot.PublicKey) {
			return nil, ErrSameRoot
		}
	}
	path, err := ChoosePath(old, next)
	if err != nil {
		return nil, err
	}
	notBefore, notAfter := newRoot.NotBefore, newRoot.NotAfter
	if issuer.NotBefore.After(notBefore) {
		notBefore = issuer.NotBefore
	}
	if issuer.NotAfter.Before(notAfter) {
		notAfter = issuer.NotAfter
	}
	if !notAfter.After(now) {
		return nil, fmt.Errorf("rotation: the current CA %q and the new root %q are not both valid after now", issuer.Subject, newRoot.Subject)
	}
	req := &signer.Request{
		PublicKey: newRoot.PublicKey,
		Profile:   signer.ProfileCA,
		Template: &x509.Certificate{
			RawSubject:            newRoot.RawSubject,
			SubjectKeyId:          newRoot.SubjectKeyId,
			NotBefore:             notBefore,
			NotAfter:              notAfter,
			IsCA:                  true,
			BasicConstraintsValid: true,
			MaxPathLen:            -1,
			KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
		},
	}
	if path == PathCSR {
		der, err := next.(signer.CSRCreator).CreateCSR(ctx, &x509.CertificateRequest{RawSubject: newRoot.RawSubject})
		if err != nil {
			return nil, fmt.Errorf("rotation: a CSR for the new root's key: %w", err)
		}
		if req.CSR, err = x509.ParseCertificateRequest(der); err != nil {
			return nil, fmt.Errorf("rotation: the new root's backend made an unreadable CSR: %w", err)
		}
		if !signer.SamePublicKey(req.CSR.PublicKey, newRoot.PublicKey) {
			return nil, errors.New("rotation: the new root's backend made a CSR for another key")
		}
	}
	cross, err := old.Sign(ctx, req)
	if err != nil {
		return nil, fmt.Errorf("rotation: cross-signing the new root: %w", err)
	}
	if err := checkCrossSign(cross, issuer, newRoot); err != nil {
		return nil, err
	}
	return cross, nil
}

// checkCrossSign checks what every node relies on in the cross-signed
// certificate.
func checkCrossSign(cross, issuer, newRoot *x509.Certificate) error {
	bad := func(what string) error { return fmt.Errorf("%w: %s", ErrBadCrossSign, what) }
	switch {
	case !bytes.Equal(cross.RawSubject, newRoot.RawSubject):
		return bad(fmt.Sprintf("its subject %q differs from the new root's %q", cross.Subject, newRoot.Subject))
	case !signer.SamePublicKey(cross.PublicKey, newRoot.PublicKey):
		return bad("its public key is not the new root's")
	case !bytes.Equal(cross.RawIssuer, issuer.RawSubject):
		return bad(fmt.Sprintf("its issuer %q is not the current CA %q", cross.Issuer, issuer.Subject))
	case !cross.IsCA || !cross.BasicConstraintsValid:
		return bad("it lacks CA:TRUE")
	case cross.MaxPathLen > 0 || cross.MaxPathLenZero:
		return bad(fmt.Sprintf("it limits the path length to %d", cross.MaxPathLen))
	case cross.KeyUsage&x509.KeyUsageCertSign == 0:
		return bad("it lacks the certificate signing key usage")
	case len(newRoot.SubjectKeyId) > 0 && !bytes.Equal(cross.SubjectKeyId, newRoot.SubjectKeyId):
		return bad("its subject key ID is not the new root's")
	}
	if err := cross.CheckSignatureFrom(issuer); err != nil {
		return bad(fmt.Sprintf("its signature does not verify under the current CA: %v", err))
	}
	return nil
}
