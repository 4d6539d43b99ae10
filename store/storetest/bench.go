package storetest

import (
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/chancery-pki/chancery/audit"
	"github.com/chancery-pki/chancery/store"
)

// BenchmarkRecordIssuance measures RecordIssuance, each with its audit
// event as the manager records it, from 1, 16 and 64 concurrent callers
// renewing 1,000 nodes, on stores open returns (a new, empty store each
// time; the benchmark closes it). It reports records/s.
func BenchmarkRecordIssuance(b *testing.B, open func(b *testing.B) store.Store) {
	for _, conc := range []int{1, 16, 64} {
		b.Run(fmt.Sprintf("concurrency=%d", conc), func(b *testing.B) {
			s := open(b)
			defer s.Close()
			ctx := b.Context()
			var seq atomic.Uint64
			var wg sync.WaitGroup
			work := make(chan struct{})
			b.ResetTimer()
			for range conc {
				wg.Go(func() {
					for range work {
						i := seq.Add(1)
						n, c := Issuance(fmt.Sprintf("node-%04d", i%1000), fmt.Sprintf("%016x", i), time.Now())
						if err := s.RecordIssuance(ctx, n, c, audit.Event{Action: audit.ActionRenewed, NodeID: n.ID, Serial: c.Serial}); err != nil {
							b.Error(err)
						}
					}
				})
			}
			for b.Loop() {
				work <- struct{}{}
			}
			close(work)
			wg.Wait()
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "records/s")
		})
	}
}
