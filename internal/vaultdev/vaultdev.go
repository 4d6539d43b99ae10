// Package vaultdev starts HashiCorp Vault dev servers for chancery's tests:
// the vault binary that scripts/install-vault.sh builds, on 127.0.0.1 with
// free ports, stopped by the caller. Tests that need Vault get the
// process's shared server with Require, which skips them when the binary is
// missing, or fails them when CI=true.
//
// It is a test helper: production code never imports it.
package vaultdev

import (
	"bufio"
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

	"github.com/hashicorp/vault/api"
)

// Version is the Vault release scripts/install-vault.sh builds.
const Version = "v1.19.5"

// ErrNoBinary means no vault binary was found.
var ErrNoBinary = errors.New("vaultdev: no vault binary")

// Find returns the vault binary: $CHANCERY_VAULT_BIN, or where
// scripts/install-vault.sh puts it.
func Find() (string, error) {
	if p := os.Getenv("CHANCERY_VAULT_BIN"); p != "" {
		if _, err := os.Stat(p); err != nil {
			return "", fmt.Errorf("%w: CHANCERY_VAULT_BIN=%s: %v (run scripts/install-vault.sh, or unset it)", ErrNoBinary, p, err)
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
	p := filepath.Join(cache, "chancery", "vault-"+Version, "vault")
	if _, err := os.Stat(p); err != nil {
		return "", fmt.Errorf("%w at %s: run scripts/install-vault.sh (or set CHANCERY_VAULT_BIN)", ErrNoBinary, p)
	}
	return p, nil
}

// Server is a Vault dev server.
type Server struct {
	// Addr is the server's address, http://127.0.0.1:PORT (https with TLS).
	Addr string
	// CAPath is the CA file of a TLS server's certificate; empty without
	// TLS.
	CAPath string
	// RootToken is the dev server's root token.
	RootToken string
	// UnsealKey unseals the server after a seal.
	UnsealKey string
	// Root is an API client with the root token.
	Root *api.Client

	cmd     *exec.Cmd
	logPath string
	exited  chan struct{}
}

var shared struct {
	once     sync.Once
	srv      *Server
	err      error
	noBinary bool
}

// Require returns the process's shared dev server, starting it on first use;
// call Stop on it from TestMain (StopShared). Without a vault binary it
// skips t, or fails it when CI=true.
func Require(t testing.TB) *Server {
	t.Helper()
	shared.once.Do(func() {
		bin, err := Find()
		if err != nil {
			shared.err, shared.noBinary = err, errors.Is(err, ErrNoBinary)
			return
		}
		shared.srv, shared.err = Start(bin, false)
	})
	if shared.err != nil {
		if os.Getenv("CI") == "true" || !shared.noBinary {
			t.Fatalf("vault: %v", shared.err)
		}
		t.Skipf("vault: %v", shared.err)
	}
	return shared.srv
}

// StopShared stops the shared server, if Require started one.
func StopShared() {
	if shared.srv != nil {
		shared.srv.Stop()
	}
}

// freePorts finds a port p with p and p+1 free on 127.0.0.1 (the dev
// server listens on p and its cluster port p+1), at random in a range other
// test servers are unlikely to use.
func freePorts() (int, error) {
	for i := 0; i < 50; i++ {
		var b [2]byte
		rand.Read(b[:])
		p := 20000 + (int(b[0])<<8|int(b[1]))%2000*10
		l1, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", p))
		if err != nil {
			continue
		}
		l2, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", p+1))
		l1.Close()
		if err != nil {
			continue
		}
		l2.Close()
		return p, nil
	}
	return 0, errors.New("vaultdev: no two free adjacent ports found")
}

// RandomHex returns n random bytes in hex, for names and tokens.
func RandomHex(n int) string {
	b := make([]byte, n)
	rand.Read(b)
	return hex.EncodeToString(b)
}

// Start starts `vault server -dev` from bin and waits for it to be ready;
// withTLS serves HTTPS with a CA the server makes (CAPath).
func Start(bin string, withTLS bool) (*Server, error) {
	var lastErr error
	for try := 0; try < 3; try++ {
		s, err := tryStart(bin, withTLS)
		if err == nil {
			return s, nil
		}
		lastErr = err
	}
	return nil, lastErr
}

func tryStart(bin string, withTLS bool) (*Server, error) {
	port, err := freePorts()
	if err != nil {
		return nil, err
	}
	dir, err := os.MkdirTemp("", "chancery-vault-")
	if err != nil {
		return nil, err
	}
	s := &Server{
		Addr:      fmt.Sprintf("http://127.0.0.1:%d", port),
		RootToken: "root-" + RandomHex(12),
		logPath:   filepath.Join(dir, "vault.log"),
		exited:    make(chan struct{}),
	}
	logf, err := os.Create(s.logPath)
	if err != nil {
		return nil, err
	}
	args := []string{"server", "-dev", "-dev-root-token-id=" + s.RootToken,
		fmt.Sprintf("-dev-listen-address=127.0.0.1:%d", port), "-dev-no-store-token"}
	if withTLS {
		args = append(args, "-dev-tls", "-dev-tls-cert-dir="+dir)
		s.Addr = fmt.Sprintf("https://127.0.0.1:%d", port)
		s.CAPath = filepath.Join(dir, "vault-ca.pem")
	}
	s.cmd = exec.Command(bin, args...)
	// A private HOME, and none of the caller's VAULT_* settings.
	s.cmd.Env = []string{"HOME=" + dir, "PATH=" + os.Getenv("PATH")}
	s.cmd.Stdout, s.cmd.Stderr = logf, logf
	s.cmd.SysProcAttr = procAttr()
	if err := s.cmd.Start(); err != nil {
		logf.Close()
		return nil, fmt.Errorf("starting %s: %w", bin, err)
	}
	go func() { s.cmd.Wait(); logf.Close(); close(s.exited) }()

	cfg := api.DefaultConfig()
	cfg.Address = s.Addr
	cfg.MaxRetries = 0
	if withTLS {
		if err := s.waitFile(s.CAPath, 30*time.Second); err != nil {
			s.Stop()
			return nil, err
		}
		if err := cfg.ConfigureTLS(&api.TLSConfig{CACert: s.CAPath}); err != nil {
			s.Stop()
			return nil, err
		}
	}
	if s.Root, err = api.NewClient(cfg); err != nil {
		s.Stop()
		return nil, err
	}
	s.Root.SetToken(s.RootToken)
	s.Root.ClearNamespace()
	if err := s.waitHealthy(30 * time.Second); err != nil {
		s.Stop()
		return nil, err
	}
	if s.UnsealKey, err = s.readUnsealKey(); err != nil {
		s.Stop()
		return nil, err
	}
	return s, nil
}

// waitHealthy polls /v1/sys/health until Vault is initialized and unsealed.
func (s *Server) waitHealthy(timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) {
		select {
		case <-s.exited:
			return fmt.Errorf("vault exited: %s", s.LogTail())
		default:
		}
		resp, err := s.Root.CloneConfig().HttpClient.Get(s.Addr + "/v1/sys/health")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
		}
		time.Sleep(100 * time.Millisecond)
	}
	return fmt.Errorf("vault not healthy after %s: %s", timeout, s.LogTail())
}

