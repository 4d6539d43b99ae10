package main

import (
	"context"
	"net"
	"os"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/chancery-pki/chancery/cluster"
	"github.com/chancery-pki/chancery/internal/seed"
)

// TestCertRecordRetention sets the retention of expired certificates'
// records through the CLI, and the leader prunes, when it starts, the
// records of certificates expired for longer, recording it in the audit
// log.
func TestCertRecordRetention(t *testing.T) {
	root, err := os.MkdirTemp("", "pr") // short: the manager's socket path must fit
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(root) })
	ctx, cancel := context.WithCancel(context.Background())
	l := &lab{t: t, root: root, ctx: ctx}
	t.Cleanup(func() { cancel(); l.wg.Wait() })
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	l.addr = ln.Addr().String()
	m1 := l.dir("m1")
	l.cli(false, "init", "--no-run", "--hostname", "m1", "--data-dir", m1, "--listen-addr", l.addr, "--advertise-addr", l.addr)

	// 20 nodes that joined 200 to 245 days ago with 90-day certificates,
	// renewed 100 days ago and today: 20 records expired 110 days ago or
	// more, 20 expired 10 days ago, 20 current.
	st, err := cluster.OpenStore(m1)
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	ids, err := seed.Nodes(ctx, st, 20, seed.Options{Now: now.Add(-200 * 24 * time.Hour), Lifetime: 90 * 24 * time.Hour, Concurrency: 4})
	if err == nil {
		// Nodes spreads the first issuance over the lifetime's last half;
		// the renewals are at fixed times.
		err = seed.Renew(ctx, st, ids, seed.Options{Now: now.Add(-100 * 24 * time.Hour), Concurrency: 4})
	}
	if err == nil {
		err = seed.Renew(ctx, st, ids, seed.Options{Now: now, Concurrency: 4})
	}
	st.Close()
	if err != nil {
		t.Fatal(err)
	}

	if _, stderr := l.cli(true, "update", "--cert-record-retention", "1h", "--data-dir", m1); !strings.Contains(stderr, "below the minimum") {
		t.Errorf("a retention of 1h: %s", stderr)
	}
	l.cli(false, "update", "--cert-record-retention", "720h", "--data-dir", m1)
	if info, _ := l.cli(false, "info", "--data-dir", m1); !strings.Contains(info, "  Expired Certificate Records Kept: ") {
		t.Errorf("info does not show the retention:\n%s", info)
	}

	l.runLeader("m1", ln)
	var out string
	eventually(t, "a prune", func() bool {
		out, _ = l.cli(false, "audit", "show", "--data-dir", m1)
		return strings.Contains(out, "certificates.pruned")
	})
	// The 20 records expired 110 days ago or more go; those expired 10
	// days ago and the current ones stay.
	m := regexp.MustCompile(`certificates\.pruned .* (\d+) records expired before`).FindStringSubmatch(out)
	if m == nil || m[1] != "20" {
		t.Fatalf("audit show:\n%s", out)
	}
	if !strings.Contains(out, "cert_record_retention.changed") || !strings.Contains(out, "cert_record_retention=720h0m0s") {
		t.Errorf("the audit log lacks the retention's change:\n%s", out)
	}
}
