package migrate_test

import (
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/chancery-pki/chancery/audit"
	"github.com/chancery-pki/chancery/internal/etcddev"
	"github.com/chancery-pki/chancery/internal/seed"
	"github.com/chancery-pki/chancery/store"
	"github.com/chancery-pki/chancery/store/boltstore"
	"github.com/chancery-pki/chancery/store/etcdstore"
	"github.com/chancery-pki/chancery/store/migrate"
	"github.com/chancery-pki/chancery/store/storetest"
)

func TestMain(m *testing.M) {
	code := m.Run()
	etcddev.StopShared()
	os.Exit(code)
}

// source returns a bbolt store holding a rotated cluster record, nodes
// nodes with a certificate each, and an audit log of more than one page.
func source(t *testing.T, nodes int) *boltstore.Store { return sourceTB(t, nodes) }

func sourceTB(t testing.TB, nodes int) *boltstore.Store {
	t.Helper()
	src, err := boltstore.Open(filepath.Join(t.TempDir(), "chancery.db"), boltstore.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { src.Close() })
	ctx := t.Context()
	if err := src.CreateCluster(ctx, storetest.RotatedCluster(), audit.Event{Action: audit.ActionInit, Actor: "m1"}); err != nil {
		t.Fatal(err)
	}
	if _, err := seed.Nodes(ctx, src, nodes, seed.Options{ManagerEvery: 7, Concurrency: 16}); err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 30; i++ {
		evs := make([]audit.Event, 200)
		for j := range evs {
			evs[j] = audit.Event{Action: audit.ActionRefused, NodeID: "n", Reason: "test"}
		}
		if _, err := src.AppendAudit(ctx, evs...); err != nil {
			t.Fatal(err)
		}
	}
	return src
}

func target(t *testing.T) *etcdstore.Store { return targetTB(t) }

