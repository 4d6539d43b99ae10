package etcdstore_test

import (
	"errors"
	"testing"

	"github.com/chancery-pki/chancery/audit"
	"github.com/chancery-pki/chancery/internal/etcddev"
	"github.com/chancery-pki/chancery/store"
	"github.com/chancery-pki/chancery/store/storetest"
)

// TestFence checks that a change under a fenced context commits while the
// leader key has the fence's create revision, and writes nothing, failing
// with ErrFenced, once the key is gone or was made again.
func TestFence(t *testing.T) {
	c := etcddev.Require(t)
	p := prefix()
	s := open(t, c, p)
	defer s.Close()
	ctx := t.Context()
	if err := s.CreateCluster(ctx, storetest.Cluster()); err != nil {
		t.Fatal(err)
	}
	key := p + "leader/x"
	put, err := s.Client().Put(ctx, key, "m1")
	if err != nil {
		t.Fatal(err)
	}
	fctx := store.WithFence(ctx, store.Fence{Key: key, Revision: put.Header.Revision})
	ev := audit.Event{Action: audit.ActionCheckpoint, Actor: "m1"}
	if _, err := s.UpdateCluster(fctx, func(c *store.Cluster) error { c.CertExpiry *= 2; return nil }, ev); err != nil {
		t.Fatalf("fenced update while the fence holds: %v", err)
	}
	if _, err := s.AppendAudit(fctx, ev); err != nil {
		t.Fatalf("fenced append while the fence holds: %v", err)
	}

	for name, lose := range map[string]func(){
		"deleted": func() { s.Client().Delete(ctx, key) },
		"made again": func() {
			s.Client().Delete(ctx, key)
			s.Client().Put(ctx, key, "m2")
		},
	} {
		t.Run(name, func(t *testing.T) {
			if _, err := s.Client().Put(ctx, key, "m1"); err != nil {
				t.Fatal(err)
			}
			get, _ := s.Client().Get(ctx, key)
			fctx := store.WithFence(ctx, store.Fence{Key: key, Revision: get.Kvs[0].CreateRevision})
			lose()
			before, _ := s.Cluster(ctx)
			head, _ := s.AuditHead(ctx)
			_, err := s.UpdateCluster(fctx, func(c *store.Cluster) error { c.CertExpiry *= 2; return nil }, ev)
			if !errors.Is(err, store.ErrFenced) {
				t.Errorf("UpdateCluster = %v; want ErrFenced", err)
			}
			if _, err := s.AppendAudit(fctx, ev); !errors.Is(err, store.ErrFenced) {
				t.Errorf("AppendAudit = %v; want ErrFenced", err)
			}
			after, _ := s.Cluster(ctx)
			head2, _ := s.AuditHead(ctx)
			if after.Version != before.Version || head2 != head {
				t.Error("a fenced change was written")
			}
			// Unfenced changes go on.
			if _, err := s.AppendAudit(ctx, ev); err != nil {
				t.Error(err)
			}
		})
	}
	if _, err := s.UpdateCluster(store.WithFence(ctx, store.Fence{Key: key}), func(*store.Cluster) error { return nil }); err == nil {
		t.Error("a fence without a revision was accepted")
	}
}
