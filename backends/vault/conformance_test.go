package vault

import (
	"testing"
	"time"

	"github.com/chancery-pki/chancery/conformance"
	"github.com/chancery-pki/chancery/signer"
)

// TestConformance runs the shared suite against a real Vault server, each
// Signer on a fresh PKI mount, authenticated with an AppRole whose only
// policy is Policy(mount), never the root token.
//
// Two options say where Vault's PKI engine differs from the local issuer,
// both explained in the package documentation: Vault sets a node
// certificate's NotBefore from its own clock (chancery sets the role's
// not_before_duration to the request's backdate, so it comes out the same
// second or up to roleSlack later), and it sorts DNS names.
func TestConformance(t *testing.T) {
	conformance.Run(t, func(t *testing.T) signer.Signer {
		s, _ := newTestSigner(t)
		return s
	}, conformance.Options{
		NotBeforeTolerance: roleSlack + time.Second,
		DNSNamesSorted:     true,
	})
}
