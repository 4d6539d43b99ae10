package main

import (
	"regexp"
	"strings"
	"testing"
)

// TestBenchCommand runs `chancery bench` against a running manager: every
// simulated node joins and renews, and the report says so.
func TestBenchCommand(t *testing.T) {
	_, data, addr := runTestManager(t, nil)
	l := &lab{t: t}
	token, _ := l.cli(false, "join-token", "-q", "worker", "--data-dir", data)
	out, _ := l.cli(false, "bench", "--token", strings.TrimSpace(token), "-n", "20", "-c", "4", "--renewals", "2", addr)
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
	_, errOut := l.cli(true, "bench", "--token", "SWMTKN-1-nope", addr)
	if !strings.Contains(errOut, "invalid join token") {
		t.Errorf("bench with a bad token: %s", errOut)
	}
}
