package vault

import (
	"bufio"
	"context"
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

// The tests run against a real Vault server in dev mode, built by
// scripts/install-vault.sh and started once for the package (lazily, by the
// first test that needs it), on 127.0.0.1. Each test gets a fresh PKI mount
// and an AppRole limited to Policy(mount). Under CI=true a missing vault
// binary fails the tests; otherwise they are skipped.

// vaultVersion is the Vault release scripts/install-vault.sh builds.
const vaultVersion = "v1.19.5"

// findVault returns the vault binary: $CHANCERY_VAULT_BIN, or where
// scripts/install-vault.sh puts it.
func findVault() (string, error) {
	if p := os.Getenv("CHANCERY_VAULT_BIN"); p != "" {
		if _, err := os.Stat(p); err != nil {
			return "", fmt.Errorf("CHANCERY_VAULT_BIN=%s: %w (run scripts/install-vault.sh, or unset it)", p, err)
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
	p := filepath.Join(cache, "chancery", "vault-"+vaultVersion, "vault")
	if _, err := os.Stat(p); err != nil {
		return "", fmt.Errorf("no vault binary at %s: run scripts/install-vault.sh (or set CHANCERY_VAULT_BIN)", p)
	}
	return p, nil
}

// devServer is a Vault dev server the tests started.
type devServer struct {
	addr      string
	caPath    string // the CA of a TLS server's certificate
	rootToken string
	unsealKey string
	cmd       *exec.Cmd
	logPath   string
	exited    chan struct{}
	root      *api.Client

	approleOnce sync.Once // AppRole enabled
}

var (
	serverOnce sync.Once
	server     *devServer
	serverErr  error
	noBinary   bool // serverErr is that there is no vault binary
)

func TestMain(m *testing.M) {
	code := m.Run()
	if server != nil {
		server.stop()
	}
	os.Exit(code)
}

// vaultServer returns the package's Vault server, starting it on first use.
// Without a vault binary it skips t, or fails it when CI=true.
func vaultServer(t testing.TB) *devServer {
	t.Helper()
	serverOnce.Do(func() {
		bin, err := findVault()
		if err != nil {
			serverErr, noBinary = err, true
			return
		}
		server, serverErr = startDevServer(bin)
	})
	if serverErr != nil {
		if os.Getenv("CI") == "true" || !noBinary {
			t.Fatalf("vault: %v", serverErr)
		}
		t.Skipf("vault: %v", serverErr)
	}
	return server
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
	return 0, errors.New("no two free adjacent ports found")
}

func randomHex(n int) string {
	b := make([]byte, n)
	rand.Read(b)
	return hex.EncodeToString(b)
}

// startDevServer starts `vault server -dev` and waits for it to be ready;
// withTLS serves HTTPS with a CA the server makes (caPath).
func startDevServer(bin string, withTLS ...bool) (*devServer, error) {
	var lastErr error
	for try := 0; try < 3; try++ {
		s, err := tryStart(bin, len(withTLS) > 0 && withTLS[0])
		if err == nil {
			return s, nil
		}
		lastErr = err
	}
	return nil, lastErr
}

func tryStart(bin string, withTLS bool) (*devServer, error) {
	port, err := freePorts()
	if err != nil {
		return nil, err
	}
	dir, err := os.MkdirTemp("", "chancery-vault-")
	if err != nil {
		return nil, err
	}
	s := &devServer{
		addr:      fmt.Sprintf("http://127.0.0.1:%d", port),
		rootToken: "root-" + randomHex(12),
		logPath:   filepath.Join(dir, "vault.log"),
		exited:    make(chan struct{}),
	}
	logf, err := os.Create(s.logPath)
	if err != nil {
		return nil, err
	}
	args := []string{"server", "-dev", "-dev-root-token-id=" + s.rootToken,
		fmt.Sprintf("-dev-listen-address=127.0.0.1:%d", port), "-dev-no-store-token"}
	if withTLS {
		args = append(args, "-dev-tls", "-dev-tls-cert-dir="+dir)
		s.addr = fmt.Sprintf("https://127.0.0.1:%d", port)
		s.caPath = filepath.Join(dir, "vault-ca.pem")
	}
	s.cmd = exec.Command(bin, args...)
	// A private HOME, and none of the caller's VAULT_* settings.
	env := []string{"HOME=" + dir, "PATH=" + os.Getenv("PATH")}
	s.cmd.Env = env
	s.cmd.Stdout, s.cmd.Stderr = logf, logf
	s.cmd.SysProcAttr = procAttr()
	if err := s.cmd.Start(); err != nil {
		logf.Close()
		return nil, fmt.Errorf("starting %s: %w", bin, err)
	}
	go func() { s.cmd.Wait(); logf.Close(); close(s.exited) }()

	cfg := api.DefaultConfig()
	cfg.Address = s.addr
	cfg.MaxRetries = 0
	if withTLS {
		if err := s.waitFile(s.caPath, 30*time.Second); err != nil {
			s.stop()
			return nil, err
		}
		if err := cfg.ConfigureTLS(&api.TLSConfig{CACert: s.caPath}); err != nil {
			s.stop()
			return nil, err
		}
	}
	if s.root, err = api.NewClient(cfg); err != nil {
		s.stop()
		return nil, err
	}
	s.root.SetToken(s.rootToken)
	s.root.ClearNamespace()
	if err := s.waitHealthy(30 * time.Second); err != nil {
		s.stop()
		return nil, err
	}
	if s.unsealKey, err = s.readUnsealKey(); err != nil {
		s.stop()
		return nil, err
	}
	return s, nil
}

// waitHealthy polls /v1/sys/health until Vault is initialized and unsealed.
func (s *devServer) waitHealthy(timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) {
		select {
		case <-s.exited:
			return fmt.Errorf("vault exited: %s", s.logTail())
		default:
		}
		resp, err := s.root.CloneConfig().HttpClient.Get(s.addr + "/v1/sys/health")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
		}
		time.Sleep(100 * time.Millisecond)
	}
	return fmt.Errorf("vault not healthy after %s: %s", timeout, s.logTail())
}

// waitFile waits for the server to write a file.
func (s *devServer) waitFile(path string, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) {
		if _, err := os.Stat(path); err == nil {
			time.Sleep(100 * time.Millisecond) // written whole
			return nil
		}
		select {
		case <-s.exited:
			return fmt.Errorf("vault exited: %s", s.logTail())
		case <-time.After(50 * time.Millisecond):
		}
	}
	return fmt.Errorf("vault wrote no %s in %s", path, timeout)
}

