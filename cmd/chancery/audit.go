package main

import (
	"crypto/x509"
	"encoding/csv"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/chancery-pki/chancery/api"
	"github.com/chancery-pki/chancery/audit"
	"github.com/chancery-pki/chancery/ca"
	"github.com/chancery-pki/chancery/certdir"
	"github.com/chancery-pki/chancery/cluster"
	"github.com/chancery-pki/chancery/hint"
	"github.com/chancery-pki/chancery/store"
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
certificate naming the head it signs, issued under the root that was the
cluster's root when the checkpoint was written: the cluster's record keeps
every root it has had, and when each was current. It says which root each
checkpoint chains to (by SHA-256 fingerprint) and lists the roots. The
record's current root must be one this node trusts (its swarm-root-ca.crt).
It exits 1 and names the first bad entry if any is wrong, or if the last
entry is torn (everything before it is still checked).`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			trusted, _, err := certdir.In(a.dataDir).Root()
			if err != nil {
				return hint.With(err, "audit verify checks checkpoints against the roots this node trusts: run it with --data-dir of a manager")
			}
			c, done, err := a.admin(cmd.Context())
			if err != nil {
				return err
			}
			defer done()
			records, err := c.Roots(cmd.Context())
			if err != nil {
				return apiError(err)
			}
			roots, err := auditRoots(records, trusted)
			if err != nil {
				return err
			}
			recs, err := c.AuditRecords(cmd.Context(), 1)
			if err != nil {
				return apiError(err)
			}
			rep := audit.Verify(recs, roots)
			fmt.Fprint(a.stdout, rep.String())
			fmt.Fprintf(a.stdout, "roots: %d, from the cluster's record, oldest first\n", len(roots))
			for i, r := range roots {
				span := r.ActiveFrom.UTC().Format(time.RFC3339) + " to "
				if r.ActiveUntil.IsZero() {
					span += "now"
				} else {
					span += r.ActiveUntil.UTC().Format(time.RFC3339)
				}
				trust := "trusted by this node"
				if !slices.ContainsFunc(trusted, r.Cert.Equal) {
					trust = "not trusted by this node"
				}
				if i == len(roots)-1 {
					trust = "current; " + trust
				}
				fmt.Fprintf(a.stdout, "  %s  %s  %s  (%s)\n", cluster.Fingerprint(r.Cert), records[i].Backend, span, trust)
			}
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

// auditRoots parses the cluster's root record for audit.Verify, and checks
// that its current root is one this node trusts: the older roots are known
// from the record alone, the current one must also match this node's
// bundle. The first root also covers the time before the cluster's record
// says it began (audit.Verify's rule: no root came before it).
func auditRoots(records []api.RootRecord, trusted []*x509.Certificate) ([]audit.Root, error) {
	if len(records) == 0 {
		return nil, errors.New("the manager lists no root for the cluster")
	}
	roots := make([]audit.Root, 0, len(records))
	for i, r := range records {
		certs, err := ca.ParseCertificatesPEM([]byte(r.CertificatePEM))
		if err == nil && len(certs) == 0 {
			err = errors.New("no certificate")
		}
		if err != nil {
			return nil, fmt.Errorf("the cluster's root record is unreadable: root %d of %d (active from %s): %w",
				i+1, len(records), r.ActiveFrom.UTC().Format(time.RFC3339), err)
		}
		roots = append(roots, audit.Root{Cert: certs[0], ActiveFrom: r.ActiveFrom, ActiveUntil: r.ActiveUntil})
	}
	cur := roots[len(roots)-1].Cert
	if !slices.ContainsFunc(trusted, cur.Equal) {
		var fps []string
		for _, t := range trusted {
			fps = append(fps, cluster.Fingerprint(t))
		}
		err := fmt.Errorf("the cluster's current root %s is not one this node trusts (its %s holds %s)",
			cluster.Fingerprint(cur), certdir.RootCAFile, strings.Join(fps, ", "))
		// Two hints, in this order: hint.All lists the outer one first.
		err = hint.With(err, "otherwise the cluster's root record does not match this node: do not rely on its checkpoints until you know why")
		return nil, hint.With(err, "if a root rotation has just finished, run audit verify again once this node has taken the new root")
	}
	return roots, nil
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
				} else if e.Action == audit.ActionPruned {
					detail = e.Details[store.DetailPruned] + " records expired before " + e.Details[store.DetailExpiredBefore]
				} else if v, ok := e.Details["cert_record_retention"]; ok {
					detail = "cert_record_retention=" + v
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
