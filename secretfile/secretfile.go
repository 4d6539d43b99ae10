// Package secretfile reads a secret (a join token) from a file the way ssh
// reads a private key: only from a regular file that the running user owns
// and that no one else may read or write. An error names the file and the
// command that fixes it.
package secretfile

import (
	"errors"
	"fmt"
	"io"
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

// Read returns the content of the file at path with surrounding white space
// trimmed. The file must be a regular file of at most MaxSize bytes, owned
// by the effective user, with no permission for group or others (0600 or
// 0400). The checks are made on the opened file, so the file cannot be
// swapped between the check and the read.
func Read(path string) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", fmt.Errorf("secretfile: %w", err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return "", fmt.Errorf("secretfile: %w", err)
	}
	if err := check(path, fi, os.Geteuid()); err != nil {
		return "", err
	}
	b, err := io.ReadAll(io.LimitReader(f, MaxSize+1))
	if err != nil {
		return "", fmt.Errorf("secretfile: failed to read %s: %w", path, err)
	}
	if len(b) > MaxSize {
		return "", fmt.Errorf("secretfile: %s is larger than %d bytes: it holds no secret of ours", path, MaxSize)
	}
	s := strings.TrimSpace(string(b))
	if s == "" {
		return "", fmt.Errorf("secretfile: %s is empty", path)
	}
	return s, nil
}

// check applies Read's rules to the file information fi of path, for the
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
