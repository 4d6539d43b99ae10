package vault

import (
	"fmt"
	"strings"

	"github.com/spf13/pflag"

	"github.com/chancery-pki/chancery/backends"
)

// Flag names shared by init's flags and `chancery vault policy`'s.
const (
	flagEngine = "vault-engine"
	flagMount  = "vault-mount"
	flagIssuer = "vault-issuer"
	flagKey    = "vault-key"
)

// flagSettings maps each of the backend's flags to its setting and help:
// one flag for each setting a user may give (userSettings).
var flagSettings = []struct{ flag, setting, help string }{
	{"vault-addr", SettingAddress, "Vault's address (https://HOST:8200); selects the vault backend"},
	{"vault-namespace", SettingNamespace, "Vault namespace (Enterprise)"},
	{flagEngine, SettingEngine, "secrets engine holding the root key: " + EnginePKI + " (default; Vault builds node certificates, DNS names sorted) or " + EngineTransit + " (Vault signs what chancery builds: exactly the file backend's certificates)"},
	{flagMount, SettingMount, "mount path of the engine (default " + DefaultMount + ", or " + DefaultTransitMount + " for transit)"},
	{flagIssuer, SettingIssuer, "PKI: use this existing root issuer in the mount instead of generating one"},
	{flagKey, SettingKey, "transit: the root key's name (default " + DefaultTransitKey + "); init creates it, or uses it if it exists"},
	{"vault-ca-cert", SettingCACert, "PEM bundle that Vault's TLS certificate chains to"},
	{"vault-client-cert", SettingClientCert, "client certificate for TLS to Vault"},
	{"vault-client-key", SettingClientKey, "client key for TLS to Vault"},
	{"vault-tls-server-name", SettingTLSServerName, "name to check Vault's TLS certificate against"},
	{"vault-token-file", SettingTokenFile, "file (mode 0600 or 0400) holding a Vault token (else $VAULT_TOKEN)"},
	{"vault-token-env", SettingTokenEnv, "environment variable holding the Vault token (default VAULT_TOKEN)"},
	{"vault-approle-mount", SettingAppRoleMount, "AppRole auth mount (default " + DefaultAppRoleMount + ")"},
	{"vault-approle-role-id-file", SettingAppRoleRoleIDFile, "file (mode 0600 or 0400) holding the AppRole role ID"},
	{"vault-approle-secret-id-file", SettingAppRoleSecretIDFile, "file (mode 0600 or 0400) holding the AppRole secret ID"},
}

var _ backends.FlagDeclarer = Backend{}

// Flags declares the vault backend's flags, one --vault-* flag for each
// setting a user may give (--vault-addr for SettingAddress, and so on);
// any of them selects the backend, and the settings are those of the flags
// given. Settings needs at least one, and refuses --ca-cert and --ca-key:
// chancery does not import a root into Vault.
func (Backend) Flags(fs *pflag.FlagSet) backends.FlagParser {
	values := make([]*string, len(flagSettings))
	for i, f := range flagSettings {
		values[i] = fs.String(f.flag, "", f.help)
	}
	return backends.FlagParserFunc(func(opts backends.RootOptions) (backends.Settings, error) {
		if opts.Cert || opts.Key {
			return nil, &backends.FlagError{Msg: "--ca-cert and --ca-key cannot be used with the " + Name + " backend",
				Advice: "import the root into Vault, then give its issuer with --vault-issuer (PKI) or its key with --vault-key (transit)"}
		}
		s := backends.Settings{}
		for i, f := range flagSettings {
			if fs.Changed(f.flag) {
				s[f.setting] = *values[i]
			}
		}
		if len(s) == 0 {
			return nil, &backends.FlagError{Msg: "the " + Name + " backend needs --vault-addr", Advice: "see --help for the --vault-* flags"}
		}
		return s, nil
	})
}

// PolicyFlags are the flags of `chancery vault policy`, which prints the
// policy chancery's Vault token needs (Policy, RunPolicy, TransitPolicy,
// TransitRunPolicy): --vault-engine, --vault-mount, --vault-issuer,
// --vault-key and --run.
type PolicyFlags struct {
	fs                         *pflag.FlagSet
	engine, mount, issuer, key string
	run                        bool
}

// DeclarePolicyFlags declares the flags of `chancery vault policy` on fs
// and returns them, to be read by Policy once fs is parsed.
func DeclarePolicyFlags(fs *pflag.FlagSet) *PolicyFlags {
	p := &PolicyFlags{fs: fs}
	fs.StringVar(&p.engine, flagEngine, EnginePKI, "secrets engine: "+EnginePKI+" or "+EngineTransit)
	fs.StringVar(&p.mount, flagMount, DefaultMount, "mount path (default "+DefaultMount+", or "+DefaultTransitMount+" for transit)")
	fs.StringVar(&p.issuer, flagIssuer, "", "PKI: the root's issuer ID: print the run policy, pinned to it")
	fs.StringVar(&p.key, flagKey, DefaultTransitKey, "transit: the root key's name")
	fs.BoolVar(&p.run, "run", false, "transit: print the run policy, for a running manager")
	return p
}

// Policy returns the policy (HCL) the parsed flags ask for. With the PKI
// engine (the default): without --vault-issuer, the policy init needs
// (Policy); with it, the run policy pinned to that issuer (RunPolicy).
// With --vault-engine transit: the policy init needs for the key
// --vault-key (TransitPolicy), or with --run the run policy
// (TransitRunPolicy). It refuses flags of one engine given with the other,
// and invalid mount paths, issuer IDs and key names.
func (p *PolicyFlags) Policy() (string, error) {
	switch strings.ToLower(strings.TrimSpace(p.engine)) {
	case EnginePKI:
		if p.fs.Changed(flagKey) {
			return "", &backends.FlagError{Msg: "--vault-key names a transit key", Advice: "add --vault-engine transit"}
		}
		if p.run {
			return "", &backends.FlagError{Msg: "--run is for the transit engine", Advice: "with the PKI engine, --vault-issuer ID selects the run policy"}
		}
	case EngineTransit:
		if p.fs.Changed(flagIssuer) {
			return "", &backends.FlagError{Msg: "--vault-issuer names a PKI issuer", Advice: "with --vault-engine transit, name the key with --vault-key"}
		}
		mount := p.mount
		if !p.fs.Changed(flagMount) {
			mount = DefaultTransitMount
		}
		if err := CheckMount(mount); err != nil {
			return "", err
		}
		if err := CheckKeyName(p.key); err != nil {
			return "", err
		}
		if p.run {
			return TransitRunPolicy(mount, p.key), nil
		}
		return TransitPolicy(mount, p.key), nil
	default:
		return "", fmt.Errorf("unknown --vault-engine %q: want %s or %s", p.engine, EnginePKI, EngineTransit)
	}
	if err := CheckMount(p.mount); err != nil {
		return "", err
	}
	if !p.fs.Changed(flagIssuer) {
		return Policy(p.mount), nil
	}
	if err := CheckIssuerID(p.issuer); err != nil {
		return "", err
	}
	return RunPolicy(p.mount, p.issuer), nil
}
