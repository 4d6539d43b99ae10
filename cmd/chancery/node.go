package main

import (
	"encoding/json"
	"fmt"
	"sort"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"github.com/chancery-pki/chancery/certdir"
)

func newNodeCmd(a *app) *cobra.Command {
	cmd := &cobra.Command{Use: "node", Short: "List and manage the cluster's nodes"}
	cmd.AddCommand(newNodeLsCmd(a), newNodeInspectCmd(a), newNodeRoleCmd(a, "promote"), newNodeRoleCmd(a, "demote"), newNodeRmCmd(a))
	return cmd
}

// selfID is the node ID of the data directory's own node, if any.
func (a *app) selfID() string {
	chain, err := certdir.In(a.dataDir).NodeChain()
	if err != nil {
		return ""
	}
	return chain[0].Subject.CommonName
}

func newNodeLsCmd(a *app) *cobra.Command {
	var quiet bool
	cmd := &cobra.Command{
		Use:   "ls",
		Short: "List the nodes, as docker node ls does",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, done, err := a.admin(cmd.Context())
			if err != nil {
				return err
			}
			defer done()
			nodes, err := c.Nodes(cmd.Context())
			if err != nil {
				return apiError(err)
			}
			sort.Slice(nodes, func(i, j int) bool {
				if nodes[i].Hostname != nodes[j].Hostname {
					return nodes[i].Hostname < nodes[j].Hostname
				}
				return nodes[i].ID < nodes[j].ID
			})
			if quiet {
				for _, n := range nodes {
					fmt.Fprintln(a.stdout, n.ID)
				}
				return nil
			}
			self := a.selfID()
			tw := tabwriter.NewWriter(a.stdout, 0, 0, 3, ' ', 0)
			fmt.Fprintln(tw, "ID\tHOSTNAME\tSTATUS\tAVAILABILITY\tMANAGER STATUS")
			for _, n := range nodes {
				id := n.ID
				if n.ID == self {
					id += " *"
				}
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", id, n.Hostname, n.Status, n.Availability, n.ManagerStatus)
			}
			return tw.Flush()
		},
	}
	cmd.Flags().BoolVarP(&quiet, "quiet", "q", false, "only print the IDs")
	return cmd
}

func newNodeInspectCmd(a *app) *cobra.Command {
	return &cobra.Command{
		Use:   "inspect NODE",
		Short: "Show a node as JSON (by ID, unique ID prefix or host name)",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, done, err := a.admin(cmd.Context())
			if err != nil {
				return err
			}
			defer done()
			n, err := c.Node(cmd.Context(), args[0])
			if err != nil {
				return apiError(err)
			}
			enc := json.NewEncoder(a.stdout)
			enc.SetIndent("", "    ")
			return enc.Encode(n)
		},
	}
}

func newNodeRoleCmd(a *app, verb string) *cobra.Command {
	return &cobra.Command{
		Use:   verb + " NODE...",
		Short: map[string]string{"promote": "Make nodes managers", "demote": "Make nodes workers"}[verb],
		Args:  cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, done, err := a.admin(cmd.Context())
			if err != nil {
				return err
			}
			defer done()
			for _, id := range args {
				if verb == "promote" {
					n, err := c.Promote(cmd.Context(), id)
					if err != nil {
						return apiError(err)
					}
					fmt.Fprintf(a.stdout, "Node %s promoted to a manager in the cluster.\n", n.ID)
				} else {
					n, err := c.Demote(cmd.Context(), id)
					if err != nil {
						return apiError(err)
					}
					fmt.Fprintf(a.stdout, "Manager %s demoted in the cluster.\n", n.ID)
				}
			}
			return nil
		},
	}
}

func newNodeRmCmd(a *app) *cobra.Command {
	var force bool
	cmd := &cobra.Command{
		Use:   "rm [--force] NODE...",
		Short: "Remove nodes: their certificates are refused from then on, and they must join again",
		Args:  cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, done, err := a.admin(cmd.Context())
			if err != nil {
				return err
			}
			defer done()
			for _, id := range args {
				n, err := c.Remove(cmd.Context(), id, force)
				if err != nil {
					return apiError(err)
				}
				fmt.Fprintln(a.stdout, n.ID)
			}
			return nil
		},
	}
	cmd.Flags().BoolVarP(&force, "force", "f", false, "remove a node that is not down")
	return cmd
}
