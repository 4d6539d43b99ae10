package boltstore_test

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chancery-pki/chancery/audit"
	"github.com/chancery-pki/chancery/store"
)

// TestPrune prunes, a few records a step, the records of certificates
// expired before the cutoff, except a node's current one; it keeps the
// others and records what it did in the audit log.
func TestPrune(t *testing.T) {
	ctx := context.Background()
	s := open(t, filepath.Join(t.TempDir(), "state.db"))
	defer s.Close()
	cutoff := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	type rec struct {
		node     string
		expires  time.Duration // from the cutoff
		wantKept bool
	}
	// Each node's records in issuance order: its last is its current one.
	recs := []rec{
		{"node-a", -200 * time.Hour, false}, // expired long before the cutoff
		{"node-a", -time.Minute, false},
		{"node-a", time.Minute, true}, // expired after the cutoff: kept
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
		res, err := s.PruneIssuedCertificates(ctx, req)
		if err != nil {
			t.Fatal(err)
		}
		if res.Examined > 2 {
			t.Errorf("a step examined %d records, more than its scan of 2", res.Examined)
		}
		deleted += res.Deleted
		steps++
		if res.Next == "" {
			break
		}
		req.After = res.Next
	}
	if deleted != 3 || steps != 4 {
		t.Errorf("deleted %d records in %d steps, want 3 in 4", deleted, steps)
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
	// Each step that deleted recorded it, with its count and cutoff.
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
	// Pruning again finds nothing and records nothing.
	res, err := s.PruneIssuedCertificates(ctx, store.PruneRequest{ExpiredBefore: cutoff, Event: audit.Event{Action: audit.ActionPruned}})
	if err != nil || res.Deleted != 0 || res.Next != "" || res.Examined != 4 {
		t.Errorf("second prune: %+v, %v", res, err)
	}
	if h, _ := s.AuditHead(ctx); h.Seq != head.Seq+uint64(len(entries)) {
		t.Errorf("a prune that deleted nothing wrote to the audit log")
	}
}

func TestPruneRefuses(t *testing.T) {
	s := open(t, filepath.Join(t.TempDir(), "state.db"))
	defer s.Close()
	for _, tt := range []struct {
		req  store.PruneRequest
		says string
	}{
		{store.PruneRequest{Event: audit.Event{Action: audit.ActionPruned}}, "no cutoff"},
		{store.PruneRequest{ExpiredBefore: time.Now(), Scan: -1, Event: audit.Event{Action: audit.ActionPruned}}, "negative"},
		{store.PruneRequest{ExpiredBefore: time.Now()}, "no audit event"},
	} {
		if _, err := s.PruneIssuedCertificates(context.Background(), tt.req); err == nil || !strings.Contains(err.Error(), tt.says) {
			t.Errorf("%+v: %v, want %q", tt.req, err, tt.says)
		}
	}
}
