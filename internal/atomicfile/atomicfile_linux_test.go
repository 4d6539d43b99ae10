//go:build linux

package atomicfile

import (
	"errors"
	"syscall"
	"testing"
)

// TestWriteFailsMidway: writing the data fails (here at the file size
// limit, as it would on a full disk) after the temporary file was made; the
// temporary file goes, and the old file stays as it was. Go ignores
// SIGXFSZ, so the write returns EFBIG.
func TestWriteFailsMidway(t *testing.T) {
	dir, path := oldFile(t, 0o600)
	var lim syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_FSIZE, &lim); err != nil {
		t.Fatal(err)
	}
	small := lim
	small.Cur = min(1024, lim.Max)
	// The limit is the process's: no other test of this package runs now.
	if err := syscall.Setrlimit(syscall.RLIMIT_FSIZE, &small); err != nil {
		t.Skipf("cannot lower the file size limit: %v", err)
	}
	err := Write(path, make([]byte, 64<<10), 0o600)
	if rerr := syscall.Setrlimit(syscall.RLIMIT_FSIZE, &lim); rerr != nil {
		t.Fatalf("restoring the file size limit: %v", rerr)
	}
	if !errors.Is(err, syscall.EFBIG) {
		t.Fatalf("Write past the file size limit: error %v, want EFBIG", err)
	}
	assertFile(t, path, []byte("old"), 0o600)
	assertEntries(t, dir, "f")
}
