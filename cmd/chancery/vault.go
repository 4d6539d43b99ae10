package main

import (
	"errors"
	"fmt"
	"strings"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/chancery-pki/chancery/backends"
	"github.com/chancery-pki/chancery/backends/vault"
)

// vaultFlags are init's flags for the vault backend, each a setting.
type vaultFlags map[string]*string

// vaultFlagSettings maps each flag to its backend setting and help.
var vaultFlagSettings = []struct{ flag, setting, help string }{
	{"vault-addr", vault.SettingAddress, "Vault's address (https://HOST:8200); selects the vault backend"},
	{"vault-namespace", vault.SettingNamespace, "Vault namespace (Enterprise)"},
	{"vault-engine", vault.SettingEngine, "secrets engine holding the root key: " + vault.EnginePKI + " (default; Vault builds node certificates, DNS names sorted) or " + vault.EngineTransit + " (Vault signs what chancery builds: exactly the file backend's certificates)"},
	{"vault-mount", vault.SettingMount, "mount path of the engine (default " + vault.DefaultMount + ", or " + vault.DefaultTransitMount + " for transit)"},
	{"vault-issuer", vault.SettingIssuer, "PKI: use this existing root issuer in the mount instead of generating one"},
	{"vault-key", vault.SettingKey, "transit: the root key's name (default " + vault.DefaultTransitKey + "); init creates it, or uses it if it exists"},
	{"vault-ca-cert", vault.SettingCACert, "PEM bundle that Vault's TLS certificate chains to"},
	{"vault-client-cert", vault.SettingClientCert, "client certificate for TLS to Vault"},
	{"vault-client-key", vault.SettingClientKey, "client key for TLS to Vault"},
	{"vault-tls-server-name", vault.SettingTLSServerName, "name to check Vault's TLS certificate against"},
	{"vault-token-file", vault.SettingTokenFile, "file holding a Vault token (else $VAULT_TOKEN)"},
	{"vault-token-env", vault.SettingTokenEnv, "environment variable holding the Vault token (default VAULT_TOKEN)"},
	{"vault-approle-mount", vault.SettingAppRoleMount, "AppRole auth mount (default " + vault.DefaultAppRoleMount + ")"},
	{"vault-approle-role-id-file", vault.SettingAppRoleRoleIDFile, "file holding the AppRole role ID"},
	{"vault-approle-secret-id-file", vault.SettingAppRoleSecretIDFile, "file holding the AppRole secret ID"},
}

func addVaultFlags(f *pflag.FlagSet) vaultFlags {
	v := vaultFlags{}
	for _, fs := range vaultFlagSettings {
		v[fs.flag] = f.String(fs.flag, "", fs.help)
	}
	return v
}

// settings returns the settings of the flags given, and whether any was.
func (v vaultFlags) settings(f *pflag.FlagSet) (backends.Settings, bool) {
	s := backends.Settings{}
	for _, fs := range vaultFlagSettings {
		if f.Changed(fs.flag) {
			s[fs.setting] = *v[fs.flag]
		}
	}
	return s, len(s) > 0
}

