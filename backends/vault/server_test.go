package vault

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"testing"

	"github.com/hashicorp/vault/api"

	"github.com/chancery-pki/chancery/internal/vaultdev"
)

// The tests run against a real Vault server in dev mode, built by
// scripts/install-vault.sh and started once for the package (lazily, by the
// first test that needs it), on 127.0.0.1. Each test gets a fresh PKI mount
// and an AppRole limited to Policy(mount). Under CI=true a missing vault
// binary fails the tests; otherwise they are skipped.

// devServer is the package's Vault dev server, with the tests' helpers.
type devServer struct {
	*vaultdev.Server
	approleOnce sync.Once // AppRole enabled
}

var (
	serverOnce sync.Once
	server     *devServer
)

func TestMain(m *testing.M) {
	code := m.Run()
	vaultdev.StopShared()
	os.Exit(code)
}

// vaultServer returns the package's Vault server, starting it on first use.
// Without a vault binary it skips t, or fails it when CI=true.
func vaultServer(t testing.TB) *devServer {
	t.Helper()
	srv := vaultdev.Require(t)
	serverOnce.Do(func() { server = &devServer{Server: srv} })
	return server
}

func randomHex(n int) string { return vaultdev.RandomHex(n) }

// write, read, del and list run root-token requests, failing t.
func (s *devServer) write(t testing.TB, path string, data map[string]any) *api.Secret {
	t.Helper()
	sec, err := s.Root.Logical().WriteWithContext(context.Background(), path, data)
	if err != nil {
		t.Fatalf("vault write %s: %v", path, err)
	}
	return sec
}

func (s *devServer) read(t testing.TB, path string) *api.Secret {
	t.Helper()
	sec, err := s.Root.Logical().ReadWithContext(context.Background(), path)
	if err != nil {
		t.Fatalf("vault read %s: %v", path, err)
	}
	return sec
}

func (s *devServer) list(t testing.TB, path string) []string {
	t.Helper()
	sec, err := s.Root.Logical().ListWithContext(context.Background(), path)
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
func (s *devServer) newMount(t testing.TB) string { return s.newEngine(t, EnginePKI) }

// newTransitMount does the same with a transit engine.
func (s *devServer) newTransitMount(t testing.TB) string { return s.newEngine(t, EngineTransit) }

func (s *devServer) newEngine(t testing.TB, engine string) string {
	t.Helper()
	m := engine + "-" + randomHex(4)
	s.write(t, "sys/mounts/"+m, map[string]any{"type": engine})
	t.Cleanup(func() { s.Root.Logical().Delete("sys/mounts/" + m) })
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
		s.Root.Logical().Delete("auth/approle/role/" + r.name)
		s.Root.Logical().Delete("sys/policies/acl/" + r.policy)
	})
	return r
}

// seal seals the server; unseal unseals it.
func (s *devServer) seal(t testing.TB) {
	t.Helper()
	if err := s.Root.Sys().Seal(); err != nil {
		t.Fatal(err)
	}
}

func (s *devServer) unseal(t testing.TB) {
	t.Helper()
	st, err := s.Root.Sys().Unseal(s.UnsealKey)
	if err != nil {
		t.Fatal(err)
	}
	if st.Sealed {
		t.Fatal("vault is still sealed")
	}
}
