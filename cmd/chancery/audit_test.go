package main

import (
	"encoding/binary"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"go.etcd.io/bbolt"

	"github.com/chancery-pki/chancery/audit"
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
			if err := os.CopyFS(dir, os.DirFS(orig)); err != nil {
				t.Fatal(err)
			}
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
