// Package etcddev starts real etcd servers for chancery's tests: the etcd
// binary that scripts/install-etcd.sh builds, one member or a cluster of
// several, on 127.0.0.1 with free ports and data in a temporary directory,
// stopped by the caller. Tests that need etcd get the process's shared
// single member with Require, or a cluster of their own with StartForTest;
// both skip the test when the binary is missing, or fail it when CI=true.
//
// It is a test helper: production code never imports it.
package etcddev

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// Version is the etcd release scripts/install-etcd.sh builds.
const Version = "v3.7.3"

// ErrNoBinary means no etcd binary was found.
var ErrNoBinary = errors.New("etcddev: no etcd binary")

// Find returns the etcd binary: $CHANCERY_ETCD_BIN, or where
// scripts/install-etcd.sh puts it.
func Find() (string, error) {
	if p := os.Getenv("CHANCERY_ETCD_BIN"); p != "" {
		if _, err := os.Stat(p); err != nil {
			return "", fmt.Errorf("%w: CHANCERY_ETCD_BIN=%s: %v (run scripts/install-etcd.sh, or unset it)", ErrNoBinary, p, err)
		}
		return p, nil
	}
	cache := os.Getenv("XDG_CACHE_HOME")
	if cache == "" {
		home, err := os.UserHomeDir()
		if err != nil {
			return "", err
		}
		cache = filepath.Join(home, ".cache")
	}
	p := filepath.Join(cache, "chancery", "etcd-"+Version, "etcd")
	if _, err := os.Stat(p); err != nil {
		return "", fmt.Errorf("%w at %s: run scripts/install-etcd.sh (or set CHANCERY_ETCD_BIN)", ErrNoBinary, p)
	}
	return p, nil
}

// Options say what to start. The zero value is one member without TLS.
type Options struct {
	// Members is the number of members: 0 means 1. Use an odd number.
	Members int
	// TLS serves clients over TLS and requires client certificates signed
	// by a CA made for the cluster (see Cluster.TLS).
	TLS bool
	// NoFsync runs etcd with --unsafe-no-fsync: faster, for tests that do
	// not measure or crash the server.
	NoFsync bool
}

// Cluster is a running etcd cluster.
type Cluster struct {
	// Endpoints are the members' client URLs, one per member, in order.
	Endpoints []string
	// TLS holds the files of a cluster started with Options.TLS; nil
	// otherwise.
	TLS *TLSFiles

	dir     string
	members []*member
}

// member is one etcd process.
type member struct {
	name    string
	cmd     *exec.Cmd
	logPath string
	exited  chan struct{}
}

var shared struct {
	once     sync.Once
	cluster  *Cluster
	err      error
	noBinary bool
}

// Require returns the process's shared single-member etcd, starting it on
// first use; call StopShared from TestMain. Without an etcd binary it skips
// t, or fails it when CI=true. Tests sharing it keep to their own key
// prefixes.
func Require(t testing.TB) *Cluster {
	t.Helper()
	shared.once.Do(func() {
		bin, err := Find()
		if err != nil {
			shared.err, shared.noBinary = err, errors.Is(err, ErrNoBinary)
			return
		}
		shared.cluster, shared.err = Start(bin, Options{NoFsync: true})
	})
	if shared.err != nil {
		if os.Getenv("CI") == "true" || !shared.noBinary {
			t.Fatalf("etcd: %v", shared.err)
		}
		t.Skipf("etcd: %v", shared.err)
	}
	return shared.cluster
}

// StopShared stops the shared etcd, if Require started one.
func StopShared() {
	if shared.cluster != nil {
		shared.cluster.Stop()
	}
}

// StartForTest starts a cluster of t's own, stopped when t ends. Without an
// etcd binary it skips t, or fails it when CI=true.
func StartForTest(t testing.TB, opts Options) *Cluster {
	t.Helper()
	bin, err := Find()
	if err != nil {
		if os.Getenv("CI") == "true" || !errors.Is(err, ErrNoBinary) {
			t.Fatalf("etcd: %v", err)
		}
		t.Skipf("etcd: %v", err)
	}
	c, err := Start(bin, opts)
	if err != nil {
		t.Fatalf("etcd: %v", err)
	}
	t.Cleanup(c.Stop)
	return c
}

// Start starts a cluster from the etcd binary bin and waits until every
// member is healthy. Ports are chosen free just before the start, so
// another process may take one meanwhile: Start tries again on new ports a
// few times.
func Start(bin string, opts Options) (*Cluster, error) {
	var lastErr error
	for range 3 {
		c, err := tryStart(bin, opts)
		if err == nil {
			return c, nil
		}
		lastErr = err
	}
	return nil, lastErr
}

