package manager

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/chancery-pki/chancery/audit"
	"github.com/chancery-pki/chancery/cluster"
	"github.com/chancery-pki/chancery/internal/etcddev"
	"github.com/chancery-pki/chancery/loadtest"
)

// TestThreeManagersThousandJoins: three managers on one etcd, 1,000
// concurrent joins spread over them: no error, no serial twice, one node
// record each, and the audit chain verifies without a fork.
func TestThreeManagersThousandJoins(t *testing.T) {
	if testing.Short() {
		t.Skip("1,000 joins")
	}
	data1, res, _, _ := etcdDataDir(t)
	g := managersOn(t, 3, 10*time.Second, data1, res)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	out, err := loadtest.Run(ctx, loadtest.Config{Addrs: g.addrs, Token: res.WorkerToken, Nodes: 1000, Concurrency: 64})
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("%s", out)
	if out.Joins.Errors != 0 || out.DuplicateSerials != 0 {
		t.Fatalf("%d errors (first: %s), %d duplicate serials", out.Joins.Errors, out.Joins.FirstError, out.DuplicateSerials)
	}
	st, err := cluster.OpenStore(data1)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	nodes, err := st.Nodes(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(nodes) != 1003 {
		t.Errorf("%d nodes; want 1,003 (three managers and 1,000 workers)", len(nodes))
	}
	recs, err := st.AuditRecords(ctx, 1, 0)
	if err != nil {
		t.Fatal(err)
	}
	if rep := audit.Verify(recs, []audit.Root{{Cert: g.roots[0]}}); !rep.OK() {
		t.Errorf("the audit log does not verify: %s", rep)
	}
}

// BenchmarkJoins compares joins per second through three managers on one
// etcd (its own, syncing to disk as a deployment's does) with one manager
// on the embedded bbolt store, in the same run with the same client
// (package loadtest), at concurrency 1, 16 and 64:
//
//	go test -run '^$' -bench BenchmarkJoins -benchtime 300x ./manager
func BenchmarkJoins(b *testing.B) {
	ec := etcddev.StartForTest(b, etcddev.Options{})
	data1, res, _, _ := etcdDataDirAt(b, ec)
	etcd3 := managersOn(b, 3, 10*time.Second, data1, res)
	boltData := newDataDir(b, "")
	st, err := cluster.OpenStore(boltData)
	if err != nil {
		b.Fatal(err)
	}
	bc, err := st.Cluster(context.Background())
	st.Close()
	if err != nil {
		b.Fatal(err)
	}
	boltAddr, _, _ := runManager(b, boltData, Config{CheckpointInterval: time.Hour})
	for _, conc := range []int{1, 16, 64} {
		for _, tc := range []struct {
			name  string
			addrs []string
			token string
		}{
			{"etcd-3-managers", etcd3.addrs, res.WorkerToken},
			{"bbolt-1-manager", []string{boltAddr}, bc.WorkerToken},
		} {
			b.Run(fmt.Sprintf("%s/c=%d", tc.name, conc), func(b *testing.B) {
				out, err := loadtest.Run(context.Background(), loadtest.Config{Addrs: tc.addrs, Token: tc.token, Nodes: max(b.N, conc), Concurrency: conc})
				if err != nil {
					b.Fatal(err)
				}
				if out.Joins.Errors != 0 || out.DuplicateSerials != 0 {
					b.Fatalf("%d errors (first: %s), %d duplicate serials", out.Joins.Errors, out.Joins.FirstError, out.DuplicateSerials)
				}
				b.ReportMetric(out.Joins.PerSecond(), "joins/s")
				b.ReportMetric(float64(out.Joins.P99.Microseconds())/1000, "p99-ms")
			})
		}
	}
}
