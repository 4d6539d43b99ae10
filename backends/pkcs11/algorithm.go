package pkcs11

import (
	"fmt"

	"github.com/chancery-pki/chancery/backends"
)

// Algorithm is the algorithm of a new root key (backends.KeyAlgorithm).
type Algorithm = backends.KeyAlgorithm

// The algorithms a new root key may use.
const (
	P256    = backends.P256
	P384    = backends.P384
	RSA3072 = backends.RSA3072
)

// DefaultAlgorithm is the algorithm of a new key unless another is asked
// for: ECDSA P-256, as swarm's root.
const DefaultAlgorithm = backends.DefaultKeyAlgorithm

// DefaultObjectLabel is the label of a generated key when the URI gives
// only an id.
const DefaultObjectLabel = "chancery-root"

// ParseAlgorithm reads an algorithm name (backends.ParseKeyAlgorithm).
func ParseAlgorithm(s string) (Algorithm, error) {
	a, err := backends.ParseKeyAlgorithm(s)
	if err != nil {
		return "", fmt.Errorf("pkcs11: %w", err)
	}
	return a, nil
}
