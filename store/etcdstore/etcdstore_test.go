package etcdstore_test

import (
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"os"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/chancery-pki/chancery/audit"
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

// TestMemberKilled writes through a three-member etcd while its leader is
// killed: the store goes on through the others
// (an issuance in flight whose outcome the client does not know is
// settled by reading what it wrote), no issuance fails, and the audit
// chain verifies with one entry each.
func TestMemberKilled(t *testing.T) {
	c := etcddev.StartForTest(t, etcddev.Options{Members: 3, NoFsync: true})
	s, err := etcdstore.Open(t.Context(), etcdstore.Config{Endpoints: c.Endpoints, Prefix: prefix()}, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	ctx := t.Context()
	const workers, each = 8, 30
	var wg sync.WaitGroup
	var done atomic.Int64
	for w := range workers {
		wg.Go(func() {
			for i := range each {
				n, cert := storetest.Issuance(fmt.Sprintf("node-%d", w), fmt.Sprintf("%02x%04x", w, i), time.Now())
				n.Hostname = ""
				if err := s.RecordIssuance(ctx, n, cert, audit.Event{Action: audit.ActionIssued, Serial: cert.Serial}); err != nil {
					t.Errorf("issuance %s: %v", cert.Serial, err)
				}
				if i%10 == 0 {
					if _, err := s.AppendAudit(ctx, audit.Event{Action: audit.ActionRefused}); err != nil {
						t.Errorf("AppendAudit: %v", err)
					}
				}
				done.Add(1)
			}
		})
	}
	for done.Load() < workers*each/3 {
		time.Sleep(10 * time.Millisecond)
	}
	c.Kill(leader(t, s, c))
	wg.Wait()
	recs, err := s.AuditRecords(ctx, 1, 0)
	if err != nil {
		t.Fatal(err)
	}
	if rep, want := audit.Verify(recs, nil), workers*each+workers*3; !rep.OK() || rep.Verified != want {
		t.Errorf("audit log: %s; want %d entries", rep, want)
	}
	if certs, err := s.IssuedCertificates(ctx, ""); err != nil || len(certs) != workers*each {
		t.Errorf("%d certificates (%v), want %d", len(certs), err, workers*each)
	}
}

// leader returns the index of c's leader.
func leader(t *testing.T, s *etcdstore.Store, c *etcddev.Cluster) int {
	t.Helper()
	for i, ep := range c.Endpoints {
		st, err := s.Client().Status(t.Context(), ep)
		if err == nil && st.Leader == st.Header.MemberId {
			return i
		}
	}
	t.Fatal("no member says it leads")
	return 0
}