func newVaultCmd(a *app) *cobra.Command {
	cmd := &cobra.Command{Use: "vault", Short: "Helpers for the Vault backend"}
	var mount, issuer, engine, key string
	var run bool
	policy := &cobra.Command{
		Use:   "policy [--vault-engine pki|transit] [--vault-mount M] [--vault-issuer ID | --vault-key NAME [--run]]",
		Short: "Print the Vault policy chancery needs (HCL): for init, or with --vault-issuer (PKI) or --run (transit) for a running manager",
		Long: "PKI engine (the default): without --vault-issuer, prints the policy `chancery init` needs (it generates\n" +
			"the root, and deletes what it made when init fails). With --vault-issuer ID (the root's issuer ID, which\n" +
			"init records), prints the least-privilege policy for a running manager, pinned to that issuer: no\n" +
			"generate, no delete.\n\n" +
			"Transit engine (--vault-engine transit): prints the policy `chancery init` needs to create the root key\n" +
			"--vault-key NAME (default " + vault.DefaultTransitKey + "), never exportable, and to delete it when init fails: exact\n" +
			"paths, no other key. With --run, prints the least-privilege policy for a running manager: read that key\n" +
			"and sign with it, nothing else; it is also all that init needs to use a key made beforehand.",
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			switch strings.ToLower(strings.TrimSpace(engine)) {
			case vault.EnginePKI:
				if cmd.Flags().Changed("vault-key") {
					return withHint(errors.New("--vault-key names a transit key"), "add --vault-engine transit")
				}
				if run {
					return withHint(errors.New("--run is for the transit engine"), "with the PKI engine, --vault-issuer ID selects the run policy")
				}
			case vault.EngineTransit:
				if cmd.Flags().Changed("vault-issuer") {
					return withHint(errors.New("--vault-issuer names a PKI issuer"), "with --vault-engine transit, name the key with --vault-key")
				}
				if !cmd.Flags().Changed("vault-mount") {
					mount = vault.DefaultTransitMount
				}
				if err := vault.CheckMount(mount); err != nil {
					return err
				}
				if err := vault.CheckKeyName(key); err != nil {
					return err
				}
				if run {
					fmt.Fprint(a.stdout, vault.TransitRunPolicy(mount, key))
				} else {
					fmt.Fprint(a.stdout, vault.TransitPolicy(mount, key))
				}
				return nil
			default:
				return fmt.Errorf("unknown --vault-engine %q: want %s or %s", engine, vault.EnginePKI, vault.EngineTransit)
			}
			if err := vault.CheckMount(mount); err != nil {
				return err
			}
			if !cmd.Flags().Changed("vault-issuer") {
				fmt.Fprint(a.stdout, vault.Policy(mount))
				return nil
			}
			if err := vault.CheckIssuerID(issuer); err != nil {
				return err
			}
			fmt.Fprint(a.stdout, vault.RunPolicy(mount, issuer))
			return nil
		},
	}
	policy.Flags().StringVar(&engine, "vault-engine", vault.EnginePKI, "secrets engine: "+vault.EnginePKI+" or "+vault.EngineTransit)
	policy.Flags().StringVar(&mount, "vault-mount", vault.DefaultMount, "mount path (default "+vault.DefaultMount+", or "+vault.DefaultTransitMount+" for transit)")
	policy.Flags().StringVar(&issuer, "vault-issuer", "", "PKI: the root's issuer ID: print the run policy, pinned to it")
	policy.Flags().StringVar(&key, "vault-key", vault.DefaultTransitKey, "transit: the root key's name")
	policy.Flags().BoolVar(&run, "run", false, "transit: print the run policy, for a running manager")
	cmd.AddCommand(policy)
	return cmd
}

// printVaultRunPolicyHint tells, after init, how to replace the Vault
// policy init needed with the run policy, pinned to the root init made.
func printVaultRunPolicyHint(a *app, s backends.Settings) {
	var cmd string
	switch s[vault.SettingEngine] {
	case vault.EngineTransit:
		cmd = fmt.Sprintf("chancery vault policy --vault-engine transit --vault-mount %s --vault-key %s --run", s[vault.SettingMount], s[vault.SettingKey])
	default:
		if s[vault.SettingIssuer] == "" {
			return
		}
		cmd = fmt.Sprintf("chancery vault policy --vault-mount %s --vault-issuer %s", s[vault.SettingMount], s[vault.SettingIssuer])
	}
	fmt.Fprintf(a.stdout, "The root is in Vault. Replace the policy init needed with the run policy, pinned to it:\n\n    %s | vault policy write POLICY_NAME -\n\n", cmd)
	if s[vault.SettingEngine] != vault.EngineTransit {
		fmt.Fprintf(a.stdout, "Note: Vault's PKI engine sorts the DNS names of node certificates (swarm's order is [role, node ID, swarm-ca]);\n"+
			"a root key in Vault's transit engine (--vault-engine transit) keeps swarm's certificates exactly.\n\n")
	}
}
