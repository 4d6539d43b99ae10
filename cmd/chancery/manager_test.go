package main

import (
	"context"
	"net"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/chancery-pki/chancery/manager"
)

// runTestManager makes a cluster in a fresh directory (short, so that the
// manager's socket path fits), runs its manager on 127.0.0.1 until the test
// ends, and returns the directory, the data directory and the API address.
// ext, when set, gets the directory and returns the external CA endpoint's
// configuration.
func runTestManager(t *testing.T, ext func(dir string) *manager.ExternalCAConfig) (dir, data, addr string) {
	t.Helper()
	dir, err := os.MkdirTemp("", "mgr")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	data = filepath.Join(dir, "m")
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr = ln.Addr().String()
	(&lab{t: t}).cli(false, "init", "--no-run", "--data-dir", data, "--listen-addr", addr, "--advertise-addr", addr)
	var extCfg *manager.ExternalCAConfig
	if ext != nil {
		extCfg = ext(dir)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done, ready := make(chan error, 1), make(chan struct{})
	go func() {
		done <- manager.Run(ctx, manager.Config{DataDir: data, Listener: ln, Logger: quietLogger(), ExternalCA: extCfg,
			CheckpointInterval: time.Hour, Ready: func(string) { close(ready) }})
	}()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("manager: %v", err)
		}
	})
	select {
	case <-ready:
	case err := <-done:
		t.Fatalf("manager: %v", err)
	}
	return dir, data, addr
}
