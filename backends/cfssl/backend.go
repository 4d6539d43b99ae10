package cfssl

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"sort"
	"strconv"
	"strings"

	"github.com/chancery-pki/chancery/backends"
	"github.com/chancery-pki/chancery/ca"
	"github.com/chancery-pki/chancery/signer"
)

// Name is the backend's type name, as stored in the cluster's settings.
const Name = "cfssl"

// Settings keys of the cfssl backend.
const (
	// SettingExternalCAPrefix, followed by 1, 2, ..., names the external
	// CAs in the order they are asked ("external_ca.1", "external_ca.2"),
	// each an --external-ca value: protocol=cfssl,url=...[,cacert=FILE].
	// CreateRoot returns them in canonical form, with cacert made absolute.
	SettingExternalCAPrefix = "external_ca."
	// SettingAuthKeyFile names a file holding the hex HMAC auth key for
	// authsign (--external-ca-auth-key-file). CreateRoot makes it absolute.
	SettingAuthKeyFile = "auth_key_file"
	// SettingAuthKeyEnv names an environment variable holding the hex HMAC
	// auth key. At most one of auth_key_file and auth_key_env is set; with
	// neither, CreateRoot uses AuthKeyEnv when it is set, and records that.
	SettingAuthKeyEnv = "auth_key_env"
)

func init() { backends.Register(Name, Backend{}) }

// Backend is the cfssl backend's entry in the backends registry. The root is
// the external CA's own: CreateRoot makes no key, it fetches the CA's chain.
type Backend struct{}

var _ backends.Backend = Backend{}

// NewSettings returns the settings for external CAs given as --external-ca
// values (in the order they are to be asked) and an optional auth key file.
// The values are checked when the settings are used.
func NewSettings(specs []string, authKeyFile string) backends.Settings {
	s := backends.Settings{}
	for i, spec := range specs {
		s[SettingExternalCAPrefix+strconv.Itoa(i+1)] = spec
	}
	if authKeyFile != "" {
		s[SettingAuthKeyFile] = authKeyFile
	}
	return s
}

// parsedSettings are the backend's settings, parsed.
type parsedSettings struct {
	cas         []ExternalCA
	authKeyFile string
	authKeyEnv  string
}

// parseSettings reads the settings: external_ca.1 ... external_ca.N without
// gaps, and at most one of auth_key_file and auth_key_env.
func parseSettings(s backends.Settings) (parsedSettings, error) {
	var (
		p    parsedSettings
		nums []int
		byN  = map[int]string{}
	)
	for k, v := range s {
		switch {
		case k == SettingAuthKeyFile:
			if v == "" {
				return p, fmt.Errorf("cfssl: setting %s is empty", k)
			}
			p.authKeyFile = v
		case k == SettingAuthKeyEnv:
			if v == "" {
				return p, fmt.Errorf("cfssl: setting %s is empty", k)
			}
			p.authKeyEnv = v
		case strings.HasPrefix(k, SettingExternalCAPrefix):
			n, err := strconv.Atoi(strings.TrimPrefix(k, SettingExternalCAPrefix))
			if err != nil || n < 1 || strconv.Itoa(n) != strings.TrimPrefix(k, SettingExternalCAPrefix) {
				return p, fmt.Errorf("cfssl: unknown setting %q (external CAs are %s1, %s2, ...)", k, SettingExternalCAPrefix, SettingExternalCAPrefix)
			}
			nums = append(nums, n)
			byN[n] = v
		default:
			return p, fmt.Errorf("cfssl: unknown setting %q (want %s1, %s2, ... and optionally %s or %s)", k,
				SettingExternalCAPrefix, SettingExternalCAPrefix, SettingAuthKeyFile, SettingAuthKeyEnv)
		}
	}
	if p.authKeyFile != "" && p.authKeyEnv != "" {
		return p, fmt.Errorf("cfssl: settings %s and %s are both set: give the auth key one way", SettingAuthKeyFile, SettingAuthKeyEnv)
	}
	if len(nums) == 0 {
		return p, errors.New("cfssl: no external CA given (want --external-ca protocol=cfssl,url=https://HOST:PORT/api/v1/cfssl/sign)")
	}
	sort.Ints(nums)
	for i, n := range nums {
		if n != i+1 {
			return p, fmt.Errorf("cfssl: setting %s%d is missing (external CAs are numbered from 1 without gaps)", SettingExternalCAPrefix, i+1)
		}
		ext, err := ParseExternalCA(byN[n])
		if err != nil {
			return p, err
		}
		p.cas = append(p.cas, ext)
	}
	return p, nil
}

