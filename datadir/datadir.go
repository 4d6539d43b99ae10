// Package datadir checks a data directory before chancery trusts it, as ssh
// checks ~/.ssh under StrictModes: the directory, and every directory and
// file in it, must be owned by the user who runs chancery (or root) and not
// writable by group or others; the directories above it must be owned by
// that user or root and not writable by others unless sticky (as /tmp is);
// and a symbolic link inside it is refused rather than followed. Otherwise
// another local user could plant a link to send a node's key elsewhere, or
// replace the administration socket to answer the administrator's commands.
//
// An error is an *UnsafeError: it names the path, what is wrong, and the
// command that fixes it.
package datadir

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
)

// ErrUnsafe is what every *UnsafeError matches with errors.Is.
var ErrUnsafe = errors.New("unsafe data directory")

// UnsafeError is a path in or above a data directory that others could
// change.
type UnsafeError struct {
	// Path is the offending file or directory.
	Path string
	// Problem says what is wrong with it.
	Problem string
	// Fix is the shell command that fixes it.
	Fix string
}

// Error names the path, the problem and the fix.
func (e *UnsafeError) Error() string {
	return fmt.Sprintf("%s: %s %s: run '%s'", ErrUnsafe, e.Path, e.Problem, e.Fix)
}

// Is reports whether target is ErrUnsafe.
func (e *UnsafeError) Is(target error) bool { return target == ErrUnsafe }

// Hint says what to do, for the CLI's hint lines.
func (e *UnsafeError) Hint() string {
	return "run '" + e.Fix + "': chancery refuses a data directory that other users could change, as ssh refuses such a ~/.ssh"
}

// owner is who may own what chancery trusts: the running user, or root.
type owner struct{ euid int }

func (o owner) ok(uid uint32) bool { return int(uid) == o.euid || uid == 0 }

// Check checks the data directory dir, every directory and file in it, and
// the directories above it. A dir that does not exist yet passes when the
// directories above it do (it is to be created 0700).
func Check(dir string) error {
	return check(dir, owner{os.Geteuid()})
}

func check(dir string, o owner) error {
	if dir == "" {
		return errors.New("datadir: no data directory given")
	}
	abs, err := filepath.Abs(dir)
	if err != nil {
		return fmt.Errorf("datadir: %w", err)
	}
	// The path as given may pass through links (/var/lib/chancery a link
	// to a disk): the directories both along the path as given and along
	// the real path are checked, and the real directory's contents.
	real, exists, err := resolve(abs)
	if err != nil {
		return err
	}
	checked := map[string]bool{}
	for _, p := range []string{abs, real} {
		for a := filepath.Dir(p); ; a = filepath.Dir(a) {
			if !checked[a] {
				checked[a] = true
				if err := checkAncestor(a, o); err != nil {
					return err
				}
			}
			if a == filepath.Dir(a) {
				break
			}
		}
	}
	if !exists {
		return nil
	}
	return filepath.WalkDir(real, func(p string, d fs.DirEntry, err error) error {
		var fi fs.FileInfo
		if err == nil {
			fi, err = os.Lstat(p) // WalkDir does not follow links either
		}
		// A running manager or node replaces files as it goes (a staged
		// certificate, a temporary file renamed into place): one that
		// went away while the walk ran is not there to check.
		if errors.Is(err, fs.ErrNotExist) && p != real {
			return nil
		}
		if err != nil {
			return fmt.Errorf("datadir: %w", err)
		}
		if p == real && !fi.IsDir() {
			return fmt.Errorf("datadir: %s is not a directory", real)
		}
		return checkEntry(p, fi, o)
	})
}

// resolve returns abs with its links resolved, and whether it exists. For
// a path that does not exist, the links of its existing part are resolved.
func resolve(abs string) (string, bool, error) {
	real, err := filepath.EvalSymlinks(abs)
	if err == nil {
		return real, true, nil
	}
	if !errors.Is(err, fs.ErrNotExist) {
		return "", false, fmt.Errorf("datadir: %w", err)
	}
	if fi, lerr := os.Lstat(abs); lerr == nil && fi.Mode()&fs.ModeSymlink != 0 {
		return "", false, &UnsafeError{Path: abs, Problem: "is a symbolic link to a missing directory", Fix: "rm " + quote(abs)}
	}
	parent := filepath.Dir(abs)
	if parent == abs {
		return abs, false, nil
	}
	rp, _, err := resolve(parent)
	if err != nil {
		return "", false, err
	}
	return filepath.Join(rp, filepath.Base(abs)), false, nil
}

