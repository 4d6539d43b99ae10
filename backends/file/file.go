// Package file is the backend that keeps the root CA key in a local file: a
// PKCS#8 PEM file, mode 0600, optionally encrypted with a passphrase (PBES2,
// scrypt and AES-256-CBC, which OpenSSL reads with `openssl pkey`).
//
// It only loads, generates, imports and writes keys: certificates come from
// signer.NewLocalIssuer, as for every backend that holds a key.
package file

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"github.com/youmark/pkcs8"

	"github.com/chancery-pki/chancery/backends"
	"github.com/chancery-pki/chancery/internal/atomicfile"
	"github.com/chancery-pki/chancery/secretfile"
	"github.com/chancery-pki/chancery/signer"
)

// Name is the backend's type name, as stored in the cluster's settings.
const Name = "file"

// Errors that callers may match with errors.Is.
var (
	// ErrPassphraseNeeded means the key file is encrypted and no passphrase
	// was given.
	ErrPassphraseNeeded = errors.New("file: the key is encrypted and no passphrase was given")
	// ErrWrongPassphrase means the passphrase does not decrypt the key.
	ErrWrongPassphrase = errors.New("file: wrong passphrase, or the encrypted key is corrupt")
	// ErrKeyExists means a key file is already at the path to write.
	ErrKeyExists = errors.New("file: a key file already exists")
	// ErrBadKey means the key PEM could not be read as a private key.
	ErrBadKey = errors.New("file: unreadable private key")
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

// ParseAlgorithm reads an algorithm name (backends.ParseKeyAlgorithm).
func ParseAlgorithm(s string) (Algorithm, error) {
	a, err := backends.ParseKeyAlgorithm(s)
	if err != nil {
		return "", fmt.Errorf("file: %w", err)
	}
	return a, nil
}

// GenerateKey makes a new private key of algorithm alg from r (crypto/rand
// when nil).
func GenerateKey(alg Algorithm, r io.Reader) (crypto.Signer, error) {
	if r == nil {
		r = rand.Reader
	}
	switch alg {
	case P256, "":
		return ecdsa.GenerateKey(elliptic.P256(), r)
	case P384:
		return ecdsa.GenerateKey(elliptic.P384(), r)
	case RSA3072:
		return rsa.GenerateKey(r, 3072)
	}
	return nil, fmt.Errorf("file: unknown key algorithm %q (want P-256, P-384 or RSA-3072)", alg)
}

// scryptOpts are the key derivation parameters of an encrypted key file:
// N=2^15, r=8, p=1 (about 32 MiB and 100 ms to open).
var scryptOpts = &pkcs8.Opts{
	Cipher: pkcs8.AES256CBC,
	KDFOpts: pkcs8.ScryptOpts{
		SaltSize:                 16,
		CostParameter:            1 << 15,
		BlockSize:                8,
		ParallelizationParameter: 1,
	},
}

// MarshalKey encodes key as PKCS#8 PEM, encrypted when passphrase is not
// empty ("ENCRYPTED PRIVATE KEY"), plain otherwise ("PRIVATE KEY").
func MarshalKey(key crypto.Signer, passphrase []byte) ([]byte, error) {
	if len(passphrase) == 0 {
		der, err := x509.MarshalPKCS8PrivateKey(key)
		if err != nil {
			return nil, fmt.Errorf("file: failed to encode the key: %w", err)
		}
		return pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}), nil
	}
	der, err := pkcs8.MarshalPrivateKey(key, passphrase, scryptOpts)
	if err != nil {
		return nil, fmt.Errorf("file: failed to encrypt the key: %w", err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "ENCRYPTED PRIVATE KEY", Bytes: der}), nil
}

// ParseKey reads a private key from PEM: PKCS#8 ("PRIVATE KEY"), encrypted
// PKCS#8 ("ENCRYPTED PRIVATE KEY", which needs passphrase), SEC 1 ("EC
// PRIVATE KEY") or PKCS#1 ("RSA PRIVATE KEY"). Errors never contain key
// material or the passphrase.
func ParseKey(data, passphrase []byte) (crypto.Signer, error) {
	block, rest := pem.Decode(data)
	if block == nil {
		return nil, fmt.Errorf("%w: no PEM block found", ErrBadKey)
	}
	if len(strings.TrimSpace(string(rest))) != 0 {
		return nil, fmt.Errorf("%w: more than one PEM block", ErrBadKey)
	}
	if _, ok := block.Headers["Proc-Type"]; ok {
		return nil, fmt.Errorf("%w: legacy PEM encryption is not supported; convert the key with `openssl pkcs8 -topk8 -v2 aes256`", ErrBadKey)
	}
	var (
		key any
		err error
	)
	switch block.Type {
	case "PRIVATE KEY":
		key, err = x509.ParsePKCS8PrivateKey(block.Bytes)
	case "ENCRYPTED PRIVATE KEY":
		if len(passphrase) == 0 {
			return nil, ErrPassphraseNeeded
		}
		key, _, err = pkcs8.ParsePrivateKey(block.Bytes, passphrase)
		if err != nil {
			return nil, ErrWrongPassphrase
		}
	case "EC PRIVATE KEY":
		key, err = x509.ParseECPrivateKey(block.Bytes)
	case "RSA PRIVATE KEY":
		key, err = x509.ParsePKCS1PrivateKey(block.Bytes)
	default:
		return nil, fmt.Errorf("%w: PEM block is %q, want a private key", ErrBadKey, block.Type)
	}
	if err != nil {
		// The x509 parse errors name the structure, not its contents.
		return nil, fmt.Errorf("%w: %v", ErrBadKey, err)
	}
	s, ok := key.(crypto.Signer)
	if !ok {
		return nil, fmt.Errorf("%w: unsupported key type %T", ErrBadKey, key)
	}
	if err := signer.CheckPublicKey(s.Public()); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrBadKey, err)
	}
	return s, nil
}

