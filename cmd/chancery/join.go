package main

import (
	"errors"
	"fmt"

	"github.com/spf13/cobra"

	"github.com/chancery-pki/chancery/agent"
	"github.com/chancery-pki/chancery/ca"
	"github.com/chancery-pki/chancery/client"
	"github.com/chancery-pki/chancery/hint"
	"github.com/chancery-pki/chancery/manager"
)

func newJoinCmd(a *app) *cobra.Command {
	var (
		token, hostname, listen string
		noRun                   bool
	)
	cmd := &cobra.Command{
		Use:   "join --token TOKEN MANAGER",
		Short: "Join a cluster as a node, then keep its certificate fresh in the foreground",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if token == "" {
				return hint.With(errors.New("a join token is needed"), "get one on a manager with 'chancery join-token worker' (or manager)")
			}
			j, err := agent.Join(cmd.Context(), agent.JoinRequest{DataDir: a.dataDir, Addr: args[0], Token: token, Hostname: hostname, ListenAddr: listen})
			if err != nil {
				var e *client.APIError
				switch {
				case errors.Is(err, ca.ErrInvalidJoinToken):
					return hint.With(err, "copy the whole token from 'chancery join-token worker' on a manager")
				case errors.As(err, &e) && e.Code == "invalid_token":
					return hint.With(err, "the token may have been rotated: get the current one with 'chancery join-token worker' on a manager")
				}
				return err
			}
			fmt.Fprintf(a.stdout, "This node joined a cluster as a %s.\n", j.Role.Short())
			if noRun {
				return nil
			}
			return a.runNode(cmd.Context(), "")
		},
	}
	cmd.Flags().StringVar(&token, "token", "", "join token (SWMTKN-1-...); its role decides the node's")
	cmd.Flags().StringVar(&hostname, "hostname", "", "host name to register (default: this host's)")
	cmd.Flags().StringVar(&listen, "listen-addr", "", "where this node serves the manager API while it is a manager (default "+manager.DefaultListenAddr+")")
	cmd.Flags().BoolVar(&noRun, "no-run", false, "join and exit, without running the node (start it later with 'chancery run')")
	return cmd
}
