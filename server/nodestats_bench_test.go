package server

import (
	"context"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/chancery-pki/chancery/clock"
	"github.com/chancery-pki/chancery/internal/seed"
	"github.com/chancery-pki/chancery/store/boltstore"
)

// benchNodes is the cluster size of the metrics benchmarks: 100,000, or
// CHANCERY_BENCH_NODES.
func benchNodes(b *testing.B) int {
	if v := os.Getenv("CHANCERY_BENCH_NODES"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 {
			b.Fatalf("CHANCERY_BENCH_NODES=%q is not a count", v)
		}
		return n
	}
	return 100_000
}

// BenchmarkNodeMetrics seeds a bolt store with 100,000 nodes (see
// benchNodes) through RecordIssuance, then reports the time to read the
// node stats from the store (refresh-ms, once per refresh interval, in the
// background), a scrape of /metrics served from them (scrape-ms, the
// per-op time), and the series a scrape holds.
//
//	go test -run '^$' -bench NodeMetrics -benchtime 200x ./server
func BenchmarkNodeMetrics(b *testing.B) {
	n := benchNodes(b)
	st, err := boltstore.Open(filepath.Join(b.TempDir(), "state.db"), boltstore.Options{})
	if err != nil {
		b.Fatal(err)
	}
	defer st.Close()
	ctx := context.Background()
	now := time.Now()
	if _, err := seed.Nodes(ctx, st, n, seed.Options{Now: now, ManagerEvery: 100}); err != nil {
		b.Fatal(err)
	}
	cache := &nodeStatsCache{store: st, live: newLiveness("", time.Second), clock: clock.Real{}, interval: time.Hour}
	start := time.Now()
	const refreshes = 3
	for range refreshes {
		if _, err := cache.refresh(ctx); err != nil {
			b.Fatal(err)
		}
	}
	refresh := time.Since(start) / refreshes
	reg := prometheus.NewRegistry()
	reg.MustRegister(&stateCollector{store: st, clock: clock.Real{}, stats: cache})
	h := promhttp.HandlerFor(reg, promhttp.HandlerOpts{})
	var body string
	b.ResetTimer()
	for b.Loop() {
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, httptest.NewRequest("GET", "/metrics", nil))
		body = rec.Body.String()
	}
	series := 0
	for _, line := range strings.Split(body, "\n") {
		if line != "" && !strings.HasPrefix(line, "#") {
			series++
		}
	}
	b.ReportMetric(float64(n), "nodes")
	b.ReportMetric(float64(refresh.Microseconds())/1000, "refresh-ms")
	b.ReportMetric(float64(b.Elapsed().Microseconds())/1000/float64(b.N), "scrape-ms")
	b.ReportMetric(float64(series), "series")
}
