package ca

import (
	"crypto/rand"
	"fmt"
	"io"
	"math/big"
	"strings"
)

// IDLength is the length of a swarm identifier (cluster ID, node ID).
const IDLength = 25

// randomBytes is the number of random bytes behind an ID or a token secret.
const randomBytes = 16

// NewID returns a swarm identifier: 128 random bits read from r, written in
// base 36, lower case, left-padded with '0' to 25 characters. Callers pass
// crypto/rand.Reader; a nil r means crypto/rand.Reader.
func NewID(r io.Reader) (string, error) {
	b, err := readRandom(r)
	if err != nil {
		return "", fmt.Errorf("ca: generating an id: %w", err)
	}
	return base36(b, IDLength), nil
}

// ValidID reports whether s has the form of a swarm identifier: exactly 25
// characters of [0-9a-z].
func ValidID(s string) bool {
	return len(s) == IDLength && isBase36(s)
}

// readRandom reads randomBytes bytes from r (crypto/rand.Reader if nil).
func readRandom(r io.Reader) ([]byte, error) {
	if r == nil {
		r = rand.Reader
	}
	b := make([]byte, randomBytes)
	if _, err := io.ReadFull(r, b); err != nil {
		return nil, fmt.Errorf("reading random bytes: %w", err)
	}
	return b, nil
}

// base36 writes the big-endian integer b in base 36, lower case, left-padded
// with '0' to width characters.
func base36(b []byte, width int) string {
	s := new(big.Int).SetBytes(b).Text(36)
	if len(s) < width {
		s = strings.Repeat("0", width-len(s)) + s
	}
	return s
}

// isBase36 reports whether s is made only of [0-9a-z].
func isBase36(s string) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if (c < '0' || c > '9') && (c < 'a' || c > 'z') {
			return false
		}
	}
	return true
}
