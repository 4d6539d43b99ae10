package vault

import (
	"log/slog"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/chancery-pki/chancery/backends"
	"github.com/chancery-pki/chancery/clock"
)

// Settings keys of the Vault backend, as kept in the cluster record. None
// holds a secret: the token and the AppRole secret ID are named by a file
// path or an environment variable name.
const (
	// SettingAddress is Vault's address, such as https://vault:8200
	// (--vault-addr). Required.
	SettingAddress = "address"
	// SettingNamespace is the Vault Enterprise namespace (--vault-namespace).
	SettingNamespace = "namespace"
	// SettingEngine is the secrets engine that holds the root key
	// (--vault-engine): EnginePKI (the default) or EngineTransit.
	SettingEngine = "engine"
	// SettingMount is the secrets engine's mount path (--vault-mount).
	// Default DefaultMount for PKI, DefaultTransitMount for transit.
	SettingMount = "mount"
	// SettingKey is the name of the root's transit key (--vault-key; transit
	// only; default DefaultTransitKey). init creates the key; a key of that
	// name that exists already is used only when named explicitly.
	SettingKey = "key"
	// SettingKeyVersion records the transit key version that signs; init
	// pins the key's latest version.
	SettingKeyVersion = "key_version"
	// SettingIssuer is the issuer reference (ID or name) of the root
	// (--vault-issuer). Given to init, an existing issuer is used instead
	// of generating one; CreateRoot records the issuer's ID.
	SettingIssuer = "issuer"
	// SettingCACert is a PEM file of CAs to verify Vault's TLS certificate
	// (--vault-ca-cert).
	SettingCACert = "ca_cert"
	// SettingClientCert and SettingClientKey are PEM files of a TLS client
	// certificate and key for Vault (--vault-client-cert,
	// --vault-client-key).
	SettingClientCert = "client_cert"
	SettingClientKey  = "client_key"
	// SettingTLSServerName overrides the name checked in Vault's TLS
	// certificate (--vault-tls-server-name).
	SettingTLSServerName = "tls_server_name"
	// SettingTokenFile is a file holding the Vault token
	// (--vault-token-file).
	SettingTokenFile = "token_file"
	// SettingTokenEnv names the environment variable holding the token when
	// no token file is set (--vault-token-env). Default DefaultTokenEnv.
	SettingTokenEnv = "token_env"
	// SettingAppRoleMount is the AppRole auth method's mount path
	// (--vault-approle-mount). Default DefaultAppRoleMount.
	SettingAppRoleMount = "approle_mount"
	// SettingAppRoleRoleIDFile and SettingAppRoleSecretIDFile are files
	// holding the AppRole role ID and secret ID
	// (--vault-approle-role-id-file, --vault-approle-secret-id-file). Setting
	// the role ID file selects AppRole authentication.
	SettingAppRoleRoleIDFile   = "approle_role_id_file"
	SettingAppRoleSecretIDFile = "approle_secret_id_file"
	// SettingKeyID records the ID of the key CreateRoot generated in Vault.
	SettingKeyID = "key_id"
	// SettingGenerated records whether CreateRoot generated the issuer
	// ("true") or used an existing one ("false"); only a generated root is
	// deleted by DeleteRoot.
	SettingGenerated = backends.SettingGenerated
)

// Engines that can hold the root key (SettingEngine).
const (
	// EnginePKI is Vault's PKI secrets engine: Vault builds the node
	// certificates (see the package documentation for where they differ
	// from the local issuer's).
	EnginePKI = "pki"
	// EngineTransit is Vault's transit secrets engine: the key signs, and
	// chancery's local issuer builds every certificate, exactly as the file
	// and PKCS#11 backends do.
	EngineTransit = "transit"
)

// Defaults of the settings.
const (
	DefaultMount        = "pki"
	DefaultTransitMount = "transit"
	DefaultTransitKey   = "chancery-root"
	DefaultTokenEnv     = "VAULT_TOKEN"
	DefaultAppRoleMount = "approle"
)

// userSettings are the keys a user may give to init; the others are
// recorded by CreateRoot.
var userSettings = map[string]bool{
	SettingAddress: true, SettingNamespace: true, SettingEngine: true, SettingMount: true, SettingIssuer: true, SettingKey: true,
	SettingCACert: true, SettingClientCert: true, SettingClientKey: true, SettingTLSServerName: true,
	SettingTokenFile: true, SettingTokenEnv: true,
	SettingAppRoleMount: true, SettingAppRoleRoleIDFile: true, SettingAppRoleSecretIDFile: true,
}

