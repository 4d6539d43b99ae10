package manager

import (
	"context"
	"net"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"slices"
	"sync/atomic"
	"testing"
	"time"

	"github.com/chancery-pki/chancery/agent"
	"github.com/chancery-pki/chancery/api"
	"github.com/chancery-pki/chancery/ca"
	"github.com/chancery-pki/chancery/client"
)

// runAgent runs a node agent on dir until the test ends.
func runAgent(t *testing.T, dir string) *agent.Agent {
	t.Helper()
	ag, err := agent.New(agent.Config{DataDir: dir, Logger: quiet(), HeartbeatPeriod: 200 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- ag.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("agent: %v", err)
		}
	})
	return ag
}

// managersInState returns the managers of the node state in dir.
func managersInState(dir string) []string {
	st, err := agent.ReadState(dir)
	if err != nil {
		return nil
	}
	return st.Managers
}

// TestNodeFailsOver: a node joined through the first of two managers on
// one etcd learns both from the status answers; when the first stops, the
// node reports to the second, and renews through it (a promotion asks for
// a renewal at once).
func TestNodeFailsOver(t *testing.T) {
	data1, res, _, _ := etcdDataDir(t)
	g := managersOnWith(t, 2, 5*time.Second, data1, res, Config{HeartbeatPeriod: 200 * time.Millisecond})
	ctx := context.Background()
	dir := filepath.Join(t.TempDir(), "node")
	joined, err := agent.Join(ctx, agent.JoinRequest{DataDir: dir, Addr: g.addrs[0], Token: res.WorkerToken, Hostname: "w1"})
	if err != nil {
		t.Fatal(err)
	}
	ag := runAgent(t, dir)
	waitFor(t, "the node to record both managers, the one it calls first", func() bool {
		m := managersInState(dir)
		return len(m) == 2 && m[0] == g.addrs[0] && m[1] == g.addrs[1]
	})

	g.stops[0]()
	waitFor(t, "the node to call the second manager", func() bool {
		m := managersInState(dir)
		return ag.Manager() == g.addrs[1] && len(m) > 0 && m[0] == g.addrs[1]
	})
	admin := client.NewSocket(filepath.Join(g.data[1], api.SocketFile))
	defer admin.Close()
	before := ag.Renewals()
	if _, err := admin.Promote(ctx, joined.NodeID); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the node to renew through the second manager", func() bool {
		return ag.Renewals() > before && slices.Equal(ag.Leaf().Subject.OrganizationalUnit, []string{string(ca.RoleManager)})
	})
	n, err := admin.Node(ctx, joined.NodeID)
	if err != nil {
		t.Fatal(err)
	}
	if n.Status != "Ready" {
		t.Errorf("the node is %s on the second manager; want Ready", n.Status)
	}
	// The first manager is gone from the answers: the node keeps the one
	// it calls, and the list survives the agent (it is in node.json).
	waitFor(t, "the node state to name the second manager alone", func() bool {
		return slices.Equal(managersInState(dir), []string{g.addrs[1]})
	})
}

// TestNodeSkipsBadManagers: a node whose list starts with an address where
// nothing listens and one that serves TLS with a certificate of no manager
// of its cluster skips both and keeps to the manager that answers as one;
// the impostor never sees a request.
func TestNodeSkipsBadManagers(t *testing.T) {
	data1, res, _, _ := etcdDataDir(t)
	g := managersOnWith(t, 1, 5*time.Second, data1, res, Config{HeartbeatPeriod: 200 * time.Millisecond})
	ctx := context.Background()
	dir := filepath.Join(t.TempDir(), "node")
	if _, err := agent.Join(ctx, agent.JoinRequest{DataDir: dir, Addr: g.addrs[0], Token: res.WorkerToken, Hostname: "w1"}); err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	dead := ln.Addr().String()
	ln.Close()
	var served atomic.Int64
	impostor := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		served.Add(1)
		http.Error(w, "no", http.StatusForbidden)
	}))
	defer impostor.Close()
	bad := impostor.Listener.Addr().String()
	st, err := agent.ReadState(dir)
	if err != nil {
		t.Fatal(err)
	}
	st.Managers = []string{dead, bad, g.addrs[0]}
	if err := agent.WriteState(dir, st); err != nil {
		t.Fatal(err)
	}
	ag := runAgent(t, dir)
	waitFor(t, "the node to call the manager", func() bool {
		m := managersInState(dir)
		return ag.Manager() == g.addrs[0] && len(m) > 0 && m[0] == g.addrs[0]
	})
	if n := served.Load(); n != 0 {
		t.Errorf("the impostor served %d requests", n)
	}
}
