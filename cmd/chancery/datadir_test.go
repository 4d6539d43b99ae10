package main

import (
	"io/fs"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/chancery-pki/chancery/api"
)

// needRoot skips a test that plays a second, unprivileged user unless it
// runs as root.
func needRoot(t *testing.T) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("playing another local user needs root")
	}
}

// TestInitRefusesUnsafeDirectory: init into an existing directory that
// another user owns, or that others may write, is refused with the path and
// the fix, and leaves the directory as it was.
func TestInitRefusesUnsafeDirectory(t *testing.T) {
	tests := []struct {
		name     string
		owner    int
		mode     os.FileMode
		wantFix  string
		needRoot bool
	}{
		{name: "another user's 0777", owner: nobody, mode: 0o777, wantFix: "chown root", needRoot: true},
		{name: "another user's 0700", owner: nobody, mode: 0o700, wantFix: "chown root", needRoot: true},
		{name: "own 0777", owner: -1, mode: 0o777, wantFix: "chmod go-w"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if tc.needRoot {
				needRoot(t)
			}
			data := filepath.Join(t.TempDir(), "data")
			if err := os.Mkdir(data, 0o700); err != nil {
				t.Fatal(err)
			}
			os.Chmod(data, tc.mode)
			if tc.owner >= 0 {
				if err := os.Chown(data, tc.owner, tc.owner); err != nil {
					t.Fatal(err)
				}
			}
			_, errOut := (&lab{t: t}).cli(true, "init", "--no-run", "--data-dir", data, "--listen-addr", "127.0.0.1:0", "--advertise-addr", "127.0.0.1:2378")
			if !strings.Contains(errOut, data) || !strings.Contains(errOut, tc.wantFix+" "+data) {
				t.Errorf("stderr does not name %s and %q:\n%s", data, tc.wantFix, errOut)
			}
			if ents, _ := os.ReadDir(data); len(ents) != 0 {
				t.Errorf("the refused init wrote %v", ents)
			}
		})
	}
}

// TestJoinRefusesPlantedLink: a 'certificates' link planted in a node's
// data directory, to a directory another user owns, makes join refuse
// before anything is sent or written, naming the link.
func TestJoinRefusesPlantedLink(t *testing.T) {
	needRoot(t)
	dir, data, addr := runTestManager(t, nil)
	out, _ := (&lab{t: t}).cli(false, "join-token", "-q", "worker", "--data-dir", data)
	tokenFile := filepath.Join(dir, "worker.token")
	if err := os.WriteFile(tokenFile, []byte(out), 0o600); err != nil {
		t.Fatal(err)
	}
	theirs := filepath.Join(dir, "theirs")
	if err := os.Mkdir(theirs, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Chown(theirs, nobody, nobody); err != nil {
		t.Fatal(err)
	}
	node := filepath.Join(dir, "node")
	if err := os.Mkdir(node, 0o700); err != nil {
		t.Fatal(err)
	}
	link := filepath.Join(node, "certificates")
	if err := os.Symlink(theirs, link); err != nil {
		t.Fatal(err)
	}
	_, errOut := (&lab{t: t}).cli(true, "join", "--no-run", "--token-file", tokenFile, "--data-dir", node, addr)
	if !strings.Contains(errOut, link+" is a symbolic link") || !strings.Contains(errOut, "rm "+link) {
		t.Errorf("stderr does not name the link and the fix:\n%s", errOut)
	}
	if ents, _ := os.ReadDir(theirs); len(ents) != 0 {
		t.Errorf("join wrote into the other user's directory: %v", ents)
	}
	ls, _ := (&lab{t: t}).cli(false, "node", "ls", "-q", "--data-dir", data)
	if n := len(strings.Fields(ls)); n != 1 {
		t.Errorf("the refused join added a node:\n%s", ls)
	}
}

// TestAdminRefusesReplacedSocket: the administration commands refuse a
// socket that is not the manager's (another user's, or one others may
// connect to) and send it nothing, rather than print its answer.
func TestAdminRefusesReplacedSocket(t *testing.T) {
	tests := []struct {
		name     string
		owner    int
		mode     os.FileMode
		wantFix  string
		needRoot bool
	}{
		{name: "another user's", owner: nobody, mode: 0o600, wantFix: "chown root", needRoot: true},
		{name: "open to others", owner: -1, mode: 0o666, wantFix: "chmod go-w"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if tc.needRoot {
				needRoot(t)
			}
			dir, data, _ := runTestManager(t, nil)
			// The impostor: a socket that answers every call with its own
			// token.
			fake := filepath.Join(dir, "fake.sock")
			ln, err := net.Listen("unix", fake)
			if err != nil {
				t.Fatal(err)
			}
			var calls atomic.Int32
			srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				calls.Add(1)
				w.Write([]byte(`{"token":"SWMTKN-1-impostor","advertise_addr":"203.0.113.1:2378"}`))
			})}
			go srv.Serve(ln)
			defer srv.Close()
			os.Chmod(fake, tc.mode)
			if tc.owner >= 0 {
				if err := os.Lchown(fake, tc.owner, tc.owner); err != nil {
					t.Fatal(err)
				}
			}
			sock := filepath.Join(data, api.SocketFile)
			if err := os.Rename(fake, sock); err != nil {
				t.Fatal(err)
			}
			out, errOut := (&lab{t: t}).cli(true, "join-token", "worker", "--data-dir", data)
			if !strings.Contains(errOut, sock) || !strings.Contains(errOut, tc.wantFix+" "+sock) {
				t.Errorf("stderr does not name %s and %q:\n%s", sock, tc.wantFix, errOut)
			}
			if strings.Contains(out, "impostor") || calls.Load() != 0 {
				t.Errorf("the impostor was called %d times; stdout:\n%s", calls.Load(), out)
			}
		})
	}
}

// copyDataDir copies the data directory src to dst with its files' modes,
// which os.CopyFS does not keep (a copied key would be 0644, which the data
// directory checks refuse).
func copyDataDir(t *testing.T, dst, src string) {
	t.Helper()
	if err := os.CopyFS(dst, os.DirFS(src)); err != nil {
		t.Fatal(err)
	}
	err := filepath.WalkDir(src, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		fi, err := d.Info()
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(src, p)
		if err != nil {
			return err
		}
		return os.Chmod(filepath.Join(dst, rel), fi.Mode().Perm())
	})
	if err != nil {
		t.Fatal(err)
	}
}
