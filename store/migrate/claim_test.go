package migrate_test

import (
	"context"
	"errors"
	"path/filepath"
	"sync"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"

	"github.com/chancery-pki/chancery/audit"
	"github.com/chancery-pki/chancery/internal/etcddev"
	"github.com/chancery-pki/chancery/store"
	"github.com/chancery-pki/chancery/store/boltstore"
	"github.com/chancery-pki/chancery/store/etcdstore"
	"github.com/chancery-pki/chancery/store/migrate"
	"github.com/chancery-pki/chancery/store/storetest"
)

// slowTarget delays its first Import, so that two copies overlap.
type slowTarget struct {
	migrate.Target
	once sync.Once
}

func (s *slowTarget) Import(ctx context.Context, b store.ImportBatch) error {
	s.once.Do(func() { time.Sleep(300 * time.Millisecond) })
	return s.Target.Import(ctx, b)
}

// openAt opens another Store on dst's prefix, with a client of its own.
func openAt(t *testing.T, prefix string) *etcdstore.Store {
	t.Helper()
	s, err := etcdstore.Open(t.Context(), etcdstore.Config{Endpoints: etcddev.Require(t).Endpoints, Prefix: prefix}, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// whole checks that prefix holds src's copy, whole, and nothing of an
// import's claim.
func whole(t *testing.T, src store.Store, prefix string) {
	t.Helper()
	ctx := t.Context()
	st := openAt(t, prefix)
	sc, _ := src.Cluster(ctx)
	if c, err := st.Cluster(ctx); err != nil || c.ID != sc.ID {
		t.Fatalf("the target's cluster record: %v, %v", c.ID, err)
	}
	sn, _ := src.Nodes(ctx)
	dn, err := st.Nodes(ctx)
	if err != nil || len(dn) != len(sn) {
		t.Errorf("the target holds %d nodes (%v); the source %d", len(dn), err, len(sn))
	}
	recs, err := st.AuditRecords(ctx, 1, 0)
	sh, _ := src.AuditHead(ctx)
	if rep := audit.Verify(recs, nil); err != nil || rep.Problem != nil || rep.Head != sh {
		t.Errorf("the target's audit log: %v, %s", err, rep.String())
	}
	resp, err := st.Client().Get(ctx, prefix+"import/", clientv3.WithPrefix(), clientv3.WithCountOnly())
	if err != nil || resp.Count != 0 {
		t.Errorf("%d keys of the import's claim remain (%v)", resp.Count, err)
	}
}

// TestConcurrentCopies: two copies into one etcd prefix at once; exactly
// one proceeds, the other is refused as claimed, having written nothing
// and deleted nothing, and the target holds one whole copy.
func TestConcurrentCopies(t *testing.T) {
	src := source(t, 300)
	first := target(t)
	second := openAt(t, first.Prefix())
	start := make(chan struct{})
	errs := make([]error, 2)
	var wg sync.WaitGroup
	for i, dst := range []*etcdstore.Store{first, second} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			_, errs[i] = migrate.Copy(t.Context(), src, &slowTarget{Target: dst}, noRoots)
		}()
	}
	close(start)
	wg.Wait()
	ok, refused := 0, 0
	for _, err := range errs {
		switch {
		case err == nil:
			ok++
		case errors.Is(err, migrate.ErrClaimed):
			refused++
			t.Logf("refused: %v", err)
		default:
			t.Errorf("Copy: %v", err)
		}
	}
	if ok != 1 || refused != 1 {
		t.Fatalf("%d copies succeeded and %d were refused as claimed; want 1 and 1", ok, refused)
	}
	whole(t, src, first.Prefix())
}

// TestAbandonedCopyIsTakenOver: a copy whose process stopped mid-way
// (its claim neither renewed nor released, records half written) blocks
// another copy until its claim lapses; then a copy of the same cluster
// deletes the partial copy and makes a whole one, while a copy of another
// cluster is refused.
func TestAbandonedCopyIsTakenOver(t *testing.T) {
	ctx := t.Context()
	src := source(t, 20)
	dst := target(t)
	sc, _ := src.Cluster(ctx)

	// The abandoned copy, with a client of its own that then goes away.
	c, err := clientv3.New(clientv3.Config{Endpoints: etcddev.Require(t).Endpoints, DialTimeout: 5 * time.Second, Logger: zap.NewNop()})
	if err != nil {
		t.Fatal(err)
	}
	crashed, err := etcdstore.New(ctx, c, etcdstore.Options{Prefix: dst.Prefix(), ClaimTTL: 2 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	if err := crashed.Claim(ctx, sc.ID); err != nil {
		t.Fatal(err)
	}
	stray := store.Node{ID: "stray-node", Role: "swarm-worker", Hostname: "stray"}
	if err := crashed.Import(ctx, store.ImportBatch{Nodes: []store.Node{stray}}); err != nil {
		t.Fatal(err)
	}
	c.Close() // as a process that stops: the lease is not revoked

	_, err = migrate.Copy(ctx, src, dst, noRoots)
	if !errors.Is(err, migrate.ErrClaimed) {
		t.Fatalf("Copy while the abandoned claim holds: %v; want ErrClaimed", err)
	}
	t.Logf("refused: %v", err)
	deadline := time.Now().Add(15 * time.Second)
	for {
		resp, err := dst.Client().Get(ctx, dst.Prefix()+"import/lock", clientv3.WithCountOnly())
		if err != nil {
			t.Fatal(err)
		}
		if resp.Count == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the abandoned claim did not lapse")
		}
		time.Sleep(100 * time.Millisecond)
	}

	other := storetestOther(t)
	if _, err := migrate.Copy(ctx, other, openAt(t, dst.Prefix()), noRoots); !errors.Is(err, migrate.ErrNotEmpty) {
		t.Fatalf("Copy of another cluster over an abandoned copy: %v; want ErrNotEmpty", err)
	}
	if _, err := migrate.Copy(ctx, src, dst, noRoots); err != nil {
		t.Fatalf("Copy after the abandoned claim lapsed: %v", err)
	}
	whole(t, src, dst.Prefix())
	if _, err := dst.Node(ctx, stray.ID); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("the abandoned copy's node is still there: %v", err)
	}
}

// storetestOther is a bbolt store of another cluster than source's.
func storetestOther(t *testing.T) store.Store {
	t.Helper()
	st, err := boltstore.Open(filepath.Join(t.TempDir(), "other.db"), boltstore.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	c := storetest.Cluster()
	c.ID = "3ydzp6y8vj4hvvbe5kk7qbbe1"
	if err := st.CreateCluster(t.Context(), c, audit.Event{Action: audit.ActionInit, Actor: "m1"}); err != nil {
		t.Fatal(err)
	}
	return st
}
