package election_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"sync"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"

	"github.com/chancery-pki/chancery/election"
	"github.com/chancery-pki/chancery/internal/etcddev"
	"github.com/chancery-pki/chancery/internal/faultproxy"
	"github.com/chancery-pki/chancery/store"
)

func TestMain(m *testing.M) {
	code := m.Run()
	etcddev.StopShared()
	os.Exit(code)
}

// candidate is a client of the shared etcd through a proxy the test can
// cut.
type candidate struct {
	id    string
	proxy *faultproxy.Proxy
	c     *clientv3.Client
	el    *election.Election
}

func newCandidate(t *testing.T, endpoint, prefix, id string, ttl time.Duration) *candidate {
	t.Helper()
	p := faultproxy.For(t, endpoint)
	c, err := clientv3.New(clientv3.Config{Endpoints: []string{p.URL()}, DialTimeout: 5 * time.Second, Logger: zap.NewNop()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	el, err := election.New(election.Config{Client: c, Prefix: prefix, ID: id, TTL: ttl})
	if err != nil {
		t.Fatal(err)
	}
	return &candidate{id: id, proxy: p, c: c, el: el}
}

func TestTTLTooShort(t *testing.T) {
	for _, ttl := range []time.Duration{time.Millisecond, 500 * time.Millisecond, time.Second} {
		if _, err := election.New(election.Config{Client: &clientv3.Client{}, Prefix: "/p/", ID: "a", TTL: ttl}); err == nil {
			t.Errorf("TTL %s: no error", ttl)
		}
	}
}

// TestCutOffLeaderStepsDownFirst: a leader cut off from etcd sees its
// leadership end within the TTL, saying why, and before the other
// candidate wins; its fence no longer holds in etcd.
func TestCutOffLeaderStepsDownFirst(t *testing.T) {
	ec := etcddev.Require(t)
	prefix := "/test/" + t.Name() + "/leader/"
	const ttl = 2 * time.Second
	a := newCandidate(t, ec.Endpoints[0], prefix, "a", ttl)
	b := newCandidate(t, ec.Endpoints[0], prefix, "b", ttl)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()

	actx, err := a.el.Campaign(ctx)
	if err != nil {
		t.Fatal(err)
	}
	fence, ok := store.FenceFrom(actx)
	if !ok || fence.Validate() != nil {
		t.Fatalf("no fence on the leader's context: %+v", fence)
	}
	if id, err := b.el.Leader(ctx); err != nil || id != "a" {
		t.Fatalf("Leader = %q, %v; want a", id, err)
	}
	bWon := make(chan time.Time, 1)
	var bctx context.Context
	go func() {
		var err error
		if bctx, err = b.el.Campaign(ctx); err != nil {
			t.Error(err)
		}
		bWon <- time.Now()
	}()
	time.Sleep(500 * time.Millisecond)
	select {
	case <-bWon:
		t.Fatal("b won while a leads")
	default:
	}

	cut := time.Now()
	a.proxy.Cut()
	<-actx.Done()
	aEnded := time.Now()
	if d := aEnded.Sub(cut); d > ttl {
		t.Errorf("a stopped leading %s after it was cut off; the TTL is %s", d, ttl)
	}
	if cause := election.Cause(actx); !errors.Is(cause, election.ErrLeadershipLost) || !errors.Is(cause, election.ErrLeaseLost) {
		t.Errorf("cause = %v; want a lost lease", cause)
	}
	won := <-bWon
	if !won.After(aEnded) {
		t.Fatalf("b won at %s, before a stopped leading at %s", won, aEnded)
	}
	if bctx == nil || bctx.Err() != nil {
		t.Fatal("b does not lead")
	}
	// a's fence no longer holds: a write fenced by it is refused.
	resp, err := b.c.Txn(ctx).If(clientv3.Compare(clientv3.CreateRevision(fence.Key), "=", fence.Revision)).
		Then(clientv3.OpPut("/test/"+t.Name()+"/x", "a")).Commit()
	if err != nil || resp.Succeeded {
		t.Fatalf("a write fenced by the old leader's key: succeeded=%v, %v", resp != nil && resp.Succeeded, err)
	}
	a.proxy.Restore()
}

// TestNeverTwoLeaders: three candidates, the leader cut off again and
// again; the times each led, as each saw them, never overlap, and every
// write fenced by a leader's key committed while it led.
func TestNeverTwoLeaders(t *testing.T) {
	if testing.Short() {
		t.Skip("slow")
	}
	ec := etcddev.Require(t)
	prefix := "/test/" + t.Name() + "/leader/"
	const ttl = 2 * time.Second
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	type term struct {
		id         string
		start, end time.Time
		writes     int
	}
	var (
		mu    sync.Mutex
		terms []term
		cands []*candidate
		wg    sync.WaitGroup
	)
	leading := make(chan *candidate, 10)
	counter := "/test/" + t.Name() + "/counter"
	for i := range 3 {
		cd := newCandidate(t, ec.Endpoints[0], prefix, fmt.Sprint("m", i), ttl)
		cands = append(cands, cd)
		wg.Add(1)
		go func() {
			defer wg.Done()
			for ctx.Err() == nil {
				lctx, err := cd.el.Campaign(ctx)
				if err != nil {
					continue
				}
				tm := term{id: cd.id, start: time.Now()}
				select {
				case leading <- cd:
				case <-ctx.Done():
				}
				f, _ := store.FenceFrom(lctx)
				for lctx.Err() == nil {
					// A fenced write, as the leader's duties make.
					resp, err := cd.c.Txn(lctx).If(clientv3.Compare(clientv3.CreateRevision(f.Key), "=", f.Revision)).
						Then(clientv3.OpPut(counter, cd.id)).Commit()
					if err == nil && resp.Succeeded {
						tm.writes++
					}
					time.Sleep(20 * time.Millisecond)
				}
				tm.end = time.Now()
				mu.Lock()
				terms = append(terms, tm)
				mu.Unlock()
			}
		}()
	}
	for range 4 {
		var cd *candidate
		select {
		case cd = <-leading:
		case <-ctx.Done():
			t.Fatal("no leader")
		}
		time.Sleep(300 * time.Millisecond)
		cd.proxy.Cut()
		time.Sleep(ttl + time.Second)
		cd.proxy.Restore()
	}
	cancel()
	wg.Wait()
	if len(terms) < 4 {
		t.Fatalf("%d terms; want 4 at least", len(terms))
	}
	for i, x := range terms {
		for _, y := range terms[i+1:] {
			if x.start.Before(y.end) && y.start.Before(x.end) {
				t.Errorf("%s led %s..%s and %s led %s..%s", x.id, x.start.Format(time.StampMicro), x.end.Format(time.StampMicro),
					y.id, y.start.Format(time.StampMicro), y.end.Format(time.StampMicro))
			}
		}
	}
	writes := 0
	for _, x := range terms {
		writes += x.writes
	}
	if writes == 0 {
		t.Error("no fenced write committed")
	}
	t.Logf("%d terms, %d fenced writes", len(terms), writes)
}

// TestLeaderWatchSurvivesCompaction: the leader's watch of its key resumes,
// after its connection to etcd drops, from a revision etcd has compacted
// meanwhile; the leader still sees its key deleted and stops leading,
// rather than watching the compacted revision again and again.
func TestLeaderWatchSurvivesCompaction(t *testing.T) {
	ec := etcddev.Require(t)
	prefix := "/test/" + t.Name() + "/leader/"
	a := newCandidate(t, ec.Endpoints[0], prefix, "a", 5*time.Second)
	direct, err := clientv3.New(clientv3.Config{Endpoints: ec.Endpoints, DialTimeout: 5 * time.Second, Logger: zap.NewNop()})
	if err != nil {
		t.Fatal(err)
	}
	defer direct.Close()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()

	actx, err := a.el.Campaign(ctx)
	if err != nil {
		t.Fatal(err)
	}
	fence, _ := store.FenceFrom(actx)
	// Other writes move etcd on, and a compaction drops the revisions the
	// leader's watch started from.
	var rev int64
	for i := range 5 {
		resp, err := direct.Put(ctx, "/test/"+t.Name()+"/other", fmt.Sprint(i))
		if err != nil {
			t.Fatal(err)
		}
		rev = resp.Header.Revision
	}
	if _, err := direct.Compact(ctx, rev, clientv3.WithCompactPhysical()); err != nil {
		t.Fatal(err)
	}
	// The leader's connection drops: its watch resumes from where it was.
	a.proxy.Reset()
	time.Sleep(500 * time.Millisecond)
	if actx.Err() != nil {
		t.Fatalf("a stopped leading over a compaction: %v", election.Cause(actx))
	}
	if _, err := direct.Delete(ctx, fence.Key); err != nil {
		t.Fatal(err)
	}
	select {
	case <-actx.Done():
	case <-time.After(3 * time.Second):
		t.Fatal("the leader key was deleted after a compaction, and a still leads 3 s later")
	}
	if cause := election.Cause(actx); !errors.Is(cause, election.ErrLeadershipLost) || errors.Is(cause, election.ErrLeaseLost) {
		t.Errorf("cause = %v; want the leader key's deletion", cause)
	}
}