// MaxKeyFileBytes bounds a key file's size: an RSA-3072 key, encrypted,
// takes under 3 KiB.
const MaxKeyFileBytes = 64 << 10

// ReadKeyFile returns the content of the key file at path, of at most
// MaxKeyFileBytes. As ssh with a private key, it refuses a key file that
// others may read or write, or that another user owns: it must be a
// regular file owned by the user running chancery, mode 0600 or 0400
// (secretfile.Open; WriteKey writes 0600). An error about its mode or
// owner matches secretfile.ErrUnsafe and says the chmod or chown that
// fixes it. Errors name the file, never its content.
func ReadKeyFile(path string) ([]byte, error) {
	data, err := secretfile.ReadFile(path, MaxKeyFileBytes)
	if err != nil {
		return nil, fmt.Errorf("file: failed to read the key file: %w", err)
	}
	return data, nil
}

// LoadKey reads the key file at path (ReadKeyFile) and decrypts it with
// passphrase when it is encrypted.
func LoadKey(path string, passphrase []byte) (crypto.Signer, error) {
	data, err := ReadKeyFile(path)
	if err != nil {
		return nil, err
	}
	defer clear(data)
	key, err := ParseKey(data, passphrase)
	if err != nil {
		return nil, fmt.Errorf("%w (key file %s)", err, path)
	}
	return key, nil
}

// WriteKey writes key to a new file at path, mode 0600, encrypted when
// passphrase is not empty. It never replaces an existing file (ErrKeyExists)
// and never leaves a partial file: the key is written to a temporary file in
// the same directory, synced, then linked into place (atomicfile.WriteNew).
func WriteKey(path string, key crypto.Signer, passphrase []byte) error {
	data, err := MarshalKey(key, passphrase)
	if err != nil {
		return err
	}
	return writeNewFile(path, data, 0o600)
}

func writeNewFile(path string, data []byte, mode fs.FileMode) error {
	dir := filepath.Dir(path)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("file: failed to create %s: %w", dir, err)
	}
	if err := atomicfile.WriteNew(path, data, mode); err != nil {
		if errors.Is(err, fs.ErrExist) {
			return fmt.Errorf("%w: %s", ErrKeyExists, path)
		}
		return fmt.Errorf("file: %w", err)
	}
	return nil
}

// Config opens a key file.
type Config struct {
	// KeyPath is the key file.
	KeyPath string
	// Passphrase decrypts an encrypted key file.
	Passphrase []byte
	// Chain is the CA certificate of the key, then any intermediates up to
	// the root.
	Chain []*x509.Certificate
	// Rand is the source of serials and signature randomness; nil means
	// crypto/rand.
	Rand io.Reader
}

// Open loads the key file and returns the Signer that issues under
// cfg.Chain with it.
func Open(ctx context.Context, cfg Config) (*signer.LocalIssuer, error) {
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("file: %w", err)
	}
	key, err := LoadKey(cfg.KeyPath, cfg.Passphrase)
	if err != nil {
		return nil, err
	}
	return New(key, cfg.KeyPath, len(cfg.Passphrase) > 0, cfg.Chain, cfg.Rand)
}

// New returns the Signer for a key already in memory, kept at path.
func New(key crypto.Signer, path string, encrypted bool, chain []*x509.Certificate, r io.Reader) (*signer.LocalIssuer, error) {
	enc := "no"
	if encrypted {
		enc = "yes"
	}
	iss, err := signer.NewLocalIssuer(signer.LocalConfig{
		Key:          key,
		Chain:        chain,
		Capabilities: signer.Capabilities{GeneratesKeys: true},
		Description:  signer.Description{Backend: Name, Details: [][2]string{{"key", path}, {"encrypted", enc}}},
		Rand:         r,
	})
	if err != nil {
		return nil, fmt.Errorf("the key file %s: %w", path, err)
	}
	return iss, nil
}
