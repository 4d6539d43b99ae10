package manager

import (
	"context"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"

	"github.com/chancery-pki/chancery/internal/etcddev"
	"github.com/chancery-pki/chancery/internal/faultproxy"
)

// TestClusterWatchSurvivesCompaction: another manager changes the cluster
// record while this one is cut off from etcd, and etcd compacts past the
// change; once reconnected, this manager's watch of the record, which
// resumes from before the change, is refused as compacted: it still wakes
// the reconciler (which reads the record again) and goes on watching.
func TestClusterWatchSurvivesCompaction(t *testing.T) {
	ec := etcddev.Require(t)
	p := faultproxy.For(t, ec.Endpoints[0])
	viaProxy, err := clientv3.New(clientv3.Config{Endpoints: []string{p.URL()}, DialTimeout: 5 * time.Second, Logger: zap.NewNop()})
	if err != nil {
		t.Fatal(err)
	}
	defer viaProxy.Close()
	direct := etcdClient(t)
	key := "/test/" + t.Name() + "/cluster"
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if _, err := direct.Put(ctx, key, "v0"); err != nil {
		t.Fatal(err)
	}

	l := &duties{cfg: dutiesConfig{Config: Config{Logger: quiet()}, etcd: viaProxy, clusterKey: key}, wake: make(chan struct{}, 1)}
	wctx, stop := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() {
		defer close(done)
		l.watchCluster(wctx)
	}()
	defer func() { stop(); <-done }()
	woken := func(what string, within time.Duration) {
		t.Helper()
		select {
		case <-l.wake:
		case <-time.After(within):
			t.Fatalf("%s: the reconciler was not woken within %s", what, within)
		}
	}
	drain := func() {
		for {
			select {
			case <-l.wake:
			case <-time.After(300 * time.Millisecond):
				return
			}
		}
	}
	drain()
	put := func(v string) int64 {
		t.Helper()
		resp, err := direct.Put(ctx, key, v)
		if err != nil {
			t.Fatal(err)
		}
		return resp.Header.Revision
	}
	put("v1")
	woken("a change", 3*time.Second)
	drain()

	// Cut off: the change below never reaches this watch, and the
	// compaction drops it from etcd's history.
	p.Cut()
	put("v2")
	resp, err := direct.Put(ctx, "/test/"+t.Name()+"/other", "x")
	if err != nil {
		t.Fatal(err)
	}
	rev := resp.Header.Revision
	if _, err := direct.Compact(ctx, rev, clientv3.WithCompactPhysical()); err != nil {
		t.Fatal(err)
	}
	p.Reset()
	p.Restore()
	woken("a change made while cut off and compacted", 3*time.Second)
	drain()

	// And the watch goes on.
	put("v3")
	woken("a change after the compaction", 3*time.Second)
}
