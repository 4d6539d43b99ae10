package migrate_test

import (
	"fmt"
	"testing"
	"time"

	"github.com/chancery-pki/chancery/store/migrate"
)

// BenchmarkCopy copies a bbolt store of 10,000 nodes (a certificate each)
// and 6,000 more audit entries into etcd, verification included, and
// prints how long it took.
func BenchmarkCopy(b *testing.B) {
	const nodes = 10000
	for b.Loop() {
		b.StopTimer()
		src := sourceTB(b, nodes)
		dst := targetTB(b)
		b.StartTimer()
		start := time.Now()
		res, err := migrate.Copy(b.Context(), src, dst, noRoots)
		if err != nil {
			b.Fatal(err)
		}
		took := time.Since(start)
		fmt.Printf("copied and verified %d nodes, %d certificate records, %d audit entries into etcd in %s (%.0f records/s)\n",
			res.Nodes, res.Certificates, res.Audit.Entries, took.Round(time.Millisecond),
			float64(res.Nodes+res.Certificates+res.Audit.Entries)/took.Seconds())
	}
}
