package vault

import (
	"strings"
	"testing"

	"github.com/chancery-pki/chancery/backends"
	"github.com/chancery-pki/chancery/signer"
)

func TestNextRootSettings(t *testing.T) {
	const id = "20250102T030405Z-1a2b3c"
	common := backends.Settings{SettingAddress: "https://vault:8200", SettingNamespace: "team", SettingCACert: "/etc/vault-ca.pem",
		SettingAppRoleRoleIDFile: "role-id", SettingAppRoleSecretIDFile: "secret-id"}
	with := func(extra backends.Settings) backends.Settings {
		s := common.Clone()
		for k, v := range extra {
			s[k] = v
		}
		return s
	}
	for _, tc := range []struct {
		name          string
		current, want backends.Settings
		err           string
	}{
		{name: "PKI",
			current: with(backends.Settings{SettingMount: "pki", SettingIssuer: "0f3c1c8e-5e1a-4d2b-9f55-6a1f0f2b7c11", SettingKeyID: "k1", SettingGenerated: "true"}),
			want:    with(backends.Settings{SettingMount: "pki"})},
		{name: "PKIDefaultMount",
			current: backends.Settings{SettingAddress: "http://127.0.0.1:8200", SettingTokenFile: "/run/token", SettingIssuer: "team-root", SettingGenerated: "false"},
			want:    backends.Settings{SettingAddress: "http://127.0.0.1:8200", SettingTokenFile: "/run/token", SettingMount: DefaultMount}},
		{name: "Transit",
			current: with(backends.Settings{SettingEngine: EngineTransit, SettingMount: "transit/team", SettingKey: "team-root", SettingKeyVersion: "3", SettingGenerated: "false"}),
			want:    with(backends.Settings{SettingEngine: EngineTransit, SettingMount: "transit/team", SettingKey: "team-root-" + id})},
		{name: "TransitRotatedBefore",
			current: backends.Settings{SettingAddress: "http://v", SettingEngine: EngineTransit, SettingMount: "transit", SettingKey: "chancery-root-20240101T000000Z-ffee00", SettingKeyVersion: "1"},
			want:    backends.Settings{SettingAddress: "http://v", SettingEngine: EngineTransit, SettingMount: "transit", SettingKey: "chancery-root-" + id}},
		{name: "NoAddress", current: backends.Settings{SettingMount: "pki"}, err: "address is missing"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := Backend{}.NextRootSettings(tc.current, id)
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("NextRootSettings: %v, want an error with %q", err, tc.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if len(got) != len(tc.want) {
				t.Errorf("settings %v, want %v", got, tc.want)
			}
			for k, v := range tc.want {
				if got[k] != v {
					t.Errorf("setting %s = %q, want %q", k, got[k], v)
				}
			}
			// CreateRoot takes them: only settings a user may give.
			for k := range got {
				if !userSettings[k] {
					t.Errorf("setting %s is recorded by CreateRoot, not given to it", k)
				}
			}
		})
	}
	if _, err := (Backend{}).NextRootSettings(backends.Settings{SettingAddress: "http://v", SettingEngine: EngineTransit, SettingKey: "k"}, "a/b"); err == nil {
		t.Error("an id that makes no key name was accepted")
	}
}

// TestNextRootInVault makes a rotation's new root where NextRootSettings
// puts it, as the init policy allows: a new issuer in the PKI mount, a new
// key in the transit mount; the current root stays in Vault.
func TestNextRootInVault(t *testing.T) {
	const id = "20250102T030405Z-1a2b3c"
	t.Run("PKI", func(t *testing.T) {
		e := newEnv(t)
		cur, settings := createRoot(t, e.settings(), "")
		next, err := Backend{}.NextRootSettings(settings, id)
		if err != nil {
			t.Fatal(err)
		}
		s, made := createRoot(t, next, "")
		if s.IssuerID() == cur.IssuerID() || made[SettingKeyID] == settings[SettingKeyID] || made[SettingMount] != e.mount || made[SettingGenerated] != "true" {
			t.Errorf("the next root %v beside %v: want a new issuer and key, generated in mount %s", made, settings, e.mount)
		}
		if signer.SamePublicKey(s.Chain()[0].PublicKey, cur.Chain()[0].PublicKey) {
			t.Fatal("the next root has the current root's key")
		}
		if issuers := e.srv.list(t, e.mount+"/issuers"); len(issuers) != 2 {
			t.Errorf("issuers in the mount: %v, want the current and the next", issuers)
		}
	})
	t.Run("Transit", func(t *testing.T) {
		e := newTransitEnv(t)
		nextKey := DefaultTransitKey + "-" + id
		role := e.srv.newAppRole(t, TransitPolicy(e.mount, "")+TransitPolicy(e.mount, nextKey), nil)
		cur, settings := createTransitRootFor(t, e.settings(role), "")
		next, err := Backend{}.NextRootSettings(settings, id)
		if err != nil {
			t.Fatal(err)
		}
		s, made := createTransitRootFor(t, next, "")
		if made[SettingKey] != nextKey || made[SettingGenerated] != "true" || made[SettingKeyVersion] != "1" {
			t.Errorf("the next root's settings %v: want key %s, generated, version 1", made, nextKey)
		}
		if signer.SamePublicKey(s.Chain()[0].PublicKey, cur.Chain()[0].PublicKey) {
			t.Fatal("the next root has the current root's key")
		}
		if keys := e.keys(t); len(keys) != 2 {
			t.Errorf("transit keys: %v, want the current and the next", keys)
		}
	})
}