// Config configures a connection to Vault's PKI engine. Secrets are never
// held in a Config: they are read from the files and environment variable
// it names.
type Config struct {
	// Address is Vault's address. Required.
	Address string
	// Namespace is the Vault Enterprise namespace; empty means none.
	Namespace string
	// Engine is EnginePKI or EngineTransit; empty means EnginePKI.
	Engine string
	// Mount is the secrets engine's mount path. Empty means DefaultMount
	// (PKI) or DefaultTransitMount (transit).
	Mount string
	// Issuer is the issuer reference (ID or name) of the root (PKI only).
	Issuer string
	// Key is the name of the root's transit key (transit only).
	Key string
	// KeyVersion is the transit key version that signs (transit only);
	// zero before init pins it.
	KeyVersion int

	// CACert, ClientCert, ClientKey and TLSServerName configure TLS to
	// Vault (files in PEM).
	CACert, ClientCert, ClientKey, TLSServerName string

	// TokenFile holds the Vault token. When empty and AppRoleRoleIDFile is
	// empty too, the token comes from the environment variable TokenEnv.
	TokenFile string
	// TokenEnv names the token's environment variable. Empty means
	// DefaultTokenEnv.
	TokenEnv string
	// AppRoleMount is the AppRole auth mount; empty means
	// DefaultAppRoleMount.
	AppRoleMount string
	// AppRoleRoleIDFile and AppRoleSecretIDFile hold the AppRole
	// credentials. Setting AppRoleRoleIDFile selects AppRole.
	AppRoleRoleIDFile, AppRoleSecretIDFile string

	// Clock drives token renewal. Nil means the wall clock.
	Clock clock.Clock
	// Logger receives renewal and retry events; nil means slog.Default().
	// Nothing logged contains a token or secret ID.
	Logger *slog.Logger
	// Retry bounds the retries of transient failures. The zero value means
	// DefaultRetry.
	Retry Retry
	// NotBeforeSkew is how far a node certificate's NotBefore, which
	// Vault sets from its own clock, may be from the request's before the
	// certificate is refused. Zero means DefaultNotBeforeSkew.
	NotBeforeSkew time.Duration
}

// DefaultNotBeforeSkew is the default Config.NotBeforeSkew.
const DefaultNotBeforeSkew = 30 * time.Second

// Retry bounds the retries of a transient failure: Vault unreachable, a 5xx
// answer other than "sealed", or 429. Attempts are spaced by an exponential
// backoff with jitter, from Min up to Max.
type Retry struct {
	// Attempts is the number of tries in all, at least 1.
	Attempts int
	// Min and Max bound the wait between two tries.
	Min, Max time.Duration
}

// DefaultRetry is used when Config.Retry is zero: 5 tries over about 3
// seconds.
var DefaultRetry = Retry{Attempts: 5, Min: 100 * time.Millisecond, Max: 2 * time.Second}

// ConfigFromSettings reads a Config from backend settings, with relative
// file paths taken under dataDir.
func ConfigFromSettings(dataDir string, s backends.Settings) (Config, error) {
	path := func(k string) string {
		p := strings.TrimSpace(s[k])
		if p != "" && !filepath.IsAbs(p) && dataDir != "" {
			p = filepath.Join(dataDir, p)
		}
		return p
	}
	c := Config{
		Address:             strings.TrimSpace(s[SettingAddress]),
		Namespace:           strings.TrimSpace(s[SettingNamespace]),
		Engine:              strings.ToLower(strings.TrimSpace(s[SettingEngine])),
		Mount:               strings.TrimSpace(s[SettingMount]),
		Issuer:              strings.TrimSpace(s[SettingIssuer]),
		Key:                 strings.TrimSpace(s[SettingKey]),
		CACert:              path(SettingCACert),
		ClientCert:          path(SettingClientCert),
		ClientKey:           path(SettingClientKey),
		TLSServerName:       strings.TrimSpace(s[SettingTLSServerName]),
		TokenFile:           path(SettingTokenFile),
		TokenEnv:            strings.TrimSpace(s[SettingTokenEnv]),
		AppRoleMount:        strings.TrimSpace(s[SettingAppRoleMount]),
		AppRoleRoleIDFile:   path(SettingAppRoleRoleIDFile),
		AppRoleSecretIDFile: path(SettingAppRoleSecretIDFile),
	}
	if v := strings.TrimSpace(s[SettingKeyVersion]); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 {
			return c, configError("%s %q: want a positive integer", SettingKeyVersion, v)
		}
		c.KeyVersion = n
	}
	return c, c.check()
}

