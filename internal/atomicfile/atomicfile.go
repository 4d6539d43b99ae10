// Package atomicfile writes files so that a crash or a failed write leaves
// either the old file (or none) or the whole new one, never a part: the data
// goes to a temporary file in the same directory, which is synced and then
// renamed (Write) or linked (WriteNew) into place, and the directory is
// synced.
//
// It is the one place where certdir, backends/file and agent write their
// files.
package atomicfile

import (
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
)

// Write replaces the file at path, or creates it, with data and mode perm
// (exactly perm, whatever the umask). The directory must exist.
//
// The temporary file is created 0600 and given perm before any data is
// written to it, so the data is never readable beyond perm. On any error the
// temporary file is removed and the file at path is left as it was. Once the
// new file is in place, the directory is synced; a directory that cannot be
// synced does not fail the write.
func Write(path string, data []byte, perm fs.FileMode) error {
	return write(path, data, perm, func(tmp string) error {
		if err := os.Rename(tmp, path); err != nil {
			return fmt.Errorf("failed to replace %s: %w", path, err)
		}
		return nil
	})
}

// WriteNew is Write for a file that must not exist yet: it never replaces a
// file at path, and then its error matches fs.ErrExist (errors.Is). The new
// file is hard-linked into place, so two concurrent WriteNew calls cannot
// both succeed.
func WriteNew(path string, data []byte, perm fs.FileMode) error {
	return write(path, data, perm, func(tmp string) error {
		// A hard link fails if path exists, unlike a rename.
		if err := os.Link(tmp, path); err != nil {
			return fmt.Errorf("failed to create %s: %w", path, err)
		}
		// path now holds the data; the temporary name is no longer needed.
		os.Remove(tmp)
		return nil
	})
}

// write writes data to a synced temporary file beside path, mode perm, and
// has place put it at path. On any error the temporary file is removed.
func write(path string, data []byte, perm fs.FileMode, place func(tmp string) error) (err error) {
	dir := filepath.Dir(path)
	f, err := os.CreateTemp(dir, ".tmp-"+filepath.Base(path)+"-*")
	if err != nil {
		return fmt.Errorf("failed to create a temporary file for %s: %w", path, err)
	}
	tmp := f.Name()
	defer func() {
		if err != nil {
			os.Remove(tmp)
		}
	}()
	if err := f.Chmod(perm); err != nil {
		f.Close()
		return fmt.Errorf("failed to set the mode of %s: %w", tmp, err)
	}
	if _, err := f.Write(data); err != nil {
		f.Close()
		return fmt.Errorf("failed to write %s: %w", path, err)
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return fmt.Errorf("failed to sync %s: %w", path, err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("failed to write %s: %w", path, err)
	}
	if err := place(tmp); err != nil {
		return err
	}
	SyncDir(dir)
	return nil
}

// SyncDir syncs the directory dir, so that a file created, renamed or
// linked in it survives a crash. Callers that rename files themselves call
// it after the rename.
func SyncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}
