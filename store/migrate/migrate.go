// Package migrate moves a cluster's state from one store to another, as
// `chancery store migrate` does from the embedded store to etcd: the
// cluster record, every node and certificate record, and the audit log
// byte for byte, then checks that the copy is whole before anyone uses it.
package migrate

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/chancery-pki/chancery/audit"
	"github.com/chancery-pki/chancery/store"
)

// ErrNotEmpty is matched by Copy's error when the target holds anything
// (other than an abandoned copy of the same cluster, which Copy takes
// over).
var ErrNotEmpty = store.ErrNotEmpty

// ErrClaimed is matched by Copy's error when another copy is under way
// into the target (its claim has not lapsed).
var ErrClaimed = store.ErrImportClaimed

// Target is a store that can take an import and be wiped after a failed
// one.
type Target interface {
	store.Store
	store.Importer
	store.Destroyer
}

// Result is what Copy copied and verified.
type Result struct {
	Nodes, Certificates int
	// Audit is the verification of the copied audit log.
	Audit audit.Report
}

// Roots returns the roots the audit log's checkpoints are checked against,
// from a cluster record (the CLI's audit verify rule).
type Roots func(store.Cluster) ([]audit.Root, error)

// destroyTimeout bounds the removal of a failed copy.
const destroyTimeout = 30 * time.Second

// Copy copies src into dst, which must be empty, and verifies the copy:
// the same number of nodes and certificate records, an audit log that
// verifies with the roots of the copied cluster record and ends at src's
// head. It first claims dst (store.Importer.Claim), atomically: of two
// copies into one target at once, one proceeds and the other fails with
// ErrClaimed, having written nothing. On any failure after the claim it
// removes what it wrote from dst (Destroy) and returns the error. If that
// removal fails too, or the process stops, the claim lapses and a later
// Copy of the same cluster deletes the partial copy and starts again. src
// must not change meanwhile.
func Copy(ctx context.Context, src store.Store, dst Target, roots Roots) (Result, error) {
	cl, err := src.Cluster(ctx)
	if err != nil {
		return Result{}, fmt.Errorf("migrate: reading the cluster record: %w", err)
	}
	if err := dst.Claim(ctx, cl.ID); err != nil {
		return Result{}, fmt.Errorf("migrate: claiming the target: %w", err)
	}
	res, err := copyAndVerify(ctx, src, dst, roots)
	if err != nil {
		dctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), destroyTimeout)
		defer cancel()
		if derr := dst.Destroy(dctx); derr != nil {
			return Result{}, fmt.Errorf("%w; removing the partial copy also failed: %v", err, derr)
		}
		return Result{}, err
	}
	return res, nil
}

