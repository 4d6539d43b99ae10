package main

import (
	"encoding/binary"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"go.etcd.io/bbolt"

	"github.com/chancery-pki/chancery/audit"
	"github.com/chancery-pki/chancery/backends"
	"github.com/chancery-pki/chancery/backends/file"
	"github.com/chancery-pki/chancery/ca"
	"github.com/chancery-pki/chancery/certdir"
	"github.com/chancery-pki/chancery/cluster"
	"github.com/chancery-pki/chancery/issuer"
	"github.com/chancery-pki/chancery/store"
	"github.com/chancery-pki/chancery/store/boltstore"
)

// TestAuditTamperingDetected edits, deletes, reorders and tears entries by
// hand in the store's audit bucket, and checks that `chancery audit verify`
// fails naming the first bad entry, while an untouched log verifies.
func TestAuditTamperingDetected(t *testing.T) {
	base := t.TempDir()
	orig := filepath.Join(base, "orig")
	for _, args := range [][]string{
		{"init", "--no-run", "--data-dir", orig},
		{"join-token", "--rotate", "-q", "worker", "--data-dir", orig},
		{"update", "--cert-expiry", "168h", "--data-dir", orig},
	} {
		if code := runWith(args, &strings.Builder{}, &strings.Builder{}); code != 0 {
			t.Fatalf("chancery %v: exit %d", args, code)
		}
	}
	key := func(seq uint64) []byte {
		var k [8]byte
		binary.BigEndian.PutUint64(k[:], seq)
		return k[:]
	}
	edit := func(b *bbolt.Bucket, seq uint64, f func(*audit.Entry)) {
		e, err := audit.Unmarshal(b.Get(key(seq)))
		if err != nil {
			t.Fatal(err)
		}
		f(&e)
		if err := b.Put(key(seq), e.Marshal()); err != nil {
			t.Fatal(err)
		}
	}
	tests := []struct {
		name   string
		tamper func(b *bbolt.Bucket)
		want   []string
	}{
		{"Untouched", func(*bbolt.Bucket) {}, []string{"audit log OK: 5 entries verify"}},
		{"Edited", func(b *bbolt.Bucket) { edit(b, 2, func(e *audit.Entry) { e.Backend = "pkcs11" }) },
			[]string{"entry 2", "edited", "entries 1-1 verify"}},
		{"EditedAndRehashed", func(b *bbolt.Bucket) {
			edit(b, 2, func(e *audit.Entry) { e.Backend = "pkcs11"; e.Hash = e.ComputeHash() })
		}, []string{"entry 3", "link to the previous entry is broken"}},
		{"Deleted", func(b *bbolt.Bucket) { b.Delete(key(3)) }, []string{"entry 4", "missing"}},
		{"Reordered", func(b *bbolt.Bucket) {
			e3, e4 := append([]byte(nil), b.Get(key(3))...), append([]byte(nil), b.Get(key(4))...)
			b.Put(key(3), e4)
			b.Put(key(4), e3)
		}, []string{"entry 3", "moved"}},
		{"TornLast", func(b *bbolt.Bucket) { b.Put(key(5), append([]byte(nil), b.Get(key(5))[:30]...)) },
			[]string{"torn", "entries 1-4 verify"}},
	}
	data, err := os.ReadFile(filepath.Join(orig, "chancery.db"))
	if err != nil {
		t.Fatal(err)
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := filepath.Join(base, tt.name)
			copyDataDir(t, dir, orig)
			if err := os.WriteFile(filepath.Join(dir, "chancery.db"), data, 0o600); err != nil {
				t.Fatal(err)
			}
			db, err := bbolt.Open(filepath.Join(dir, "chancery.db"), 0o600, nil)
			if err != nil {
				t.Fatal(err)
			}
			if err := db.Update(func(tx *bbolt.Tx) error { tt.tamper(tx.Bucket([]byte("audit"))); return nil }); err != nil {
				t.Fatal(err)
			}
			db.Close()
			var out, errb strings.Builder
			code := runWith([]string{"audit", "verify", "--data-dir", dir}, &out, &errb)
			all := out.String() + errb.String()
			if (code == 0) != (tt.name == "Untouched") {
				t.Errorf("audit verify exit %d:\n%s", code, all)
			}
			for _, w := range tt.want {
				if !strings.Contains(all, w) {
					t.Errorf("audit verify output lacks %q:\n%s", w, all)
				}
			}
		})
	}
}

