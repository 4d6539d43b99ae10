package server

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"os"
	"strconv"
	"testing"
	"time"

	"github.com/chancery-pki/chancery/internal/etcddev"
	"github.com/chancery-pki/chancery/store"
	"github.com/chancery-pki/chancery/store/etcdstore"
)

// countingSharer counts what goes to the store.
type countingSharer struct {
	store.SeenSharer
	calls, records, txns int
}

func (c *countingSharer) PutSeen(ctx context.Context, recs []store.Seen) error {
	c.calls++
	c.records += len(recs)
	c.txns += (len(recs) + 99) / 100 // etcdstore writes 100 a transaction
	return c.SeenSharer.PutSeen(ctx, recs)
}

// BenchmarkSharedLivenessWriteLoad measures the write load of shared
// liveness on a real etcd: 10,000 nodes ($CHANCERY_BENCH_NODES) each
// reporting every 5 s to one manager, over 60 simulated seconds, the
// heartbeats flushed every 200 ms as the server does. It reports the
// heartbeats received, the records written and the etcd transactions, per
// second:
//
//	go test -run '^$' -bench SharedLivenessWriteLoad -benchtime 1x ./server
func BenchmarkSharedLivenessWriteLoad(b *testing.B) {
	nodes := 10000
	if v, err := strconv.Atoi(os.Getenv("CHANCERY_BENCH_NODES")); err == nil && v > 0 {
		nodes = v
	}
	const (
		period = 5 * time.Second
		span   = 60 * time.Second
	)
	ec := etcddev.Require(b)
	p := make([]byte, 6)
	rand.Read(p)
	st, err := etcdstore.Open(context.Background(), etcdstore.Config{Endpoints: ec.Endpoints, Prefix: "/bench-" + hex.EncodeToString(p) + "/"}, nil)
	if err != nil {
		b.Fatal(err)
	}
	defer st.Close()
	ids := make([]string, nodes)
	for i := range ids {
		ids[i] = fmt.Sprintf("node-%06d", i)
	}
	for range b.N {
		cs := &countingSharer{SeenSharer: st}
		l := newLiveness("manager", period)
		l.share(cs)
		start := time.Now()
		heartbeats := 0
		wall := time.Now()
		for t := time.Duration(0); t < span; t += flushEvery {
			// Node i reports at i*period/nodes past each period.
			for i, id := range ids {
				off := time.Duration(i) * period / time.Duration(nodes)
				if at := (t - off) % period; t >= off && at >= 0 && at < flushEvery {
					l.reportTrust(id, start.Add(t), "root", "serial")
					heartbeats++
				}
			}
			if err := l.flush(context.Background()); err != nil {
				b.Fatal(err)
			}
		}
		secs := span.Seconds()
		b.ReportMetric(float64(heartbeats)/secs, "heartbeats/s")
		b.ReportMetric(float64(cs.records)/secs, "records/s")
		b.ReportMetric(float64(cs.txns)/secs, "txns/s")
		b.ReportMetric(time.Since(wall).Seconds(), "wall-s")
	}
}
