package ca

import (
	"crypto/x509"
	"errors"
	"fmt"
	"slices"
)

// The external CA endpoint (package extca) issues through an intermediate of
// its own under the cluster's root, never through the cluster's own issuer.
// Its subject carries these names, so that a node can tell a certificate the
// endpoint issued (for another cluster, a swarm) from one the cluster's own
// issuer gave a manager.
const (
	// ExternalCACommonName is the CN of the endpoint's intermediate.
	ExternalCACommonName = "chancery external CA"
	// ExternalCAUnit is the OU of the endpoint's intermediate.
	ExternalCAUnit = "chancery-external-ca"
)

// IsExternalCA reports whether c is an issuing CA of the external CA
// endpoint: a CA certificate whose subject names the endpoint.
func IsExternalCA(c *x509.Certificate) bool {
	if c == nil || !c.IsCA {
		return false
	}
	return c.Subject.CommonName == ExternalCACommonName || slices.Contains(c.Subject.OrganizationalUnit, ExternalCAUnit)
}

// ErrExternalCAChain means a certificate chains to the root only through the
// external CA endpoint's intermediate: the endpoint issued it for another
// cluster, and it is never a certificate of this cluster's nodes.
var ErrExternalCAChain = errors.New("ca: the certificate was issued by the external CA endpoint, not by the cluster's own issuer")

// CheckNotExternal checks the chains a TLS verification built for a peer's
// certificate: it refuses the peer when any of them runs through the
// external CA endpoint's intermediate (see IsExternalCA).
func CheckNotExternal(chains [][]*x509.Certificate) error {
	for _, chain := range chains {
		for _, c := range chain[min(1, len(chain)):] {
			if IsExternalCA(c) {
				return fmt.Errorf("%w (issuer %s)", ErrExternalCAChain, c.Subject)
			}
		}
	}
	return nil
}