// waitFile waits for the server to write a file.
func (s *Server) waitFile(path string, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) {
		if _, err := os.Stat(path); err == nil {
			time.Sleep(100 * time.Millisecond) // written whole
			return nil
		}
		select {
		case <-s.exited:
			return fmt.Errorf("vault exited: %s", s.LogTail())
		case <-time.After(50 * time.Millisecond):
		}
	}
	return fmt.Errorf("vault wrote no %s in %s", path, timeout)
}

// readUnsealKey reads the unseal key from the banner the dev server prints
// once it is up (possibly just after it answers health checks).
func (s *Server) readUnsealKey() (string, error) {
	for i := 0; i < 100; i++ {
		f, err := os.Open(s.logPath)
		if err != nil {
			return "", err
		}
		sc := bufio.NewScanner(f)
		for sc.Scan() {
			if k, ok := strings.CutPrefix(strings.TrimSpace(sc.Text()), "Unseal Key: "); ok {
				f.Close()
				return k, nil
			}
		}
		f.Close()
		time.Sleep(50 * time.Millisecond)
	}
	return "", errors.New("vaultdev: no unseal key in the dev server's output")
}

// LogTail returns the end of the server's log, without its root token or
// unseal key.
func (s *Server) LogTail() string {
	b, _ := os.ReadFile(s.logPath)
	if len(b) > 2000 {
		b = b[len(b)-2000:]
	}
	out := strings.ReplaceAll(string(b), s.RootToken, "[root token]")
	if s.UnsealKey != "" {
		out = strings.ReplaceAll(out, s.UnsealKey, "[unseal key]")
	}
	// The banner's unseal key, also before readUnsealKey has found it.
	lines := strings.Split(out, "\n")
	for i, l := range lines {
		if strings.Contains(l, "Unseal Key:") {
			lines[i] = "Unseal Key: [unseal key]"
		}
	}
	return strings.Join(lines, "\n")
}

// Stop ends the server and removes its directory.
func (s *Server) Stop() {
	if s.cmd.Process != nil {
		s.cmd.Process.Signal(os.Interrupt)
		select {
		case <-s.exited:
		case <-time.After(10 * time.Second):
			s.cmd.Process.Kill()
			<-s.exited
		}
	}
	os.RemoveAll(filepath.Dir(s.logPath))
}

// StartForTest starts a dev server of t's own, stopped when t ends. Without
// a vault binary it skips t, or fails it when CI=true.
func StartForTest(t testing.TB) *Server {
	t.Helper()
	bin, err := Find()
	if err != nil {
		if os.Getenv("CI") == "true" || !errors.Is(err, ErrNoBinary) {
			t.Fatalf("vault: %v", err)
		}
		t.Skipf("vault: %v", err)
	}
	s, err := Start(bin, false)
	if err != nil {
		t.Fatalf("vault: %v", err)
	}
	t.Cleanup(s.Stop)
	return s
}
