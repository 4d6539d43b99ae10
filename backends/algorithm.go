package backends

import (
	"fmt"
	"strings"
)

// KeyAlgorithm is the algorithm of a new root key that a backend generates.
type KeyAlgorithm string

// The algorithms a new root key may use.
const (
	P256    KeyAlgorithm = "P-256"
	P384    KeyAlgorithm = "P-384"
	RSA3072 KeyAlgorithm = "RSA-3072"
)

// DefaultKeyAlgorithm is the algorithm of a new root unless another is
// asked for: ECDSA P-256, as swarm's.
const DefaultKeyAlgorithm = P256

// ParseKeyAlgorithm reads an algorithm name, case-insensitively and with or
// without its dash ("p256", "P-384", "rsa3072"); empty means
// DefaultKeyAlgorithm.
func ParseKeyAlgorithm(s string) (KeyAlgorithm, error) {
	switch strings.ToUpper(strings.ReplaceAll(strings.TrimSpace(s), "-", "")) {
	case "", "P256", "ECDSAP256":
		return P256, nil
	case "P384", "ECDSAP384":
		return P384, nil
	case "RSA3072", "RSA":
		return RSA3072, nil
	}
	return "", fmt.Errorf("unknown key algorithm %q (want P-256, P-384 or RSA-3072)", s)
}
