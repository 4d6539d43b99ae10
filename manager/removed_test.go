package manager

import (
	"context"
	"errors"
	"net"
	"path/filepath"
	"testing"
	"time"

	"github.com/chancery-pki/chancery/agent"
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
