package main

import (
	"fmt"

	"github.com/spf13/cobra"

	"github.com/chancery-pki/chancery/loadtest"
)

func newBenchCmd(a *app) *cobra.Command {
	var cfg loadtest.Config
	var token, tokenFile string
	cmd := &cobra.Command{
		Use:   "bench [--token-file FILE] [-n NODES] [-c CONCURRENCY] [--renewals R] MANAGER",
		Short: "Drive simulated nodes against a manager (join, then renew) and print certs/s and latency",
		Long: `Drive simulated nodes against a manager (join, then renew) and print certs/s and latency.

The join token comes from --token-file FILE (mode 0600) or $` + JoinTokenEnv + `, as
join's does; --token TOKEN works but warns, as every local user can read it.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			tok, err := a.joinToken(cmd.Flags().Changed("token"), token, tokenFile)
			if err != nil {
				return err
			}
			cfg.Token = tok
			cfg.Addr = args[0]
			res, err := loadtest.Run(cmd.Context(), cfg)
			if err != nil {
				return err
			}
			fmt.Fprint(a.stdout, res.String())
			if res.Joins.Errors+res.Renewals.Errors > 0 {
				return fmt.Errorf("%d joins and %d renewals failed", res.Joins.Errors, res.Renewals.Errors)
			}
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVar(&tokenFile, "token-file", "", "file holding the simulated nodes' join token, mode 0600 (else $"+JoinTokenEnv+")")
	f.StringVar(&token, "token", "", "join token on the command line, where local users can read it: prefer --token-file or $"+JoinTokenEnv)
	f.IntVarP(&cfg.Nodes, "nodes", "n", 100, "simulated nodes")
	f.IntVarP(&cfg.Concurrency, "concurrency", "c", 16, "concurrent clients")
	f.IntVar(&cfg.Renewals, "renewals", 1, "renewals per node after it joins")
	return cmd
}
