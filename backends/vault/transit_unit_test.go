package vault

import (
	"crypto"
	"crypto/rsa"
	"encoding/base64"
	"errors"
	"strings"
	"testing"

	"github.com/hashicorp/vault/api"
)

func TestParseTransitSignature(t *testing.T) {
	k := &transitKey{version: 2}
	sig := []byte{0x30, 0x06, 0x02, 0x01, 0x01, 0x02, 0x01, 0x02}
	good := "vault:v2:" + base64.StdEncoding.EncodeToString(sig)
	for _, tc := range []struct {
		name string
		data map[string]any
		want string // substring of the error; "" for success
	}{
		{"Good", map[string]any{"signature": good}, ""},
		{"NoData", nil, "no signature"},
		{"NotString", map[string]any{"signature": 7}, "format"},
		{"NoPrefix", map[string]any{"signature": base64.StdEncoding.EncodeToString(sig)}, "format"},
		{"NoVersionSeparator", map[string]any{"signature": "vault:v2"}, "format"},
		{"OtherVersion", map[string]any{"signature": "vault:v3:" + base64.StdEncoding.EncodeToString(sig)}, "key version 3 signed, not the pinned version 2"},
		{"BadBase64", map[string]any{"signature": "vault:v2:!!!"}, "base64"},
		{"Empty", map[string]any{"signature": "vault:v2:"}, "base64"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var sec *api.Secret
			if tc.data != nil {
				sec = &api.Secret{Data: tc.data}
			}
			got, err := k.parseSignature(sec, "transit/sign/k")
			if tc.want == "" {
				if err != nil || string(got) != string(sig) {
					t.Fatalf("got %x, %v", got, err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.want) || !errors.Is(err, ErrVault) {
				t.Fatalf("error %v, want ErrVault saying %q", err, tc.want)
			}
		})
	}
}

func FuzzParseTransitSignature(f *testing.F) {
	f.Add("vault:v1:MAYCAQECAQI=")
	f.Add("vault:v1:")
	f.Add("vault:v:x")
	f.Fuzz(func(t *testing.T, s string) {
		k := &transitKey{version: 1}
		got, err := k.parseSignature(&api.Secret{Data: map[string]any{"signature": s}}, "p")
		if err == nil && (len(got) == 0 || !strings.HasPrefix(s, "vault:v1:")) {
			t.Fatalf("accepted %q", s)
		}
	})
}

// TestTransitSignRefusesBadOptions: digests transit cannot sign are refused
// before Vault is asked (the key has no connection here).
func TestTransitSignRefusesBadOptions(t *testing.T) {
	k := &transitKey{version: 1}
	for _, tc := range []struct {
		name   string
		digest []byte
		opts   crypto.SignerOpts
		want   string
	}{
		{"NoOpts", make([]byte, 32), nil, "needs a hash"},
		{"SHA1", make([]byte, 20), crypto.SHA1, "cannot sign"},
		{"Unhashed", make([]byte, 10), crypto.Hash(0), "cannot sign"},
		{"ShortDigest", make([]byte, 31), crypto.SHA256, "digest of 31 bytes"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := k.SignContext(t.Context(), nil, tc.digest, tc.opts)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error %v, want %q", err, tc.want)
			}
		})
	}
}

// TestTransitSignRefusesPSS: crypto/x509 never asks for RSA-PSS here, and a
// request for it is refused rather than signed otherwise.
func TestTransitSignRefusesPSS(t *testing.T) {
	k := &transitKey{version: 1, pub: &rsa.PublicKey{}}
	_, err := k.SignContext(t.Context(), nil, make([]byte, 32), &rsa.PSSOptions{Hash: crypto.SHA256})
	if err == nil || !strings.Contains(err.Error(), "RSA-PSS is not supported") {
		t.Errorf("error %v", err)
	}
}

