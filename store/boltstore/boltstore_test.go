package boltstore_test

import (
	"encoding/base64"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"go.etcd.io/bbolt"

	"github.com/chancery-pki/chancery/store"
	"github.com/chancery-pki/chancery/store/boltstore"
	"github.com/chancery-pki/chancery/store/storetest"
)

func open(t testing.TB, path string) *boltstore.Store {
	t.Helper()
	s, err := boltstore.Open(path, boltstore.Options{})
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	return s
}

func TestConformance(t *testing.T) {
	storetest.Run(t, func(t *testing.T) store.Store {
		return open(t, filepath.Join(t.TempDir(), "state.db"))
	})
}

func TestFileMode(t *testing.T) {
	tests := []struct {
		name     string
		existing os.FileMode // 0: no file before Open
	}{
		{"new file", 0},
		{"world readable", 0o644},
		{"group writable", 0o660},
		{"already private", 0o600},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "state.db")
			if tt.existing != 0 {
				if err := os.WriteFile(path, nil, tt.existing); err != nil {
					t.Fatal(err)
				}
				if err := os.Chmod(path, tt.existing); err != nil { // past the umask
					t.Fatal(err)
				}
			}
			open(t, path).Close()
			fi, err := os.Stat(path)
			if err != nil {
				t.Fatal(err)
			}
			if got := fi.Mode().Perm(); got != 0o600 {
				t.Errorf("mode %v, want 0600", got)
			}
		})
	}
}

func TestReopenKeepsData(t *testing.T) {
	ctx := t.Context()
	path := filepath.Join(t.TempDir(), "state.db")
	s := open(t, path)
	if err := s.CreateCluster(ctx, storetest.Cluster()); err != nil {
		t.Fatal(err)
	}
	if _, err := s.UpdateCluster(ctx, func(c *store.Cluster) error { c.CertExpiry = 24 * time.Hour; return nil }); err != nil {
		t.Fatal(err)
	}
	n, c := storetest.Issuance("n1", "0a", time.Now())
	if err := s.RecordIssuance(ctx, n, c); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}

	s = open(t, path)
	defer s.Close()
	cl, err := s.Cluster(ctx)
	if err != nil || cl.Version != 2 || cl.CertExpiry != 24*time.Hour || cl.WorkerToken != storetest.Cluster().WorkerToken {
		t.Errorf("cluster after reopen: (%+v, %v)", cl, err)
	}
	if got, err := s.Node(ctx, "n1"); err != nil || got.CertSerial != "0a" {
		t.Errorf("node after reopen: (%+v, %v)", got, err)
	}
	if got, err := s.IssuedCertificate(ctx, "0a"); err != nil || !got.NotAfter.Equal(c.NotAfter) {
		t.Errorf("certificate after reopen: (%+v, %v)", got, err)
	}
}

func TestOpenLocked(t *testing.T) {
	path := filepath.Join(t.TempDir(), "state.db")
	s := open(t, path)
	defer s.Close()
	s2, err := boltstore.Open(path, boltstore.Options{Timeout: 100 * time.Millisecond})
	if err == nil {
		s2.Close()
		t.Fatal("second Open of an open database succeeded")
	}
	if !errors.Is(err, boltstore.ErrLocked) || !strings.Contains(err.Error(), path) || !strings.Contains(err.Error(), "in use") {
		t.Errorf("second Open: got %q, want ErrLocked naming %s", err, path)
	}
}

// rawPut writes a value with bbolt directly, bypassing the store.
func rawPut(t *testing.T, path, bucket, key, value string) {
	t.Helper()
	db, err := bbolt.Open(path, 0o600, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	err = db.Update(func(tx *bbolt.Tx) error {
		b, err := tx.CreateBucketIfNotExists([]byte(bucket))
		if err != nil {
			return err
		}
		return b.Put([]byte(key), []byte(value))
	})
	if err != nil {
		t.Fatal(err)
	}
}

func TestSchema(t *testing.T) {
	tests := []struct {
		schema  string
		wantErr string // "" for success
	}{
		{"1", ""},
		{"2", "schema version 2, newer than version 1"},
		{"x", `corrupt record "meta/schema"`},
	}
	for _, tt := range tests {
		t.Run(tt.schema, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "state.db")
			rawPut(t, path, "meta", "schema", tt.schema)
			s, err := boltstore.Open(path, boltstore.Options{})
			if err == nil {
				s.Close()
			}
			if tt.wantErr == "" && err != nil {
				t.Fatalf("Open: %v", err)
			}
			if tt.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tt.wantErr)) {
				t.Fatalf("Open: got %v, want an error containing %q", err, tt.wantErr)
			}
			if err != nil && strings.Count(err.Error(), "boltstore: ") != 1 {
				t.Errorf("Open: %q says \"boltstore: \" more than once", err)
			}
		})
	}
}