// readUnsealKey reads the unseal key from the banner the dev server prints
// once it is up (possibly just after it answers health checks).
func (s *devServer) readUnsealKey() (string, error) {
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
	return "", errors.New("no unseal key in the dev server's output")
}

// logTail returns the end of the server's log, without its root token.
func (s *devServer) logTail() string {
	b, _ := os.ReadFile(s.logPath)
	if len(b) > 2000 {
		b = b[len(b)-2000:]
	}
	out := strings.ReplaceAll(string(b), s.rootToken, "[root token]")
	if s.unsealKey != "" {
		out = strings.ReplaceAll(out, s.unsealKey, "[unseal key]")
	}
	return out
}

// stop ends the server and removes its directory.
func (s *devServer) stop() {
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

// write, read, del and list run root-token requests, failing t.
func (s *devServer) write(t testing.TB, path string, data map[string]any) *api.Secret {
	t.Helper()
	sec, err := s.root.Logical().WriteWithContext(context.Background(), path, data)
	if err != nil {
		t.Fatalf("vault write %s: %v", path, err)
	}
	return sec
}

func (s *devServer) read(t testing.TB, path string) *api.Secret {
	t.Helper()
	sec, err := s.root.Logical().ReadWithContext(context.Background(), path)
	if err != nil {
		t.Fatalf("vault read %s: %v", path, err)
	}
	return sec
}

func (s *devServer) list(t testing.TB, path string) []string {
	t.Helper()
	sec, err := s.root.Logical().ListWithContext(context.Background(), path)
	if err != nil {
		t.Fatalf("vault list %s: %v", path, err)
	}
	var out []string
	if sec != nil {
		keys, _ := sec.Data["keys"].([]any)
		for _, k := range keys {
			out = append(out, fmt.Sprint(k))
		}
	}
	return out
}

// newMount enables a PKI engine at a fresh random path, disabled when the
// test ends.
func (s *devServer) newMount(t testing.TB) string {
	t.Helper()
	m := "pki-" + randomHex(4)
	s.write(t, "sys/mounts/"+m, map[string]any{"type": "pki"})
	t.Cleanup(func() { s.root.Logical().Delete("sys/mounts/" + m) })
	return m
}

// appRole is an AppRole whose credentials are in files, as chancery reads
// them.
type appRole struct {
	name, policy               string
	roleIDFile, secretIDFile   string
	roleID, secretID, accessor string
}

// newAppRole creates a policy from hcl and an AppRole with it, and writes
// the role ID and a secret ID to files in a temporary directory.
func (s *devServer) newAppRole(t testing.TB, hcl string, params map[string]any) *appRole {
	t.Helper()
	s.approleOnce.Do(func() {
		s.write(t, "sys/auth/approle", map[string]any{"type": "approle"})
	})
	r := &appRole{name: "chancery-" + randomHex(4), policy: "chancery-" + randomHex(4)}
	s.write(t, "sys/policies/acl/"+r.policy, map[string]any{"policy": hcl})
	data := map[string]any{"token_policies": []string{r.policy}, "token_ttl": "20m", "token_max_ttl": "1h"}
	for k, v := range params {
		data[k] = v
	}
	s.write(t, "auth/approle/role/"+r.name, data)
	r.roleID = s.read(t, "auth/approle/role/"+r.name+"/role-id").Data["role_id"].(string)
	sec := s.write(t, "auth/approle/role/"+r.name+"/secret-id", nil)
	r.secretID = sec.Data["secret_id"].(string)
	r.accessor = sec.Data["secret_id_accessor"].(string)
	dir := t.TempDir()
	r.roleIDFile, r.secretIDFile = filepath.Join(dir, "role-id"), filepath.Join(dir, "secret-id")
	for f, v := range map[string]string{r.roleIDFile: r.roleID, r.secretIDFile: r.secretID} {
		if err := os.WriteFile(f, []byte(v+"\n"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	t.Cleanup(func() {
		s.root.Logical().Delete("auth/approle/role/" + r.name)
		s.root.Logical().Delete("sys/policies/acl/" + r.policy)
	})
	return r
}

// seal seals the server; unseal unseals it.
func (s *devServer) seal(t testing.TB) {
	t.Helper()
	if err := s.root.Sys().Seal(); err != nil {
		t.Fatal(err)
	}
}

func (s *devServer) unseal(t testing.TB) {
	t.Helper()
	st, err := s.root.Sys().Unseal(s.unsealKey)
	if err != nil {
		t.Fatal(err)
	}
	if st.Sealed {
		t.Fatal("vault is still sealed")
	}
}
