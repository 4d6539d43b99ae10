package main

import (
	"encoding/json"
	"fmt"
	"sort"
	"time"

	"github.com/spf13/cobra"

	"github.com/chancery-pki/chancery/api"
	"github.com/chancery-pki/chancery/certdir"
	"github.com/chancery-pki/chancery/internal/nodefilter"
	"github.com/chancery-pki/chancery/internal/nodefmt"
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
	var (
		quiet   bool
		format  string
		filters []string
	)
	cmd := &cobra.Command{
		Use:   "ls [-q] [--filter KEY=VALUE]... [--format FORMAT]",
		Short: "List the nodes, as docker node ls does",
		Long: `List the nodes, as docker node ls does.

Filters (--filter KEY=VALUE, repeatable; values of one key are alternatives,
different keys must all match): id (an ID prefix), name (a host name
prefix), role (manager or worker), membership (accepted or pending) and
state (ready or down).

--format is a Go template over the fields .ID, .Hostname, .Role, .Status,
.Availability, .ManagerStatus, .CertSerial, .CertNotAfter, .LastSeen,
.CreatedAt and .Self; "table TEMPLATE" prints a header and aligned columns
(\t between them), "json" one JSON object per node.

The nodes stream from the manager page by page. A listing that fits one page
is sorted by host name, as docker's; a larger one comes in node ID order.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			p, err := nodefmt.New(a.stdout, format, quiet, a.selfID())
			if err != nil {
				return err
			}
			if _, err := nodefilter.Parse(filters); err != nil {
				return fmt.Errorf("--filter %w", err)
			}
			c, done, err := a.admin(cmd.Context())
			if err != nil {
				return err
			}
			defer done()
			first := true
			q := api.NodeQuery{Limit: api.MaxNodePage, Filters: filters, Brief: p.Brief()}
			err = c.EachNodePage(cmd.Context(), q, func(page *api.NodePage) error {
				if first && page.Next == "" {
					sort.Slice(page.Nodes, func(i, j int) bool {
						if page.Nodes[i].Hostname != page.Nodes[j].Hostname {
							return page.Nodes[i].Hostname < page.Nodes[j].Hostname
						}
						return page.Nodes[i].ID < page.Nodes[j].ID
					})
				}
				first = false
				return p.Page(page.Nodes)
			})
			if ferr := p.Flush(); err == nil {
				err = ferr
			}
			return apiError(err)
		},
	}
	cmd.Flags().BoolVarP(&quiet, "quiet", "q", false, "only print the IDs")
	cmd.Flags().StringArrayVarP(&filters, "filter", "f", nil, "filter the nodes: id=, name=, role=, membership=, state= (repeatable)")
	cmd.Flags().StringVar(&format, "format", "", `print each node with a Go template, "table TEMPLATE", or "json"`)
	return cmd
}

func newNodeInspectCmd(a *app) *cobra.Command {
	var pretty bool
	cmd := &cobra.Command{
		Use:   "inspect [--pretty] NODE...",
		Short: "Show nodes as JSON, or for people with --pretty (by ID, unique ID prefix or host name)",
		Args:  cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, done, err := a.admin(cmd.Context())
			if err != nil {
				return err
			}
			defer done()
			var nodes []*api.Node
			for _, id := range args {
				n, err := c.Node(cmd.Context(), id)
				if err != nil {
					return apiError(err)
				}
				nodes = append(nodes, n)
			}
			if pretty {
				self := a.selfID()
				for i, n := range nodes {
					if i > 0 {
						fmt.Fprintln(a.stdout)
					}
					if err := nodefmt.Pretty(a.stdout, *n, self, time.Now()); err != nil {
						return err
					}
				}
				return nil
			}
			enc := json.NewEncoder(a.stdout)
			enc.SetIndent("", "    ")
			if len(nodes) == 1 {
				return enc.Encode(nodes[0])
			}
			return enc.Encode(nodes)
		},
	}
	cmd.Flags().BoolVar(&pretty, "pretty", false, "print in a form for people, not JSON")
	return cmd
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
