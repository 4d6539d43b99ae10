package main

import (
	"encoding/csv"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/chancery-pki/chancery/audit"
	"github.com/chancery-pki/chancery/certdir"
)

func newAuditCmd(a *app) *cobra.Command {
	cmd := &cobra.Command{Use: "audit", Short: "Verify, export and show the tamper-evident record of CA actions"}
	cmd.AddCommand(newAuditVerifyCmd(a), newAuditExportCmd(a), newAuditShowCmd(a))
	return cmd
}

// auditRecords reads the whole stored log.
func (a *app) auditRecords(cmd *cobra.Command) ([]audit.Record, error) {
	c, done, err := a.admin(cmd.Context())
	if err != nil {
		return nil, err
	}
	defer done()
	recs, err := c.AuditRecords(cmd.Context(), 1)
	if err != nil {
		return nil, apiError(err)
	}
	return recs, nil
}

// auditEntries decodes the records, skipping a torn last one.
func auditEntries(recs []audit.Record) []audit.Entry {
	var out []audit.Entry
	for _, r := range recs {
		if e, err := audit.Unmarshal(r.Data); err == nil {
			out = append(out, e)
		}
	}
	return out
}

func newAuditVerifyCmd(a *app) *cobra.Command {
	return &cobra.Command{
		Use:   "verify",
		Short: "Check the whole hash chain and its CA-signed checkpoints; name the first bad entry",
		Long: `verify reads every entry and checks that each links to the hash of the one
before it and hashes to its own hash, and that every checkpoint carries a
certificate from the cluster's root (this node's swarm-root-ca.crt) naming
the head it signs. It exits 1 and names the first bad entry if any is wrong,
or if the last entry is torn (everything before it is still checked).`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			roots, _, err := certdir.In(a.dataDir).Root()
			if err != nil {
				return withHint(err, "audit verify checks checkpoints against this node's root CA: run it with --data-dir of a manager")
			}
			recs, err := a.auditRecords(cmd)
			if err != nil {
				return err
			}
			rep := audit.Verify(recs, roots)
			fmt.Fprint(a.stdout, rep.String())
			switch {
			case rep.Problem != nil:
				return fmt.Errorf("the audit log does not verify: entry %d: %s", rep.Problem.Seq, rep.Problem.Reason)
			case rep.Torn:
				return fmt.Errorf("the audit log's last entry (%d) is torn; entries 1-%d verify", rep.Entries, rep.Verified)
			}
			return nil
		},
	}
}

// parseSince reads an RFC 3339 time or a duration before now.
func parseSince(s string, now time.Time) (time.Time, error) {
	if s == "" {
		return time.Time{}, nil
	}
	if t, err := time.Parse(time.RFC3339, s); err == nil {
		return t, nil
	}
	if d, err := time.ParseDuration(s); err == nil && d >= 0 {
		return now.Add(-d), nil
	}
	return time.Time{}, fmt.Errorf("invalid --since %q: want an RFC 3339 time (2026-11-22T07:00:00Z) or a duration (24h)", s)
}

func newAuditExportCmd(a *app) *cobra.Command {
	var since, format string
	cmd := &cobra.Command{
		Use:   "export [--since T] [--format jsonl|csv]",
		Short: "Write the audit log for auditors, as JSON lines (the stored entries) or CSV",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			from, err := parseSince(since, time.Now())
			if err != nil {
				return err
			}
			if format != "jsonl" && format != "csv" {
				return fmt.Errorf("invalid --format %q: want jsonl or csv", format)
			}
			recs, err := a.auditRecords(cmd)
			if err != nil {
				return err
			}
			var w *csv.Writer
			if format == "csv" {
				w = csv.NewWriter(a.stdout)
				w.Write([]string{"seq", "time", "action", "actor", "node_id", "role", "serial", "not_after", "issuer_key_id", "backend", "reason", "remote", "details", "prev", "hash"})
			}
			for _, r := range recs {
				e, err := audit.Unmarshal(r.Data)
				if err != nil || e.Time.Before(from) {
					continue
				}
				if w == nil {
					fmt.Fprintf(a.stdout, "%s\n", r.Data)
					continue
				}
				details, _ := json.Marshal(e.Details)
				if e.Details == nil {
					details = nil
				}
				notAfter := ""
				if !e.NotAfter.IsZero() {
					notAfter = e.NotAfter.UTC().Format(time.RFC3339)
				}
				w.Write([]string{strconv.FormatUint(e.Seq, 10), e.Time.Format(time.RFC3339Nano), string(e.Action), e.Actor, e.NodeID, e.Role,
					e.Serial, notAfter, e.IssuerKeyID, e.Backend, e.Reason, e.Remote, string(details), e.Prev, e.Hash})
			}
			if w != nil {
				w.Flush()
				return w.Error()
			}
			return nil
		},
	}
	cmd.Flags().StringVar(&since, "since", "", "only entries from this time on: RFC 3339, or a duration before now such as 24h")
	cmd.Flags().StringVar(&format, "format", "jsonl", "jsonl or csv")
	return cmd
}

func newAuditShowCmd(a *app) *cobra.Command {
	var node, serial, action string
	cmd := &cobra.Command{
		Use:   "show [--node ID] [--serial HEX] [--action A]",
		Short: "List audit entries, filtered by node, serial and action",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			recs, err := a.auditRecords(cmd)
			if err != nil {
				return err
			}
			serial = strings.ToLower(strings.ReplaceAll(serial, ":", ""))
			tw := tabwriter.NewWriter(a.stdout, 0, 0, 2, ' ', 0)
			fmt.Fprintln(tw, "SEQ\tTIME\tACTION\tACTOR\tNODE\tROLE\tSERIAL\tDETAIL")
			shown := 0
			for _, e := range auditEntries(recs) {
				if node != "" && !strings.HasPrefix(e.NodeID, node) || serial != "" && e.Serial != serial || action != "" && !strings.HasPrefix(string(e.Action), action) {
					continue
				}
				detail := e.Reason
				if e.Action == audit.ActionCheckpoint {
					detail = "signs entry " + e.Details[audit.DetailHeadSeq]
				} else if v, ok := e.Details["cert_expiry"]; ok {
					detail = "cert_expiry=" + v
				}
				fmt.Fprintf(tw, "%d\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", e.Seq, e.Time.Format(time.RFC3339), e.Action, short(e.Actor), e.NodeID, e.Role, e.Serial, detail)
				shown++
			}
			if err := tw.Flush(); err != nil {
				return err
			}
			if shown == 0 && (node != "" || serial != "" || action != "") {
				return errors.New("no entry matches")
			}
			return nil
		},
	}
	cmd.Flags().StringVar(&node, "node", "", "entries about this node (ID or ID prefix)")
	cmd.Flags().StringVar(&serial, "serial", "", "entries about this certificate serial (hex, colons allowed)")
	cmd.Flags().StringVar(&action, "action", "", "entries of this action or action prefix (certificate., node.removed, ...)")
	return cmd
}

func short(id string) string {
	if len(id) > 12 {
		return id[:12]
	}
	return id
}
