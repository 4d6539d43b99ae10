package main

import (
	"errors"
	"fmt"

	"github.com/spf13/cobra"

	"github.com/chancery-pki/chancery/hint"
	"github.com/chancery-pki/chancery/loadtest"
)

func newBenchCmd(a *app) *cobra.Command {
	var cfg loadtest.Config
	cmd := &cobra.Command{
		Use:   "bench --token TOKEN [-n NODES] [-c CONCURRENCY] [--renewals R] MANAGER",
		Short: "Drive simulated nodes against a manager (join, then renew) and print certs/s and latency",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if cfg.Token == "" {
				return hint.With(errors.New("a join token is needed"), "get one on the manager with 'chancery join-token -q worker'")
			}
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
	f.StringVar(&cfg.Token, "token", "", "join token for the simulated nodes")
	f.IntVarP(&cfg.Nodes, "nodes", "n", 100, "simulated nodes")
	f.IntVarP(&cfg.Concurrency, "concurrency", "c", 16, "concurrent clients")
	f.IntVar(&cfg.Renewals, "renewals", 1, "renewals per node after it joins")
	return cmd
}