// config turns parsed settings into a Config, reading the auth key.
func (p parsedSettings) config() (Config, error) {
	cfg := Config{CAs: p.cas}
	switch {
	case p.authKeyFile != "":
		k, err := ReadAuthKey(p.authKeyFile, "")
		if err != nil {
			return cfg, err
		}
		cfg.AuthKey, cfg.AuthKeySource = k, "file "+p.authKeyFile
	case p.authKeyEnv != "":
		k, err := ReadAuthKey("", p.authKeyEnv)
		if err != nil {
			return cfg, err
		}
		cfg.AuthKey, cfg.AuthKeySource = k, "$"+p.authKeyEnv
	}
	return cfg, nil
}

// settings returns p as settings, in canonical form.
func (p parsedSettings) settings() backends.Settings {
	s := backends.Settings{}
	for i, ext := range p.cas {
		s[SettingExternalCAPrefix+strconv.Itoa(i+1)] = ext.String()
	}
	if p.authKeyFile != "" {
		s[SettingAuthKeyFile] = p.authKeyFile
	}
	if p.authKeyEnv != "" {
		s[SettingAuthKeyEnv] = p.authKeyEnv
	}
	return s
}

// CreateRoot uses the external CAs in the settings as the cluster's root:
// it asks them for their chain (see New) and checks its root as an imported
// root is checked (ca.CheckRootCA). It makes no key. req.CommonName and
// req.KeyAlgorithm do not apply and are ignored; req.ImportCertPEM, when
// given without a key, is the root (or chain) the CA must issue under, as
// with swarm's --external-ca and --ca-cert; a key (req.ImportKeyPEM) is
// refused, since the CA holds its own.
//
// Relative cacert and auth key file paths are made absolute. With no auth
// key setting, an auth key in $CHANCERY_CFSSL_AUTH_KEY is used and the
// variable recorded.
func (Backend) CreateRoot(ctx context.Context, req backends.CreateRootRequest) (signer.Signer, backends.Settings, error) {
	if err := ctx.Err(); err != nil {
		return nil, nil, fmt.Errorf("cfssl: %w", err)
	}
	if req.ImportKeyPEM != nil {
		return nil, nil, errors.New("cfssl: the external CA holds its own key: give --ca-cert alone (the root it issues under), not --ca-key")
	}
	p, err := parseSettings(req.Settings)
	if err != nil {
		return nil, nil, err
	}
	for i := range p.cas {
		if f := p.cas[i].CACertFile; f != "" {
			if p.cas[i].CACertFile, err = filepath.Abs(f); err != nil {
				return nil, nil, fmt.Errorf("cfssl: cacert %s: %w", f, err)
			}
		}
	}
	if p.authKeyFile != "" {
		if p.authKeyFile, err = filepath.Abs(p.authKeyFile); err != nil {
			return nil, nil, fmt.Errorf("cfssl: auth key file: %w", err)
		}
	} else if p.authKeyEnv == "" && envSet(AuthKeyEnv) {
		p.authKeyEnv = AuthKeyEnv
	}
	cfg, err := p.config()
	if err != nil {
		return nil, nil, err
	}
	if req.ImportCertPEM != nil {
		if cfg.Chain, err = ca.ParseCertificatesPEM(req.ImportCertPEM); err != nil {
			return nil, nil, fmt.Errorf("the root given with --ca-cert: %w", err)
		}
	}
	s, err := New(ctx, cfg)
	if err != nil {
		return nil, nil, err
	}
	root := s.chain[len(s.chain)-1]
	if err := ca.CheckRootCA(root, nil, req.Now); err != nil {
		s.Close()
		return nil, nil, fmt.Errorf("the external CA's root %q: %w", root.Subject, err)
	}
	return s, p.settings(), nil
}

// Open asks the external CAs in the settings for their chain (see New),
// which must end in the cluster's root, req.Chain's last certificate.
func (Backend) Open(ctx context.Context, req backends.OpenRequest) (signer.Signer, error) {
	p, err := parseSettings(req.Settings)
	if err != nil {
		return nil, err
	}
	cfg, err := p.config()
	if err != nil {
		return nil, err
	}
	if len(req.Chain) == 0 {
		return nil, errors.New("cfssl: no cluster root to check the external CA against")
	}
	cfg.Chain = req.Chain
	s, err := New(ctx, cfg)
	if err != nil {
		return nil, err
	}
	return s, nil
}
