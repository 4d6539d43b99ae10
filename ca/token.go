package ca

import (
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"math/big"
	"strings"
)

// Join token format: TokenPrefix-TokenVersion-<digest>-<secret>.
const (
	// TokenPrefix is the first part of every join token.
	TokenPrefix = "SWMTKN"
	// TokenVersion is the only join token version.
	TokenVersion = "1"
	// TokenLength is the length of a join token.
	TokenLength = len(TokenPrefix) + 1 + len(TokenVersion) + 1 + tokenDigestLength + 1 + tokenSecretLength

	tokenDigestLength = 50 // 256 bits in base 36
	tokenSecretLength = 25 // 128 bits in base 36
)

// ErrInvalidJoinToken is matched (errors.Is) by every error ParseJoinToken
// returns. Those errors never include any part of the token.
var ErrInvalidJoinToken = errors.New("invalid join token")

// ErrTokenNotAccepted is returned by TokenRole when the presented token is
// neither the worker nor the manager token.
var ErrTokenNotAccepted = errors.New("ca: a valid join token is necessary to join this cluster")

// The errors ParseJoinToken returns. They are fixed so that no part of the
// token, its secret above all, can leak into a message or a log.
var (
	errTokenForm         = invalidToken("must have the form SWMTKN-1-<digest>-<secret>")
	errTokenPrefix       = invalidToken("must start with " + TokenPrefix)
	errTokenVersion      = invalidToken("unsupported version (want " + TokenVersion + ")")
	errTokenDigestLength = invalidToken(fmt.Sprintf("digest must be %d characters", tokenDigestLength))
	errTokenDigestChars  = invalidToken("digest must be base 36 lower case")
	errTokenDigestRange  = invalidToken("digest does not fit in 256 bits")
	errTokenSecretLength = invalidToken(fmt.Sprintf("secret must be %d characters", tokenSecretLength))
	errTokenSecretChars  = invalidToken("secret must be base 36 lower case")
)

func invalidToken(msg string) error {
	return fmt.Errorf("%w: %s", ErrInvalidJoinToken, msg)
}

// JoinToken is a parsed join token.
type JoinToken struct {
	// Digest is the SHA-256 of the root CA certificate PEM bytes.
	Digest [32]byte
	// Secret is the token's secret: 25 base 36 lower-case characters.
	Secret string
}

// String returns the token in Docker's format, SWMTKN-1-<digest>-<secret>.
func (t JoinToken) String() string {
	return TokenPrefix + "-" + TokenVersion + "-" + base36(t.Digest[:], tokenDigestLength) + "-" + t.Secret
}

// RootDigest returns the SHA-256 of the root CA certificate bundle PEM bytes,
// the digest a join token carries.
func RootDigest(rootPEM []byte) [32]byte {
	return sha256.Sum256(rootPEM)
}

// GenerateJoinToken returns a new join token for the root CA certificate
// bundle rootPEM, with a secret of 16 bytes read from r (callers pass
// crypto/rand.Reader; nil means crypto/rand.Reader).
func GenerateJoinToken(rootPEM []byte, r io.Reader) (string, error) {
	secret, err := newSecret(r)
	if err != nil {
		return "", err
	}
	return JoinToken{Digest: RootDigest(rootPEM), Secret: secret}.String(), nil
}

// ParseJoinToken parses a join token. Every error it returns matches
// ErrInvalidJoinToken and none includes any part of s.
func ParseJoinToken(s string) (*JoinToken, error) {
	parts := strings.Split(s, "-")
	if len(parts) != 4 {
		return nil, errTokenForm
	}
	if parts[0] != TokenPrefix {
		return nil, errTokenPrefix
	}
	if parts[1] != TokenVersion {
		return nil, errTokenVersion
	}
	digest, secret := parts[2], parts[3]
	if len(digest) != tokenDigestLength {
		return nil, errTokenDigestLength
	}
	if !isBase36(digest) {
		return nil, errTokenDigestChars
	}
	if len(secret) != tokenSecretLength {
		return nil, errTokenSecretLength
	}
	if !isBase36(secret) {
		return nil, errTokenSecretChars
	}
	n, ok := new(big.Int).SetString(digest, 36)
	if !ok {
		return nil, errTokenDigestChars
	}
	if n.BitLen() > 256 {
		return nil, errTokenDigestRange
	}
	t := &JoinToken{Secret: secret}
	n.FillBytes(t.Digest[:])
	return t, nil
}

// DigestMismatchError is returned by CheckRoot when a root CA does not
// match a join token.
type DigestMismatchError struct {
	// Expected is the digest the token carries, as "sha256:<hex>".
	Expected string
	// Actual is the digest of the root CA, as "sha256:<hex>".
	Actual string
}

// Error names the digest the token expects and the one it got.
func (e *DigestMismatchError) Error() string {
	return fmt.Sprintf("ca: the root CA does not match the join token: expected %s, got %s", e.Expected, e.Actual)
}

// CheckRoot checks that rootPEM, the root CA certificate bundle a joining
// node fetched without trusting it, is the one the token names. On mismatch
// it returns a *DigestMismatchError.
func (t *JoinToken) CheckRoot(rootPEM []byte) error {
	got := RootDigest(rootPEM)
	if got == t.Digest {
		return nil
	}
	return &DigestMismatchError{Expected: formatDigest(t.Digest), Actual: formatDigest(got)}
}

// RotateJoinToken returns token with a new secret read from r and the same
// root digest.
func RotateJoinToken(token string, r io.Reader) (string, error) {
	t, err := ParseJoinToken(token)
	if err != nil {
		return "", err
	}
	if t.Secret, err = newSecret(r); err != nil {
		return "", err
	}
	return t.String(), nil
}

// TokenRole returns the role a presented join token grants: RoleWorker if it
// is the worker token, RoleManager if it is the manager token, otherwise
// ErrTokenNotAccepted. The whole token is compared, in constant time, with
// both stored tokens; an empty stored token matches nothing.
func TokenRole(presented, worker, manager string) (Role, error) {
	p := []byte(presented)
	isWorker := subtle.ConstantTimeCompare(p, []byte(worker))
	isManager := subtle.ConstantTimeCompare(p, []byte(manager))
	switch {
	case presented == "": // would match an empty (unset) stored token
	case isWorker == 1:
		return RoleWorker, nil
	case isManager == 1:
		return RoleManager, nil
	}
	return "", ErrTokenNotAccepted
}

func newSecret(r io.Reader) (string, error) {
	b, err := readRandom(r)
	if err != nil {
		return "", fmt.Errorf("ca: generating a join token secret: %w", err)
	}
	return base36(b, tokenSecretLength), nil
}

func formatDigest(d [32]byte) string {
	return "sha256:" + hex.EncodeToString(d[:])
}
