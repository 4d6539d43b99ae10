package main

import (
	"fmt"
	"os"
	"path/filepath"

	"github.com/spf13/cobra"

	"github.com/chancery-pki/chancery/admin"
	"github.com/chancery-pki/chancery/agent"
	"github.com/chancery-pki/chancery/cluster"
	"github.com/chancery-pki/chancery/hint"
	"github.com/chancery-pki/chancery/store"
	"github.com/chancery-pki/chancery/store/etcdstore"
)

func newLeaveCmd(a *app) *cobra.Command {
	var force bool
	cmd := &cobra.Command{
		Use:   "leave [--force]",
		Short: "Leave the cluster, as 'docker swarm leave': the manager refuses this node's certificate from then on, and its files are removed",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			var left *agent.Left
			if ok, err := cluster.HasStore(a.dataDir); err != nil {
				return err
			} else if !ok {
				if left, err = agent.Leave(cmd.Context(), agent.LeaveRequest{DataDir: a.dataDir, Force: force}); err != nil {
					return err
				}
			} else if s, err := store.ReadSettings(a.dataDir); err != nil || s.Type != etcdstore.Name {
				return hint.With(fmt.Errorf("%s holds the cluster's store: this node is the leader, which never leaves, or the cluster would be lost", a.dataDir),
					"to stop the manager, stop 'chancery run'; to move the cluster elsewhere, see the README's backup section")
			} else {
				// A manager of a store in etcd leaves through the store,
				// as any other manager (never the elected leader).
				if left, err = admin.LeaveShared(cmd.Context(), a.dataDir, force); err != nil {
					return err
				}
				if _, err := os.Stat(filepath.Join(a.dataDir, "ca")); err == nil {
					fmt.Fprintf(a.stderr, "note: %s still holds the root CA's files (ca/); remove them if this host should no longer hold the root key\n", a.dataDir)
				}
			}
			if !left.Told {
				fmt.Fprintf(a.stderr, "warning: no manager could be told (%v); remove the node there with 'chancery node rm --force %s'\n", left.Unreachable, left.NodeID)
			}
			fmt.Fprintf(a.stdout, "Node %s (%s) left the cluster.\n", left.NodeID, left.Role.Short())
			return nil
		},
	}
	cmd.Flags().BoolVarP(&force, "force", "f", false, "let a manager leave (never the leader: with a store in etcd, the elected one), and remove the node's files even if no manager can be told")
	return cmd
}
