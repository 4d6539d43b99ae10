package secretfile

import (
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
)

func TestRead(t *testing.T) {
	dir := t.TempDir()
	tests := []struct {
		name    string
		content string
		mode    os.FileMode
		owner   int // -1: the running user
		want    string
		wantErr string // substring; "" means no error
		unsafe  bool
	}{
		{name: "0600", content: "SWMTKN-1-abc\n", mode: 0o600, owner: -1, want: "SWMTKN-1-abc"},
		{name: "0400", content: "  tok  \n", mode: 0o400, owner: -1, want: "tok"},
		{name: "group readable", content: "tok", mode: 0o640, owner: -1, wantErr: "chmod 600", unsafe: true},
		{name: "other readable", content: "tok", mode: 0o604, owner: -1, wantErr: "chmod 600", unsafe: true},
		{name: "group writable", content: "tok", mode: 0o620, owner: -1, wantErr: "mode 0620", unsafe: true},
		{name: "another owner", content: "tok", mode: 0o600, owner: 65534, wantErr: "chown", unsafe: true},
		{name: "empty", content: "\n", mode: 0o600, owner: -1, wantErr: "is empty"},
		{name: "too large", content: strings.Repeat("x", MaxSize+1), mode: 0o600, owner: -1, wantErr: "larger than"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if tc.owner >= 0 && os.Geteuid() != 0 {
				t.Skip("giving a file to another user needs root")
			}
			p := filepath.Join(dir, strings.ReplaceAll(tc.name, " ", "-"))
			if err := os.WriteFile(p, []byte(tc.content), 0o600); err != nil {
				t.Fatal(err)
			}
			if err := os.Chmod(p, tc.mode); err != nil {
				t.Fatal(err)
			}
			if tc.owner >= 0 {
				if err := os.Chown(p, tc.owner, tc.owner); err != nil {
					t.Fatal(err)
				}
			}
			got, err := Read(p)
			if tc.wantErr == "" {
				if err != nil || got != tc.want {
					t.Fatalf("Read = %q, %v; want %q", got, err, tc.want)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) || !strings.Contains(err.Error(), p) {
				t.Fatalf("Read = %q, %v; want an error naming %s and %q", got, err, p, tc.wantErr)
			}
			if errors.Is(err, ErrUnsafe) != tc.unsafe {
				t.Errorf("errors.Is(%v, ErrUnsafe) = %v", err, !tc.unsafe)
			}
			if strings.Contains(err.Error(), "tok") {
				t.Errorf("the error shows the secret: %v", err)
			}
		})
	}
}

func TestReadNotRegular(t *testing.T) {
	dir := t.TempDir()
	if _, err := Read(dir); err == nil || !strings.Contains(err.Error(), "not a regular file") {
		t.Fatalf("Read(a directory) = %v", err)
	}
	if _, err := Read(filepath.Join(dir, "missing")); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("Read(missing) = %v", err)
	}
}

// TestOpen checks that Open hands back the checked file itself, positioned
// at its start, and refuses what Read refuses, with the same errors.
func TestOpen(t *testing.T) {
	dir := t.TempDir()
	fifo := filepath.Join(dir, "fifo")
	if err := syscall.Mkfifo(fifo, 0o600); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name    string
		mode    os.FileMode // 0: no such file
		path    string      // instead of a new file
		wantErr string      // substring; "" means no error
		unsafe  bool
	}{
		{name: "0600", mode: 0o600},
		{name: "0400", mode: 0o400},
		{name: "world readable", mode: 0o644, wantErr: "run 'chmod 600 ", unsafe: true},
		{name: "group readable", mode: 0o640, wantErr: "mode 0640", unsafe: true},
		{name: "world writable", mode: 0o602, wantErr: "chmod 600", unsafe: true},
		// Opened without blocking: a FIFO with no writer is refused, not
		// waited on.
		{name: "fifo", path: fifo, wantErr: "not a regular file"},
		{name: "directory", path: dir, wantErr: "not a regular file"},
		{name: "missing", path: filepath.Join(dir, "missing"), wantErr: "no such file"},
	}
	const secret = "s3cr3t-value"
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			p := tc.path
			if p == "" {
				p = filepath.Join(dir, strings.ReplaceAll(tc.name, " ", "-"))
				if err := os.WriteFile(p, []byte(secret), 0o600); err != nil {
					t.Fatal(err)
				}
				if err := os.Chmod(p, tc.mode); err != nil {
					t.Fatal(err)
				}
			}
			f, err := Open(p)
			if tc.wantErr != "" {
				if f != nil {
					f.Close()
				}
				if err == nil || f != nil || !strings.Contains(err.Error(), tc.wantErr) || !strings.Contains(err.Error(), p) {
					t.Fatalf("Open = %v, %v; want no file and an error naming %s and %q", f, err, p, tc.wantErr)
				}
				if errors.Is(err, ErrUnsafe) != tc.unsafe {
					t.Errorf("errors.Is(%v, ErrUnsafe) = %v", err, !tc.unsafe)
				}
				if strings.Contains(err.Error(), secret) {
					t.Errorf("the error shows the secret: %v", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			defer f.Close()
			b, err := io.ReadAll(f)
			if err != nil || string(b) != secret {
				t.Fatalf("reading the opened file = %q, %v; want %q", b, err, secret)
			}
		})
	}
}
