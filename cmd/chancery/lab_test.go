package main

import (
	"bytes"
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chancery-pki/chancery/agent"
	"github.com/chancery-pki/chancery/audit"
	"github.com/chancery-pki/chancery/ca"
	"github.com/chancery-pki/chancery/certdir"
	"github.com/chancery-pki/chancery/manager"
)

// lab runs CLI commands and in-process managers and nodes, each in its own
// data directory, as the swarm security lab does with four hosts.
type lab struct {
	t    *testing.T
	root string
	addr string
	ctx  context.Context
	wg   sync.WaitGroup
}

// cli runs a chancery command line and returns its stdout; it fails the
// test on a non-zero exit unless wantFail.
func (l *lab) cli(wantFail bool, args ...string) (string, string) {
	l.t.Helper()
	var out, errb bytes.Buffer
	code := runWith(args, &out, &errb)
	if (code != 0) != wantFail {
		l.t.Fatalf("chancery %s: exit %d, stdout:\n%s\nstderr:\n%s", strings.Join(args, " "), code, out.String(), errb.String())
	}
	return out.String(), errb.String()
}

func (l *lab) dir(node string) string { return filepath.Join(l.root, node) }

// runNode runs a joined node's agent until the test ends, or until it
// stops, when the returned channel gets its error.
func (l *lab) runNode(node string) <-chan error {
	l.t.Helper()
	ag, err := agent.New(agent.Config{DataDir: l.dir(node), Hostname: node, Logger: quietLogger()})
	if err != nil {
		l.t.Fatal(err)
	}
	done := make(chan error, 1)
	l.wg.Add(1)
	go func() {
		defer l.wg.Done()
		done <- ag.Run(l.ctx)
	}()
	return done
}

// stopped waits for a node's agent to stop, and returns its error.
func stopped(t *testing.T, node string, done <-chan error) error {
	t.Helper()
	select {
	case err := <-done:
		return err
	case <-time.After(15 * time.Second):
		t.Fatalf("%s's agent did not stop", node)
		return nil
	}
}

// runLeader runs node's manager on ln until the test ends, and waits until
// it serves.
func (l *lab) runLeader(node string, ln net.Listener) {
	l.t.Helper()
	ready, done := make(chan struct{}), make(chan error, 1)
	l.wg.Add(1)
	go func() {
		defer l.wg.Done()
		done <- manager.Run(l.ctx, manager.Config{DataDir: l.dir(node), Listener: ln, Logger: quietLogger(),
			HeartbeatPeriod: 100 * time.Millisecond, CheckpointInterval: time.Hour, Ready: func(string) { close(ready) }})
	}()
	select {
	case <-ready:
		l.wg.Add(1)
		go func() {
			defer l.wg.Done()
			if err := <-done; err != nil {
				l.t.Errorf("%s's manager: %v", node, err)
			}
		}()
	case err := <-done:
		l.t.Fatalf("%s's manager did not start: %v", node, err)
	}
}

// runFollower runs a joined manager: its agent and the manager API it
// serves by forwarding to the leader. It returns the API's address.
func (l *lab) runFollower(node string) string {
	l.t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		l.t.Fatal(err)
	}
	l.wg.Add(1)
	go func() {
		defer l.wg.Done()
		if err := manager.RunNode(l.ctx, manager.NodeConfig{DataDir: l.dir(node), Listener: ln, Hostname: node, Logger: quietLogger()}); err != nil {
			l.t.Errorf("%s: %v", node, err)
		}
	}()
	return ln.Addr().String()
}

func quietLogger() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

// identity reads a node's certificate from its data directory.
func (l *lab) identity(node string) (subject map[string]string, lifetime time.Duration) {
	l.t.Helper()
	chain, err := certdir.In(l.dir(node)).NodeChain()
	if err != nil {
		l.t.Fatal(err)
	}
	c := chain[0]
	return map[string]string{"O": strings.Join(c.Subject.Organization, ","), "OU": strings.Join(c.Subject.OrganizationalUnit, ","), "CN": c.Subject.CommonName},
		c.NotAfter.Sub(c.NotBefore.Add(ca.CertBackdate))
}

