package main

import (
	"context"
	"encoding/json"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/chancery-pki/chancery/internal/etcddev"
	"github.com/chancery-pki/chancery/store"
)

// TestInitOnEtcd follows `chancery init --store etcd` over TLS with a
// client certificate: store.json names etcd and the files (no secret), the
// manager runs on it, a worker joins, node ls and audit verify read it,
// and a second init on the same etcd and prefix is refused.
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
		"--etcd-cacert", e.TLS.CA, "--etcd-cert", e.TLS.ClientCert, "--etcd-key", e.TLS.ClientKey}
	l.cli(false, append([]string{"init", "--no-run", "--hostname", "m1", "--data-dir", l.dir("m1"), "--listen-addr", l.addr, "--advertise-addr", l.addr}, etcdFlags...)...)

	data, err := os.ReadFile(filepath.Join(l.dir("m1"), store.SettingsFile))
	if err != nil {
		t.Fatal(err)
	}
	var s store.Settings
	if err := json.Unmarshal(data, &s); err != nil {
		t.Fatal(err)
	}
	if s.Type != "etcd" || s.Options["endpoints"] != strings.Join(e.Endpoints, ",") || s.Options["key"] != e.TLS.ClientKey || s.Options["prefix"] != "/c1/" {
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
