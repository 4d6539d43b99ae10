// Package secretfile reads a secret (a join token, a PIN, a token, a
// passphrase, a key) from a file the way ssh reads a private key: only from
// a regular file that the running user owns and that no one else may read
// or write. An error names the file and the command that fixes it, never
// the file's content.
package secretfile

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/user"
	"strconv"
	"strings"
	"syscall"
)

// MaxSize is the largest secret file read.
const MaxSize = 4 << 10

// ErrUnsafe is wrapped by the errors of files that others can read, write
// or own.
var ErrUnsafe = errors.New("unsafe secret file")

// Open opens the file at path for reading, if it is a regular file owned by
// the effective user with no permission for group or others (0600 or
// 0400). The checks are made on the opened file, so the file cannot be
// swapped between the check and the read; the caller reads the returned
// file, with its own size bound, and closes it.
//
// The file is opened without blocking, so that a FIFO without a writer is
// refused rather than waited on. An error from the system is returned as
// is (an *fs.PathError, which names the file); a file that others may
// read, write or own gives an error that wraps ErrUnsafe and says the chmod
// or chown that fixes it.
func Open(path string) (*os.File, error) {
	f, err := os.OpenFile(path, os.O_RDONLY|syscall.O_NONBLOCK, 0)
	if err != nil {
		return nil, err
	}
	fi, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, err
	}
	if err := check(path, fi, os.Geteuid()); err != nil {
		f.Close()
		return nil, err
	}
	return f, nil
}

// Read returns the content of the file at path with surrounding white space
// trimmed. The file must pass Open's checks and hold at most MaxSize bytes.
func Read(path string) (string, error) {
	b, err := ReadFile(path, MaxSize)
	if err != nil {
		return "", err
	}
	s := strings.TrimSpace(string(b))
	if s == "" {
		return "", fmt.Errorf("secretfile: %s is empty", path)
	}
	return s, nil
}

// check applies Open's rules to the file information fi of path, for the
// user euid.
func check(path string, fi os.FileInfo, euid int) error {
	if !fi.Mode().IsRegular() {
		return fmt.Errorf("secretfile: %s is not a regular file", path)
	}
	if st, ok := fi.Sys().(*syscall.Stat_t); ok && int(st.Uid) != euid {
		return fmt.Errorf("%w: %s is owned by %s, not by %s, who runs chancery: run 'chown %s %s' (or write the secret to a file of your own)",
			ErrUnsafe, path, userName(int(st.Uid)), userName(euid), userName(euid), path)
	}
	if perm := fi.Mode().Perm(); perm&0o077 != 0 {
		return fmt.Errorf("%w: %s has mode %04o, so other users may read or change it: run 'chmod 600 %s'",
			ErrUnsafe, path, perm, path)
	}
	return nil
}

// userName returns the name of user uid, or its number when it has none.
func userName(uid int) string {
	if u, err := user.LookupId(strconv.Itoa(uid)); err == nil && u.Username != "" {
		return u.Username
	}
	return strconv.Itoa(uid)
}

// ReadFile returns the content of the file at path (a private key, say),
// which must pass Open's checks and hold at most max bytes. What it read
// of a file that is too large is cleared.
func ReadFile(path string, max int) ([]byte, error) {
	f, err := Open(path)
	var pe *fs.PathError
	if errors.As(err, &pe) {
		return nil, fmt.Errorf("secretfile: %w", err)
	}
	if err != nil {
		return nil, err
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, int64(max)+1))
	if err != nil {
		clear(b)
		return nil, fmt.Errorf("secretfile: failed to read %s: %w", path, err)
	}
	if len(b) > max {
		clear(b)
		return nil, fmt.Errorf("secretfile: %s is larger than %d bytes: it holds no secret of ours", path, max)
	}
	return b, nil
}
