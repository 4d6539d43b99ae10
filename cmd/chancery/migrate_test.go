package main

import (
	"context"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/chancery-pki/chancery/certdir"
	"github.com/chancery-pki/chancery/internal/etcddev"
	"github.com/chancery-pki/chancery/store"
	"github.com/chancery-pki/chancery/store/boltstore"
	"github.com/chancery-pki/chancery/store/etcdstore"
)

// TestStoreMigrateToEtcd moves a manager from the embedded store to etcd
// with `chancery store migrate`: refused while the manager runs or holds
// the store, into a prefix that holds anything, and with etcd down, each
// time leaving store.json and etcd as they were; then it succeeds, the
// manager runs on etcd, a worker renews through it, and audit verify
// passes over the moved log.
func TestStoreMigrateToEtcd(t *testing.T) {
	e := etcddev.StartForTest(t, etcddev.Options{TLS: true, NoFsync: true})
	root, err := os.MkdirTemp("", "mg") // short: the manager's socket path must fit
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

	// Phase one: the manager on bbolt, with a worker, in a lab of its own
	// so that it can be stopped.
	ctx1, stop1 := context.WithCancel(ctx)
	l1 := &lab{t: t, root: root, ctx: ctx1, addr: l.addr}
	l1.runLeader("m1", ln)
	token, _ := l.cli(false, "join-token", "-q", "worker", "--data-dir", m1)
	l.cli(false, "join", "--no-run", "--token", strings.TrimSpace(token), "--hostname", "w1", "--data-dir", l.dir("w1"), l.addr)
	before, _ := l.cli(false, "audit", "verify", "--data-dir", m1)

	tlsFlags := []string{"--etcd-cacert", e.TLS.CA, "--etcd-cert", e.TLS.ClientCert, "--etcd-key", e.TLS.ClientKey}
	migrateArgs := func(endpoints, prefix string) []string {
		return append([]string{"store", "migrate", "--data-dir", m1, "--to", "etcd", "--etcd-endpoints", endpoints, "--etcd-prefix", prefix}, tlsFlags...)
	}
	endpoints := strings.Join(e.Endpoints, ",")
	tlsCfg, err := e.TLS.ClientConfig()
	if err != nil {
		t.Fatal(err)
	}
	etcd, err := etcdstore.Dial(etcdstore.Config{Endpoints: e.Endpoints, TLS: tlsCfg})
	if err != nil {
		t.Fatal(err)
	}
	defer etcd.Close()
	keys := func(prefix string) int64 {
		t.Helper()
		resp, err := etcd.Get(ctx, prefix, clientv3.WithPrefix(), clientv3.WithCountOnly())
		if err != nil {
			t.Fatal(err)
		}
		return resp.Count
	}
	settings0, _ := os.ReadFile(filepath.Join(m1, store.SettingsFile)) // nil without one
	unchanged := func(what string) {
		t.Helper()
		if now, _ := os.ReadFile(filepath.Join(m1, store.SettingsFile)); string(now) != string(settings0) {
			t.Errorf("%s: store.json changed: %s", what, now)
		}
		if _, err := os.Stat(filepath.Join(m1, boltstore.File)); err != nil {
			t.Errorf("%s: the bbolt store: %v", what, err)
		}
		if n := keys("/m1/"); n != 0 {
			t.Errorf("%s: %d keys left under /m1/", what, n)
		}
	}

	// Refused while the manager runs.
	_, stderr := l.cli(true, migrateArgs(endpoints, "/m1/")...)
	if !strings.Contains(stderr, "is running") {
		t.Errorf("migrate with the manager running: %s", stderr)
	}
	unchanged("manager running")
	stop1()
	l1.wg.Wait()

	// Refused while another process holds the store.
	held, err := boltstore.Open(filepath.Join(m1, boltstore.File), boltstore.Options{})
	if err != nil {
		t.Fatal(err)
	}
	_, stderr = l.cli(true, migrateArgs(endpoints, "/m1/")...)
	held.Close()
	if !strings.Contains(stderr, "in use by another chancery process") || !strings.Contains(stderr, "stop it before store migrate") {
		t.Errorf("migrate with the store held: %s", stderr)
	}
	unchanged("store held")

	// Refused into a prefix that holds anything, which is left alone.
	if _, err := etcd.Put(ctx, "/busy/something", "x"); err != nil {
		t.Fatal(err)
	}
	_, stderr = l.cli(true, migrateArgs(endpoints, "/busy/")...)
	if !strings.Contains(stderr, `holds keys under the prefix "/busy/"`) || !strings.Contains(stderr, "--etcd-prefix") {
		t.Errorf("migrate into a used prefix: %s", stderr)
	}
	if n := keys("/busy/"); n != 1 {
		t.Errorf("a refused migrate changed /busy/: %d keys", n)
	}
	unchanged("prefix used")

	// Refused with etcd down (nothing listens on the port).
	dead, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	deadURL := "https://" + dead.Addr().String()
	dead.Close()
	_, stderr = l.cli(true, migrateArgs(deadURL, "/m1/")...)
	if !strings.Contains(stderr, "did not answer") {
		t.Errorf("migrate with etcd down: %s", stderr)
	}
	unchanged("etcd down")

	// Bad flags are refused.
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"store", "migrate", "--data-dir", m1, "--to", "bbolt"}, "only store to migrate to is etcd"},
		{[]string{"store", "migrate", "--data-dir", m1, "--to", "etcd"}, "--to etcd needs --etcd-endpoints"},
		{[]string{"store", "migrate", "--data-dir", m1, "--to", "etcd", "--etcd-endpoints", "127.0.0.1:2379"}, "not an etcd client URL"},
	} {
		_, stderr := l.cli(true, tc.args...)
		if !strings.Contains(stderr, tc.want) {
			t.Errorf("%v: %s, want %q", tc.args, stderr, tc.want)
		}
	}
	unchanged("bad flags")

	// Success.
	out, _ := l.cli(false, migrateArgs(endpoints, "/m1/")...)
	t.Logf("store migrate:\n%s", out)
	if !strings.Contains(out, "Moved the cluster's state to etcd") || !strings.Contains(out, "2 nodes") || !strings.Contains(out, "verified") {
		t.Errorf("migrate output:\n%s", out)
	}
	aside, _ := filepath.Glob(filepath.Join(m1, boltstore.File+".migrated-*"))
	if len(aside) != 1 || !strings.Contains(out, aside[0]) {
		t.Errorf("the old store set aside: %v; output:\n%s", aside, out)
	}
	if _, err := os.Stat(filepath.Join(m1, boltstore.File)); err == nil {
		t.Error("the bbolt store is still in place")
	}
	s, err := store.ReadSettings(m1)
	if err != nil || s.Type != etcdstore.Name || s.Options[etcdstore.OptionPrefix] != "/m1/" || s.Options[etcdstore.OptionEndpoints] != endpoints {
		t.Errorf("store.json after migrate: %+v, %v", s, err)
	}
	if fi, err := os.Stat(filepath.Join(m1, store.SettingsFile)); err != nil || fi.Mode().Perm() != 0o600 {
		t.Errorf("store.json: %v, %v", fi, err)
	}
	// A second migrate finds the data directory on etcd already.
	_, stderr = l.cli(true, migrateArgs(endpoints, "/m2/")...)
	if !strings.Contains(stderr, "in the etcd store already") {
		t.Errorf("second migrate: %s", stderr)
	}

	// The manager runs on etcd: the moved log verifies, and the worker
	// renews through it (on promotion), which the log records.
	ln2, err := net.Listen("tcp", l.addr)
	if err != nil {
		t.Fatal(err)
	}
	l.runLeader("m1", ln2)
	after, _ := l.cli(false, "audit", "verify", "--data-dir", m1)
	if !strings.Contains(after, "audit log OK") || verifiedEntries(after) < verifiedEntries(before) || verifiedEntries(before) == 0 {
		t.Errorf("audit verify after migrate:\n%s\nbefore:\n%s", after, before)
	}
	l.runNode("w1")
	serial := func() string {
		chain, err := certdir.In(l.dir("w1")).NodeChain()
		if err != nil {
			t.Fatal(err)
		}
		return chain[0].SerialNumber.String()
	}
	old := serial()
	l.cli(false, "node", "promote", "w1", "--data-dir", m1)
	eventually(t, "w1 renewed through the manager on etcd", func() bool {
		s, _ := l.identity("w1")
		return s["OU"] == "swarm-manager"
	})
	if serial() == old {
		t.Error("w1's certificate did not change")
	}
	out, _ = l.cli(false, "audit", "verify", "--data-dir", m1)
	if !strings.Contains(out, "audit log OK") {
		t.Errorf("audit verify after the renewal:\n%s", out)
	}
	ls, _ := l.cli(false, "node", "ls", "--data-dir", m1)
	if !strings.Contains(ls, "m1") || !strings.Contains(ls, "w1") {
		t.Errorf("node ls on etcd:\n%s", ls)
	}
}

// verifiedEntries reads the count from audit verify's "audit log OK: N
// entries verify".
func verifiedEntries(out string) int {
	var n int
	fmt.Sscanf(out, "audit log OK: %d entries verify", &n)
	return n
}
