package server

import (
	"context"
	"fmt"
	"path/filepath"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/chancery-pki/chancery/clock"
	"github.com/chancery-pki/chancery/internal/seed"
	"github.com/chancery-pki/chancery/store"
	"github.com/chancery-pki/chancery/store/boltstore"
)

// statsStore is a bolt store holding one node per entry of expiries: its
// role and the time to expiry of its certificate from now.
func statsStore(t testing.TB, now time.Time, nodes []statsNode) store.Store {
	t.Helper()
	st, err := boltstore.Open(filepath.Join(t.TempDir(), "state.db"), boltstore.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	for i, n := range nodes {
		id, serial := fmt.Sprintf("node-%03d", i), fmt.Sprintf("%04x", i+1)
		c := store.IssuedCertificate{Serial: serial, NodeID: id, Role: n.role, NotAfter: now.Add(n.expiresIn), IssuedAt: now}
		node := store.Node{ID: id, Role: n.role, CertSerial: serial, CertNotAfter: c.NotAfter}
		if err := st.RecordIssuance(context.Background(), node, c); err != nil {
			t.Fatal(err)
		}
		if n.removed {
			if _, err := st.UpdateNode(context.Background(), id, func(n *store.Node) error { n.State = store.StateRemoved; return nil }); err != nil {
				t.Fatal(err)
			}
		}
	}
	return st
}

type statsNode struct {
	role      string
	expiresIn time.Duration
	removed   bool
}

func TestNodeStatsExpiry(t *testing.T) {
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	const day = 24 * time.Hour
	st := statsStore(t, now, []statsNode{
		{"swarm-worker", -time.Minute, false}, // expired
		{"swarm-worker", 30 * time.Minute, false},
		{"swarm-worker", 2 * day, false},
		{"swarm-worker", 45 * day, false},
		{"swarm-worker", 89 * day, false},
		{"swarm-worker", 400 * day, false},
		{"swarm-worker", -day, true}, // removed: not counted
		{"swarm-manager", 10 * day, false},
	})
	live := newLiveness("node-007", time.Second)
	live.report("node-001", now)
	s, err := readNodeStats(context.Background(), st, live, now)
	if err != nil {
		t.Fatal(err)
	}
	if want := map[string]int{"ready": 2, "down": 5, "removed": 1}; fmt.Sprint(s.states) != fmt.Sprint(want) {
		t.Errorf("states %v, want %v", s.states, want)
	}
	h := 3600.0
	tests := []struct {
		role    string
		at      time.Time
		count   uint64
		buckets map[float64]uint64
		soonest float64
	}{
		{"worker", now, 6, map[float64]uint64{0: 1, h: 2, 24 * h: 2, 7 * 24 * h: 3, 30 * 24 * h: 3, 60 * 24 * h: 4, 90 * 24 * h: 5, 365 * 24 * h: 5}, -60},
		// A scrape a day later counts against its own time, with the same
		// records.
		{"worker", now.Add(day), 6, map[float64]uint64{0: 2, h: 2, 24 * h: 3, 7 * 24 * h: 3, 30 * 24 * h: 3, 60 * 24 * h: 4, 90 * 24 * h: 5, 365 * 24 * h: 5}, -60 - 24*h},
		{"manager", now, 1, map[float64]uint64{0: 0, h: 0, 24 * h: 0, 7 * 24 * h: 0, 30 * 24 * h: 1, 60 * 24 * h: 1, 90 * 24 * h: 1, 365 * 24 * h: 1}, 10 * 24 * h},
	}
	for _, tt := range tests {
		t.Run(tt.role+" "+tt.at.Format(time.DateOnly), func(t *testing.T) {
			e := s.expiry(tt.role, tt.at)
			if e.count != tt.count || e.soonest != tt.soonest || fmt.Sprint(e.buckets) != fmt.Sprint(tt.buckets) {
				t.Errorf("got count %d soonest %v buckets %v\nwant count %d soonest %v buckets %v", e.count, e.soonest, e.buckets, tt.count, tt.soonest, tt.buckets)
			}
		})
	}
	if e := s.expiry("worker", now); e.sum != (-60 + 1800 + 2*24*h + 45*24*h + 89*24*h + 400*24*h) {
		t.Errorf("sum %v", e.sum)
	}
}

// gather scrapes a registry holding only the state collector.
func gather(t testing.TB, st store.Store, cache *nodeStatsCache) map[string]*dto.MetricFamily {
	t.Helper()
	reg := prometheus.NewRegistry()
	reg.MustRegister(&stateCollector{store: st, clock: cache.clock, stats: cache})
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]*dto.MetricFamily{}
	for _, mf := range mfs {
		out[mf.GetName()] = mf
	}
	return out
}

// series counts the series of a scrape as the text format writes them.
func series(mfs map[string]*dto.MetricFamily) int {
	n := 0
	for _, mf := range mfs {
		for _, m := range mf.GetMetric() {
			if h := m.GetHistogram(); h != nil {
				n += len(h.GetBucket()) + 3 // +Inf, _sum, _count
				continue
			}
			n++
		}
	}
	return n
}

func workers(mfs map[string]*dto.MetricFamily) uint64 {
	for _, m := range mfs["chancery_node_certificate_expiry_seconds"].GetMetric() {
		if m.GetLabel()[0].GetValue() == "worker" {
			return m.GetHistogram().GetSampleCount()
		}
	}
	return 0
}

func TestNodeStatsCache(t *testing.T) {
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	clk := clock.NewFake(now)
	st := statsStore(t, now, nil)
	refreshed := make(chan struct{}, 1)
	cache := &nodeStatsCache{store: st, live: newLiveness("", time.Second), clock: clk, interval: time.Minute,
		refreshed: func() { refreshed <- struct{}{} }}
	if _, err := seed.Nodes(context.Background(), st, 10, seed.Options{Now: now, ManagerEvery: 7}); err != nil {
		t.Fatal(err)
	}
	first := gather(t, st, cache)
	if got := workers(first); got != 8 {
		t.Fatalf("first scrape: %d workers, want 8", got)
	}
	if _, err := seed.Nodes(context.Background(), st, 200, seed.Options{Now: now, ManagerEvery: 7}); err != nil {
		t.Fatal(err)
	}
	// Within the interval a scrape serves the copy.
	clk.Advance(59 * time.Second)
	if got := workers(gather(t, st, cache)); got != 8 {
		t.Errorf("scrape within the interval: %d workers, want the cached 8", got)
	}
	// Past it, a scrape still serves the copy, and reads the store in the
	// background for the next one.
	clk.Advance(time.Second)
	if got := workers(gather(t, st, cache)); got != 8 {
		t.Errorf("stale scrape: %d workers, want the cached 8", got)
	}
	select {
	case <-refreshed:
	case <-time.After(10 * time.Second):
		t.Fatal("no background refresh")
	}
	last := gather(t, st, cache)
	if got := workers(last); got != 8+171 {
		t.Errorf("after the refresh: %d workers, want 179", got)
	}
	// The number of series does not grow with the nodes.
	if a, b := series(first), series(last); a != b {
		t.Errorf("%d series at 10 nodes, %d at 210", a, b)
	}
	if _, ok := last["chancery_node_certificate_soonest_expiry_seconds"]; !ok {
		t.Errorf("no soonest expiry gauge")
	}
}
