package file

import (
	"context"
	"crypto"
	"crypto/x509"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/chancery-pki/chancery/backends"
	"github.com/chancery-pki/chancery/ca"
	"github.com/chancery-pki/chancery/hint"
	"github.com/chancery-pki/chancery/signer"
)

// Settings keys of the file backend.
const (
	// SettingKeyPath is the key file, relative to the data directory unless
	// absolute. Default DefaultKeyPath.
	SettingKeyPath = "key_path"
	// SettingPassphraseFile names a file holding the key's passphrase. When
	// it is absent, the passphrase comes from PassphraseEnv, if set.
	SettingPassphraseFile = "passphrase_file"
	// SettingEncrypted records whether the key file is encrypted ("true" or
	// "false"), for `chancery info`.
	SettingEncrypted = "encrypted"
)

// DefaultKeyPath is where a new root key goes in the data directory.
const DefaultKeyPath = "ca/root-ca.key"

func init() { backends.Register(Name, Backend{}) }

// Backend is the file backend's entry in the backends registry.
type Backend struct{}

var _ backends.Backend = Backend{}

func keyPath(dataDir string, s backends.Settings) string {
	p := s[SettingKeyPath]
	if p == "" {
		p = DefaultKeyPath
	}
	if !filepath.IsAbs(p) {
		p = filepath.Join(dataDir, p)
	}
	return p
}

// CreateRoot generates a root key and its self-signed certificate, or
// imports the given root, and writes the key file (0600, encrypted when a
// passphrase is configured). It refuses to replace an existing key file.
func (Backend) CreateRoot(ctx context.Context, req backends.CreateRootRequest) (signer.Signer, backends.Settings, error) {
	if err := ctx.Err(); err != nil {
		return nil, nil, fmt.Errorf("file: %w", err)
	}
	for k := range req.Settings {
		switch k {
		case SettingKeyPath, SettingPassphraseFile:
		default:
			return nil, nil, fmt.Errorf("file: unknown setting %q", k)
		}
	}
	passphrase, err := ReadPassphrase(req.Settings[SettingPassphraseFile], PassphraseEnv)
	if err != nil {
		return nil, nil, err
	}
	var (
		key  crypto.Signer
		root *x509.Certificate
	)
	switch {
	case req.ImportCertPEM != nil || req.ImportKeyPEM != nil:
		if req.ImportCertPEM == nil || req.ImportKeyPEM == nil {
			return nil, nil, fmt.Errorf("file: importing a root needs both its certificate and its key")
		}
		root, key, err = ImportRoot(req.ImportCertPEM, req.ImportKeyPEM, req.ImportKeyPassphrase, req.Now)
		if err != nil {
			return nil, nil, err
		}
	default:
		alg, err := ParseAlgorithm(req.KeyAlgorithm)
		if err != nil {
			return nil, nil, err
		}
		if key, err = GenerateKey(alg, req.Rand); err != nil {
			return nil, nil, fmt.Errorf("file: failed to generate the root key: %w", err)
		}
		if root, err = signer.SelfSign(req.Rand, key, ca.NewRootTemplate(req.CommonName, req.Now)); err != nil {
			return nil, nil, err
		}
	}
	path := keyPath(req.DataDir, req.Settings)
	if err := WriteKey(path, key, passphrase); err != nil {
		return nil, nil, err
	}
	settings := backends.Settings{
		SettingKeyPath:   req.Settings[SettingKeyPath],
		SettingEncrypted: fmt.Sprint(len(passphrase) > 0),
	}
	if settings[SettingKeyPath] == "" {
		settings[SettingKeyPath] = DefaultKeyPath
	}
	if f := req.Settings[SettingPassphraseFile]; f != "" {
		settings[SettingPassphraseFile] = f
	}
	iss, err := New(key, path, len(passphrase) > 0, []*x509.Certificate{root}, req.Rand)
	if err != nil {
		return nil, nil, err
	}
	return iss, settings, nil
}

// Open loads the key file named in the settings, with its passphrase from
// the passphrase file or PassphraseEnv.
func (Backend) Open(ctx context.Context, req backends.OpenRequest) (signer.Signer, error) {
	passphrase, err := ReadPassphrase(req.Settings[SettingPassphraseFile], PassphraseEnv)
	if err != nil {
		return nil, err
	}
	s, err := Open(ctx, Config{KeyPath: keyPath(req.DataDir, req.Settings), Passphrase: passphrase, Chain: req.Chain, Rand: req.Rand})
	if err != nil {
		return nil, err
	}
	return s, nil
}

var _ backends.RootDeleter = Backend{}

// DeleteRoot removes the key file CreateRoot wrote, and its directory if
// that is left empty.
func (Backend) DeleteRoot(ctx context.Context, dataDir string, settings backends.Settings) error {
	p := keyPath(dataDir, settings)
	if err := os.Remove(p); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("file: failed to remove the key file: %w", err)
	}
	os.Remove(filepath.Dir(p)) // fails, harmlessly, when the directory holds other files
	return nil
}

var (
	_ backends.NextRooter    = Backend{}
	_ backends.RootForgetter = Backend{}
)

// NextRootSettings puts a rotation's new root key beside the current one:
// ca/root-ca-ID.key in the data directory, encrypted with the same
// passphrase file when the current key has one.
func (Backend) NextRootSettings(current backends.Settings, id string) (backends.Settings, error) {
	if id == "" || strings.ContainsAny(id, `/\`) || strings.Contains(id, "..") {
		return nil, fmt.Errorf("file: %q cannot name a key file", id)
	}
	next := backends.Settings{SettingKeyPath: filepath.Join(filepath.Dir(DefaultKeyPath), "root-ca-"+id+".key")}
	if f := current[SettingPassphraseFile]; f != "" {
		next[SettingPassphraseFile] = f
	}
	// The new key is encrypted as the current one is: never a plain key
	// beside an encrypted one.
	if current[SettingEncrypted] == "true" && next[SettingPassphraseFile] == "" && os.Getenv(PassphraseEnv) == "" {
		return nil, hint.With(errors.New("file: the current root key is encrypted, and no passphrase for the new one is known to the manager"),
			"run the manager with $"+PassphraseEnv+" or --ca-passphrase-file FILE, then rotate again")
	}
	return next, nil
}

// ForgetRoot deletes a retired root's key file.
func (b Backend) ForgetRoot(ctx context.Context, dataDir string, settings backends.Settings) error {
	return b.DeleteRoot(ctx, dataDir, settings)
}
