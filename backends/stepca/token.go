package stepca

import (
	"crypto"
	"crypto/rand"
	"crypto/x509"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/go-jose/go-jose/v4"

	"github.com/chancery-pki/chancery/secretfile"
)

// This file holds the JWK provisioner's key and the one-time tokens it
// signs: the key arrives encrypted (a JWE, as `step ca init` writes it and
// step-ca serves it) and is decrypted once with the password from a file.

// Limits on what is read from files and step-ca.
const (
	maxPasswordFileSize = 4 << 10
	maxKeyFileSize      = 64 << 10
)

// tokenLifetime is how long a one-time token is valid: step-ca refuses it
// afterwards, and refuses it a second time whenever it comes.
const tokenLifetime = 5 * time.Minute

// PasswordError means the provisioner password does not decrypt the
// provisioner's key, or the key is not a JWK provisioner's signing key.
type PasswordError struct {
	// Source says where the password came from ("file /path").
	Source string
	// Reason says what failed; it never holds the password or the key.
	Reason string
}

func (e *PasswordError) Error() string {
	return fmt.Sprintf("stepca: the provisioner key cannot be decrypted with the password from %s: %s", e.Source, e.Reason)
}

// provisionerKey is a JWK provisioner's decrypted private key.
type provisionerKey struct {
	name string // the provisioner's name: the tokens' issuer
	kid  string // the key's ID, as step-ca knows it (JWK)
	alg  jose.SignatureAlgorithm
	key  crypto.Signer
	// x5c is an X5C provisioner's certificate chain, base64 DER, leaf
	// first, and leaf its certificate; nil for a JWK provisioner.
	x5c  []string
	leaf *x509.Certificate
}

// Format prints the key's ID only, for every verb.
func (k *provisionerKey) Format(f fmt.State, _ rune) { io.WriteString(f, "provisioner key "+k.kid) }

// readPassword reads a provisioner password file: at most 4 KiB, its
// trailing newline dropped, and only from a file that secretfile.Open
// accepts (a regular file of the user running chancery, mode 0600 or 0400;
// otherwise an error that matches secretfile.ErrUnsafe).
func readPassword(path string) ([]byte, error) {
	data, err := readSecretFile(path, maxPasswordFileSize)
	if err != nil {
		return nil, fmt.Errorf("stepca: the provisioner password file: %w", err)
	}
	pw := []byte(strings.TrimRight(string(data), "\r\n"))
	clear(data)
	if len(pw) == 0 {
		return nil, fmt.Errorf("stepca: the provisioner password file %s is empty", path)
	}
	return pw, nil
}

// readLimited reads a file of at most limit bytes.
func readLimited(path string, limit int64) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return readAllLimited(f, path, limit)
}

// readSecretFile reads a secret file of at most limit bytes, after
// secretfile.Open's checks on the opened file: a regular file owned by the
// user running chancery, with no permission for group or others.
func readSecretFile(path string, limit int64) ([]byte, error) {
	f, err := secretfile.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return readAllLimited(f, path, limit)
}

// readAllLimited reads f, the file at path, refusing more than limit bytes.
func readAllLimited(f *os.File, path string, limit int64) ([]byte, error) {
	data, err := io.ReadAll(io.LimitReader(f, limit+1))
	if err != nil {
		return nil, err
	}
	if int64(len(data)) > limit {
		clear(data)
		return nil, fmt.Errorf("%s is larger than %d bytes", path, limit)
	}
	return data, nil
}

// decryptKey decrypts a JWK provisioner's encrypted key (a compact JWE,
// PBES2 with AES key wrap and AES-GCM, as step writes it) with password,
// and checks that it is the private half of the provisioner's public key
// pub, as step-ca lists it. source names where the password came from.
func decryptKey(name string, pub *jose.JSONWebKey, encrypted, password []byte, source string) (*provisionerKey, error) {
	jwe, err := jose.ParseEncrypted(strings.TrimSpace(string(encrypted)),
		[]jose.KeyAlgorithm{jose.PBES2_HS256_A128KW, jose.PBES2_HS384_A192KW, jose.PBES2_HS512_A256KW},
		[]jose.ContentEncryption{jose.A128GCM, jose.A192GCM, jose.A256GCM})
	if err != nil {
		return nil, fmt.Errorf("stepca: the provisioner's encrypted key is not a password-encrypted JWE: %v", err)
	}
	plain, err := jwe.Decrypt(password)
	if err != nil {
		return nil, &PasswordError{Source: source, Reason: "wrong password, or a damaged key"}
	}
	var jwk jose.JSONWebKey
	if err := json.Unmarshal(plain, &jwk); err != nil {
		return nil, &PasswordError{Source: source, Reason: "the decrypted data is not a JWK"}
	}
	key, ok := jwk.Key.(crypto.Signer)
	if !ok || jwk.IsPublic() {
		return nil, &PasswordError{Source: source, Reason: "the decrypted JWK is not a private signing key"}
	}
	if pk, ok := key.Public().(interface{ Equal(crypto.PublicKey) bool }); !ok || !pk.Equal(pub.Key) {
		return nil, fmt.Errorf("stepca: the decrypted key is not the key of provisioner %q (key ID %s): the key file is another provisioner's", name, pub.KeyID)
	}
	alg, err := signatureAlgorithm(jwk)
	if err != nil {
		return nil, err
	}
	return &provisionerKey{name: name, kid: pub.KeyID, alg: alg, key: key}, nil
}