// TestClusterWithoutRootHistory reads a cluster record as chanceries wrote
// it before the root history existed: it is one root, current since
// CreatedAt, and it can still be updated.
func TestClusterWithoutRootHistory(t *testing.T) {
	ctx := t.Context()
	fixture := storetest.Cluster()
	old := fmt.Sprintf(`{"id":%q,"created_at":"2025-03-01T12:00:00Z","root_ca_pem":%q,`+
		`"backend":{"type":"file","settings":{"key_path":"/var/lib/chancery/root.key"}},`+
		`"worker_token":%q,"manager_token":%q,"cert_expiry":7776000000000000,`+
		`"listen_addr":"0.0.0.0:4242","advertise_addr":"10.0.0.1:4242","version":3}`,
		fixture.ID, base64.StdEncoding.EncodeToString(fixture.RootCAPEM), fixture.WorkerToken, fixture.ManagerToken)
	path := filepath.Join(t.TempDir(), "state.db")
	open(t, path).Close()
	rawPut(t, path, "cluster", "cluster", old)
	s := open(t, path)
	defer s.Close()
	c, err := s.Cluster(ctx)
	if err != nil {
		t.Fatalf("Cluster: %v", err)
	}
	storetest.CheckOneRoot(t, c)
	c, err = s.UpdateCluster(ctx, func(c *store.Cluster) error { c.CertExpiry = time.Hour; return nil })
	if err != nil {
		t.Fatalf("UpdateCluster of a record without root history: %v", err)
	}
	if c.Version != 4 {
		t.Errorf("Version %d after the update, want 4", c.Version)
	}
	storetest.CheckOneRoot(t, c)
}

func TestCorruptRecord(t *testing.T) {
	const secret = "SWMTKN-1-secretsecret"
	tests := []struct {
		name              string
		bucket, key, data string
		call              func(*boltstore.Store) error
	}{
		{"node", "nodes", "n1", "{not json", func(s *boltstore.Store) error { _, err := s.Node(t.Context(), "n1"); return err }},
		{"nodes", "nodes", "n1", `{"id":1}`, func(s *boltstore.Store) error { _, err := s.Nodes(t.Context()); return err }},
		{"certificates", "certs", "01", "[]", func(s *boltstore.Store) error { _, err := s.IssuedCertificates(t.Context(), ""); return err }},
		{"cluster", "cluster", "cluster", `{"worker_token":"` + secret + `","version":"` + secret + `"}`,
			func(s *boltstore.Store) error { _, err := s.Cluster(t.Context()); return err }},
		{"update cluster", "cluster", "cluster", `{"manager_token":"` + secret + `",`,
			func(s *boltstore.Store) error {
				_, err := s.UpdateCluster(t.Context(), func(*store.Cluster) error { return nil })
				return err
			}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "state.db")
			open(t, path).Close()
			rawPut(t, path, tt.bucket, tt.key, tt.data)
			s := open(t, path)
			defer s.Close()
			err := tt.call(s)
			if want := fmt.Sprintf("boltstore: corrupt record %q", tt.bucket+"/"+tt.key); err == nil || !strings.Contains(err.Error(), want) {
				t.Fatalf("got %v, want an error containing %s", err, want)
			}
			if strings.Contains(err.Error(), secret) {
				t.Errorf("error reveals a token: %v", err)
			}
		})
	}
}

func BenchmarkRecordIssuance(b *testing.B) {
	run := func(b *testing.B, parallel bool) {
		s := open(b, filepath.Join(b.TempDir(), "state.db"))
		defer s.Close()
		ctx := b.Context()
		var seq atomic.Uint64
		record := func() {
			i := seq.Add(1)
			n, c := storetest.Issuance(fmt.Sprintf("node-%d", i%100), fmt.Sprintf("%016x", i), time.Now())
			if err := s.RecordIssuance(ctx, n, c); err != nil {
				b.Error(err)
			}
		}
		b.ResetTimer()
		if parallel {
			b.SetParallelism(8) // many nodes renewing at once
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					record()
				}
			})
		} else {
			for b.Loop() {
				record()
			}
		}
		b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "records/s")
	}
	b.Run("serial", func(b *testing.B) { run(b, false) })
	b.Run("parallel", func(b *testing.B) { run(b, true) })
}

// BenchmarkConformanceRecordIssuance is storetest's benchmark, to compare
// with other stores' (the etcd store's).
func BenchmarkConformanceRecordIssuance(b *testing.B) {
	storetest.BenchmarkRecordIssuance(b, func(b *testing.B) store.Store {
		return open(b, filepath.Join(b.TempDir(), "state.db"))
	})
}
