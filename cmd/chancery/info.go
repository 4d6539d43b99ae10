package main

import (
	"fmt"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/chancery-pki/chancery/ca"
	"github.com/chancery-pki/chancery/certdir"
)

func newInfoCmd(a *app) *cobra.Command {
	return &cobra.Command{
		Use:   "info",
		Short: "Show the cluster and this node, as docker info's Swarm section does",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, done, err := a.admin(cmd.Context())
			if err != nil {
				return err
			}
			defer done()
			info, err := c.Info(cmd.Context())
			if err != nil {
				return apiError(err)
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
			if info.CertRecordRetention > 0 {
				fmt.Fprintf(w, "  Expired Certificate Records Kept: %s\n", ca.HumanDuration(info.CertRecordRetention))
			}
			fmt.Fprintf(w, "  Backend: %s\n", info.Backend)
			for _, kv := range info.BackendDetails {
				fmt.Fprintf(w, "   %s: %s\n", kv[0], kv[1])
			}
			fmt.Fprintf(w, "  Root CA: %s\n", info.RootSubject)
			fmt.Fprintf(w, "  Root CA Fingerprint: %s\n", info.RootFingerprint)
			fmt.Fprintf(w, "  Root CA Expires: %s\n", info.RootNotAfter.UTC().Format(time.RFC3339))
			if st, err := c.CA(cmd.Context()); err == nil && st.Rotation != nil {
				r := st.Rotation
				fmt.Fprintf(w, "  Root Rotation: %s\n", r.Phase)
				fmt.Fprintf(w, "   New Root CA Fingerprint: %s\n", r.TargetFingerprint)
				if r.Path != "" {
					fmt.Fprintf(w, "   Cross-Signed By: %s\n", r.Path)
				}
				fmt.Fprintf(w, "   Nodes With A New-Key Certificate: %d/%d\n", r.Converged, r.Total)
				fmt.Fprintf(w, "   Nodes Trusting The New Root: %d/%d\n", r.TrustingNew, r.Total)
				if len(r.Stragglers) > 0 {
					fmt.Fprintf(w, "   Stragglers: %s\n", strings.Join(r.Stragglers, ", "))
				}
				if len(r.Excluded) > 0 {
					fmt.Fprintf(w, "   Excluded: %s\n", strings.Join(r.Excluded, ", "))
				}
			}
			return nil
		},
	}
}
