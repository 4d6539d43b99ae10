package main

import (
	"bytes"
	"context"
	"crypto/x509"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/chancery-pki/chancery/backends"
	"github.com/chancery-pki/chancery/backends/vault"
	"github.com/chancery-pki/chancery/ca"
	"github.com/chancery-pki/chancery/certdir"
	"github.com/chancery-pki/chancery/internal/vaultdev"
)

// TestVaultTransitEndToEnd runs a cluster whose root key is in a real
// Vault's transit engine, from the command line: the policy chancery
// prints for init, init, the run policy pinned to the key it created, the
// manager, a manager and a worker joining, and the audit log verified. The
// nodes' certificates are exactly the contract's (DNS names in swarm's
// order), and no root key is anywhere on disk.
func TestVaultTransitEndToEnd(t *testing.T) {
	srv := vaultdev.StartForTest(t)
	root, err := os.MkdirTemp("", "vlt") // short: the manager's socket path must fit
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(root) })
	ctx, cancel := context.WithCancel(context.Background())
	l := &lab{t: t, root: root, ctx: ctx}
	t.Cleanup(func() { cancel(); l.wg.Wait() })
	write := func(path string, data map[string]any) map[string]any {
		t.Helper()
		sec, err := srv.Root.Logical().Write(path, data)
		if err != nil {
			t.Fatalf("vault write %s: %v", path, err)
		}
		if sec == nil {
			return nil
		}
		return sec.Data
	}

	// Vault's side, as the README says: a transit mount, the init policy
	// chancery prints, an AppRole with it.
	write("sys/mounts/transit", map[string]any{"type": "transit"})
	initPolicy, _ := l.cli(false, "vault", "policy", "--vault-engine", "transit")
	write("sys/policies/acl/chancery", map[string]any{"policy": initPolicy})
	write("sys/auth/approle", map[string]any{"type": "approle"})
	write("auth/approle/role/chancery", map[string]any{"token_policies": "chancery", "token_ttl": "1h"})
	roleID, err := srv.Root.Logical().Read("auth/approle/role/chancery/role-id")
	if err != nil {
		t.Fatal(err)
	}
	secretID := write("auth/approle/role/chancery/secret-id", nil)["secret_id"].(string)
	creds := filepath.Join(root, "creds")
	if err := os.Mkdir(creds, 0o700); err != nil {
		t.Fatal(err)
	}
	for name, v := range map[string]string{"role-id": roleID.Data["role_id"].(string), "secret-id": secretID} {
		if err := os.WriteFile(filepath.Join(creds, name), []byte(v), 0o600); err != nil {
			t.Fatal(err)
		}
	}

	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	l.addr = ln.Addr().String()
	out, errOut := l.cli(false, "init", "--no-run", "--hostname", "node1", "--data-dir", l.dir("node1"),
		"--listen-addr", l.addr, "--advertise-addr", l.addr,
		"--vault-addr", srv.Addr, "--vault-engine", "transit",
		"--vault-approle-role-id-file", filepath.Join(creds, "role-id"), "--vault-approle-secret-id-file", filepath.Join(creds, "secret-id"))
	if strings.Contains(out+errOut, secretID) {
		t.Error("init printed the secret ID")
	}
	if want := "chancery vault policy --vault-engine transit --vault-mount transit --vault-key chancery-root --run | vault policy write"; !strings.Contains(out, want) {
		t.Errorf("init does not say how to move to the run policy (%q):\n%s", want, out)
	}

	// The run policy, pinned to the key init created, replaces the init
	// policy before the manager starts.
	keys, err := srv.Root.Logical().List("transit/keys")
	if err != nil || keys == nil {
		t.Fatalf("transit keys: %v", err)
	}
	if names := keys.Data["keys"].([]any); len(names) != 1 || names[0] != "chancery-root" {
		t.Fatalf("transit keys %v, want the one init created, chancery-root", names)
	}
	const key = "chancery-root"
	runPolicy, _ := l.cli(false, "vault", "policy", "--vault-engine", "transit", "--run")
	write("sys/policies/acl/chancery", map[string]any{"policy": runPolicy})

	l.runLeader("node1", ln)
	info, _ := l.cli(false, "info", "--data-dir", l.dir("node1"))
	for _, want := range []string{"  Backend: vault\n", "engine: transit\n", "key: " + key + "\n", "exportable: false\n", "imported: false\n"} {
		if !strings.Contains(info, want) {
			t.Errorf("info lacks %q:\n%s", want, info)
		}
	}

	// A manager and a worker join; their certificates are the contract's.
	for _, tc := range []struct {
		node string
		role ca.Role
	}{{"node2", ca.RoleManager}, {"node3", ca.RoleWorker}} {
		token, _ := l.cli(false, "join-token", "-q", strings.TrimPrefix(string(tc.role), "swarm-"), "--data-dir", l.dir("node1"))
		l.cli(false, "join", "--no-run", "--token", strings.TrimSpace(token), "--hostname", tc.node, "--data-dir", l.dir(tc.node), l.addr)
		chain, err := certdir.In(l.dir(tc.node)).NodeChain()
		if err != nil {
			t.Fatal(err)
		}
		roots, _, err := certdir.In(l.dir(tc.node)).Root()
		if err != nil {
			t.Fatal(err)
		}
		c := chain[0]
		want := []string{string(tc.role), c.Subject.CommonName}
		if tc.role == ca.RoleManager {
			want = append(want, ca.CADNSName)
		}
		if !slices.Equal(c.DNSNames, want) {
			t.Errorf("%s: DNS names %q, want %q in that order", tc.node, c.DNSNames, want)
		}
		pool := x509.NewCertPool()
		pool.AddCert(roots[0])
		if _, err := c.Verify(x509.VerifyOptions{Roots: pool, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}); err != nil {
			t.Errorf("%s: %v", tc.node, err)
		}
	}

	out, _ = l.cli(false, "audit", "verify", "--data-dir", l.dir("node1"))
	// The checkpoint the manager wrote at start is signed by the transit key.
	if !regexp.MustCompile(`audit log OK: \d+ entries verify\n(.|\n)*checkpoints: 1, the last signed by the CA`).MatchString(out) {
		t.Errorf("audit verify:\n%s", out)
	}

	// No root key on disk: only node keys, and nothing holds the secret ID
	// but its own file.
	filepath.WalkDir(root, func(p string, d os.DirEntry, err error) error {
		if err != nil || d.IsDir() || filepath.Dir(p) == creds {
			return nil
		}
		b, _ := os.ReadFile(p)
		if strings.Contains(string(b), "PRIVATE KEY") && filepath.Base(p) != certdir.NodeKeyFile {
			t.Errorf("%s holds a private key", p)
		}
		if strings.Contains(string(b), secretID) {
			t.Errorf("%s holds the AppRole secret ID", p)
		}
		return nil
	})
	k, err := srv.Root.Logical().Read("transit/keys/" + key)
	if err != nil {
		t.Fatal(err)
	}
	if k.Data["exportable"] != false || k.Data["allow_plaintext_backup"] != false {
		t.Errorf("the root key: exportable %v, plaintext backup %v", k.Data["exportable"], k.Data["allow_plaintext_backup"])
	}
}

