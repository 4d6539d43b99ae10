package main

import (
	"fmt"

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
	{"vault-mount", vault.SettingMount, "PKI mount path (default " + vault.DefaultMount + ")"},
	{"vault-issuer", vault.SettingIssuer, "use this existing root issuer in the mount instead of generating one"},
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
	var mount, issuer string
	policy := &cobra.Command{
		Use:   "policy [--vault-mount M] [--vault-issuer ID]",
		Short: "Print the Vault policy chancery needs on a PKI mount (HCL): for init, or with --vault-issuer for a running manager",
		Long: "Without --vault-issuer, prints the policy `chancery init` needs (it generates the root, and deletes\n" +
			"what it made when init fails). With --vault-issuer ID (the root's issuer ID, which init records),\n" +
			"prints the least-privilege policy for a running manager, pinned to that issuer: no generate, no delete.",
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
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
	policy.Flags().StringVar(&mount, "vault-mount", vault.DefaultMount, "PKI mount path")
	policy.Flags().StringVar(&issuer, "vault-issuer", "", "the root's issuer ID: print the run policy, pinned to it")
	cmd.AddCommand(policy)
	return cmd
}
