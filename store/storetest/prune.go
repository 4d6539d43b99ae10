package storetest

import (
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/chancery-pki/chancery/audit"
	"github.com/chancery-pki/chancery/store"
)

// testPrune prunes, a few records a step, the records of certificates
// expired before the cutoff, except a node's current one; it keeps the
// others, lists neither pruned records nor their copies, and records what
// it did in the audit log. Stores that are no store.Pruner skip it.
func testPrune(t *testing.T, s store.Store) {
	p, ok := s.(store.Pruner)
	if !ok {
		t.Skip("the store keeps every record: it is no store.Pruner")
	}
	ctx := t.Context()
	cutoff := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	// Each node's records in issuance order: its last is its current one.
	recs := []struct {
		node     string
		expires  time.Duration // from the cutoff
		wantKept bool
	}{
		{"node-a", -200 * time.Hour, false},
		{"node-a", -time.Minute, false},
		{"node-a", time.Minute, true}, // expired after the cutoff
		{"node-a", 900 * time.Hour, true},
		{"node-b", -300 * time.Hour, false},
		{"node-b", -100 * time.Hour, true}, // its current certificate, however old
		{"node-c", 100 * time.Hour, true},
	}
	serials := make([]string, len(recs))
	for i, r := range recs {
		serials[i] = fmt.Sprintf("%02x", i+1)
		na := cutoff.Add(r.expires)
		c := store.IssuedCertificate{Serial: serials[i], NodeID: r.node, Role: "swarm-worker", NotBefore: na.Add(-90 * 24 * time.Hour), NotAfter: na}
		n := store.Node{ID: r.node, Role: "swarm-worker", CertSerial: c.Serial, CertNotAfter: na}
		if err := s.RecordIssuance(ctx, n, c); err != nil {
			t.Fatal(err)
		}
	}
	head, _ := s.AuditHead(ctx)
	req := store.PruneRequest{ExpiredBefore: cutoff, Scan: 2, Event: audit.Event{Action: audit.ActionPruned, Actor: "mgr"}}
	deleted, steps := 0, 0
	for {
		res, err := p.PruneIssuedCertificates(ctx, req)
		if err != nil {
			t.Fatal(err)
		}
		if res.Examined > 2 {
			t.Errorf("a step examined %d records, more than its scan of 2", res.Examined)
		}
		deleted += res.Deleted
		if steps++; steps > 10 {
			t.Fatal("the prune does not end")
		}
		if res.Next == "" {
			break
		}
		req.After = res.Next
	}
	if deleted != 3 {
		t.Errorf("deleted %d records, want 3", deleted)
	}
	for i, r := range recs {
		_, err := s.IssuedCertificate(ctx, serials[i])
		if r.wantKept && err != nil {
			t.Errorf("record %d (%s, %s) was pruned: %v", i, r.node, r.expires, err)
		}
		if !r.wantKept && !errors.Is(err, store.ErrNotFound) {
			t.Errorf("record %d (%s, %s) was kept: %v", i, r.node, r.expires, err)
		}
	}
	if certs, err := s.IssuedCertificates(ctx, "node-a"); err != nil || len(certs) != 2 {
		t.Errorf("node-a's certificates after the prune: %d (%v), want 2", len(certs), err)
	}
	if page, err := s.ListIssuedCertificates(ctx, "node-b", store.ListOptions{}); err != nil || len(page.Certificates) != 1 {
		t.Errorf("node-b's listed certificates after the prune: %d (%v), want 1", len(page.Certificates), err)
	}
	entries, err := s.AuditRecords(ctx, head.Seq+1, 0)
	if err != nil {
		t.Fatal(err)
	}
	total := 0
	for _, r := range entries {
		e, err := audit.Unmarshal(r.Data)
		if err != nil {
			t.Fatal(err)
		}
		if e.Action != audit.ActionPruned || e.Details[store.DetailExpiredBefore] != "2026-01-01T00:00:00Z" || e.Actor != "mgr" {
			t.Errorf("audit entry %+v", e)
		}
		var n int
		fmt.Sscan(e.Details[store.DetailPruned], &n)
		total += n
	}
	if total != 3 {
		t.Errorf("the audit log says %d pruned, want 3", total)
	}
	all, _ := s.AuditRecords(ctx, 1, 0)
	if rep := audit.Verify(all, nil); !rep.OK() {
		t.Errorf("the audit log after the prune: %s", rep)
	}
	// Pruning again finds nothing and records nothing.
	res, err := p.PruneIssuedCertificates(ctx, store.PruneRequest{ExpiredBefore: cutoff, Event: audit.Event{Action: audit.ActionPruned}})
	if err != nil || res.Deleted != 0 || res.Next != "" || res.Examined != 4 {
		t.Errorf("second prune: %+v, %v", res, err)
	}
	if h, _ := s.AuditHead(ctx); h.Seq != head.Seq+uint64(len(entries)) {
		t.Errorf("a prune that deleted nothing wrote to the audit log")
	}
}
