// Package signer defines the Signer contract: a CA identity that can issue
// certificates, whichever backend holds its key.
//
// Everything above this package (the CA rules in ca/, root rotation, the
// manager's API) speaks only this interface. Backends that hold a key (a file,
// a PKCS#11 token) hand a crypto.Signer to NewLocalIssuer, the one place where
// certificates are built from a key; backends that talk to a remote CA (Vault,
// CFSSL) implement Signer against their API and must yield certificates of
// the same shape, checked by the conformance suite.
//
// Every backend runs the same request checks, CheckRequest, before it signs.
// Capabilities a backend may or may not have are declared with Capabilities
// and, where they need a method, optional interfaces such as CSRCreator.
package signer

import (
	"context"
	"crypto"
	"crypto/x509"
	"fmt"
	"strings"
)

// Profile names the kind of certificate a request asks for.
type Profile string

const (
	// ProfileNode is a node (leaf) certificate: CA:FALSE, digital signature and
	// key encipherment, server and client authentication.
	ProfileNode Profile = "node"
	// ProfileCA is a CA certificate, such as the cross-signed intermediate of a
	// root rotation: CA:TRUE, certificate and CRL signing. It is the only
	// profile that may set CA:TRUE.
	ProfileCA Profile = "ca"
)

// Request is what a Signer signs: the subject's public key, an optional CSR
// as proof of possession, the certificate template and a profile name.
type Request struct {
	// PublicKey is the subject's public key. It is required, and when CSR is
	// set it must equal the CSR's public key.
	PublicKey crypto.PublicKey

	// CSR is the subject's certificate request, whose signature proves
	// possession of the private key. Optional for the local issuer; backends
	// that can only sign CSRs (Capabilities.NeedsCSR) refuse a request without
	// one. Only its public key and signature are used: its subject and
	// extensions are ignored in favour of Template.
	CSR *x509.CertificateRequest

	// Template holds what the certificate states. The fields read are:
	// Subject (or RawSubject, used byte for byte when set), DNSNames,
	// IPAddresses, NotBefore, NotAfter, IsCA, BasicConstraintsValid,
	// MaxPathLen, MaxPathLenZero, KeyUsage, ExtKeyUsage, and SubjectKeyId for
	// the CA profile only. Serial number, key identifiers, issuer and signature
	// algorithm are chosen by the Signer; any value set here is ignored.
	Template *x509.Certificate

	// Profile is ProfileNode or ProfileCA.
	Profile Profile
}

// Signer is a CA identity that issues certificates.
type Signer interface {
	// Chain returns the chain the Signer issues under: Chain()[0] is the
	// certificate whose key signs, followed by any intermediates up to, and
	// including, the root. It is never empty and must not be modified.
	Chain() []*x509.Certificate

	// Sign checks req with CheckRequest against Chain()[0], then issues and
	// returns the certificate. It never returns a certificate that differs
	// from the request.
	Sign(ctx context.Context, req *Request) (*x509.Certificate, error)
}

// Capabilities are what a backend can do beyond Sign. Root rotation chooses
// its path from them and refuses, with a clear error, pairs of backends that
// no path connects.
type Capabilities struct {
	// GeneratesKeys means the backend can create a new root key inside itself
	// (a file, an HSM token, Vault's internal key type).
	GeneratesKeys bool
	// CreatesCSR means the backend can produce a CSR signed by its own CA key
	// (see CSRCreator), so that another CA can cross-sign it.
	CreatesCSR bool
	// SignsPublicKey means the backend can sign a CA certificate for a public
	// key alone, without a CSR from the subject.
	SignsPublicKey bool
	// NeedsCSR means node certificate requests must carry a CSR: the remote
	// CA signs only CSRs. Unless SignsPublicKey is set too, CA certificate
	// requests need one as well (a CSR made with the subject's key).
	NeedsCSR bool
}

// String lists the capabilities that are set, comma-separated, or "none".
func (c Capabilities) String() string {
	var s []string
	if c.GeneratesKeys {
		s = append(s, "generates-keys")
	}
	if c.CreatesCSR {
		s = append(s, "creates-csr")
	}
	if c.SignsPublicKey {
		s = append(s, "signs-public-key")
	}
	if c.NeedsCSR {
		s = append(s, "needs-csr")
	}
	if len(s) == 0 {
		return "none"
	}
	return strings.Join(s, ",")
}

// CapabilityReporter is implemented by Signers that declare capabilities.
type CapabilityReporter interface {
	Capabilities() Capabilities
}

// CapabilitiesOf returns the capabilities s declares, or none if it does not
// implement CapabilityReporter.
func CapabilitiesOf(s Signer) Capabilities {
	if r, ok := s.(CapabilityReporter); ok {
		return r.Capabilities()
	}
	return Capabilities{}
}

// CSRCreator is implemented by Signers that can make a CSR signed by their
// own CA key (Capabilities.CreatesCSR), so that another CA can cross-sign it.
type CSRCreator interface {
	// CreateCSR returns a DER-encoded CSR for the CA's own public key with
	// the given template's subject and extensions.
	CreateCSR(ctx context.Context, template *x509.CertificateRequest) ([]byte, error)
}

// Describer is implemented by Signers that can say where their key lives, for
// `chancery info`. Descriptions never include secrets.
type Describer interface {
	// Describe returns the backend's type name ("file", "pkcs11", ...) and
	// ordered key/value details.
	Describe() Description
}

// Description says where a Signer's key lives.
type Description struct {
	// Backend is the backend's type name.
	Backend string
	// Details are ordered key/value pairs, such as the key file's path.
	Details [][2]string
}

// String formats d on one line.
func (d Description) String() string {
	var b strings.Builder
	b.WriteString(d.Backend)
	for _, kv := range d.Details {
		fmt.Fprintf(&b, " %s=%s", kv[0], kv[1])
	}
	return b.String()
}
