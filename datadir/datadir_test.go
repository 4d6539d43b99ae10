package datadir

import (
	"errors"
	"io/fs"
	"net"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
)

const nobody = 65534

func mkdir(t testing.TB, p string, mode os.FileMode) {
	t.Helper()
	if err := os.Mkdir(p, mode); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(p, mode); err != nil {
		t.Fatal(err)
	}
}

func write(t testing.TB, p string, mode os.FileMode) {
	t.Helper()
	if err := os.WriteFile(p, []byte("x"), mode); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(p, mode); err != nil {
		t.Fatal(err)
	}
}

// good makes a data directory as chancery makes it.
func good(t testing.TB, d string) {
	t.Helper()
	mkdir(t, d, 0o700)
	mkdir(t, filepath.Join(d, "certificates"), 0o755)
	write(t, filepath.Join(d, "certificates", "swarm-node.key"), 0o600)
	write(t, filepath.Join(d, "certificates", "swarm-node.crt"), 0o644)
	write(t, filepath.Join(d, "chancery.db"), 0o600)
}

func TestCheck(t *testing.T) {
	root := os.Geteuid() == 0
	tests := []struct {
		name     string
		needRoot bool
		// setup makes the data directory at d (in a 0700 directory) and
		// returns the path that must be named, "" if none.
		setup   func(t *testing.T, d string) string
		wantFix string
	}{
		{name: "as chancery makes it", setup: func(t *testing.T, d string) string { good(t, d); return "" }},
		{name: "missing", setup: func(t *testing.T, d string) string { return "" }},
		{name: "world-writable", setup: func(t *testing.T, d string) string { mkdir(t, d, 0o777); return d }, wantFix: "chmod go-w"},
		{name: "group-writable", setup: func(t *testing.T, d string) string { mkdir(t, d, 0o770); return d }, wantFix: "chmod go-w"},
		{name: "subdirectory writable", setup: func(t *testing.T, d string) string {
			good(t, d)
			p := filepath.Join(d, "certificates")
			os.Chmod(p, 0o757)
			return p
		}, wantFix: "chmod go-w"},
		{name: "file writable", setup: func(t *testing.T, d string) string {
			good(t, d)
			p := filepath.Join(d, "certificates", "swarm-node.crt")
			os.Chmod(p, 0o666)
			return p
		}, wantFix: "chmod go-w"},
		{name: "key readable", setup: func(t *testing.T, d string) string {
			good(t, d)
			p := filepath.Join(d, "certificates", "swarm-node.key")
			os.Chmod(p, 0o644)
			return p
		}, wantFix: "chmod 600"},
		{name: "symlink inside", setup: func(t *testing.T, d string) string {
			mkdir(t, d, 0o700)
			p := filepath.Join(d, "certificates")
			if err := os.Symlink(t.TempDir(), p); err != nil {
				t.Fatal(err)
			}
			return p
		}, wantFix: "rm"},
		{name: "fifo inside", setup: func(t *testing.T, d string) string {
			good(t, d)
			p := filepath.Join(d, "chancery.sock")
			if err := syscall.Mkfifo(p, 0o600); err != nil {
				t.Fatal(err)
			}
			return p
		}, wantFix: "rm"},
		{name: "data directory is a link", setup: func(t *testing.T, d string) string {
			real := d + "-real"
			good(t, real)
			if err := os.Symlink(real, d); err != nil {
				t.Fatal(err)
			}
			return ""
		}},
		{name: "link to a missing directory", setup: func(t *testing.T, d string) string {
			if err := os.Symlink(d+"-gone", d); err != nil {
				t.Fatal(err)
			}
			return d
		}, wantFix: "rm"},
		{name: "under a writable directory", setup: func(t *testing.T, d string) string {
			p := filepath.Dir(d)
			os.Chmod(p, 0o777)
			return p
		}, wantFix: "chmod go-w"},
		{name: "under a sticky directory", setup: func(t *testing.T, d string) string {
			os.Chmod(filepath.Dir(d), 0o777|fs.ModeSticky)
			good(t, d)
			return ""
		}},
		{name: "owned by another user", needRoot: true, setup: func(t *testing.T, d string) string {
			mkdir(t, d, 0o700)
			os.Chown(d, nobody, nobody)
			return d
		}, wantFix: "chown root"},
		{name: "file owned by another user", needRoot: true, setup: func(t *testing.T, d string) string {
			good(t, d)
			p := filepath.Join(d, "certificates", "swarm-root-ca.crt")
			write(t, p, 0o644)
			os.Chown(p, nobody, nobody)
			return p
		}, wantFix: "chown root"},
		{name: "under another user's directory", needRoot: true, setup: func(t *testing.T, d string) string {
			p := filepath.Dir(d)
			os.Chown(p, nobody, nobody)
			return p
		}, wantFix: "chown root"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if tc.needRoot && !root {
				t.Skip("giving files to another user needs root")
			}
			parent := filepath.Join(t.TempDir(), "p")
			mkdir(t, parent, 0o700)
			d := filepath.Join(parent, "data")
			bad := tc.setup(t, d)
			err := Check(d)
			if bad == "" {
				if err != nil {
					t.Fatalf("Check: %v", err)
				}
				return
			}
			var ue *UnsafeError
			if !errors.As(err, &ue) || !errors.Is(err, ErrUnsafe) {
				t.Fatalf("Check = %v, want an UnsafeError", err)
			}
			if ue.Path != bad || !strings.HasPrefix(ue.Fix, tc.wantFix+" ") || !strings.Contains(ue.Fix, bad) {
				t.Errorf("Check = %+v, want %s named and a fix %q", ue, bad, tc.wantFix)
			}
			if !strings.Contains(err.Error(), bad) || !strings.Contains(err.Error(), ue.Fix) {
				t.Errorf("the message %q does not name the path and the fix", err)
			}
		})
	}
}

func TestCheckSocket(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "d")
	mkdir(t, dir, 0o700)
	sock := filepath.Join(dir, "s")
	ln, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	os.Chmod(sock, 0o600)
	if err := CheckSocket(sock); err != nil {
		t.Fatalf("CheckSocket(a good socket): %v", err)
	}
	os.Chmod(sock, 0o666)
	if err := CheckSocket(sock); !errors.Is(err, ErrUnsafe) {
		t.Errorf("CheckSocket(0666) = %v", err)
	}
	os.Chmod(sock, 0o600)
	if os.Geteuid() == 0 {
		os.Lchown(sock, nobody, nobody)
		if err := CheckSocket(sock); !errors.Is(err, ErrUnsafe) || !strings.Contains(err.Error(), "chown") {
			t.Errorf("CheckSocket(another user's) = %v", err)
		}
	}
	f := filepath.Join(dir, "f")
	write(t, f, 0o600)
	if err := CheckSocket(f); !errors.Is(err, ErrUnsafe) {
		t.Errorf("CheckSocket(a file) = %v", err)
	}
	if err := CheckSocket(filepath.Join(dir, "none")); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("CheckSocket(missing) = %v", err)
	}
}

func TestQuote(t *testing.T) {
	for in, want := range map[string]string{"/var/lib/chancery": "/var/lib/chancery", "/a b": "'/a b'", "/it's": `'/it'\''s'`} {
		if got := quote(in); got != want {
			t.Errorf("quote(%q) = %q, want %q", in, got, want)
		}
	}
}
