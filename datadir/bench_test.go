package datadir

import (
	"path/filepath"
	"testing"
)

// BenchmarkCheck measures Check on a data directory laid out as a
// manager's (what every administration command pays before it starts),
// and reports checks/s.
func BenchmarkCheck(b *testing.B) {
	d := filepath.Join(b.TempDir(), "data")
	good(b, d)
	mkdir(b, filepath.Join(d, "ca"), 0o700)
	write(b, filepath.Join(d, "ca", "root-ca.key"), 0o600)
	write(b, filepath.Join(d, "store.json"), 0o600)
	write(b, filepath.Join(d, "certificates", "swarm-root-ca.crt"), 0o644)
	b.ResetTimer()
	for b.Loop() {
		if err := Check(d); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "checks/s")
}
