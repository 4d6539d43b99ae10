package manager

import (
	"context"
	"crypto/tls"
	"errors"
	"path/filepath"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/chancery-pki/chancery/api"
	"github.com/chancery-pki/chancery/client"
)

// TestRemovedNodeLeavesNoHeartbeatRecord: a node that reported (so that
// its heartbeat record is in etcd) and is then removed (node rm) or
// leaves has no heartbeat record left in etcd; one written after the
// removal (a heartbeat accepted just before it, flushed just after) is
// pruned by the leader.
func TestRemovedNodeLeavesNoHeartbeatRecord(t *testing.T) {
	data1, res, _, prefix := etcdDataDir(t)
	g := managersOnWith(t, 1, 5*time.Second, data1, res, Config{HeartbeatPeriod: 300 * time.Millisecond, PruneInterval: 300 * time.Millisecond})
	ctx := context.Background()
	etcd := etcdClient(t)
	admin := client.NewSocket(filepath.Join(g.data[0], api.SocketFile))
	defer admin.Close()
	c := client.New(g.addrs[0], g.pool, nil)
	defer c.Close()
	records := func(id string) int64 {
		t.Helper()
		resp, err := etcd.Get(ctx, prefix+"seen/"+id, clientv3.WithCountOnly())
		if err != nil {
			t.Fatal(err)
		}
		return resp.Count
	}
	for _, tc := range []struct {
		name   string
		remove func(id string, asNode *client.Client) error
	}{
		{"node rm", func(id string, _ *client.Client) error { _, err := admin.Remove(ctx, id, true); return err }},
		{"leave", func(_ string, asNode *client.Client) error { _, err := asNode.Leave(ctx, false); return err }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			leaf, cert, err := joinCert(ctx, c, res.WorkerToken)
			if err != nil {
				t.Fatal(err)
			}
			id := leaf.Subject.CommonName
			asNode := client.New(g.addrs[0], g.pool, func() *tls.Certificate { return cert })
			defer asNode.Close()
			if _, err := asNode.Status(ctx, api.StatusRequest{}); err != nil {
				t.Fatal(err)
			}
			waitFor(t, "the heartbeat record", func() bool { return records(id) == 1 })
			if err := tc.remove(id, asNode); err != nil {
				t.Fatal(err)
			}
			if n := records(id); n != 0 {
				t.Fatalf("the removed node's heartbeat record is still in etcd")
			}
			// A late flush writes it again; the leader's prune deletes it.
			if _, err := etcd.Put(ctx, prefix+"seen/"+id, `{"node_id":"`+id+`","at":"2026-01-01T00:00:00Z"}`); err != nil {
				t.Fatal(err)
			}
			within5s(t, "the prune of the late heartbeat record", func() bool { return records(id) == 0 })
		})
	}
}

func within5s(t *testing.T, what string, cond func() bool) {
	t.Helper()
	if within(5*time.Second, func() error {
		if cond() {
			return nil
		}
		return errors.New(what)
	}) != nil {
		t.Fatalf("timed out waiting for %s", what)
	}
}