// signatureAlgorithm is the JWS algorithm of a provisioner key: the JWK's
// own "alg", else ES256 for P-256 (step's default).
func signatureAlgorithm(jwk jose.JSONWebKey) (jose.SignatureAlgorithm, error) {
	if jwk.Algorithm != "" {
		switch a := jose.SignatureAlgorithm(jwk.Algorithm); a {
		case jose.ES256, jose.ES384, jose.ES512, jose.EdDSA, jose.RS256, jose.PS256:
			return a, nil
		default:
			return "", fmt.Errorf("stepca: the provisioner key's algorithm %q is not supported", jwk.Algorithm)
		}
	}
	return jose.ES256, nil
}

// claims are a one-time token's claims: the registered ones step-ca checks,
// the sans its CSR checks read, and chancery's, which the provisioner's
// template reads (see the package documentation).
type claims struct {
	Issuer    string         `json:"iss"`
	Subject   string         `json:"sub"`
	Audience  []string       `json:"aud"`
	NotBefore int64          `json:"nbf"`
	IssuedAt  int64          `json:"iat"`
	Expiry    int64          `json:"exp"`
	ID        string         `json:"jti"`
	SANs      []string       `json:"sans"`
	Chancery  chanceryClaims `json:"chancery"`
}

// chanceryClaims are what the certificate states, in signed claims: the
// provisioner's template reads them and nothing else of the request.
type chanceryClaims struct {
	// Profile is "node" or "ca".
	Profile string `json:"profile"`
	// Serial is the certificate's serial number, in decimal.
	Serial string `json:"serial"`
	// O, OU and CN are a node certificate's subject: the cluster ID, the
	// role and the node ID.
	O  string `json:"o,omitempty"`
	OU string `json:"ou,omitempty"`
	CN string `json:"cn,omitempty"`
	// DNS and IPs are a node certificate's SANs.
	DNS []string `json:"dns"`
	IPs []string `json:"ips"`
	// Subject is a CA certificate's subject, DER in base64, byte for byte.
	Subject []byte `json:"subject,omitempty"`
	// SubjectKeyID is the certificate's subject key ID, in base64.
	SubjectKeyID []byte `json:"skid"`
	// MaxPathLen is a CA certificate's path length limit, -1 for none.
	MaxPathLen int `json:"maxPathLen"`
}

// token signs c with the provisioner key, with a random jti.
func (k *provisionerKey) token(c *claims, now time.Time) (string, error) {
	var id [16]byte
	if _, err := rand.Read(id[:]); err != nil {
		return "", fmt.Errorf("stepca: %w", err)
	}
	c.Issuer, c.ID = k.name, hex.EncodeToString(id[:])
	c.NotBefore, c.IssuedAt, c.Expiry = now.Unix(), now.Unix(), now.Add(tokenLifetime).Unix()
	payload, err := json.Marshal(c)
	if err != nil {
		return "", fmt.Errorf("stepca: failed to encode the token's claims: %w", err)
	}
	opts := (&jose.SignerOptions{}).WithType("JWT")
	if k.x5c != nil {
		opts = opts.WithHeader("x5c", k.x5c)
	} else {
		opts = opts.WithHeader("kid", k.kid)
	}
	sg, err := jose.NewSigner(jose.SigningKey{Algorithm: k.alg, Key: k.key}, opts)
	if err != nil {
		return "", fmt.Errorf("stepca: the provisioner key cannot sign tokens: %w", err)
	}
	jws, err := sg.Sign(payload)
	if err != nil {
		return "", fmt.Errorf("stepca: failed to sign the token: %w", err)
	}
	return jws.CompactSerialize()
}
