package manager

import (
	"context"
	"errors"
	"net"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chancery-pki/chancery/agent"
	"github.com/chancery-pki/chancery/certdir"
	"github.com/chancery-pki/chancery/client"
	"github.com/chancery-pki/chancery/cluster"
	"github.com/chancery-pki/chancery/store"
)

// TestRemovedManagerStops: a manager on a shared store whose node is
// removed while it runs (as 'chancery ca --force' removes a rotation's
// straggler) stops with agent.ErrRemoved at its next heartbeat, rather
// than go on serving, and campaigning to lead, from etcd; the other
// manager goes on serving.
func TestRemovedManagerStops(t *testing.T) {
	data1, res, _, _ := etcdDataDir(t)
	const heartbeat = 200 * time.Millisecond
	addr1, _, _ := runManager(t, data1, Config{HeartbeatPeriod: heartbeat, CheckpointInterval: time.Hour})
	ctx := context.Background()
	settings, err := store.ReadSettings(data1)
	if err != nil {
		t.Fatal(err)
	}
	st, err := cluster.OpenStore(data1)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	c, err := st.Cluster(ctx)
	if err != nil {
		t.Fatal(err)
	}
	keyPath := c.Backend.Settings["key_path"]
	if !filepath.IsAbs(keyPath) {
		keyPath = filepath.Join(data1, keyPath)
	}
	data2 := filepath.Join(filepath.Dir(data1), "m2")
	joined, err := agent.Join(ctx, agent.JoinRequest{DataDir: data2, Addr: addr1, Token: res.ManagerToken, Hostname: "m2"})
	if err != nil {
		t.Fatal(err)
	}
	if err := store.WriteSettings(data2, settings); err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	rctx, cancel := context.WithCancel(ctx)
	defer cancel()
	ready, done := make(chan struct{}), make(chan error, 1)
	go func() {
		done <- Run(rctx, Config{DataDir: data2, Listener: ln, Logger: quiet(), HeartbeatPeriod: heartbeat, CheckpointInterval: time.Hour,
			BackendOverrides: map[string]string{"key_path": keyPath}, Ready: func(string) { close(ready) }})
	}()
	select {
	case <-ready:
	case err := <-done:
		t.Fatalf("Run: %v", err)
	}

	if _, err := st.UpdateNode(ctx, joined.NodeID, func(n *store.Node) error { n.State = store.StateRemoved; return nil }); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-done:
		if !errors.Is(err, agent.ErrRemoved) {
			t.Fatalf("the removed manager's Run: %v, want agent.ErrRemoved", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("the removed manager still runs 30 s after its removal")
	}
	c1 := client.New(addr1, nil, nil)
	defer c1.Close()
	if _, err := c1.FetchRoot(ctx); err != nil {
		t.Errorf("the other manager after the removal: %v", err)
	}
}

// TestRemovedManagerDoesNotStart: a manager on a shared store whose node
// was removed while it was stopped (a rotation's straggler that 'chancery
// ca --force' excluded, or node rm) stops at once when started again, with
// agent.ErrRemoved, before it serves or campaigns: it never becomes ready,
// never registers its address, and writes no manager.started entry; the
// other manager goes on serving. A manager that is not removed starts.
func TestRemovedManagerDoesNotStart(t *testing.T) {
	data1, res, _, _ := etcdDataDir(t)
	g := managersOn(t, 2, 3*time.Second, data1, res)
	ctx := context.Background()
	st, err := cluster.OpenStore(data1)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	chain, err := certdir.In(g.data[1]).NodeChain()
	if err != nil {
		t.Fatal(err)
	}
	id2 := chain[0].Subject.CommonName
	c, err := st.Cluster(ctx)
	if err != nil {
		t.Fatal(err)
	}
	keyPath := c.Backend.Settings["key_path"]
	if !filepath.IsAbs(keyPath) {
		keyPath = filepath.Join(data1, keyPath)
	}
	start := func() (ready bool, err error) {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		rctx, cancel := context.WithCancel(ctx)
		defer cancel()
		readyc, done := make(chan struct{}), make(chan error, 1)
		go func() {
			done <- Run(rctx, Config{DataDir: g.data[1], Listener: ln, Logger: quiet(), SessionTTL: 3 * time.Second, CheckpointInterval: time.Hour,
				BackendOverrides: map[string]string{"key_path": keyPath}, Ready: func(string) { close(readyc) }})
		}()
		select {
		case <-readyc:
			cancel()
			return true, <-done
		case err := <-done:
			return false, err
		case <-time.After(30 * time.Second):
			cancel()
			t.Fatal("Run neither stopped nor became ready in 30 s")
		}
		return false, nil
	}
	g.stops[1]()
	// Not removed: it starts again.
	if ready, err := start(); !ready || err != nil {
		t.Fatalf("the stopped manager, not removed, started again: ready %v, %v", ready, err)
	}
	audits := func() int {
		recs, err := st.AuditRecords(ctx, 1, 0)
		if err != nil {
			t.Fatal(err)
		}
		return len(recs)
	}
	if _, err := st.UpdateNode(ctx, id2, func(n *store.Node) error { n.State = store.StateRemoved; return nil }); err != nil {
		t.Fatal(err)
	}
	before := audits()
	ready, err := start()
	if ready || !errors.Is(err, agent.ErrRemoved) {
		t.Fatalf("the removed manager started again: ready %v, %v; want agent.ErrRemoved before it serves", ready, err)
	}
	if !strings.Contains(err.Error(), id2) {
		t.Errorf("%q does not name the node", err)
	}
	if n := audits(); n != before {
		t.Errorf("the removed manager wrote %d audit entries", n-before)
	}
	eb := st.(etcdBacked)
	resp, err := eb.Client().Get(ctx, eb.Prefix()+managersPrefix+id2)
	if err != nil {
		t.Fatal(err)
	}
	if len(resp.Kvs) != 0 {
		t.Error("the removed manager registered its address")
	}
	c1 := client.New(g.addrs[0], g.pool, nil)
	defer c1.Close()
	if _, err := c1.FetchRoot(ctx); err != nil {
		t.Errorf("the other manager: %v", err)
	}
}