func TestTransitPolicyText(t *testing.T) {
	p := TransitRunPolicy("/team-transit/", "root-key")
	for _, want := range []string{
		`path "team-transit/keys/root-key" {` + "\n" + `  capabilities = ["read"]`,
		`path "team-transit/sign/root-key" {` + "\n" + `  capabilities = ["update"]`,
		`path "auth/token/renew-self"`,
		`path "auth/token/lookup-self"`,
	} {
		if !strings.Contains(p, want) {
			t.Errorf("the run policy lacks %q:\n%s", want, p)
		}
	}
	for _, line := range strings.Split(p, "\n") {
		if strings.HasPrefix(line, "#") {
			continue
		}
		for _, bad := range []string{`"delete"`, `"create"`, "*", "+", "export", "backup", "rotate", "config"} {
			if strings.Contains(line, bad) {
				t.Errorf("the run policy has %q: %s", bad, line)
			}
		}
	}
	if TransitRunPolicy("", "k") != TransitRunPolicy(DefaultTransitMount, "k") {
		t.Error(`TransitRunPolicy("", k) is not the default mount's`)
	}
	for _, bad := range []string{"", "+", "*", "a/b", "a b", `a"b`, "..", "abc*", strings.Repeat("a", 129)} {
		if err := CheckKeyName(bad); err == nil {
			t.Errorf("CheckKeyName(%q) accepted", bad)
		}
		if p := TransitRunPolicy("transit", bad); strings.Contains(p, "\npath ") {
			t.Errorf("TransitRunPolicy(%q) grants:\n%s", bad, p)
		}
	}
	init := TransitPolicy("", "")
	for _, want := range []string{
		`path "transit/keys/chancery-root" {` + "\n" + `  capabilities = ["update", "read", "delete"]` + "\n" +
			`  allowed_parameters = {` + "\n" + `    "allow_plaintext_backup" = [false]` + "\n" + `    "exportable" = [false]`,
		`path "transit/keys/chancery-root/config" {` + "\n" + `  capabilities = ["update"]` + "\n" +
			`  allowed_parameters = {` + "\n" + `    "deletion_allowed" = [true]` + "\n  }",
		`path "transit/sign/chancery-root" {`,
	} {
		if !strings.Contains(init, want) {
			t.Errorf("the init policy lacks %q:\n%s", want, init)
		}
	}
	for _, line := range strings.Split(init, "\n") {
		if !strings.HasPrefix(line, "#") && (strings.Contains(line, "*") || strings.Contains(line, "+")) {
			t.Errorf("the init policy has a wildcard: %s", line)
		}
	}
	if got := TransitPolicy("t", "team-root"); !strings.Contains(got, `path "t/sign/team-root"`) {
		t.Errorf("TransitPolicy pinned to team-root:\n%s", got)
	}
	for _, bad := range []struct{ mount, key string }{{"+", "k"}, {"a/*", "k"}, {"a/../b", "k"}, {"t", "k*"}, {"t", "a/b"}} {
		if p := TransitPolicy(bad.mount, bad.key); strings.Contains(p, "\npath ") {
			t.Errorf("TransitPolicy(%q, %q) grants:\n%s", bad.mount, bad.key, p)
		}
		if p := TransitRunPolicy(bad.mount, bad.key); strings.Contains(p, "\npath ") {
			t.Errorf("TransitRunPolicy(%q, %q) grants:\n%s", bad.mount, bad.key, p)
		}
	}
	for _, bad := range []string{"+", "pki/+", "*", "a/../b", "."} {
		if p := Policy(bad); strings.Contains(p, "\npath ") {
			t.Errorf("Policy(%q) grants:\n%s", bad, p)
		}
		if err := CheckMount(bad); err == nil {
			t.Errorf("CheckMount(%q) accepted", bad)
		}
	}
	if err := CheckMount("team/pki-int"); err != nil {
		t.Error(err)
	}
}

func TestTransitKeyType(t *testing.T) {
	for alg, want := range map[string]string{"": "ecdsa-p256", "P-256": "ecdsa-p256", "p384": "ecdsa-p384", "RSA-3072": "rsa-3072"} {
		if got, err := transitKeyType(alg); err != nil || got != want {
			t.Errorf("transitKeyType(%q) = %q, %v; want %q", alg, got, err, want)
		}
	}
	if _, err := transitKeyType("Ed25519"); !errors.Is(err, ErrConfig) {
		t.Errorf("transitKeyType(Ed25519): %v", err)
	}
}

// TestTransitKeyCheck covers what check refuses that a dev server cannot
// easily produce, such as an imported (BYOK) key.
func TestTransitKeyCheck(t *testing.T) {
	good := func() *transitKeyInfo {
		return &transitKeyInfo{keyType: "ecdsa-p256", supportsSigning: true, latest: 1, public: map[int]string{1: testP256PEM}}
	}
	if _, err := good().check("k", 1); err != nil {
		t.Fatalf("a good key: %v", err)
	}
	for _, tc := range []struct {
		name string
		edit func(*transitKeyInfo)
		want string
	}{
		{"Imported", func(i *transitKeyInfo) { i.imported = true }, "imported"},
		{"Exportable", func(i *transitKeyInfo) { i.exportable = true }, "exportable"},
		{"PlaintextBackup", func(i *transitKeyInfo) { i.allowPlaintextBackup = true }, "plaintext backups"},
		{"CannotSign", func(i *transitKeyInfo) { i.supportsSigning = false }, "cannot sign"},
		{"Ed25519", func(i *transitKeyInfo) { i.keyType = "ed25519" }, "unsupported"},
		{"MinEncryption", func(i *transitKeyInfo) { i.minEncryption = 2 }, "min_encryption_version 2"},
		{"NoVersion", func(i *transitKeyInfo) { delete(i.public, 1) }, "no version 1"},
		{"NotPEM", func(i *transitKeyInfo) { i.public[1] = "garbage" }, "not PEM"},
		{"NotAKey", func(i *transitKeyInfo) {
			i.public[1] = "-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----\n"
		}, "public key"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			info := good()
			tc.edit(info)
			_, err := info.check("k", 1)
			if err == nil || !errors.Is(err, ErrConfig) || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error %v, want ErrConfig saying %q", err, tc.want)
			}
		})
	}
}

const testP256PEM = `-----BEGIN PUBLIC KEY-----
MFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAEEVs/o5+uQbTjL3chynL4wXgUg2R9
q9UU8I5mEovUf86QZ7kOBIjJwqnzD1omageEHWwHdBO6B+dFabmdT9POxg==
-----END PUBLIC KEY-----
`
