package atomicfile

import (
	"bytes"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
)

// oldFile makes a directory holding the file f, with contents "old" and
// mode perm, and returns the directory and the file's path.
func oldFile(t *testing.T, perm fs.FileMode) (dir, path string) {
	t.Helper()
	dir = t.TempDir()
	path = filepath.Join(dir, "f")
	if err := os.WriteFile(path, []byte("old"), perm); err != nil {
		t.Fatal(err)
	}
	return dir, path
}

// assertFile fails t unless path holds data with mode perm.
func assertFile(t *testing.T, path string, data []byte, perm fs.FileMode) {
	t.Helper()
	got, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, data) {
		t.Errorf("%s holds %q, want %q", path, got, data)
	}
	st, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if !st.Mode().IsRegular() || st.Mode().Perm() != perm {
		t.Errorf("%s mode %v, want a file with mode %o", path, st.Mode(), perm)
	}
}

// assertEntries fails t unless dir holds exactly the names given: no
// temporary file left.
func assertEntries(t *testing.T, dir string, names ...string) {
	t.Helper()
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, e := range entries {
		got = append(got, e.Name())
	}
	if strings.Join(got, ",") != strings.Join(names, ",") {
		t.Errorf("%s holds %v, want %v (no temporary file left)", dir, got, names)
	}
}

func TestWrite(t *testing.T) {
	tests := []struct {
		name string
		old  []byte // nil: no file before
		perm fs.FileMode
	}{
		{"NewSecret", nil, 0o600},
		{"NewPublic", nil, 0o644},
		// 0666 is kept whole: the umask does not apply.
		{"NewWorldWritable", nil, 0o666},
		{"NewReadOnly", nil, 0o400},
		{"Replace", []byte("old contents, longer than the new"), 0o644},
		{"ReplaceLoosensNothing", []byte("old"), 0o600},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			path := filepath.Join(dir, "f")
			if tc.old != nil {
				// The old file's mode is not the new one's.
				if err := os.WriteFile(path, tc.old, 0o640); err != nil {
					t.Fatal(err)
				}
			}
			data := []byte("new")
			if err := Write(path, data, tc.perm); err != nil {
				t.Fatalf("Write: %v", err)
			}
			assertFile(t, path, data, tc.perm)
			assertEntries(t, dir, "f")
		})
	}
}

func TestWriteEmpty(t *testing.T) {
	_, path := oldFile(t, 0o600)
	if err := Write(path, nil, 0o600); err != nil {
		t.Fatalf("Write: %v", err)
	}
	assertFile(t, path, nil, 0o600)
}

// TestWriteUnwritableDirectory: no temporary file can be made, and the old
// file stays as it was.
func TestWriteUnwritableDirectory(t *testing.T) {
	dir, path := oldFile(t, 0o644)
	if err := os.Chmod(dir, 0o500); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.Chmod(dir, 0o700) })
	if f, err := os.CreateTemp(dir, "probe-"); err == nil {
		f.Close()
		os.Remove(f.Name())
		t.Skip("the directory's mode does not stop this user (root?) from writing in it")
	}
	err := Write(path, []byte("new"), 0o644)
	if err == nil {
		t.Fatal("Write in an unwritable directory succeeded")
	}
	if !errors.Is(err, fs.ErrPermission) || !strings.Contains(err.Error(), path) {
		t.Errorf("error %q: want a permission error naming %s", err, path)
	}
	assertFile(t, path, []byte("old"), 0o644)
	assertEntries(t, dir, "f")
}

func TestWriteMissingDirectory(t *testing.T) {
	path := filepath.Join(t.TempDir(), "nope", "f")
	err := Write(path, []byte("new"), 0o644)
	if !errors.Is(err, fs.ErrNotExist) || !strings.Contains(err.Error(), path) {
		t.Errorf("error %v: want one saying that the directory of %s does not exist", err, path)
	}
}

// TestWriteFailedRename: the data is written, but cannot replace what is at
// path (a directory); the temporary file goes, and the directory stays.
func TestWriteFailedRename(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "f")
	if err := os.Mkdir(path, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(path, "inside"), []byte("kept"), 0o644); err != nil {
		t.Fatal(err)
	}
	err := Write(path, []byte("new"), 0o644)
	if err == nil || !strings.Contains(err.Error(), "failed to replace "+path) {
		t.Fatalf("Write over a directory: error %v, want one saying it failed to replace %s", err, path)
	}
	if st, err := os.Stat(path); err != nil || !st.IsDir() {
		t.Errorf("%s is no longer the directory: %v %v", path, st, err)
	}
	assertFile(t, filepath.Join(path, "inside"), []byte("kept"), 0o644)
	assertEntries(t, dir, "f")
}

func TestWriteNew(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "key")
	if err := WriteNew(path, []byte("first"), 0o600); err != nil {
		t.Fatalf("WriteNew: %v", err)
	}
	assertFile(t, path, []byte("first"), 0o600)
	assertEntries(t, dir, "key")

	err := WriteNew(path, []byte("second"), 0o644)
	if !errors.Is(err, fs.ErrExist) || !strings.Contains(err.Error(), path) {
		t.Errorf("WriteNew over a file: error %v, want fs.ErrExist naming %s", err, path)
	}
	assertFile(t, path, []byte("first"), 0o600)
	assertEntries(t, dir, "key")
}

// TestWriteNewRace: of writers racing to create one file, one wins and the
// file holds its data whole.
func TestWriteNewRace(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "key")
	const n = 8
	var (
		wg   sync.WaitGroup
		errs [n]error
	)
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[i] = WriteNew(path, bytes.Repeat([]byte{'a' + byte(i)}, 4096), 0o600)
		}()
	}
	wg.Wait()
	winner := -1
	for i, err := range errs {
		switch {
		case err == nil && winner >= 0:
			t.Errorf("writers %d and %d both created the file", winner, i)
		case err == nil:
			winner = i
		case !errors.Is(err, fs.ErrExist):
			t.Errorf("writer %d: %v, want fs.ErrExist", i, err)
		}
	}
	if winner < 0 {
		t.Fatal("no writer created the file")
	}
	assertFile(t, path, bytes.Repeat([]byte{'a' + byte(winner)}, 4096), 0o600)
	assertEntries(t, dir, "key")
}

func TestSyncDir(t *testing.T) {
	if err := SyncDir(t.TempDir()); err != nil {
		t.Errorf("SyncDir: %v", err)
	}
	if err := SyncDir(filepath.Join(t.TempDir(), "nope")); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("SyncDir of a missing directory: %v, want fs.ErrNotExist", err)
	}
}