func TestVaultRunPolicyHint(t *testing.T) {
	for _, tc := range []struct {
		name     string
		settings backends.Settings
		want     string // "" for no hint
	}{
		{"PKI", backends.Settings{vault.SettingMount: "pki", vault.SettingIssuer: "0f3c1c8e-5e1a-4d2b-9f55-6a1f0f2b7c11"},
			"chancery vault policy --vault-mount pki --vault-issuer 0f3c1c8e-5e1a-4d2b-9f55-6a1f0f2b7c11 | vault policy write POLICY_NAME -"},
		{"Transit", backends.Settings{vault.SettingEngine: vault.EngineTransit, vault.SettingMount: "t", vault.SettingKey: "team-root"},
			"chancery vault policy --vault-engine transit --vault-mount t --vault-key team-root --run | vault policy write POLICY_NAME -"},
		{"NoIssuer", backends.Settings{vault.SettingMount: "pki"}, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var out bytes.Buffer
			printVaultRunPolicyHint(&app{stdout: &out}, tc.settings)
			if tc.want == "" {
				if out.Len() != 0 {
					t.Errorf("hint %q, want none", out.String())
				}
				return
			}
			if !strings.Contains(out.String(), tc.want) {
				t.Errorf("hint %q lacks %q", out.String(), tc.want)
			}
			if pki := tc.settings[vault.SettingEngine] != vault.EngineTransit; strings.Contains(out.String(), "sorts the DNS names") != pki {
				t.Errorf("hint %q: the note on DNS name order is for the PKI engine only", out.String())
			}
		})
	}
}
