package main

import (
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/chancery-pki/chancery/ca"
	"github.com/chancery-pki/chancery/certdir"
	"github.com/chancery-pki/chancery/cluster"
)

func newInfoCmd(a *app) *cobra.Command {
	return &cobra.Command{
		Use:   "info",
		Short: "Show the cluster and this node, as docker info's Swarm section does",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			st, err := a.openStore()
			if err != nil {
				return err
			}
			defer st.Close()
			info, err := cluster.ReadInfo(cmd.Context(), st)
			if err != nil {
				return err
			}
			c, err := st.Cluster(cmd.Context())
			if err != nil {
				return err
			}
			nodeID, isManager := "", false
			if chain, err := certdir.In(a.dataDir).NodeChain(); err == nil {
				if id, err := ca.IdentityOf(chain[0], info.ClusterID); err == nil {
					nodeID, isManager = id.NodeID, id.Role == ca.RoleManager
				}
			}
			w := a.stdout
			fmt.Fprintln(w, "Cluster: active")
			fmt.Fprintf(w, " NodeID: %s\n", nodeID)
			fmt.Fprintf(w, " Is Manager: %t\n", isManager)
			fmt.Fprintf(w, " ClusterID: %s\n", info.ClusterID)
			fmt.Fprintf(w, " Managers: %d\n", info.Managers)
			fmt.Fprintf(w, " Nodes: %d\n", info.Nodes)
			fmt.Fprintf(w, " Manager Address: %s\n", info.AdvertiseAddr)
			fmt.Fprintln(w, " CA Configuration:")
			fmt.Fprintf(w, "  Expiry Duration: %s\n", ca.HumanDuration(info.CertExpiry))
			fmt.Fprintf(w, "  Backend: %s\n", info.Backend)
			keys := make([]string, 0, len(c.Backend.Settings))
			for k := range c.Backend.Settings {
				keys = append(keys, k)
			}
			sort.Strings(keys)
			for _, k := range keys {
				fmt.Fprintf(w, "   %s: %s\n", strings.ReplaceAll(k, "_", " "), c.Backend.Settings[k])
			}
			fmt.Fprintf(w, "  Root CA: %s\n", info.RootSubject)
			fmt.Fprintf(w, "  Root CA Fingerprint: %s\n", info.RootFingerprint)
			fmt.Fprintf(w, "  Root CA Expires: %s\n", info.RootNotAfter.UTC().Format(time.RFC3339))
			return nil
		},
	}
}
