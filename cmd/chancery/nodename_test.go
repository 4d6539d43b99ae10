package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestNodeCommandsRefuseAmbiguousName: node commands given a host name
// that two nodes share refuse it and list both IDs; given an ID, they act
// on that node and print its ID.
func TestNodeCommandsRefuseAmbiguousName(t *testing.T) {
	dir, data, addr := runTestManager(t, nil)
	l := &lab{t: t}
	out, _ := l.cli(false, "join-token", "-q", "worker", "--data-dir", data)
	tokenFile := filepath.Join(dir, "worker.token")
	if err := os.WriteFile(tokenFile, []byte(out), 0o600); err != nil {
		t.Fatal(err)
	}
	var ids []string
	for _, n := range []string{"a", "b"} {
		l.cli(false, "join", "--no-run", "--token-file", tokenFile, "--hostname", "twin", "--data-dir", filepath.Join(dir, n), addr)
		ids = append(ids, nodeID(t, filepath.Join(dir, n)))
	}
	for _, cmd := range [][]string{{"promote"}, {"demote"}, {"rm", "--force"}, {"inspect"}} {
		args := append(append([]string{"node"}, cmd...), "twin", "--data-dir", data)
		_, errOut := l.cli(true, args...)
		if !strings.Contains(errOut, "ambiguous") || !strings.Contains(errOut, ids[0]) || !strings.Contains(errOut, ids[1]) {
			t.Errorf("chancery node %s twin: stderr does not list both nodes:\n%s", cmd[0], errOut)
		}
	}
	out, _ = l.cli(false, "node", "promote", ids[1], "--data-dir", data)
	if out != "Node "+ids[1]+" promoted to a manager in the cluster.\n" {
		t.Errorf("promote by ID: %q", out)
	}
	out, _ = l.cli(false, "node", "ls", "-q", "--filter", "role=manager", "--data-dir", data)
	if strings.Contains(out, ids[0]) || !strings.Contains(out, ids[1]) {
		t.Errorf("managers after promoting %s:\n%s", ids[1], out)
	}
}