// eventually polls cond until it holds or the deadline passes.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestSwarmSecurityLab follows the swarm security lab end to end: init on
// node1; node2 joins as a manager and node3 as a worker; the worker token
// is rotated; node4 fails with the old token and joins with the new one;
// every certificate carries O=cluster, OU=role, CN=node; after update
// --cert-expiry 168h the next certificate lasts 7 days and info says so;
// node ls shows the lab's columns; promotion and demotion reissue
// certificates with the new OU.
func TestSwarmSecurityLab(t *testing.T) {
	root, err := os.MkdirTemp("", "lab") // short: the manager's socket path must fit
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

	// Step 1: init on node1, and run its manager.
	out, _ := l.cli(false, "init", "--no-run", "--hostname", "node1", "--data-dir", l.dir("node1"), "--listen-addr", l.addr, "--advertise-addr", l.addr)
	m := regexp.MustCompile(`current node \(([0-9a-z]{25})\) is now a manager`).FindStringSubmatch(out)
	if m == nil {
		t.Fatalf("init output:\n%s", out)
	}
	node1ID := m[1]
	l.runLeader("node1", ln)
	info, _ := l.cli(false, "info", "--data-dir", l.dir("node1"))
	clusterID := regexp.MustCompile(`(?m)^ ClusterID: ([0-9a-z]{25})$`).FindStringSubmatch(info)[1]
	for _, want := range []string{" NodeID: " + node1ID, " Is Manager: true", " Managers: 1", " Nodes: 1", "  Expiry Duration: 3 months"} {
		if !strings.Contains(info, want+"\n") {
			t.Errorf("info lacks %q:\n%s", want, info)
		}
	}

	// Step 2: node2 joins as a manager.
	managerToken, _ := l.cli(false, "join-token", "-q", "manager", "--data-dir", l.dir("node1"))
	managerToken = strings.TrimSpace(managerToken)
	out, _ = l.cli(false, "join", "--no-run", "--token", managerToken, "--hostname", "node2", "--data-dir", l.dir("node2"), l.addr)
	if out != "This node joined a cluster as a manager.\n" {
		t.Errorf("join output %q", out)
	}
	node2Addr := l.runFollower("node2")

	// Step 3: node3 joins as a worker.
	joinCmd, _ := l.cli(false, "join-token", "worker", "--data-dir", l.dir("node1"))
	oldWorker := regexp.MustCompile(`echo (SWMTKN-1-[0-9a-z]{50}-[0-9a-z]{25}) > worker\.token\)\n    chancery join --token-file worker\.token ` + regexp.QuoteMeta(l.addr)).FindStringSubmatch(joinCmd)
	if oldWorker == nil {
		t.Fatalf("join-token worker output:\n%s", joinCmd)
	}
	out, _ = l.cli(false, "join", "--no-run", "--token", oldWorker[1], "--hostname", "node3", "--data-dir", l.dir("node3"), l.addr)
	if out != "This node joined a cluster as a worker.\n" {
		t.Errorf("join output %q", out)
	}
	l.runNode("node3")

	// Step 4: rotate the worker token; node4 fails with the old one, joins
	// with the new one.
	out, _ = l.cli(false, "join-token", "--rotate", "worker", "--data-dir", l.dir("node1"))
	if !strings.HasPrefix(out, "Successfully rotated worker join token.\n") {
		t.Errorf("rotate output:\n%s", out)
	}
	newWorker := regexp.MustCompile(`SWMTKN-1-[0-9a-z]{50}-[0-9a-z]{25}`).FindString(out)
	if newWorker == oldWorker[1] || newWorker[:60] != oldWorker[1][:60] {
		t.Errorf("rotation changed more or less than the secret: %s -> %s", oldWorker[1], newWorker)
	}
	_, errOut := l.cli(true, "join", "--no-run", "--token", oldWorker[1], "--hostname", "node4", "--data-dir", l.dir("node4"), l.addr)
	if !strings.Contains(errOut, "A valid join token is necessary to join this cluster") {
		t.Errorf("join with the old token: %s", errOut)
	}
	if _, err := os.Stat(l.dir("node4")); !os.IsNotExist(err) {
		t.Error("a refused join left files behind")
	}
	l.cli(false, "join", "--no-run", "--token", newWorker, "--hostname", "node4", "--data-dir", l.dir("node4"), l.addr)
	node4Done := l.runNode("node4")

	// Step 5: every certificate carries cluster, role and node identity.
	ids := map[string]string{"node1": node1ID}
	for node, role := range map[string]string{"node1": "swarm-manager", "node2": "swarm-manager", "node3": "swarm-worker", "node4": "swarm-worker"} {
		s, life := l.identity(node)
		if s["O"] != clusterID || s["OU"] != role || !ca.ValidID(s["CN"]) {
			t.Errorf("%s: subject %v, want O=%s OU=%s", node, s, clusterID, role)
		}
		if life != ca.DefaultCertExpiry {
			t.Errorf("%s: lifetime %s, want %s", node, life, ca.DefaultCertExpiry)
		}
		ids[node] = s["CN"]
	}

	// node ls, as the lab shows it, once every node has reported.
	var ls string
	eventually(t, "all nodes ready", func() bool {
		ls, _ = l.cli(false, "node", "ls", "--data-dir", l.dir("node1"))
		return strings.Count(ls, " Ready ") == 4
	})
	lines := strings.Split(strings.TrimSpace(ls), "\n")
	if !regexp.MustCompile(`^ID\s+HOSTNAME\s+STATUS\s+AVAILABILITY\s+MANAGER STATUS$`).MatchString(lines[0]) || len(lines) != 5 {
		t.Fatalf("node ls:\n%s", ls)
	}
	wantRows := map[string]*regexp.Regexp{
		"node1": regexp.MustCompile(`^` + ids["node1"] + ` \*\s+node1\s+Ready\s+Active\s+Leader$`),
		"node2": regexp.MustCompile(`^` + ids["node2"] + `\s+node2\s+Ready\s+Active\s+Reachable$`),
		"node3": regexp.MustCompile(`^` + ids["node3"] + `\s+node3\s+Ready\s+Active$`),
		"node4": regexp.MustCompile(`^` + ids["node4"] + `\s+node4\s+Ready\s+Active$`),
	}
	for _, line := range lines[1:] {
		line = strings.TrimRight(line, " ")
		matched := false
		for node, re := range wantRows {
			if re.MatchString(line) {
				matched = true
				delete(wantRows, node)
			}
		}
		if !matched {
			t.Errorf("node ls row %q matches no node", line)
		}
	}
	// node2, a joined manager, serves the API: node5 joins through it, and
	// its heartbeats and renewals are forwarded to the leader.
	eventually(t, "node2's API", func() bool {
		conn, err := net.Dial("tcp", node2Addr)
		if err == nil {
			conn.Close()
		}
		return err == nil
	})
	l.cli(false, "join", "--no-run", "--token", newWorker, "--hostname", "node5", "--data-dir", l.dir("node5"), node2Addr)
	node5Done := l.runNode("node5")
	eventually(t, "node5 ready through node2", func() bool {
		ls, _ = l.cli(false, "node", "ls", "--data-dir", l.dir("node1"))
		return regexp.MustCompile(`(?m)^[0-9a-z]{25}\s+node5\s+Ready\s+Active\s*$`).MatchString(ls)
	})
	s5, _ := l.identity("node5")
	ids["node5"] = s5["CN"]
	l.cli(false, "node", "rm", "--force", "node5", "--data-dir", l.dir("node1"))
	// Its next heartbeat is refused, and the node stops: it must join again.
	if err := stopped(t, "node5", node5Done); !errors.Is(err, agent.ErrRemoved) {
		t.Errorf("node5's agent after removal: %v, want agent.ErrRemoved", err)
	}

	info, _ = l.cli(false, "info", "--data-dir", l.dir("node1"))
	for _, want := range []string{" Managers: 2", " Nodes: 4"} {
		if !strings.Contains(info, want+"\n") {
			t.Errorf("info lacks %q:\n%s", want, info)
		}
	}

	// Step 6: update --cert-expiry 168h: info says 7 days, and the next
	// certificate (here, node3's on promotion) lasts 7 days and says
	// swarm-manager; demotion reissues it as a worker again.
	out, _ = l.cli(false, "update", "--cert-expiry", "168h", "--data-dir", l.dir("node1"))
	if out != "Cluster updated.\n" {
		t.Errorf("update output %q", out)
	}
	info, _ = l.cli(false, "info", "--data-dir", l.dir("node1"))
	if !strings.Contains(info, "  Expiry Duration: 7 days\n") {
		t.Errorf("info after update:\n%s", info)
	}
	out, _ = l.cli(false, "node", "promote", "node3", "--data-dir", l.dir("node1"))
	if out != "Node "+ids["node3"]+" promoted to a manager in the cluster.\n" {
		t.Errorf("promote output %q", out)
	}
	eventually(t, "node3 renewed as a manager", func() bool {
		s, _ := l.identity("node3")
		return s["OU"] == "swarm-manager"
	})
	if s, life := l.identity("node3"); life != 168*time.Hour || s["CN"] != ids["node3"] {
		t.Errorf("node3 after promotion: %v, lifetime %s; want the same node ID and 168h", s, life)
	}
	l.cli(false, "node", "demote", ids["node3"][:8], "--data-dir", l.dir("node1"))
	eventually(t, "node3 renewed as a worker", func() bool {
		s, _ := l.identity("node3")
		return s["OU"] == "swarm-worker"
	})

	// The leader cannot be demoted; a manager cannot be removed before it is
	// demoted; a node that is up needs --force.
	_, errOut = l.cli(true, "node", "demote", "node1", "--data-dir", l.dir("node1"))
	if !strings.Contains(errOut, "leader cannot be demoted") {
		t.Errorf("demote leader: %s", errOut)
	}
	_, errOut = l.cli(true, "node", "rm", "node2", "--data-dir", l.dir("node1"))
	if !strings.Contains(errOut, "must be demoted") {
		t.Errorf("rm manager: %s", errOut)
	}
	_, errOut = l.cli(true, "node", "rm", "node4", "--data-dir", l.dir("node1"))
	if !strings.Contains(errOut, "not down") {
		t.Errorf("rm a ready node: %s", errOut)
	}
	out, _ = l.cli(false, "node", "rm", "--force", "node4", "--data-dir", l.dir("node1"))
	if strings.TrimSpace(out) != ids["node4"] {
		t.Errorf("rm output %q", out)
	}
	if err := stopped(t, "node4", node4Done); !errors.Is(err, agent.ErrRemoved) {
		t.Errorf("node4's agent after removal: %v, want agent.ErrRemoved", err)
	}
	ls, _ = l.cli(false, "node", "ls", "-q", "--data-dir", l.dir("node1"))
	if strings.Contains(ls, ids["node4"]) {
		t.Errorf("a removed node is still listed:\n%s", ls)
	}

	// A joined manager administers the cluster through the leader, over
	// mutual TLS with its manager certificate; a worker cannot.
	ls, _ = l.cli(false, "node", "ls", "--data-dir", l.dir("node2"))
	if !strings.Contains(ls, ids["node2"]+" *") {
		t.Errorf("node ls on node2 does not mark node2:\n%s", ls)
	}
	_, errOut = l.cli(true, "node", "ls", "--data-dir", l.dir("node3"))
	if !strings.Contains(errOut, "this node is a worker") {
		t.Errorf("node ls on a worker: %s", errOut)
	}

	// The audit log holds the lab's actions in order, verifies, and never
	// carries a token secret or a key.
	export, _ := l.cli(false, "audit", "export", "--data-dir", l.dir("node1"))
	var got []string
	for _, line := range strings.Split(strings.TrimSpace(export), "\n") {
		e, err := audit.Unmarshal([]byte(line))
		if err != nil {
			t.Fatalf("audit export line %q: %v", line, err)
		}
		if e.Action == audit.ActionCheckpoint {
			continue
		}
		who := ""
		for node, id := range ids {
			if e.NodeID == id {
				who = " " + node
			}
		}
		got = append(got, string(e.Action)+who)
		if e.Actor != node1ID {
			t.Errorf("entry %d (%s): actor %q, want the leader %s", e.Seq, e.Action, e.Actor, node1ID)
		}
	}
	want := []string{
		"cluster.init", "key.created", "certificate.issued node1", "manager.started",
		"certificate.issued node2", "certificate.issued node3", "join_token.rotated", "auth.refused",
		"certificate.issued node4", "certificate.issued node5", "node.removed node5", "auth.refused node5",
		"cert_expiry.changed", "node.promoted node3", "certificate.renewed node3", "node.demoted node3",
		"certificate.renewed node3", "node.removed node4", "auth.refused node4",
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("audit entries:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	for _, secret := range []string{managerToken, oldWorker[1], newWorker, managerToken[60:], newWorker[60:], "PRIVATE KEY"} {
		if strings.Contains(export, secret) {
			t.Errorf("the audit log contains a secret (%.12s...)", secret)
		}
	}
	out, _ = l.cli(false, "audit", "verify", "--data-dir", l.dir("node1"))
	if !strings.Contains(out, "audit log OK") || !strings.Contains(out, "checkpoints: 1,") {
		t.Errorf("audit verify:\n%s", out)
	}
	out, _ = l.cli(false, "audit", "show", "--node", ids["node3"], "--data-dir", l.dir("node1"))
	if n := strings.Count(out, ids["node3"]); n != 5 {
		t.Errorf("audit show --node node3: %d entries, want 5:\n%s", n, out)
	}
}
