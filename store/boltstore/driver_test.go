package boltstore_test

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/chancery-pki/chancery/store"
	"github.com/chancery-pki/chancery/store/boltstore"
)

func TestSettingsChooseTheStore(t *testing.T) {
	ctx := context.Background()
	for _, tc := range []struct {
		name     string
		settings string // the settings file, or "" for none
		db       string // the store file to create, relative to the data directory, or ""
		exists   bool
		err      string // a substring of Open's error, or "" for success
	}{
		{"NoSettingsNoStore", "", "", false, "holds no cluster state"},
		{"NoSettingsLegacyStore", "", "chancery.db", true, ""},
		{"Default", `{"type":"bbolt"}`, "chancery.db", true, ""},
		{"OtherPath", `{"type":"bbolt","options":{"path":"state/other.db"}}`, "state/other.db", true, ""},
		{"OtherPathMissing", `{"type":"bbolt","options":{"path":"other.db"}}`, "chancery.db", false, "holds no cluster state"},
		{"UnknownType", `{"type":"floppy"}`, "chancery.db", false, `unknown store type "floppy"`},
		{"UnknownOption", `{"type":"bbolt","options":{"paht":"x"}}`, "chancery.db", false, `unknown store option "paht"`},
		{"UnknownField", `{"type":"bbolt","typo":1}`, "chancery.db", false, "is not valid"},
		{"NoType", `{"options":{}}`, "chancery.db", false, "names no store type"},
		{"NotJSON", `type=bbolt`, "chancery.db", false, "is not valid"},
		{"TooLarge", `{"type":"bbolt","options":{"path":"` + strings.Repeat("x", 70<<10) + `"}}`, "chancery.db", false, "larger than 64 KiB"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			if tc.settings != "" {
				if err := os.WriteFile(filepath.Join(dir, store.SettingsFile), []byte(tc.settings), 0o600); err != nil {
					t.Fatal(err)
				}
			}
			if tc.db != "" {
				p := filepath.Join(dir, tc.db)
				if err := os.MkdirAll(filepath.Dir(p), 0o700); err != nil {
					t.Fatal(err)
				}
				st, err := boltstore.Open(p, boltstore.Options{})
				if err != nil {
					t.Fatal(err)
				}
				st.Close()
			}
			exists, err := store.Exists(ctx, dir)
			if tc.err == "" || strings.Contains(tc.err, "no cluster state") {
				if err != nil || exists != tc.exists {
					t.Errorf("Exists = %v, %v; want %v", exists, err, tc.exists)
				}
			}
			st, err := store.Open(ctx, dir, nil)
			if tc.err == "" {
				if err != nil {
					t.Fatalf("Open: %v", err)
				}
				st.Close()
				return
			}
			if err == nil {
				st.Close()
				t.Fatalf("Open succeeded, want an error saying %q", tc.err)
			}
			if !strings.Contains(err.Error(), tc.err) {
				t.Errorf("Open: %v, want it to say %q", err, tc.err)
			}
			if strings.Contains(tc.err, "no cluster state") && !errors.Is(err, store.ErrNoStore) {
				t.Errorf("Open: %v is not ErrNoStore", err)
			}
			// Nothing was created by a refused open.
			if _, err := os.Stat(filepath.Join(dir, "other.db")); !errors.Is(err, os.ErrNotExist) {
				t.Errorf("a refused Open created a store file (%v)", err)
			}
		})
	}
}

func TestWriteSettings(t *testing.T) {
	dir := t.TempDir()
	s := store.Settings{Type: boltstore.Name, Options: map[string]string{boltstore.OptionPath: "x.db"}}
	if err := store.WriteSettings(dir, s); err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(filepath.Join(dir, store.SettingsFile))
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o600 {
		t.Errorf("settings file mode %v, want 0600", fi.Mode().Perm())
	}
	got, err := store.ReadSettings(dir)
	if err != nil || got.Type != s.Type || got.Options[boltstore.OptionPath] != "x.db" {
		t.Errorf("ReadSettings = %+v, %v; want %+v", got, err, s)
	}
	if err := store.WriteSettings(dir, store.Settings{Type: boltstore.Name}); err == nil {
		t.Error("WriteSettings replaced an existing settings file")
	}
	if got, _ := store.ReadSettings(dir); got.Options[boltstore.OptionPath] != "x.db" {
		t.Errorf("the refused write changed the settings to %+v", got)
	}
	if err := store.WriteSettings(t.TempDir(), store.Settings{}); err == nil {
		t.Error("WriteSettings accepted settings without a type")
	}
}
