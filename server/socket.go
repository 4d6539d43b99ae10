package server

import (
	"crypto/rand"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"sync"

	"github.com/chancery-pki/chancery/api"
)

// ListenSocket creates the administration socket in dataDir, owner-only
// (0600), replacing a stale one. The socket is bound in a private (0700)
// directory of its own beside it, given its mode, and only then renamed
// into place, so that D/chancery.sock never exists with another mode, not
// even for a moment, and no other user can connect while it has the
// umask's mode (and whoever connects reaches a listener that is ready).
// Closing the listener removes the socket file, if it is still this
// listener's.
func ListenSocket(dataDir string) (net.Listener, error) {
	sock := filepath.Join(dataDir, api.SocketFile)
	// No longer than api.SocketFile, so that a path that fits in a socket
	// address fits here too.
	dir := filepath.Join(dataDir, ".chs"+rand.Text()[:4])
	if err := os.Mkdir(dir, 0o700); err != nil {
		return nil, fmt.Errorf("server: failed to create the administration socket: %w", err)
	}
	defer os.RemoveAll(dir)
	tmp := filepath.Join(dir, "s")
	ln, err := net.Listen("unix", tmp)
	if err != nil {
		return nil, fmt.Errorf("server: failed to listen on the administration socket: %w", err)
	}
	uln := ln.(*net.UnixListener)
	uln.SetUnlinkOnClose(false)
	fail := func(err error) (net.Listener, error) {
		uln.Close()
		return nil, fmt.Errorf("server: failed to create the administration socket: %w", err)
	}
	if err := os.Chmod(tmp, 0o600); err != nil {
		return fail(err)
	}
	fi, err := os.Lstat(tmp)
	if err != nil {
		return fail(err)
	}
	if err := os.Rename(tmp, sock); err != nil {
		return fail(err)
	}
	return &socketListener{UnixListener: uln, path: sock, fi: fi}, nil
}

// socketListener is the administration socket's listener under its final
// name.
type socketListener struct {
	*net.UnixListener
	path string
	fi   os.FileInfo
	once sync.Once
	err  error
}

// Addr returns the socket's final path.
func (l *socketListener) Addr() net.Addr { return &net.UnixAddr{Name: l.path, Net: "unix"} }

// Close stops listening and removes the socket file, unless another has
// replaced it since. It may be called more than once.
func (l *socketListener) Close() error {
	l.once.Do(func() {
		if fi, err := os.Lstat(l.path); err == nil && os.SameFile(fi, l.fi) {
			os.Remove(l.path)
		}
		l.err = l.UnixListener.Close()
	})
	return l.err
}
