package server

import (
	"context"
	"fmt"
	"os"
	"slices"
	"strconv"
	"testing"
	"time"

	"github.com/chancery-pki/chancery/cluster"
	"github.com/chancery-pki/chancery/internal/seed"
	"github.com/chancery-pki/chancery/loadtest"
)

// BenchmarkIssuanceRecords compares the issuance rate of a manager whose
// store holds 1,000 issued-certificate records with one whose store holds
// 1,000,000 ($CHANCERY_BENCH_RECORDS), over the same population of nodes:
// both stores are seeded through their own RecordIssuance with 1,000
// nodes (seed.Nodes), one certificate each, and the large one then with
// renewals of those nodes (seed.Renew rounds) until it holds its records.
// Only the number of records differs, which is what the issue asks about;
// a store of more nodes would also hold more node records. Nodes then join
// and renew once each over TLS through the real API ($CHANCERY_BENCH_JOINS
// per round, default 1,000, at concurrency 16). Each of six rounds
// measures the two managers in turn, first one then the other in
// alternation, so that other work on the machine weighs on both alike. It
// prints each round's rates and ratio large/small, each manager's overall
// rates, and the median of the rounds' ratios with their spread (the issue
// wants the ratio within 10%). The figure is the run: use -benchtime 1x.
//
//	go test -run '^$' -bench IssuanceRecords -benchtime 1x -timeout 30m ./server
func BenchmarkIssuanceRecords(b *testing.B) {
	large := benchEnvInt(b, "CHANCERY_BENCH_RECORDS", 1_000_000)
	joins := benchEnvInt(b, "CHANCERY_BENCH_JOINS", 1_000)
	const (
		small       = 1_000
		rounds      = 6
		concurrency = 16
	)
	unbounded := cluster.RenewalLimit{Burst: 1 << 30, PerLifetime: 1 << 30}
	for b.Loop() {
		sizes := []int{small, large}
		envs := make([]*env, len(sizes))
		for i, n := range sizes {
			envs[i] = newEnv(b, envOptions{quiet: true, renewalLimit: unbounded})
			start := time.Now()
			seedRecords(b, envs[i], small, n)
			fmt.Printf("seeded %d issued-certificate records (%d nodes) through the store in %s\n",
				n, small, time.Since(start).Round(time.Millisecond))
		}
		// Each round measures both managers, in turn, and gives a ratio of
		// its own: what loads the machine during a round weighs on both
		// alike. The order alternates, so that going first or second does
		// not favour one of them.
		var joinTime, renewTime [2]time.Duration
		var joined, renewed [2]int
		var joinRatios, renewRatios []float64
		for r := range rounds {
			var jr, rr [2]float64
			for k := range sizes {
				i := k
				if r%2 == 1 {
					i = len(sizes) - 1 - k
				}
				res := runLoad(b, envs[i], loadtest.Config{Nodes: joins, Concurrency: concurrency, Renewals: 1})
				joinTime[i] += res.Joins.Elapsed
				renewTime[i] += res.Renewals.Elapsed
				joined[i] += res.Joins.Count
				renewed[i] += res.Renewals.Count
				jr[i] = float64(res.Joins.Count) / res.Joins.Elapsed.Seconds()
				rr[i] = float64(res.Renewals.Count) / res.Renewals.Elapsed.Seconds()
			}
			joinRatios = append(joinRatios, jr[1]/jr[0])
			renewRatios = append(renewRatios, rr[1]/rr[0])
			fmt.Printf("round %d: joins %.0f and %.0f/s (%.3f), renewals %.0f and %.0f/s (%.3f)\n",
				r+1, jr[0], jr[1], jr[1]/jr[0], rr[0], rr[1], rr[1]/rr[0])
		}
		var joinRate, renewRate [2]float64
		for i, n := range sizes {
			joinRate[i] = float64(joined[i]) / joinTime[i].Seconds()
			renewRate[i] = float64(renewed[i]) / renewTime[i].Seconds()
			fmt.Printf("%d records: %.0f joins/s, %.0f renewals/s (%d joins and %d renewals at concurrency %d)\n",
				n, joinRate[i], renewRate[i], joined[i], renewed[i], concurrency)
		}
		jm, jlo, jhi := medianSpread(joinRatios)
		rm, rlo, rhi := medianSpread(renewRatios)
		fmt.Printf("%d records over %d, median of %d rounds' ratios: joins %.3f (%.3f to %.3f), renewals %.3f (%.3f to %.3f)\n",
			large, small, rounds, jm, jlo, jhi, rm, rlo, rhi)
		b.ReportMetric(joinRate[0], "small-joins/s")
		b.ReportMetric(joinRate[1], "large-joins/s")
		b.ReportMetric(renewRate[0], "small-renewals/s")
		b.ReportMetric(renewRate[1], "large-renewals/s")
		b.ReportMetric(jm, "join-ratio")
		b.ReportMetric(rm, "renewal-ratio")
	}
}

// medianSpread returns the median of xs, its smallest and its largest.
func medianSpread(xs []float64) (median, lo, hi float64) {
	s := slices.Sorted(slices.Values(xs))
	n := len(s)
	if n%2 == 1 {
		median = s[n/2]
	} else {
		median = (s[n/2-1] + s[n/2]) / 2
	}
	return median, s[0], s[n-1]
}

// seedRecords records n issued certificates in e's store: nodes nodes
// with a first certificate each, then renewals of them in rounds until
// there are n.
func seedRecords(b *testing.B, e *env, nodes, n int) {
	b.Helper()
	ctx := context.Background()
	t0 := time.Now().Add(-200 * 24 * time.Hour)
	opts := seed.Options{Now: t0, ManagerEvery: 1000, Concurrency: 1000}
	ids, err := seed.Nodes(ctx, e.st, nodes, opts)
	if err != nil {
		b.Fatal(err)
	}
	// The rounds' issuance times spread over the 200 days to now.
	rounds := (n - nodes + len(ids) - 1) / len(ids)
	for left, k := n-nodes, 1; left > 0; k++ {
		round := ids[:min(left, len(ids))]
		opts.Now = t0.Add(time.Duration(k) * 200 * 24 * time.Hour / time.Duration(rounds+1))
		if err := seed.Renew(ctx, e.st, round, opts); err != nil {
			b.Fatal(err)
		}
		left -= len(round)
	}
}

// benchEnvInt reads a positive count from the environment variable name,
// or returns def when it is unset.
func benchEnvInt(b *testing.B, name string, def int) int {
	b.Helper()
	v := os.Getenv(name)
	if v == "" {
		return def
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < 1 {
		b.Fatalf("%s=%q is not a positive count", name, v)
	}
	return n
}