func copyAndVerify(ctx context.Context, src store.Store, dst Target, roots Roots) (Result, error) {
	var res Result
	cl, err := src.Cluster(ctx)
	if err != nil {
		return res, fmt.Errorf("migrate: reading the cluster record: %w", err)
	}
	head, err := src.AuditHead(ctx)
	if err != nil {
		return res, fmt.Errorf("migrate: reading the audit head: %w", err)
	}
	rts, err := roots(cl)
	if err != nil {
		return res, err
	}
	srcRep, err := verifyLog(ctx, src, rts)
	if err != nil {
		return res, err
	}
	if err := reportOK("the source", srcRep, head); err != nil {
		return res, err
	}

	// Nodes, page by page.
	for after := ""; ; {
		p, err := src.ListNodes(ctx, store.ListOptions{After: after})
		if err != nil {
			return res, fmt.Errorf("migrate: listing nodes: %w", err)
		}
		if err := dst.Import(ctx, store.ImportBatch{Nodes: p.Nodes}); err != nil {
			return res, fmt.Errorf("migrate: copying nodes: %w", err)
		}
		res.Nodes += len(p.Nodes)
		if after = p.Next; after == "" {
			break
		}
	}
	for after := ""; ; {
		p, err := src.ListIssuedCertificates(ctx, "", store.ListOptions{After: after})
		if err != nil {
			return res, fmt.Errorf("migrate: listing certificate records: %w", err)
		}
		if err := dst.Import(ctx, store.ImportBatch{Certificates: p.Certificates}); err != nil {
			return res, fmt.Errorf("migrate: copying certificate records: %w", err)
		}
		res.Certificates += len(p.Certificates)
		if after = p.Next; after == "" {
			break
		}
	}
	for from := uint64(1); from <= head.Seq; {
		recs, err := src.AuditRecords(ctx, from, store.MaxPageLimit)
		if err != nil {
			return res, fmt.Errorf("migrate: reading the audit log: %w", err)
		}
		if len(recs) == 0 {
			return res, fmt.Errorf("migrate: the audit log ends at entry %d, before its head %d", from-1, head.Seq)
		}
		if err := dst.Import(ctx, store.ImportBatch{Audit: recs}); err != nil {
			return res, fmt.Errorf("migrate: copying the audit log: %w", err)
		}
		from = recs[len(recs)-1].Key + 1
	}
	if err := dst.Import(ctx, store.ImportBatch{Cluster: &cl, Head: head}); err != nil {
		return res, fmt.Errorf("migrate: copying the cluster record: %w", err)
	}

	// Verify what the target holds, read back through its Store methods.
	dcl, err := dst.Cluster(ctx)
	if err != nil {
		return res, fmt.Errorf("migrate: verifying: the cluster record: %w", err)
	}
	if dcl.ID != cl.ID || dcl.Version != cl.Version || string(dcl.RootCAPEM) != string(cl.RootCAPEM) || len(dcl.RootHistory) != len(cl.RootHistory) {
		return res, errors.New("migrate: verifying: the copied cluster record differs from the source's")
	}
	n, err := countNodes(ctx, dst)
	if err != nil {
		return res, err
	}
	if n != res.Nodes {
		return res, fmt.Errorf("migrate: verifying: the target holds %d nodes, the source %d", n, res.Nodes)
	}
	c, err := countCerts(ctx, dst)
	if err != nil {
		return res, err
	}
	if c != res.Certificates {
		return res, fmt.Errorf("migrate: verifying: the target holds %d certificate records, the source %d", c, res.Certificates)
	}
	dhead, err := dst.AuditHead(ctx)
	if err != nil {
		return res, fmt.Errorf("migrate: verifying: the audit head: %w", err)
	}
	if dhead != head {
		return res, fmt.Errorf("migrate: verifying: the target's audit head is entry %d, the source's %d", dhead.Seq, head.Seq)
	}
	if rts, err = roots(dcl); err != nil {
		return res, err
	}
	rep, err := verifyLog(ctx, dst, rts)
	if err != nil {
		return res, err
	}
	if err := reportOK("the copied", rep, head); err != nil {
		return res, err
	}
	if rep.Entries != srcRep.Entries || rep.Checkpoints != srcRep.Checkpoints {
		return res, fmt.Errorf("migrate: verifying: the copied audit log has %d entries and %d checkpoints, the source %d and %d",
			rep.Entries, rep.Checkpoints, srcRep.Entries, srcRep.Checkpoints)
	}
	res.Audit = rep
	return res, nil
}

// verifyLog reads st's whole audit log and verifies it.
func verifyLog(ctx context.Context, st store.Store, roots []audit.Root) (audit.Report, error) {
	recs, err := st.AuditRecords(ctx, 1, 0)
	if err != nil {
		return audit.Report{}, fmt.Errorf("migrate: reading the audit log: %w", err)
	}
	return audit.Verify(recs, roots), nil
}

// reportOK says whether rep is of a whole log that verifies and ends at head.
func reportOK(which string, rep audit.Report, head audit.Head) error {
	switch {
	case rep.Problem != nil:
		return fmt.Errorf("migrate: %s audit log does not verify: entry %d: %s", which, rep.Problem.Seq, rep.Problem.Reason)
	case rep.Torn:
		return fmt.Errorf("migrate: %s audit log's last entry (%d) is torn", which, rep.Entries)
	case rep.Head != head:
		return fmt.Errorf("migrate: %s audit log ends at entry %d, its head says %d", which, rep.Head.Seq, head.Seq)
	}
	return nil
}

func countNodes(ctx context.Context, st store.Store) (int, error) {
	n := 0
	for after := ""; ; {
		p, err := st.ListNodes(ctx, store.ListOptions{After: after, Limit: store.MaxPageLimit})
		if err != nil {
			return 0, fmt.Errorf("migrate: verifying: listing nodes: %w", err)
		}
		n += len(p.Nodes)
		if after = p.Next; after == "" {
			return n, nil
		}
	}
}

func countCerts(ctx context.Context, st store.Store) (int, error) {
	n := 0
	for after := ""; ; {
		p, err := st.ListIssuedCertificates(ctx, "", store.ListOptions{After: after, Limit: store.MaxPageLimit})
		if err != nil {
			return 0, fmt.Errorf("migrate: verifying: listing certificate records: %w", err)
		}
		n += len(p.Certificates)
		if after = p.Next; after == "" {
			return n, nil
		}
	}
}