// check fills defaults and refuses incomplete or contradictory settings.
func (c *Config) check() error {
	if c.Address == "" {
		return configError("the Vault address is missing (--vault-addr)")
	}
	switch c.Engine {
	case "":
		c.Engine = EnginePKI
	case EnginePKI, EngineTransit:
	default:
		return configError("unknown secrets engine %q (--vault-engine): want %s or %s", c.Engine, EnginePKI, EngineTransit)
	}
	c.Mount = strings.Trim(c.Mount, "/")
	if c.Mount == "" {
		c.Mount = DefaultMount
		if c.Engine == EngineTransit {
			c.Mount = DefaultTransitMount
		}
	}
	switch {
	case c.Engine == EngineTransit && c.Issuer != "":
		return configError("--vault-issuer names a PKI issuer: with --vault-engine %s, name the key with --vault-key", EngineTransit)
	case c.Engine == EnginePKI && c.Key != "":
		return configError("--vault-key names a transit key: use it with --vault-engine %s", EngineTransit)
	case c.Engine == EnginePKI && c.KeyVersion != 0:
		return configError("%s is a transit setting", SettingKeyVersion)
	}
	if c.Key != "" {
		if err := CheckKeyName(c.Key); err != nil {
			return err
		}
	}
	if err := CheckMount(c.Mount); err != nil {
		return err
	}
	c.Namespace = strings.Trim(c.Namespace, "/")
	if c.TokenEnv == "" {
		c.TokenEnv = DefaultTokenEnv
	}
	c.AppRoleMount = strings.Trim(c.AppRoleMount, "/")
	if c.AppRoleMount == "" {
		c.AppRoleMount = DefaultAppRoleMount
	}
	if (c.ClientCert == "") != (c.ClientKey == "") {
		return configError("a TLS client certificate needs both --vault-client-cert and --vault-client-key")
	}
	switch {
	case c.AppRoleRoleIDFile != "" && c.TokenFile != "":
		return configError("choose one way to authenticate: a token file or AppRole, not both")
	case c.AppRoleRoleIDFile != "" && c.AppRoleSecretIDFile == "":
		return configError("AppRole needs a secret ID file (--vault-approle-secret-id-file) besides the role ID file")
	case c.AppRoleRoleIDFile == "" && c.AppRoleSecretIDFile != "":
		return configError("AppRole needs a role ID file (--vault-approle-role-id-file) besides the secret ID file")
	}
	if c.Retry.Attempts <= 0 {
		c.Retry = DefaultRetry
	}
	if c.Retry.Min <= 0 {
		c.Retry.Min = DefaultRetry.Min
	}
	if c.Retry.Max < c.Retry.Min {
		c.Retry.Max = c.Retry.Min
	}
	if c.NotBeforeSkew <= 0 {
		c.NotBeforeSkew = DefaultNotBeforeSkew
	}
	if c.Clock == nil {
		c.Clock = clock.Real{}
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	return nil
}

// settings returns the settings that reopen the root: those the user gave,
// as given, plus the issuer's and key's IDs.
func recordSettings(in backends.Settings, issuerID, keyID string, generated bool) backends.Settings {
	out := backends.Settings{}
	for k, v := range in {
		if userSettings[k] && v != "" {
			out[k] = v
		}
	}
	if out[SettingMount] == "" {
		out[SettingMount] = DefaultMount
	}
	out[SettingIssuer] = issuerID
	if keyID != "" {
		out[SettingKeyID] = keyID
	}
	out[SettingGenerated] = "false"
	if generated {
		out[SettingGenerated] = "true"
	}
	return out
}

// authMethod names how the Config authenticates, for descriptions.
func (c *Config) authMethod() string {
	switch {
	case c.AppRoleRoleIDFile != "":
		return "approle"
	case c.TokenFile != "":
		return "token-file"
	}
	return "token-env"
}
