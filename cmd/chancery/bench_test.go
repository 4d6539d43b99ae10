package main

import (
	"os"
	"path/filepath"
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
	tokenFile := filepath.Join(t.TempDir(), "worker.token")
	if err := os.WriteFile(tokenFile, []byte(token), 0o600); err != nil {
		t.Fatal(err)
	}
	out, errOut := l.cli(false, "bench", "--token-file", tokenFile, "-n", "20", "-c", "4", "--renewals", "2", addr)
	if errOut != "" {
		t.Errorf("bench with --token-file wrote to stderr: %s", errOut)
	}
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
	_, errOut = l.cli(true, "bench", "--token", "SWMTKN-1-nope", addr)
	if !strings.Contains(errOut, "invalid join token") || !strings.Contains(errOut, "warning: --token shows the join token") {
		t.Errorf("bench with a bad token on the command line: %s", errOut)
	}
	if err := os.Chmod(tokenFile, 0o644); err != nil {
		t.Fatal(err)
	}
	_, errOut = l.cli(true, "bench", "--token-file", tokenFile, addr)
	if !strings.Contains(errOut, "chmod") {
		t.Errorf("bench with a token file others can read: %s", errOut)
	}
	_, errOut = l.cli(true, "bench", addr)
	if !strings.Contains(errOut, "a join token is needed") {
		t.Errorf("bench without a token: %s", errOut)
	}
}
