package main

import (
	"context"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/chancery-pki/chancery/manager"
)

// TestBenchCommand runs `chancery bench` against a running manager: every
// simulated node joins and renews, and the report says so.
func TestBenchCommand(t *testing.T) {
	dir, err := os.MkdirTemp("", "bench")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	data := filepath.Join(dir, "m")
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	l := &lab{t: t}
	l.cli(false, "init", "--no-run", "--data-dir", data, "--listen-addr", ln.Addr().String(), "--advertise-addr", ln.Addr().String())
	ctx, cancel := context.WithCancel(context.Background())
	done, ready := make(chan error, 1), make(chan struct{})
	go func() {
		done <- manager.Run(ctx, manager.Config{DataDir: data, Listener: ln, Logger: quietLogger(),
			CheckpointInterval: time.Hour, Ready: func(string) { close(ready) }})
	}()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("manager: %v", err)
		}
	})
	<-ready
	token, _ := l.cli(false, "join-token", "-q", "worker", "--data-dir", data)
	out, _ := l.cli(false, "bench", "--token", strings.TrimSpace(token), "-n", "20", "-c", "4", "--renewals", "2", ln.Addr().String())
	for _, re := range []string{
		`(?m)^join\s+20 calls\s+[0-9.]+ certs/s\s+p50 \S+\s+p99 \S+\s+max \S+\s+errors 0$`,
		`(?m)^renew\s+40 calls\s+[0-9.]+ certs/s\s+p50 \S+\s+p99 \S+\s+max \S+\s+errors 0$`,
		`(?m)^duplicate serials: 0$`,
	} {
		if !regexp.MustCompile(re).MatchString(out) {
			t.Errorf("bench output does not match %s:\n%s", re, out)
		}
	}
	info, _ := l.cli(false, "info", "--data-dir", data)
	if !strings.Contains(info, " Nodes: 21\n") {
		t.Errorf("after 20 simulated joins, info says:\n%s", info)
	}
	_, errOut := l.cli(true, "bench", "--token", "SWMTKN-1-nope", ln.Addr().String())
	if !strings.Contains(errOut, "invalid join token") {
		t.Errorf("bench with a bad token: %s", errOut)
	}
}
