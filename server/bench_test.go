package server

import (
	"context"
	"fmt"
	"testing"

	"github.com/chancery-pki/chancery/cluster"
	"github.com/chancery-pki/chancery/loadtest"
)

// benchConcurrency are the client counts each benchmark runs at.
var benchConcurrency = []int{1, 16, 64}

// runLoad runs cfg against e and fails b on any error or duplicate serial.
func runLoad(b *testing.B, e *env, cfg loadtest.Config) *loadtest.Result {
	b.Helper()
	cfg.Addr, cfg.Token = e.addr, e.init.WorkerToken
	res, err := loadtest.Run(context.Background(), cfg)
	if err != nil {
		b.Fatal(err)
	}
	if res.Joins.Errors > 0 || res.Renewals.Errors > 0 {
		b.Fatalf("%d join and %d renewal errors; first: %s %s", res.Joins.Errors, res.Renewals.Errors,
			res.Joins.FirstError, res.Renewals.FirstError)
	}
	if res.DuplicateSerials > 0 {
		b.Fatalf("%d duplicate serials", res.DuplicateSerials)
	}
	return res
}

// report replaces ns/op with the phase's own time per call (the run's
// other phases and setup excluded) and adds certificates per second.
func report(b *testing.B, p loadtest.Phase) {
	b.ReportMetric(float64(p.Elapsed.Nanoseconds())/float64(p.Count), "ns/op")
	b.ReportMetric(p.PerSecond(), "certs/s")
	b.ReportMetric(float64(p.P99.Microseconds())/1000, "p99-ms")
}

// BenchmarkJoin joins b.N nodes with a worker token against a real
// manager over TLS (file backend, bolt store).
func BenchmarkJoin(b *testing.B) {
	e := newEnv(b, envOptions{quiet: true})
	for _, c := range benchConcurrency {
		b.Run(fmt.Sprintf("c%d", c), func(b *testing.B) {
			res := runLoad(b, e, loadtest.Config{Nodes: b.N, Concurrency: c})
			report(b, res.Joins)
		})
	}
}

// BenchmarkRenew renews about b.N times over mutual TLS, spread over
// min(b.N, concurrency) joined nodes; only the renewal phase is reported.
//
// The renewals are the nodes' own, which the manager bounds per node
// (cluster.RenewalLimit): the benchmark lifts the bound so that a few
// nodes can renew many times, and measures the path with its accounting.
func BenchmarkRenew(b *testing.B) {
	e := newEnv(b, envOptions{quiet: true, renewalLimit: cluster.RenewalLimit{Burst: 1 << 30, PerLifetime: 1 << 30}})
	for _, c := range benchConcurrency {
		b.Run(fmt.Sprintf("c%d", c), func(b *testing.B) {
			nodes := min(c, b.N)
			renewals := (b.N + nodes - 1) / nodes
			res := runLoad(b, e, loadtest.Config{Nodes: nodes, Concurrency: c, Renewals: renewals})
			report(b, res.Renewals)
		})
	}
}

// TestThousandConcurrentJoins joins 1,000 nodes at concurrency 64: no
// errors, no duplicate serials, and the store holds every one of them.
func TestThousandConcurrentJoins(t *testing.T) {
	if testing.Short() {
		t.Skip("1,000 joins; skipped with -short")
	}
	const n = 1000
	e := newEnv(t, envOptions{quiet: true})
	before := e.state(t)
	res, err := loadtest.Run(context.Background(), loadtest.Config{
		Addr: e.addr, Token: e.init.WorkerToken, Nodes: n, Concurrency: 64,
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("\n%s", res)
	if res.Joins.Count != n || res.Joins.Errors != 0 {
		t.Errorf("%d joins, %d errors; first: %s", res.Joins.Count, res.Joins.Errors, res.Joins.FirstError)
	}
	if res.DuplicateSerials != 0 {
		t.Errorf("%d duplicate serials", res.DuplicateSerials)
	}
	after := e.state(t)
	if got := len(after.nodes) - len(before.nodes); got != n {
		t.Errorf("the store gained %d nodes, want %d", got, n)
	}
	if got := len(after.certs) - len(before.certs); got != n {
		t.Errorf("the store gained %d certificates, want %d", got, n)
	}
	serials := map[string]bool{}
	for _, c := range after.certs {
		if serials[c.Serial] {
			t.Errorf("serial %s recorded twice", c.Serial)
		}
		serials[c.Serial] = true
	}
}
