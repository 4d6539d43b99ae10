package main

import (
	"fmt"

	"github.com/spf13/cobra"

	"github.com/chancery-pki/chancery/ca"
	"github.com/chancery-pki/chancery/hint"
)

func newJoinTokenCmd(a *app) *cobra.Command {
	var rotate, quiet bool
	cmd := &cobra.Command{
		Use:   "join-token [--rotate] [-q] worker|manager",
		Short: "Print or rotate the join token of a role",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			role, err := ca.ParseRole(args[0])
			if err != nil {
				return hint.With(err, "use 'chancery join-token worker' or 'chancery join-token manager'")
			}
			c, done, err := a.admin(cmd.Context())
			if err != nil {
				return err
			}
			defer done()
			t, err := c.JoinToken(cmd.Context(), role, rotate)
			if err != nil {
				return apiError(err)
			}
			if quiet {
				fmt.Fprintln(a.stdout, t.Token)
				return nil
			}
			if rotate {
				fmt.Fprintf(a.stdout, "Successfully rotated %s join token.\n\n", role.Short())
			}
			printJoinCommand(a, role, t.Token, t.AdvertiseAddr)
			return nil
		},
	}
	cmd.Flags().BoolVar(&rotate, "rotate", false, "rotate the join token: the old one stops working, joined nodes are not affected")
	cmd.Flags().BoolVarP(&quiet, "quiet", "q", false, "only print the token")
	return cmd
}
