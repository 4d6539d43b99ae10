package etcdstore_test

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/chancery-pki/chancery/internal/etcddev"
	"github.com/chancery-pki/chancery/internal/faultproxy"
	"github.com/chancery-pki/chancery/store"
	"github.com/chancery-pki/chancery/store/etcdstore"
	"github.com/chancery-pki/chancery/store/storetest"
)

// TestWatchSeenSurvivesCompaction: heartbeats written while a watcher is
// cut off from etcd, then compacted out of etcd's history, still reach it
// once it reconnects (its watch, resumed from before them, is refused as
// compacted), and so do later ones: WatchSeen goes on rather than
// returning.
func TestWatchSeenSurvivesCompaction(t *testing.T) {
	c := etcddev.Require(t)
	p := faultproxy.For(t, c.Endpoints[0])
	pfx := prefix()
	writer := open(t, c, pfx)
	defer writer.Close()
	watcher, err := etcdstore.Open(t.Context(), etcdstore.Config{Endpoints: []string{p.URL()}, Prefix: pfx}, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer watcher.Close()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()

	var (
		mu   sync.Mutex
		seen = map[string]time.Time{}
	)
	wctx, stop := context.WithCancel(ctx)
	ended := make(chan struct{})
	var watchErr error
	go func() {
		defer close(ended)
		watchErr = watcher.WatchSeen(wctx, func(r store.Seen) {
			mu.Lock()
			defer mu.Unlock()
			if r.At.After(seen[r.NodeID]) {
				seen[r.NodeID] = r.At
			}
		})
	}()
	defer func() { stop(); <-ended }()
	at := time.Now().Truncate(time.Second)
	put := func(id string, at time.Time) {
		t.Helper()
		if err := writer.PutSeen(ctx, []store.Seen{{NodeID: id, At: at}}); err != nil {
			t.Fatal(err)
		}
	}
	arrives := func(what, id string, at time.Time) {
		t.Helper()
		deadline := time.Now().Add(5 * time.Second)
		for {
			mu.Lock()
			got := seen[id]
			mu.Unlock()
			if got.Equal(at) {
				return
			}
			select {
			case <-ended:
				t.Fatalf("%s: WatchSeen returned: %v", what, watchErr)
			default:
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s: node %s last seen at %s; want %s", what, id, got, at)
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	put("n1", at)
	arrives("a heartbeat", "n1", at)

	p.Cut()
	put("n1", at.Add(time.Second))
	put("n2", at.Add(time.Second))
	resp, err := writer.Client().Put(ctx, pfx+"other", "x")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := writer.Client().Compact(ctx, resp.Header.Revision, clientv3.WithCompactPhysical()); err != nil {
		t.Fatal(err)
	}
	p.Reset()
	p.Restore()
	arrives("a heartbeat written while cut off and compacted", "n2", at.Add(time.Second))
	arrives("a heartbeat written while cut off and compacted", "n1", at.Add(time.Second))

	put("n1", at.Add(2*time.Second))
	arrives("a heartbeat after the compaction", "n1", at.Add(2*time.Second))
}

// TestPruneSeen: the heartbeat records of a removed node (written after
// its removal, as a late flush would) and of a node that is not stored
// are pruned; those of live nodes stay, over more than one page.
func TestPruneSeen(t *testing.T) {
	c := etcddev.Require(t)
	st := open(t, c, prefix())
	defer st.Close()
	ctx := t.Context()
	if err := st.CreateCluster(ctx, storetest.Cluster()); err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	var recs []store.Seen
	for i := range 120 {
		n, cert := storetest.Issuance(fmt.Sprintf("node-%03d", i), fmt.Sprintf("%04x", i+1), now)
		if err := st.RecordIssuance(ctx, n, cert); err != nil {
			t.Fatal(err)
		}
		recs = append(recs, store.Seen{NodeID: n.ID, At: now})
	}
	removed := map[string]bool{"node-007": true, "node-060": true, "node-119": true}
	for id := range removed {
		if _, err := st.UpdateNode(ctx, id, func(n *store.Node) error { n.State = store.StateRemoved; return nil }); err != nil {
			t.Fatal(err)
		}
	}
	// Written after the removals, and for a node never stored.
	recs = append(recs, store.Seen{NodeID: "never-stored", At: now})
	if err := st.PutSeen(ctx, recs); err != nil {
		t.Fatal(err)
	}
	n, err := st.PruneSeen(ctx)
	if err != nil || n != len(removed)+1 {
		t.Fatalf("PruneSeen: %d, %v; want %d", n, err, len(removed)+1)
	}
	resp, err := st.Client().Get(ctx, st.Prefix()+"seen/", clientv3.WithPrefix(), clientv3.WithKeysOnly())
	if err != nil {
		t.Fatal(err)
	}
	left := map[string]bool{}
	for _, kv := range resp.Kvs {
		left[strings.TrimPrefix(string(kv.Key), st.Prefix()+"seen/")] = true
	}
	for _, r := range recs {
		if gone := removed[r.NodeID] || r.NodeID == "never-stored"; left[r.NodeID] == gone {
			t.Errorf("node %s: record kept %v", r.NodeID, left[r.NodeID])
		}
	}
}
