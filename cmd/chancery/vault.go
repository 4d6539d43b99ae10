package main

import (
	"fmt"

	"github.com/spf13/cobra"

	"github.com/chancery-pki/chancery/backends"
	"github.com/chancery-pki/chancery/backends/vault"
)

func newVaultCmd(a *app) *cobra.Command {
	cmd := &cobra.Command{Use: "vault", Short: "Helpers for the Vault backend"}
	var flags *vault.PolicyFlags
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
			p, err := flags.Policy()
			if err != nil {
				return err
			}
			fmt.Fprint(a.stdout, p)
			return nil
		},
	}
	flags = vault.DeclarePolicyFlags(policy.Flags())
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