// TestAuditVerifyAcrossRoots changes the cluster's root by hand, as a root
// rotation will when it is done: a checkpoint under the first root, then a
// second root (made by the file backend) replaces the first in one update
// of the root record, then a checkpoint under the second root. audit
// verify checks each checkpoint against the root of its time and names
// both roots; tampering is still found, and named, on either side of the
// change.
func TestAuditVerifyAcrossRoots(t *testing.T) {
	ctx := t.Context()
	base := t.TempDir()
	orig := filepath.Join(base, "orig")
	if code := runWith([]string{"init", "--no-run", "--data-dir", orig}, &strings.Builder{}, &strings.Builder{}); code != 0 {
		t.Fatalf("chancery init: exit %d", code)
	}

	// The store's clock, hours apart at each step, so that which root was
	// current when is never in doubt.
	start := time.Now()
	now := start
	st, err := boltstore.Open(cluster.StorePath(orig), boltstore.Options{Now: func() time.Time { return now }})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	before, err := st.Cluster(ctx)
	if err != nil {
		t.Fatal(err)
	}
	checkpoint := func(c store.Cluster) *audit.Entry {
		t.Helper()
		sg, err := cluster.OpenSigner(ctx, orig, c, nil, nil)
		if err != nil {
			t.Fatal(err)
		}
		if c, ok := sg.(io.Closer); ok {
			defer c.Close()
		}
		if _, err := st.AppendAudit(ctx, audit.Event{Action: audit.ActionRefused, Reason: "test"}); err != nil {
			t.Fatal(err)
		}
		iss, err := issuer.New(sg, issuer.Options{})
		if err != nil {
			t.Fatal(err)
		}
		e, err := cluster.Checkpoint(ctx, st, iss, now)
		if err != nil || e == nil {
			t.Fatalf("cluster.Checkpoint: %v, %v", e, err)
		}
		return e
	}

	now = start.Add(time.Hour)
	first := checkpoint(before)

	now = start.Add(2 * time.Hour)
	sg, settings, err := file.Backend{}.CreateRoot(ctx, backends.CreateRootRequest{
		DataDir: orig, Settings: backends.Settings{file.SettingKeyPath: "ca/root-ca-2.key"}, Now: start,
	})
	if err != nil {
		t.Fatal(err)
	}
	newRoot := sg.Chain()[0]
	newPEM := ca.EncodeCertificatesPEM(newRoot)
	after, err := st.UpdateCluster(ctx, func(c *store.Cluster) error {
		old := c.Roots()[len(c.Roots())-1]
		old.ActiveUntil = now
		c.RootHistory = append(c.RootHistory, old)
		c.RootCAPEM, c.Backend, c.RootSince = newPEM, store.BackendConfig{Type: file.Name, Settings: settings}, now
		return nil
	}, audit.Event{Action: audit.ActionRootRotation, Backend: file.Name, Details: map[string]string{"root_fingerprint": cluster.Fingerprint(newRoot)}})
	if err != nil {
		t.Fatal(err)
	}
	// This node takes the new root, as nodes do when a rotation switches
	// trust.
	if err := certdir.In(orig).WriteRoot(newPEM); err != nil {
		t.Fatal(err)
	}

	now = start.Add(3 * time.Hour)
	second := checkpoint(after)
	if err := st.Close(); err != nil {
		t.Fatal(err)
	}

	oldRoots, err := cluster.Roots(before)
	if err != nil {
		t.Fatal(err)
	}
	oldFP, newFP := cluster.Fingerprint(oldRoots[0]), cluster.Fingerprint(newRoot)
	if oldFP == newFP {
		t.Fatal("the two roots are the same")
	}
	key := func(seq uint64) []byte {
		var k [8]byte
		binary.BigEndian.PutUint64(k[:], seq)
		return k[:]
	}
	// edit changes an entry in the stored log.
	edit := func(dir string, seq uint64, f func(*audit.Entry)) {
		db, err := bbolt.Open(filepath.Join(dir, cluster.StoreFile), 0o600, nil)
		if err != nil {
			t.Fatal(err)
		}
		defer db.Close()
		err = db.Update(func(tx *bbolt.Tx) error {
			b := tx.Bucket([]byte("audit"))
			e, err := audit.Unmarshal(b.Get(key(seq)))
			if err != nil {
				return err
			}
			f(&e)
			return b.Put(key(seq), e.Marshal())
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	// record changes the root record through the store.
	record := func(dir string, f func(*store.Cluster)) {
		st, err := cluster.OpenStore(dir)
		if err != nil {
			t.Fatal(err)
		}
		defer st.Close()
		if _, err := st.UpdateCluster(ctx, func(c *store.Cluster) error { f(c); return nil }); err != nil {
			t.Fatal(err)
		}
	}
	rotated := fmt.Sprint(second.Seq - 2) // the root rotation's entry
	tests := []struct {
		name   string
		tamper func(dir string)
		ok     bool
		want   []string
	}{
		{"Untouched", func(string) {}, true, []string{
			"audit log OK: " + fmt.Sprint(second.Seq) + " entries verify",
			"checkpoints: 2, the last signed by the CA over entry " + fmt.Sprint(second.Seq-1),
			fmt.Sprintf("checkpoint at entry %d: signed under root %s", first.Seq, oldFP),
			fmt.Sprintf("checkpoint at entry %d: signed under root %s", second.Seq, newFP),
			"roots: 2, from the cluster's record",
			oldFP + "  file  ", "(not trusted by this node)",
			newFP + "  file  ", "(current; trusted by this node)",
		}},
		{"EditedUnderTheFirstRoot", func(dir string) { edit(dir, 2, func(e *audit.Entry) { e.Backend = "pkcs11" }) },
			false, []string{"entry 2", "edited", "entries 1-1 verify"}},
		{"EditedRotation", func(dir string) {
			edit(dir, second.Seq-2, func(e *audit.Entry) { e.Details["root_fingerprint"] = oldFP })
		}, false, []string{"entry " + rotated, "edited"}},
		{"EditedUnderTheSecondRoot", func(dir string) {
			edit(dir, second.Seq-1, func(e *audit.Entry) { e.Reason = "nothing to see"; e.Hash = e.ComputeHash() })
		}, false, []string{"entry " + fmt.Sprint(second.Seq), "link to the previous entry is broken"}},
		{"RootSwitchMovedBack", func(dir string) {
			// Both roots' times moved before the first checkpoint, so the
			// record says the second root was current when it was written.
			record(dir, func(c *store.Cluster) {
				c.RootHistory[0].ActiveUntil = start
				c.RootSince = start
			})
		}, false, []string{"entry " + fmt.Sprint(first.Seq), "not issued by the cluster's CA (root " + newFP}},
		{"NodeTrustsAnotherRoot", func(dir string) {
			if err := certdir.In(dir).WriteRoot(ca.EncodeCertificatesPEM(oldRoots[0])); err != nil {
				t.Fatal(err)
			}
		}, false, []string{"the cluster's current root " + newFP + " is not one this node trusts", oldFP}},
	}
	data, err := os.ReadFile(cluster.StorePath(orig))
	if err != nil {
		t.Fatal(err)
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := filepath.Join(base, tt.name)
			copyDataDir(t, dir, orig)
			if err := os.WriteFile(cluster.StorePath(dir), data, 0o600); err != nil {
				t.Fatal(err)
			}
			tt.tamper(dir)
			var out, errb strings.Builder
			code := runWith([]string{"audit", "verify", "--data-dir", dir}, &out, &errb)
			all := out.String() + errb.String()
			if (code == 0) != tt.ok {
				t.Errorf("audit verify exit %d:\n%s", code, all)
			}
			for _, w := range tt.want {
				if !strings.Contains(all, w) {
					t.Errorf("audit verify output lacks %q:\n%s", w, all)
				}
			}
		})
	}
}
