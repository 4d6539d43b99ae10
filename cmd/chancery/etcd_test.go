package main

import (
	"context"
	"encoding/json"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/chancery-pki/chancery/agent"
	"github.com/chancery-pki/chancery/cluster"
	"github.com/chancery-pki/chancery/internal/etcddev"
	"github.com/chancery-pki/chancery/store"
)

// TestInitOnEtcd follows `chancery init --store etcd` over TLS with a
// client certificate: store.json names etcd, the files (no secret) and the
// call timeout, the manager runs on it, a worker joins, node ls and audit
// verify read it, and a second init on the same etcd and prefix is
// refused.
func TestInitOnEtcd(t *testing.T) {
	e := etcddev.StartForTest(t, etcddev.Options{TLS: true, NoFsync: true})
	root, err := os.MkdirTemp("", "et") // short: the manager's socket path must fit
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
	etcdFlags := []string{"--store", "etcd", "--etcd-endpoints", strings.Join(e.Endpoints, ","), "--etcd-prefix", "/c1/",
		"--etcd-cacert", e.TLS.CA, "--etcd-cert", e.TLS.ClientCert, "--etcd-key", e.TLS.ClientKey, "--etcd-call-timeout", "7s"}
	l.cli(false, append([]string{"init", "--no-run", "--hostname", "m1", "--data-dir", l.dir("m1"), "--listen-addr", l.addr, "--advertise-addr", l.addr}, etcdFlags...)...)

	data, err := os.ReadFile(filepath.Join(l.dir("m1"), store.SettingsFile))
	if err != nil {
		t.Fatal(err)
	}
	var s store.Settings
	if err := json.Unmarshal(data, &s); err != nil {
		t.Fatal(err)
	}
	if s.Type != "etcd" || s.Options["endpoints"] != strings.Join(e.Endpoints, ",") || s.Options["key"] != e.TLS.ClientKey || s.Options["prefix"] != "/c1/" ||
		s.Options["call-timeout"] != "7s" {
		t.Errorf("store.json: %s", data)
	}
	if strings.Contains(string(data), "PRIVATE KEY") {
		t.Errorf("store.json holds a key: %s", data)
	}
	if _, err := os.Stat(filepath.Join(l.dir("m1"), "chancery.db")); err == nil {
		t.Error("init on etcd made a bbolt file too")
	}

	l.runLeader("m1", ln)
	token, _ := l.cli(false, "join-token", "-q", "worker", "--data-dir", l.dir("m1"))
	l.cli(false, "join", "--no-run", "--token", strings.TrimSpace(token), "--hostname", "w1", "--data-dir", l.dir("w1"), l.addr)
	ls, _ := l.cli(false, "node", "ls", "--data-dir", l.dir("m1"))
	if !strings.Contains(ls, "m1") || !strings.Contains(ls, "w1") {
		t.Errorf("node ls on etcd:\n%s", ls)
	}
	nodesBefore, _ := l.cli(false, "node", "ls", "--format", "{{.ID}} {{.Hostname}} {{.Role}}", "--data-dir", l.dir("m1"))
	if strings.Count(nodesBefore, "\n") != 2 {
		t.Errorf("node ls --format on etcd:\n%s", nodesBefore)
	}
	out, _ := l.cli(false, "audit", "verify", "--data-dir", l.dir("m1"))
	if !strings.Contains(out, "audit log OK") {
		t.Errorf("audit verify on etcd: %s", out)
	}

	// The same etcd and prefix hold a cluster: a second init is refused
	// and leaves it as it was; another prefix is free.
	_, stderr := l.cli(true, append([]string{"init", "--no-run", "--data-dir", l.dir("m2")}, etcdFlags...)...)
	if !strings.Contains(stderr, "holds a cluster already") {
		t.Errorf("second init on the same prefix: %s", stderr)
	}
	// The nodes' IDs, names and roles, not their status: the lab's short
	// heartbeat may turn the worker Down between the two listings.
	ls2, _ := l.cli(false, "node", "ls", "--format", "{{.ID}} {{.Hostname}} {{.Role}}", "--data-dir", l.dir("m1"))
	if ls2 != nodesBefore {
		t.Errorf("a refused init changed the cluster:\n%s", ls2)
	}

	// Bad store flags are refused before anything is made.
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"--etcd-endpoints", "https://127.0.0.1:1"}, "--etcd-endpoints needs --store etcd"},
		{[]string{"--store", "etcd"}, "--store etcd needs --etcd-endpoints"},
		{[]string{"--store", "zookeeper"}, `unknown --store "zookeeper"`},
		{[]string{"--store", "etcd", "--etcd-endpoints", "127.0.0.1:2379"}, "not an etcd client URL"},
		{[]string{"--store", "etcd", "--etcd-endpoints", e.Endpoints[0], "--etcd-cert", e.TLS.ClientCert}, "go together"},
		{[]string{"--etcd-call-timeout", "5s"}, "--etcd-call-timeout needs --store etcd"},
		{[]string{"--store", "etcd", "--etcd-endpoints", e.Endpoints[0], "--etcd-call-timeout", "10ms"}, "--etcd-call-timeout 10ms is out of range"},
		{[]string{"--store", "etcd", "--etcd-endpoints", e.Endpoints[0], "--etcd-call-timeout", "-1s"}, "--etcd-call-timeout -1s is out of range"},
	} {
		_, stderr := l.cli(true, append([]string{"init", "--no-run", "--data-dir", l.dir("bad")}, tc.args...)...)
		if !strings.Contains(stderr, tc.want) {
			t.Errorf("init %v: %s, want %q", tc.args, stderr, tc.want)
		}
		if _, err := os.Stat(l.dir("bad")); err == nil {
			t.Errorf("init %v left %s", tc.args, l.dir("bad"))
		}
	}
}

