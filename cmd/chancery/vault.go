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
	var mount string
	policy := &cobra.Command{
		Use:   "policy [--vault-mount M]",
		Short: "Print the least-privilege Vault policy chancery needs on a PKI mount (HCL)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			fmt.Fprint(a.stdout, vault.Policy(mount))
			return nil
		},
	}
	policy.Flags().StringVar(&mount, "vault-mount", vault.DefaultMount, "PKI mount path")
	cmd.AddCommand(policy)
	return cmd
}