func tryStart(bin string, opts Options) (*Cluster, error) {
	n := max(opts.Members, 1)
	ports, err := freePorts(2 * n)
	if err != nil {
		return nil, err
	}
	dir, err := os.MkdirTemp("", "chancery-etcd-")
	if err != nil {
		return nil, err
	}
	c := &Cluster{dir: dir}
	scheme := "http"
	if opts.TLS {
		if c.TLS, err = writeTLSFiles(dir); err != nil {
			os.RemoveAll(dir)
			return nil, err
		}
		scheme = "https"
	}
	var initial []string
	for i := range n {
		initial = append(initial, fmt.Sprintf("m%d=http://127.0.0.1:%d", i, ports[2*i+1]))
		c.Endpoints = append(c.Endpoints, fmt.Sprintf("%s://127.0.0.1:%d", scheme, ports[2*i]))
	}
	token := "chancery-test-" + randomHex(8)
	for i := range n {
		peer := fmt.Sprintf("http://127.0.0.1:%d", ports[2*i+1])
		args := []string{
			"--name", fmt.Sprintf("m%d", i),
			"--data-dir", filepath.Join(dir, fmt.Sprintf("m%d", i)),
			"--listen-client-urls", c.Endpoints[i],
			"--advertise-client-urls", c.Endpoints[i],
			"--listen-peer-urls", peer,
			"--initial-advertise-peer-urls", peer,
			"--initial-cluster", strings.Join(initial, ","),
			"--initial-cluster-state", "new",
			"--initial-cluster-token", token,
			"--log-level", "warn",
		}
		if opts.NoFsync {
			args = append(args, "--unsafe-no-fsync")
		}
		if opts.TLS {
			args = append(args, "--cert-file", c.TLS.ServerCert, "--key-file", c.TLS.ServerKey,
				"--trusted-ca-file", c.TLS.CA, "--client-cert-auth")
		}
		m, err := startMember(bin, fmt.Sprintf("m%d", i), dir, args)
		if err != nil {
			c.Stop()
			return nil, err
		}
		c.members = append(c.members, m)
	}
	for i := range c.members {
		if err := c.waitHealthy(i, 30*time.Second); err != nil {
			c.Stop()
			return nil, err
		}
	}
	return c, nil
}

func startMember(bin, name, dir string, args []string) (*member, error) {
	m := &member{name: name, logPath: filepath.Join(dir, name+".log"), exited: make(chan struct{})}
	logf, err := os.Create(m.logPath)
	if err != nil {
		return nil, err
	}
	m.cmd = exec.Command(bin, args...)
	// None of the caller's ETCD_* settings, which etcd reads as flags.
	m.cmd.Env = []string{"HOME=" + dir, "PATH=" + os.Getenv("PATH")}
	m.cmd.Stdout, m.cmd.Stderr = logf, logf
	m.cmd.SysProcAttr = procAttr()
	if err := m.cmd.Start(); err != nil {
		logf.Close()
		return nil, fmt.Errorf("starting %s: %w", bin, err)
	}
	go func() { m.cmd.Wait(); logf.Close(); close(m.exited) }()
	return m, nil
}

// waitHealthy polls member i's /health until it answers that it is healthy
// (which needs a leader).
func (c *Cluster) waitHealthy(i int, timeout time.Duration) error {
	m := c.members[i]
	client := &http.Client{Timeout: 2 * time.Second}
	if c.TLS != nil {
		var err error
		if client, err = c.TLS.httpClient(); err != nil {
			return err
		}
	}
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) {
		select {
		case <-m.exited:
			return fmt.Errorf("etcd member %s exited: %s", m.name, m.logTail())
		default:
		}
		resp, err := client.Get(c.Endpoints[i] + "/health")
		if err == nil {
			var body [256]byte
			k, _ := resp.Body.Read(body[:])
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK && strings.Contains(string(body[:k]), `"health":"true"`) {
				return nil
			}
		}
		time.Sleep(100 * time.Millisecond)
	}
	return fmt.Errorf("etcd member %s not healthy after %s: %s", m.name, timeout, m.logTail())
}

// logTail returns the end of a member's log.
func (m *member) logTail() string {
	b, _ := os.ReadFile(m.logPath)
	if len(b) > 2000 {
		b = b[len(b)-2000:]
	}
	return string(b)
}

// LogTail returns the end of member i's log.
func (c *Cluster) LogTail(i int) string { return c.members[i].logTail() }

// Kill ends member i at once with SIGKILL, as a crash would; the other
// members keep running.
func (c *Cluster) Kill(i int) {
	m := c.members[i]
	if m.cmd.Process != nil {
		m.cmd.Process.Kill()
		<-m.exited
	}
}

// Stop ends every member and removes the cluster's directory.
func (c *Cluster) Stop() {
	var wg sync.WaitGroup
	for _, m := range c.members {
		wg.Go(func() {
			if m.cmd.Process == nil {
				return
			}
			m.cmd.Process.Signal(os.Interrupt)
			select {
			case <-m.exited:
			case <-time.After(10 * time.Second):
				m.cmd.Process.Kill()
				<-m.exited
			}
		})
	}
	wg.Wait()
	os.RemoveAll(c.dir)
}

// freePorts returns n distinct ports that were free on 127.0.0.1 a moment
// ago.
func freePorts(n int) ([]int, error) {
	var ls []net.Listener
	defer func() {
		for _, l := range ls {
			l.Close()
		}
	}()
	var ports []int
	for range n {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, err
		}
		ls = append(ls, l)
		ports = append(ports, l.Addr().(*net.TCPAddr).Port)
	}
	return ports, nil
}

func randomHex(n int) string {
	b := make([]byte, n)
	rand.Read(b)
	return hex.EncodeToString(b)
}

// StoreEnv is the environment variable that runs the suites of packages
// that make clusters (cluster, server) on etcd: CHANCERY_TEST_STORE=etcd.
const StoreEnv = "CHANCERY_TEST_STORE"

// TestStoreOptions returns the options of an etcd store under a prefix of
// its own on the shared etcd (Require) when CHANCERY_TEST_STORE=etcd, and
// nil otherwise, when tests use the embedded store. Call StopShared from
// TestMain.
func TestStoreOptions(t testing.TB) map[string]string {
	t.Helper()
	switch v := os.Getenv(StoreEnv); v {
	case "", "bbolt":
		return nil
	case "etcd":
		c := Require(t)
		return map[string]string{"endpoints": strings.Join(c.Endpoints, ","), "prefix": "/test-" + randomHex(8) + "/"}
	default:
		t.Fatalf("%s=%q: bbolt or etcd", StoreEnv, v)
		return nil
	}
}
