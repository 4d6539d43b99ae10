package etcdstore_test

import (
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"os"
	"testing"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/chancery-pki/chancery/internal/etcddev"
	"github.com/chancery-pki/chancery/store"
	"github.com/chancery-pki/chancery/store/etcdstore"
	"github.com/chancery-pki/chancery/store/storetest"
)

func TestMain(m *testing.M) {
	code := m.Run()
	etcddev.StopShared()
	os.Exit(code)
}

// prefix returns a key prefix of its own for a test on the shared etcd.
func prefix() string {
	b := make([]byte, 6)
	rand.Read(b)
	return "/test-" + hex.EncodeToString(b) + "/"
}

// open returns a store under a new prefix of the shared etcd, with a
// client of its own.
func open(t *testing.T, c *etcddev.Cluster, prefix string) *etcdstore.Store {
	t.Helper()
	s, err := etcdstore.Open(t.Context(), etcdstore.Config{Endpoints: c.Endpoints, Prefix: prefix}, nil)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	return s
}

func TestConformance(t *testing.T) {
	c := etcddev.Require(t)
	storetest.Run(t, func(t *testing.T) store.Store { return open(t, c, prefix()) })
}

func TestShared(t *testing.T) {
	c := etcddev.Require(t)
	storetest.RunShared(t, func(t *testing.T) (store.Store, store.Store) {
		p := prefix()
		return open(t, c, p), open(t, c, p)
	})
}

// TestPrefixesAreSeparate checks that stores under two prefixes of one
// etcd do not see each other.
func TestPrefixesAreSeparate(t *testing.T) {
	c := etcddev.Require(t)
	a, b := open(t, c, prefix()), open(t, c, prefix())
	defer a.Close()
	defer b.Close()
	n, cert := storetest.Issuance("n1", "01", storetest.Cluster().CreatedAt)
	if err := a.RecordIssuance(t.Context(), n, cert); err != nil {
		t.Fatal(err)
	}
	if nodes, err := b.Nodes(t.Context()); err != nil || len(nodes) != 0 {
		t.Errorf("the other prefix lists %d nodes (%v)", len(nodes), err)
	}
}

// TestNewerSchema checks that a store written by a newer chancery is
// refused.
func TestNewerSchema(t *testing.T) {
	c := etcddev.Require(t)
	p := prefix()
	cli, err := clientv3.New(clientv3.Config{Endpoints: c.Endpoints})
	if err != nil {
		t.Fatal(err)
	}
	defer cli.Close()
	if _, err := cli.Put(t.Context(), p+"schema", "2"); err != nil {
		t.Fatal(err)
	}
	if s, err := etcdstore.New(t.Context(), cli, etcdstore.Options{Prefix: p}); err == nil {
		s.Close()
		t.Fatal("New accepted a store of schema version 2")
	}
}

// BenchmarkRecordIssuance is storetest's benchmark on an etcd of its own
// that syncs to disk as a deployment's does: one member, and a cluster of
// three on this machine, the client talking to all three.
func BenchmarkRecordIssuance(b *testing.B) {
	for _, members := range []int{1, 3} {
		b.Run(fmt.Sprintf("members=%d", members), func(b *testing.B) {
			c := etcddev.StartForTest(b, etcddev.Options{Members: members})
			storetest.BenchmarkRecordIssuance(b, func(b *testing.B) store.Store {
				s, err := etcdstore.Open(b.Context(), etcdstore.Config{Endpoints: c.Endpoints, Prefix: prefix()}, nil)
				if err != nil {
					b.Fatal(err)
				}
				return s
			})
		})
	}
}
