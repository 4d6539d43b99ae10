package main

import (
	"context"
	"errors"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/chancery-pki/chancery/agent"
	"github.com/chancery-pki/chancery/certdir"
)

// TestLeave follows `chancery leave` through the CLI, as `docker swarm
// leave`: a worker leaves (its agent stops, its certificate is refused, its
// files are gone, the audit log says node.left); a manager leaves only
// with --force; the leader never; a node whose managers cannot be reached
// keeps its files unless --force.
func TestLeave(t *testing.T) {
	root, err := os.MkdirTemp("", "lv") // short: the manager's socket path must fit
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
	l.cli(false, "init", "--no-run", "--hostname", "m1", "--data-dir", l.dir("m1"), "--listen-addr", l.addr, "--advertise-addr", l.addr)
	l.runLeader("m1", ln)
	token := func(role string) string {
		out, _ := l.cli(false, "join-token", "-q", role, "--data-dir", l.dir("m1"))
		return strings.TrimSpace(out)
	}
	for _, n := range []struct{ name, role string }{{"w1", "worker"}, {"w2", "worker"}, {"m2", "manager"}} {
		l.cli(false, "join", "--no-run", "--token", token(n.role), "--hostname", n.name, "--data-dir", l.dir(n.name), l.addr)
	}
	w1 := l.runNode("w1")
	w1ID := l.selfOf("w1")
	// A copy of w1's data directory, to show its certificate refused after.
	copyDir(t, l.dir("w1"), l.dir("w1copy"))

	// The leader never leaves, not even with --force.
	_, stderr := l.cli(true, "leave", "--force", "--data-dir", l.dir("m1"))
	if !strings.Contains(stderr, "leader, which never leaves") {
		t.Errorf("leave on the leader: %s", stderr)
	}

	// A worker leaves.
	out, _ := l.cli(false, "leave", "--data-dir", l.dir("w1"))
	if want := "Node " + w1ID + " (worker) left the cluster.\n"; out != want {
		t.Errorf("leave output %q, want %q", out, want)
	}
	for _, p := range []string{filepath.Join(l.dir("w1"), agent.StateFile), certdir.In(l.dir("w1")).Path(certdir.NodeKeyFile)} {
		if _, err := os.Stat(p); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("%s is still there after leave: %v", filepath.Base(p), err)
		}
	}
	// Its running agent is refused at its next heartbeat, and so is its
	// certificate from anywhere.
	if err := stopped(t, "w1", w1); !errors.Is(err, agent.ErrRemoved) {
		t.Errorf("w1's agent stopped with %v, want ErrRemoved", err)
	}
	if err := stopped(t, "w1copy", l.runNode("w1copy")); !errors.Is(err, agent.ErrRemoved) {
		t.Errorf("w1's certificate after leave: %v, want ErrRemoved", err)
	}
	audit, _ := l.cli(false, "audit", "show", "--action", "node.left", "--data-dir", l.dir("m1"))
	if !strings.Contains(audit, "node.left") || !strings.Contains(audit, w1ID) {
		t.Errorf("the audit log lacks w1's node.left:\n%s", audit)
	}
	// Leaving again: nothing to leave with.
	if _, stderr := l.cli(true, "leave", "--data-dir", l.dir("w1")); !strings.Contains(stderr, "holds no node") {
		t.Errorf("second leave: %s", stderr)
	}

	// A manager leaves only with --force.
	m2ID := l.selfOf("m2")
	if _, stderr := l.cli(true, "leave", "--data-dir", l.dir("m2")); !strings.Contains(stderr, "demote it first, or use --force") {
		t.Errorf("leave on a manager without --force: %s", stderr)
	}
	if _, err := os.Stat(filepath.Join(l.dir("m2"), agent.StateFile)); err != nil {
		t.Errorf("a refused leave removed files: %v", err)
	}
	if out, _ := l.cli(false, "leave", "--force", "--data-dir", l.dir("m2")); !strings.Contains(out, m2ID+" (manager) left") {
		t.Errorf("leave --force on a manager: %q", out)
	}

	// No manager reachable: nothing removed, unless --force.
	w2ID := l.selfOf("w2")
	dead, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	deadAddr := dead.Addr().String()
	dead.Close()
	if err := agent.WriteState(l.dir("w2"), agent.State{Managers: []string{deadAddr}}); err != nil {
		t.Fatal(err)
	}
	if _, stderr := l.cli(true, "leave", "--data-dir", l.dir("w2")); !strings.Contains(stderr, "no manager could be told") {
		t.Errorf("leave with no manager: %s", stderr)
	}
	if _, err := os.Stat(certdir.In(l.dir("w2")).Path(certdir.NodeKeyFile)); err != nil {
		t.Errorf("a leave that told no manager removed the key: %v", err)
	}
	out, stderr = l.cli(false, "leave", "--force", "--data-dir", l.dir("w2"))
	if !strings.Contains(out, w2ID+" (worker) left") || !strings.Contains(stderr, "chancery node rm --force "+w2ID) {
		t.Errorf("leave --force with no manager: %q %q", out, stderr)
	}

	// The manager's listing: w1 and m2 are gone, w2 (never told) is not.
	ls, _ := l.cli(false, "node", "ls", "--data-dir", l.dir("m1"))
	if strings.Contains(ls, w1ID) || strings.Contains(ls, m2ID) || !strings.Contains(ls, w2ID) {
		t.Errorf("node ls after leaves:\n%s", ls)
	}
}