// TestJoinManagerOnEtcd follows `chancery join` of a manager onto a
// cluster whose state is in etcd (over TLS with a client certificate), as
// a real process: join checks the store, writes store.json (0600, no
// secret, the first manager's settings) and node.json's advertise address,
// then becomes 'chancery run' and serves as a full manager on the shared
// store: a worker joins through it and learns both managers, node ls shows
// the leader and the joined manager, which campaigns in the election, and
// the audit log verifies. Before that, joins that could not run as such a
// manager are refused, leaving nothing behind: a worker token, a store of
// another cluster or of none, --store bbolt, etcd flags without --store
// etcd, an advertise address that names nothing, and a file-backend root
// whose key is not in the joining data directory.
func TestJoinManagerOnEtcd(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a manager process")
	}
	e := etcddev.StartForTest(t, etcddev.Options{TLS: true, NoFsync: true})
	root, err := os.MkdirTemp("", "jm")
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
	etcdFlags := func(prefix string) []string {
		return []string{"--store", "etcd", "--etcd-endpoints", strings.Join(e.Endpoints, ","), "--etcd-prefix", prefix,
			"--etcd-cacert", e.TLS.CA, "--etcd-cert", e.TLS.ClientCert, "--etcd-key", e.TLS.ClientKey}
	}
	l.cli(false, append([]string{"init", "--no-run", "--hostname", "m1", "--data-dir", l.dir("m1"), "--listen-addr", l.addr, "--advertise-addr", l.addr}, etcdFlags("/c1/")...)...)
	// Another cluster on the same etcd, never run.
	l.cli(false, append([]string{"init", "--no-run", "--hostname", "o1", "--data-dir", l.dir("o1"), "--listen-addr", "127.0.0.1:1"}, etcdFlags("/c2/")...)...)
	l.runLeader("m1", ln)
	tokenFile := func(role string) string {
		tok, _ := l.cli(false, "join-token", "-q", role, "--data-dir", l.dir("m1"))
		f := filepath.Join(root, role+".token")
		if err := os.WriteFile(f, []byte(tok), 0o600); err != nil {
			t.Fatal(err)
		}
		return f
	}
	managerToken, workerToken := tokenFile("manager"), tokenFile("worker")
	// join-token prints the manager's join with the store's flags.
	howTo, _ := l.cli(false, "join-token", "manager", "--data-dir", l.dir("m1"))
	if want := " --store etcd --etcd-endpoints " + strings.Join(e.Endpoints, ",") + " --etcd-prefix /c1/ --etcd-cacert " + e.TLS.CA; !strings.Contains(howTo, want) {
		t.Errorf("join-token manager lacks %q:\n%s", want, howTo)
	}

	for _, tc := range []struct {
		name string
		args []string
		want string
	}{
		{"WorkerToken", append([]string{"--token-file", workerToken}, etcdFlags("/c1/")...), "a worker token was given with store settings"},
		{"OtherCluster", append([]string{"--token-file", managerToken}, etcdFlags("/c2/")...), "the store holds another cluster than the join token's"},
		{"NoCluster", append([]string{"--token-file", managerToken}, etcdFlags("/none/")...), "the store holds no cluster"},
		{"StoreBbolt", []string{"--token-file", managerToken, "--store", "bbolt"}, "--store bbolt: a joining manager shares the cluster's store"},
		{"EtcdFlagsAlone", []string{"--token-file", managerToken, "--etcd-endpoints", e.Endpoints[0]}, "--etcd-endpoints needs --store etcd"},
		{"BadAdvertise", append([]string{"--token-file", managerToken, "--advertise-addr", "no-such-if0"}, etcdFlags("/c1/")...), "neither an IP address nor a network interface"},
		{"FileKeyMissing", append([]string{"--token-file", managerToken}, etcdFlags("/c1/")...), "copy the root key from the first manager's data directory"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			args := append([]string{"join", "--no-run", "--hostname", "m2", "--data-dir", l.dir("m2")}, tc.args...)
			_, stderr := l.cli(true, append(args, l.addr)...)
			t.Logf("%s", stderr)
			if !strings.Contains(stderr, tc.want) {
				t.Errorf("stderr %q lacks %q", stderr, tc.want)
			}
			if strings.Contains(stderr, "SWMTKN-") {
				t.Errorf("the error shows a token: %s", stderr)
			}
			if _, err := os.Stat(l.dir("m2")); !os.IsNotExist(err) {
				t.Errorf("the refused join left %s (%v)", l.dir("m2"), err)
			}
		})
	}

	// The file backend's root key goes where the cluster record says,
	// relative to the data directory, as the first manager keeps it.
	key, err := os.ReadFile(filepath.Join(l.dir("m1"), "ca", "root-ca.key"))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(filepath.Join(l.dir("m2"), "ca"), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(l.dir("m2"), "ca", "root-ca.key"), key, 0o600); err != nil {
		t.Fatal(err)
	}
	ln2, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr2 := ln2.Addr().String()
	ln2.Close()
	// A bare IP takes the listen address's port, as init's does.
	p := &managerProcess{t: t, bin: chanceryBinary(t), dataDir: l.dir("m2"), args: append([]string{"join", "--token-file", managerToken,
		"--hostname", "m2", "--data-dir", l.dir("m2"), "--listen-addr", addr2, "--advertise-addr", "127.0.0.1", "--log-level", "warn", l.addr}, etcdFlags("/c1/")...)}
	p.start()
	t.Cleanup(func() {
		if p.cmd.ProcessState == nil {
			p.kill()
		}
	})
	if !strings.Contains(p.output(), "This node joined a cluster as a manager.") {
		t.Errorf("join printed:\n%s", p.output())
	}

	want, err := os.ReadFile(filepath.Join(l.dir("m1"), store.SettingsFile))
	if err != nil {
		t.Fatal(err)
	}
	got, err := os.ReadFile(filepath.Join(l.dir("m2"), store.SettingsFile))
	if err != nil {
		t.Fatal(err)
	}
	if fi, err := os.Stat(filepath.Join(l.dir("m2"), store.SettingsFile)); err != nil || fi.Mode().Perm() != 0o600 {
		t.Errorf("store.json: %v, mode %v", err, fi.Mode())
	}
	var ws, gs store.Settings
	if err := json.Unmarshal(want, &ws); err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(got, &gs); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(ws, gs) {
		t.Errorf("the joined manager's store.json:\n%s\nthe first's:\n%s", got, want)
	}
	if strings.Contains(string(got), "PRIVATE KEY") || strings.Contains(string(got), "SWMTKN-") {
		t.Errorf("store.json holds a secret: %s", got)
	}
	st, err := agent.ReadState(l.dir("m2"))
	if err != nil {
		t.Fatal(err)
	}
	if st.AdvertiseAddr != addr2 || st.ListenAddr != addr2 {
		t.Errorf("node.json: listen %q, advertise %q; want %s for both", st.ListenAddr, st.AdvertiseAddr, addr2)
	}

	// The joined manager serves joins from the shared store; the worker
	// learns both managers from the status answers.
	l.cli(false, "join", "--no-run", "--token-file", workerToken, "--hostname", "w1", "--data-dir", l.dir("w1"), addr2)
	l.runNode("w1")
	eventually(t, "the worker to know both managers", func() bool {
		s, err := agent.ReadState(l.dir("w1"))
		return err == nil && slices.Contains(s.Managers, l.addr) && slices.Contains(s.Managers, addr2)
	})
	ls, _ := l.cli(false, "node", "ls", "--format", "{{.Hostname}} {{.ManagerStatus}}", "--data-dir", l.dir("m2"))
	for _, line := range []string{"m1 Leader", "m2 Reachable", "w1 "} {
		if !strings.Contains(ls, line+"\n") && !strings.Contains(ls, line) {
			t.Errorf("node ls on the joined manager lacks %q:\n%s", line, ls)
		}
	}
	// It campaigns: the election holds a candidate key of each manager.
	m2ID := nodeID(t, l.dir("m2"))
	sto, err := cluster.OpenStore(l.dir("m2"))
	if err != nil {
		t.Fatal(err)
	}
	defer sto.Close()
	eb := sto.(interface {
		Client() *clientv3.Client
		Prefix() string
	})
	eventually(t, "the joined manager to campaign", func() bool {
		resp, err := eb.Client().Get(ctx, eb.Prefix()+"leader/", clientv3.WithPrefix())
		if err != nil || len(resp.Kvs) != 2 {
			return false
		}
		return string(resp.Kvs[0].Value) == m2ID || string(resp.Kvs[1].Value) == m2ID
	})
	out, _ := l.cli(false, "audit", "verify", "--data-dir", l.dir("m2"))
	if !strings.Contains(out, "audit log OK") {
		t.Errorf("audit verify on the joined manager: %s", out)
	}

	// A manager removed while it is stopped does not start again: 'chancery
	// run' stops before it serves, says why, and says to join again.
	p.kill()
	l.cli(false, "node", "demote", "m2", "--data-dir", l.dir("m1"))
	l.cli(false, "node", "rm", "--force", "m2", "--data-dir", l.dir("m1"))
	rctx, rcancel := context.WithTimeout(ctx, time.Minute)
	defer rcancel()
	run := exec.CommandContext(rctx, p.bin, "run", "--data-dir", l.dir("m2"), "--log-level", "warn")
	run.SysProcAttr = childAttr()
	runOut, err := run.CombinedOutput()
	if rctx.Err() != nil {
		t.Fatalf("the removed manager ran on:\n%s", runOut)
	}
	if err == nil {
		t.Fatalf("the removed manager's run exited 0:\n%s", runOut)
	}
	for _, want := range []string{"this node was removed from the cluster", "join it again with a manager token"} {
		if !strings.Contains(string(runOut), want) {
			t.Errorf("the removed manager's run lacks %q:\n%s", want, runOut)
		}
	}
	if ls, _ := l.cli(false, "node", "ls", "-q", "--data-dir", l.dir("m1")); strings.Contains(ls, m2ID) {
		t.Errorf("node ls still lists the removed manager:\n%s", ls)
	}

	// On etcd a manager leaves as on bbolt, with --force, but the elected
	// leader (m1, the only manager running) is refused; a third manager
	// leaves, its store settings go with its files, and it stops.
	if _, stderr := l.cli(true, "leave", "--force", "--data-dir", l.dir("m1")); !strings.Contains(stderr, "leads the managers now") {
		t.Errorf("leave on the elected leader: %s", stderr)
	}
	if err := os.MkdirAll(filepath.Join(l.dir("m3"), "ca"), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(l.dir("m3"), "ca", "root-ca.key"), key, 0o600); err != nil {
		t.Fatal(err)
	}
	ln3, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr3 := ln3.Addr().String()
	ln3.Close()
	p3 := &managerProcess{t: t, bin: p.bin, dataDir: l.dir("m3"), args: append([]string{"join", "--token-file", managerToken,
		"--hostname", "m3", "--data-dir", l.dir("m3"), "--listen-addr", addr3, "--advertise-addr", "127.0.0.1", "--log-level", "warn", l.addr}, etcdFlags("/c1/")...)}
	p3.start()
	t.Cleanup(func() {
		if p3.cmd.ProcessState == nil {
			p3.kill()
		}
	})
	m3ID := nodeID(t, l.dir("m3"))
	if _, stderr := l.cli(true, "leave", "--data-dir", l.dir("m3")); !strings.Contains(stderr, "demote it first, or use --force") {
		t.Errorf("leave on a manager without --force: %s", stderr)
	}
	out, stderr := l.cli(false, "leave", "--force", "--data-dir", l.dir("m3"))
	if !strings.Contains(out, m3ID+" (manager) left the cluster") || !strings.Contains(stderr, "still holds the root CA's files") {
		t.Errorf("leave --force on a manager on etcd: %q %q", out, stderr)
	}
	if _, err := os.Stat(filepath.Join(l.dir("m3"), store.SettingsFile)); !os.IsNotExist(err) {
		t.Errorf("store.json after leave: %v", err)
	}
	if left, _ := l.cli(false, "audit", "show", "--action", "node.left", "--data-dir", l.dir("m1")); !strings.Contains(left, m3ID) {
		t.Errorf("the audit log lacks m3's node.left:\n%s", left)
	}
	select {
	case <-p3.done:
	case <-time.After(30 * time.Second):
		t.Errorf("the manager that left still runs 30 s later:\n%s", p3.output())
	}
}
