package secretfile

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
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
