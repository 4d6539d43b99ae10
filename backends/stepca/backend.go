package stepca

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"time"

	"github.com/chancery-pki/chancery/backends"
	"github.com/chancery-pki/chancery/ca"
	"github.com/chancery-pki/chancery/signer"
)

// Name is the backend's type name, as stored in the cluster's settings.
const Name = "stepca"

// Settings keys of the stepca backend. None is a secret: the password is
// read from the file password_file names.
const (
	// SettingURL is step-ca's address, https://HOST:PORT (--stepca-url).
	SettingURL = "url"
	// SettingRootFingerprint is the SHA-256 fingerprint of step-ca's root,
	// in hex (--stepca-root-fingerprint).
	SettingRootFingerprint = "root_fingerprint"
	// SettingProvisioner names step-ca's JWK provisioner
	// (--stepca-provisioner).
	SettingProvisioner = "provisioner"
	// SettingPasswordFile names the file holding the provisioner's password
	// (--stepca-password-file). CreateRoot makes it absolute.
	SettingPasswordFile = "password_file"
	// SettingProvisionerKeyFile optionally names the file holding the
	// provisioner's encrypted key (--stepca-provisioner-key-file); without
	// it, the encrypted key step-ca lists is used. CreateRoot makes it
	// absolute.
	SettingProvisionerKeyFile = "provisioner_key_file"
	// SettingX5CCertFile and SettingX5CKeyFile name an X5C provisioner's
	// certificate and key files (--stepca-x5c-cert-file,
	// --stepca-x5c-key-file), instead of a JWK provisioner's key; the
	// password file is then optional, for an encrypted key. CreateRoot
	// makes them absolute.
	SettingX5CCertFile = "x5c_cert_file"
	SettingX5CKeyFile  = "x5c_key_file"
)

func init() { backends.Register(Name, Backend{}) }

// Backend is the stepca backend's entry in the backends registry. The root
// is step-ca's own: CreateRoot makes no key.
type Backend struct{}

var _ backends.Backend = Backend{}

// config reads settings into a Config, refusing unknown and missing ones.
func config(s backends.Settings) (Config, error) {
	var cfg Config
	for k, v := range s {
		switch k {
		case SettingURL:
			cfg.URL = v
		case SettingRootFingerprint:
			cfg.RootFingerprint = v
		case SettingProvisioner:
			cfg.Provisioner = v
		case SettingPasswordFile:
			cfg.PasswordFile = v
		case SettingProvisionerKeyFile:
			cfg.KeyFile = v
		case SettingX5CCertFile:
			cfg.X5CCertFile = v
		case SettingX5CKeyFile:
			cfg.X5CKeyFile = v
		default:
			return cfg, fmt.Errorf("stepca: unknown setting %q (want %s, %s, %s, %s and optionally %s, or %s and %s)", k,
				SettingURL, SettingRootFingerprint, SettingProvisioner, SettingPasswordFile, SettingProvisionerKeyFile, SettingX5CCertFile, SettingX5CKeyFile)
		}
	}
	x5c := cfg.X5CCertFile != "" || cfg.X5CKeyFile != ""
	for _, req := range []struct{ v, name, flag string }{
		{cfg.URL, SettingURL, "stepca-url"},
		{cfg.RootFingerprint, SettingRootFingerprint, "stepca-root-fingerprint"},
		{cfg.Provisioner, SettingProvisioner, "stepca-provisioner"},
		{map[bool]string{true: "x5c", false: cfg.PasswordFile}[x5c], SettingPasswordFile, "stepca-password-file"},
		{map[bool]string{true: cfg.X5CCertFile, false: "jwk"}[x5c], SettingX5CCertFile, "stepca-x5c-cert-file"},
		{map[bool]string{true: cfg.X5CKeyFile, false: "jwk"}[x5c], SettingX5CKeyFile, "stepca-x5c-key-file"},
	} {
		if req.v == "" {
			return cfg, fmt.Errorf("stepca: setting %s is missing (--%s)", req.name, req.flag)
		}
	}
	return cfg, nil
}

// settings returns cfg as settings.
func settings(cfg Config) backends.Settings {
	s := backends.Settings{
		SettingURL:             cfg.URL,
		SettingRootFingerprint: cfg.RootFingerprint,
		SettingProvisioner:     cfg.Provisioner,
	}
	for k, v := range map[string]string{SettingPasswordFile: cfg.PasswordFile, SettingProvisionerKeyFile: cfg.KeyFile,
		SettingX5CCertFile: cfg.X5CCertFile, SettingX5CKeyFile: cfg.X5CKeyFile} {
		if v != "" {
			s[k] = v
		}
	}
	return s
}

// CreateRoot uses step-ca's root as the cluster's root: it bootstraps trust
// in it by its fingerprint, reads the provisioner (see New), and checks the
// root as an imported root is checked (ca.CheckRootCA). It makes no key and
// signs nothing. req.ImportCertPEM, when given, must be that root; a key
// (req.ImportKeyPEM) is refused, since step-ca holds its own. The URL and
// fingerprint are returned in canonical form, the files made absolute.
func (Backend) CreateRoot(ctx context.Context, req backends.CreateRootRequest) (signer.Signer, backends.Settings, error) {
	if err := ctx.Err(); err != nil {
		return nil, nil, fmt.Errorf("stepca: %w", err)
	}
	if req.ImportKeyPEM != nil {
		return nil, nil, errors.New("stepca: step-ca holds its own key: give --ca-cert alone (step-ca's root), not --ca-key")
	}
	cfg, err := config(req.Settings)
	if err != nil {
		return nil, nil, err
	}
	if cfg.URL, err = ParseURL(cfg.URL); err != nil {
		return nil, nil, err
	}
	if cfg.RootFingerprint, err = ParseFingerprint(cfg.RootFingerprint); err != nil {
		return nil, nil, err
	}
	for _, f := range []*string{&cfg.PasswordFile, &cfg.KeyFile, &cfg.X5CCertFile, &cfg.X5CKeyFile} {
		if *f != "" {
			if *f, err = filepath.Abs(*f); err != nil {
				return nil, nil, fmt.Errorf("stepca: %w", err)
			}
		}
	}
	s, err := New(ctx, cfg)
	if err != nil {
		return nil, nil, err
	}
	root := s.chain[len(s.chain)-1]
	if req.ImportCertPEM != nil {
		given, err := ca.ParseCertificatesPEM(req.ImportCertPEM)
		if err != nil {
			s.Close()
			return nil, nil, fmt.Errorf("the root given with --ca-cert: %w", err)
		}
		if !bytes.Equal(given[len(given)-1].Raw, root.Raw) {
			s.Close()
			return nil, nil, fmt.Errorf("stepca: the root given with --ca-cert is not step-ca's root %q (sha256:%s)", root.Subject, fingerprintOf(root))
		}
	}
	now := req.Now
	if now.IsZero() {
		now = time.Now()
	}
	if err := ca.CheckRootCA(root, nil, now); err != nil {
		s.Close()
		return nil, nil, fmt.Errorf("step-ca's root %q: %w", root.Subject, err)
	}
	return s, settings(cfg), nil
}

// Open connects to the step-ca the settings name (see New), whose root
// must be the cluster's, req.Chain's last certificate.
func (Backend) Open(ctx context.Context, req backends.OpenRequest) (signer.Signer, error) {
	cfg, err := config(req.Settings)
	if err != nil {
		return nil, err
	}
	if len(req.Chain) == 0 {
		return nil, errors.New("stepca: no cluster root to check step-ca against")
	}
	cfg.Chain = req.Chain
	return New(ctx, cfg)
}