func targetTB(t testing.TB) *etcdstore.Store {
	t.Helper()
	c := etcddev.Require(t)
	b := make([]byte, 6)
	rand.Read(b)
	dst, err := etcdstore.Open(t.Context(), etcdstore.Config{Endpoints: c.Endpoints, Prefix: "/mig-" + hex.EncodeToString(b) + "/"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { dst.Close() })
	return dst
}

// noRoots verifies a log without checkpoints.
func noRoots(store.Cluster) ([]audit.Root, error) { return nil, nil }

// TestCopy copies more than a page of nodes, certificates and audit
// records, and finds everything in the target as it was in the source.
func TestCopy(t *testing.T) {
	ctx := t.Context()
	src, dst := source(t, 700), target(t)
	res, err := migrate.Copy(ctx, src, dst, noRoots)
	if err != nil {
		t.Fatal(err)
	}
	if res.Nodes != 700 || res.Certificates != 700 || res.Audit.Entries != 6001 {
		t.Errorf("result %+v", res)
	}
	sc, _ := src.Cluster(ctx)
	dc, err := dst.Cluster(ctx)
	if err != nil || !reflect.DeepEqual(utc(sc), utc(dc)) {
		t.Errorf("cluster record: %v\nsource %+v\ntarget %+v", err, sc, dc)
	}
	sn, _ := src.Nodes(ctx)
	dn, _ := dst.Nodes(ctx)
	if !reflect.DeepEqual(utc(sn), utc(dn)) {
		t.Error("the nodes differ")
	}
	scs, _ := src.IssuedCertificates(ctx, "")
	dcs, _ := dst.IssuedCertificates(ctx, "")
	if !reflect.DeepEqual(utc(scs), utc(dcs)) {
		t.Error("the certificate records differ")
	}
	byNode, err := dst.IssuedCertificates(ctx, sn[3].ID)
	if err != nil || len(byNode) != 1 || byNode[0].Serial != sn[3].CertSerial {
		t.Errorf("certificates of node %s: %v, %v", sn[3].ID, byNode, err)
	}
	sr, _ := src.AuditRecords(ctx, 1, 0)
	dr, _ := dst.AuditRecords(ctx, 1, 0)
	if !reflect.DeepEqual(sr, dr) {
		t.Error("the audit records differ")
	}
	// The target works as a store: the next entry chains on.
	entries, err := dst.AppendAudit(ctx, audit.Event{Action: audit.ActionRefused, Reason: "after"})
	if err != nil || entries[0].Seq != 6002 {
		t.Fatalf("append after the import: %v, %v", entries, err)
	}
	dr, _ = dst.AuditRecords(ctx, 1, 0)
	if rep := audit.Verify(dr, nil); rep.Problem != nil || rep.Verified != 6002 {
		t.Errorf("after an append: %s", rep.String())
	}
}

// TestCopyRefuses: a target that holds anything is refused and left as
// it was; a failure after the copy started leaves the target empty.
func TestCopyRefuses(t *testing.T) {
	ctx := t.Context()
	src := source(t, 10)
	verifyFails := errors.New("the roots are unreadable")
	for _, tc := range []struct {
		name      string
		prepare   func(t *testing.T, dst *etcdstore.Store)
		roots     func() migrate.Roots
		want      error
		wantEmpty bool
	}{
		{
			name: "target holds a cluster",
			prepare: func(t *testing.T, dst *etcdstore.Store) {
				if err := dst.CreateCluster(ctx, storetest.Cluster()); err != nil {
					t.Fatal(err)
				}
			},
			roots: func() migrate.Roots { return noRoots },
			want:  migrate.ErrNotEmpty,
		},
		{
			name: "target holds a stray key",
			prepare: func(t *testing.T, dst *etcdstore.Store) {
				if _, err := dst.Client().Put(ctx, dst.Prefix()+"stray", "x"); err != nil {
					t.Fatal(err)
				}
			},
			roots: func() migrate.Roots { return noRoots },
			want:  migrate.ErrNotEmpty,
		},
		{
			name:    "verification of the copy fails",
			prepare: func(*testing.T, *etcdstore.Store) {},
			roots: func() migrate.Roots {
				calls := 0
				return func(store.Cluster) ([]audit.Root, error) {
					if calls++; calls > 1 {
						return nil, verifyFails
					}
					return nil, nil
				}
			},
			want:      verifyFails,
			wantEmpty: true,
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dst := target(t)
			tc.prepare(t, dst)
			_, err := migrate.Copy(ctx, src, dst, tc.roots())
			if !errors.Is(err, tc.want) {
				t.Fatalf("Copy: %v, want %v", err, tc.want)
			}
			if err != nil && strings.Contains(err.Error(), "also failed") {
				t.Errorf("Copy: %v; the removal of the partial copy did not fail", err)
			}
			empty, err := dst.Empty(ctx)
			if err != nil || empty != tc.wantEmpty {
				t.Errorf("target empty: %v, %v; want %v", empty, err, tc.wantEmpty)
			}
		})
	}
}

// TestImportIntoCluster: Import writes nothing into a store that holds a
// cluster record, even under its claim.
func TestImportIntoCluster(t *testing.T) {
	ctx := t.Context()
	dst := target(t)
	if err := dst.Claim(ctx, storetest.Cluster().ID); err != nil {
		t.Fatal(err)
	}
	if err := dst.CreateCluster(ctx, storetest.Cluster()); err != nil {
		t.Fatal(err)
	}
	n, c := storetest.Issuance("node-x", "0abc", time.Now())
	err := dst.Import(ctx, store.ImportBatch{Nodes: []store.Node{n}, Certificates: []store.IssuedCertificate{c}})
	if !errors.Is(err, store.ErrExists) {
		t.Fatalf("Import: %v", err)
	}
	if _, err := dst.Node(ctx, "node-x"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("the node was written: %v", err)
	}
}

// utc normalizes times for comparison, as a JSON round trip does.
func utc[T any](v T) T {
	var out T
	data, _ := json.Marshal(v)
	json.Unmarshal(data, &out)
	return out
}
