package boltstore_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"go.etcd.io/bbolt"

	"github.com/chancery-pki/chancery/audit"
	"github.com/chancery-pki/chancery/internal/seed"
	"github.com/chancery-pki/chancery/store"
)

// BenchmarkStoreSize joins 100,000 nodes ($CHANCERY_BENCH_NODES) with
// 90-day certificates and renews each eight times, every 60 days, through
// RecordIssuance; with "keep" every record stays, with "prune" the records
// of certificates expired for longer than 30 days are pruned after each
// round of renewals, as the leader does every hour. It reports the file's
// size, the size of a compacted copy (the live data), and the records
// left. The figure is the run: use -benchtime 1x.
//
//	go test -run '^$' -bench StoreSize -benchtime 1x -timeout 60m ./store/boltstore
func BenchmarkStoreSize(b *testing.B) {
	nodes := 100_000
	if v := os.Getenv("CHANCERY_BENCH_NODES"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 {
			b.Fatalf("CHANCERY_BENCH_NODES=%q is not a number of nodes", v)
		}
		nodes = n
	}
	const (
		renewals  = 8
		lifetime  = 90 * 24 * time.Hour
		period    = 60 * 24 * time.Hour
		retention = 30 * 24 * time.Hour
	)
	for _, prune := range []bool{false, true} {
		name := map[bool]string{false: "keep", true: "prune"}[prune]
		b.Run(name, func(b *testing.B) {
			for b.Loop() {
				ctx := context.Background()
				path := filepath.Join(b.TempDir(), "state.db")
				s := open(b, path)
				t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
				opts := seed.Options{Now: t0, Lifetime: lifetime, ManagerEvery: 1000, Concurrency: 1000}
				start := time.Now()
				ids, err := seed.Nodes(ctx, s, nodes, opts)
				if err != nil {
					b.Fatal(err)
				}
				var pruneTime time.Duration
				pruned := 0
				for k := 1; k <= renewals; k++ {
					opts.Now = t0.Add(time.Duration(k) * period)
					if err := seed.Renew(ctx, s, ids, opts); err != nil {
						b.Fatal(err)
					}
					if prune {
						ps := time.Now()
						req := store.PruneRequest{ExpiredBefore: opts.Now.Add(-retention), Event: audit.Event{Action: audit.ActionPruned}}
						for {
							res, err := s.PruneIssuedCertificates(ctx, req)
							if err != nil {
								b.Fatal(err)
							}
							pruned += res.Deleted
							if res.Next == "" {
								break
							}
							req.After = res.Next
						}
						pruneTime += time.Since(ps)
					}
				}
				took := time.Since(start)
				records := 0
				var page store.CertificatePage
				for opts := (store.ListOptions{Limit: store.MaxPageLimit}); ; opts.After = page.Next {
					if page, err = s.ListIssuedCertificates(ctx, "", opts); err != nil {
						b.Fatal(err)
					}
					records += len(page.Certificates)
					if page.Next == "" {
						break
					}
				}
				s.Close()
				size := fileSize(b, path)
				compacted := compactedSize(b, path)
				fmt.Printf("%s: %d nodes, %d renewals each, in %s: %d certificate records (%d pruned in %s), file %.1f MiB, compacted %.1f MiB\n",
					name, nodes, renewals, took.Round(time.Second), records, pruned, pruneTime.Round(time.Millisecond), mib(size), mib(compacted))
				b.ReportMetric(mib(size), "file-MiB")
				b.ReportMetric(mib(compacted), "compacted-MiB")
				b.ReportMetric(float64(records), "records")
				if prune {
					b.ReportMetric(float64(pruneTime.Milliseconds())/renewals, "prune-ms/round")
				}
			}
		})
	}
}

func mib(n int64) float64 { return float64(n) / (1 << 20) }

func fileSize(b *testing.B, path string) int64 {
	fi, err := os.Stat(path)
	if err != nil {
		b.Fatal(err)
	}
	return fi.Size()
}

// compactedSize copies the database at path into a new file with bbolt's
// compaction, and returns the copy's size: the live data's.
func compactedSize(b *testing.B, path string) int64 {
	src, err := bbolt.Open(path, 0o600, &bbolt.Options{ReadOnly: true})
	if err != nil {
		b.Fatal(err)
	}
	defer src.Close()
	dstPath := path + ".compact"
	dst, err := bbolt.Open(dstPath, 0o600, nil)
	if err != nil {
		b.Fatal(err)
	}
	if err := bbolt.Compact(dst, src, 64<<20); err != nil {
		b.Fatal(err)
	}
	dst.Close()
	defer os.Remove(dstPath)
	return fileSize(b, dstPath)
}