// checkAncestor checks a directory above the data directory: owned by the
// user or root, and writable by no one else unless sticky.
func checkAncestor(p string, o owner) error {
	fi, err := os.Stat(p)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("datadir: %w", err)
	}
	if err := checkOwner(p, fi, o); err != nil {
		return err
	}
	if fi.Mode()&fs.ModeSticky == 0 && fi.Mode().Perm()&0o022 != 0 {
		return &UnsafeError{Path: p, Problem: fmt.Sprintf("(above the data directory) is writable by group or others (mode %04o), who could replace the data directory", fi.Mode().Perm()),
			Fix: "chmod go-w " + quote(p)}
	}
	return nil
}

// checkEntry checks the data directory itself or something in it.
func checkEntry(p string, fi fs.FileInfo, o owner) error {
	switch t := fi.Mode().Type(); {
	case t&fs.ModeSymlink != 0:
		return &UnsafeError{Path: p, Problem: "is a symbolic link, which chancery does not follow inside its data directory", Fix: "rm " + quote(p)}
	case t != 0 && t != fs.ModeDir && t != fs.ModeSocket:
		return &UnsafeError{Path: p, Problem: fmt.Sprintf("is a %v, not a file, directory or socket chancery made", t), Fix: "rm " + quote(p)}
	}
	if err := checkOwner(p, fi, o); err != nil {
		return err
	}
	if perm := fi.Mode().Perm(); perm&0o022 != 0 {
		return &UnsafeError{Path: p, Problem: fmt.Sprintf("is writable by group or others (mode %04o)", perm), Fix: "chmod go-w " + quote(p)}
	}
	if fi.Mode().IsRegular() && strings.HasSuffix(p, ".key") && fi.Mode().Perm()&0o077 != 0 {
		return &UnsafeError{Path: p, Problem: fmt.Sprintf("is a private key that group or others may read (mode %04o)", fi.Mode().Perm()), Fix: "chmod 600 " + quote(p)}
	}
	return nil
}

func checkOwner(p string, fi fs.FileInfo, o owner) error {
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !ok || o.ok(st.Uid) {
		return nil
	}
	me := userName(o.euid)
	return &UnsafeError{Path: p, Problem: fmt.Sprintf("is owned by %s, not by %s who runs chancery, nor root", userName(int(st.Uid)), me),
		Fix: "chown " + me + " " + quote(p)}
}

// CheckSocket checks the administration socket at path before a client
// connects to it: a socket (not a link), owned by the user or root, that
// group and others may not write (connect to). A missing socket gives an
// error that matches fs.ErrNotExist.
func CheckSocket(path string) error {
	return checkSocket(path, owner{os.Geteuid()})
}

func checkSocket(path string, o owner) error {
	fi, err := os.Lstat(path)
	if err != nil {
		return fmt.Errorf("datadir: %w", err)
	}
	if fi.Mode().Type() != fs.ModeSocket {
		return &UnsafeError{Path: path, Problem: fmt.Sprintf("is not a socket (%v); a manager makes it while it runs", fi.Mode().Type()), Fix: "rm " + quote(path)}
	}
	return checkEntry(path, fi, o)
}

// userName returns the name of user uid, or its number when it has none.
func userName(uid int) string {
	if u, err := user.LookupId(strconv.Itoa(uid)); err == nil && u.Username != "" {
		return u.Username
	}
	return strconv.Itoa(uid)
}

// quote quotes p for a shell when it needs it.
func quote(p string) string {
	if p != "" && strings.Trim(p, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789/._-+:@") == "" {
		return p
	}
	return "'" + strings.ReplaceAll(p, "'", `'\''`) + "'"
}
