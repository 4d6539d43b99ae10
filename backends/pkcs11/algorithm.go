package pkcs11

import (
	"fmt"
	"strings"
)

// Algorithm is the algorithm of a key generated in the token.
type Algorithm string

// The algorithms a new root key may use.
const (
	P256    Algorithm = "P-256"
	P384    Algorithm = "P-384"
	RSA3072 Algorithm = "RSA-3072"
)

// DefaultAlgorithm is the algorithm of a new key unless another is asked
// for: ECDSA P-256, as swarm's root.
const DefaultAlgorithm = P256

// DefaultObjectLabel is the label of a generated key when the URI gives
// only an id.
const DefaultObjectLabel = "chancery-root"

// ParseAlgorithm reads an algorithm name, case-insensitively and with or
// without its dash ("p256", "P-384", "rsa3072"); empty means
// DefaultAlgorithm.
func ParseAlgorithm(s string) (Algorithm, error) {
	switch strings.ToUpper(strings.ReplaceAll(strings.TrimSpace(s), "-", "")) {
	case "", "P256", "ECDSAP256":
		return P256, nil
	case "P384", "ECDSAP384":
		return P384, nil
	case "RSA3072", "RSA":
		return RSA3072, nil
	}
	return "", fmt.Errorf("pkcs11: unknown key algorithm %q (want P-256, P-384 or RSA-3072)", s)
}