// selfOf is the node ID of node's data directory.
func (l *lab) selfOf(node string) string {
	l.t.Helper()
	chain, err := certdir.In(l.dir(node)).NodeChain()
	if err != nil {
		l.t.Fatal(err)
	}
	return chain[0].Subject.CommonName
}

// copyDir copies a node's data directory (its files and certificates/).
func copyDir(t *testing.T, from, to string) {
	t.Helper()
	err := filepath.WalkDir(from, func(p string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(from, p)
		dst := filepath.Join(to, rel)
		info, err := d.Info()
		if err != nil {
			return err
		}
		if d.IsDir() {
			return os.MkdirAll(dst, info.Mode().Perm())
		}
		data, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		return os.WriteFile(dst, data, info.Mode().Perm())
	})
	if err != nil {
		t.Fatal(err)
	}
}

// TestInitAdvertiseForms: init takes --advertise-addr as HOST:PORT, an IP
// alone or an interface name (with the listen port unless given one), and
// says what it refuses.
func TestInitAdvertiseForms(t *testing.T) {
	lo := loopbackInterface(t)
	tests := []struct {
		advertise string
		want      string // the address in the printed join command
		err       string
	}{
		{"192.0.2.1:4000", "192.0.2.1:4000", ""},
		{"192.0.2.1", "192.0.2.1:2399", ""},
		{"2001:db8::1", "[2001:db8::1]:2399", ""},
		{lo, "127.0.0.1:2399", ""},
		{lo + ":4001", "127.0.0.1:4001", ""},
		{"no-such-if0", "", "neither an IP address nor a network interface"},
		{"0.0.0.0", "", "no address another node can reach"},
	}
	for i, tt := range tests {
		t.Run(tt.advertise, func(t *testing.T) {
			l := &lab{t: t, root: t.TempDir()}
			dir := l.dir(string(rune('a' + i)))
			out, stderr := l.cli(tt.err != "", "init", "--no-run", "--hostname", "m", "--data-dir", dir,
				"--listen-addr", "0.0.0.0:2399", "--advertise-addr", tt.advertise)
			if tt.err != "" {
				if !strings.Contains(stderr, tt.err) {
					t.Errorf("stderr %q lacks %q", stderr, tt.err)
				}
				return
			}
			if !regexp.MustCompile(`chancery join --token-file worker\.token ` + regexp.QuoteMeta(tt.want) + "\n").MatchString(out) {
				t.Errorf("init output lacks the join command to %s:\n%s", tt.want, out)
			}
			info, _ := l.cli(false, "info", "--data-dir", dir)
			if !strings.Contains(info, " Manager Address: "+tt.want+"\n") {
				t.Errorf("info lacks the manager address %s:\n%s", tt.want, info)
			}
		})
	}
}

// loopbackInterface names this host's loopback interface.
func loopbackInterface(t *testing.T) string {
	ifis, err := net.Interfaces()
	if err != nil {
		t.Fatal(err)
	}
	for _, ifi := range ifis {
		if ifi.Flags&net.FlagLoopback != 0 {
			return ifi.Name
		}
	}
	t.Skip("no loopback interface")
	return ""
}
