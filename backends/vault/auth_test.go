package vault

import (
	"context"
	"os"
	"testing"
	"time"

	"github.com/chancery-pki/chancery/backends"
	"github.com/chancery-pki/chancery/ca"
	"github.com/chancery-pki/chancery/clock"
)

func clockFake() *clock.Fake { return clock.NewFake(time.Now()) }

// advanceUntil moves clk forward, one renewal wait at a time, until done
// holds for the Signer's login and renewal counts.
func advanceUntil(t *testing.T, clk *clock.Fake, s *Signer, done func(logins, renewals int) bool) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		if done(s.conn.auth.stats()) {
			return
		}
		if time.Now().After(deadline) {
			l, r := s.conn.auth.stats()
			t.Fatalf("after 20s: %d logins, %d renewals", l, r)
		}
		if !clk.BlockUntil(1, 5*time.Second) {
			continue // the loop is busy renewing
		}
		s.conn.auth.mu.Lock()
		ttl := s.conn.auth.ttl
		s.conn.auth.mu.Unlock()
		clk.Advance(ttl*2/3 + time.Second)
		time.Sleep(20 * time.Millisecond)
	}
}

// TestRenewal drives token renewal with a fake clock against real Vault
// tokens.
func TestRenewal(t *testing.T) {
	for _, tc := range []struct {
		name   string
		params map[string]any
		// done is when the test has seen what it wants.
		done func(logins, renewals int) bool
	}{
		// A token that can be renewed is renewed at two thirds of its TTL.
		{"Renewed", map[string]any{"token_ttl": "1h", "token_max_ttl": "24h"},
			func(logins, renewals int) bool { return renewals >= 2 && logins == 1 }},
		// A token at its max TTL is replaced by a new AppRole login.
		{"MaxTTLLogsInAgain", map[string]any{"token_ttl": "60s", "token_max_ttl": "60s"},
			func(logins, renewals int) bool { return logins >= 2 }},
		// A token that cannot be renewed at all is replaced too.
		{"NotRenewable", map[string]any{"token_ttl": "1h", "token_max_ttl": "1h", "token_type": "batch"},
			func(logins, renewals int) bool { return logins >= 2 && renewals == 0 }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			srv := vaultServer(t)
			e := &env{srv: srv, mount: srv.newMount(t)}
			e.role = srv.newAppRole(t, Policy(e.mount), tc.params)
			root, _ := createRoot(t, e.settings(), "")
			clk := clockFake()
			s, err := Open(context.Background(), Config{
				Address: srv.Addr, Mount: e.mount, Issuer: root.IssuerID(), Clock: clk, Retry: fastRetry,
				AppRoleRoleIDFile: e.role.roleIDFile, AppRoleSecretIDFile: e.role.secretIDFile,
			}, root.Chain(), nil)
			if err != nil {
				t.Fatal(err)
			}
			defer s.Close()
			advanceUntil(t, clk, s, tc.done)
			// The token in use works.
			if _, err := s.Sign(context.Background(), nodeRequest(t, s.Chain()[0], ca.RoleWorker, time.Now())); err != nil {
				t.Fatalf("Sign after renewal: %v", err)
			}
		})
	}
}

// TestTokenFileReread: a Signer authenticated from a token file reads the
// file again when its token is refused, as when an agent rotates it.
func TestTokenFileReread(t *testing.T) {
	e, token, file := tokenEnv(t)
	settings := backends.Settings{SettingAddress: e.srv.Addr, SettingMount: e.mount, SettingTokenFile: file}
	s, _ := createRoot(t, settings, "")
	policies := e.srv.write(t, "auth/token/lookup", map[string]any{"token": token}).Data["policies"]
	e.srv.write(t, "auth/token/revoke", map[string]any{"token": token})
	fresh := e.srv.write(t, "auth/token/create", map[string]any{"policies": policies, "no_default_policy": true, "ttl": "1h"}).Auth.ClientToken
	if err := os.WriteFile(file, []byte(fresh), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Sign(context.Background(), nodeRequest(t, s.Chain()[0], ca.RoleWorker, time.Now())); err != nil {
		t.Fatalf("Sign with the rotated token file: %v", err)
	}
}
