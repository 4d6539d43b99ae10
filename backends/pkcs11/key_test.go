//go:build cgo

package pkcs11

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"encoding/hex"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/ThalesIgnite/crypto11"
	"github.com/miekg/pkcs11"

	"github.com/chancery-pki/chancery/signer"
	"github.com/chancery-pki/chancery/softhsm"
)

// TestKeyNeverLeavesToken proves, from the token's own answers, that a
// generated key cannot leave it: its secret value cannot be read
// (CKR_ATTRIBUTE_SENSITIVE), it cannot be wrapped out (CKA_EXTRACTABLE
// false), it never could be (CKA_NEVER_EXTRACTABLE, CKA_ALWAYS_SENSITIVE
// true), and it was made in the token (CKA_LOCAL true).
func TestKeyNeverLeavesToken(t *testing.T) {
	for _, tc := range []struct {
		alg     Algorithm
		secrets []crypto11.AttributeType
	}{
		{P256, []crypto11.AttributeType{crypto11.CkaValue}},
		{P384, []crypto11.AttributeType{crypto11.CkaValue}},
		{RSA3072, []crypto11.AttributeType{crypto11.CkaPrivateExponent, crypto11.CkaPrime1, crypto11.CkaPrime2}},
	} {
		t.Run(string(tc.alg), func(t *testing.T) {
			k, tok := newTestKey(t, tc.alg)
			info := k.Info()
			if info.Algorithm != string(tc.alg) {
				t.Errorf("algorithm = %s, want %s", info.Algorithm, tc.alg)
			}
			for _, a := range []struct {
				name      string
				got, want bool
			}{
				{"CKA_TOKEN", info.Token, true},
				{"CKA_PRIVATE", info.Private, true},
				{"CKA_SENSITIVE", info.Sensitive, true},
				{"CKA_ALWAYS_SENSITIVE", info.AlwaysSensitive, true},
				{"CKA_EXTRACTABLE", info.Extractable, false},
				{"CKA_NEVER_EXTRACTABLE", info.NeverExtractable, true},
				{"CKA_LOCAL", info.Local, true},
				{"CKA_SIGN", info.Sign, true},
			} {
				if a.got != a.want {
					t.Errorf("%s = %t, want %t", a.name, a.got, a.want)
				}
			}
			if !info.NeverLeavesToken() {
				t.Error("NeverLeavesToken() = false")
			}
			if info.TokenLabel != tok.Label || info.Label != "root" || len(info.ID) != 16 {
				t.Errorf("info = %+v", info)
			}

			tk := k.conn.(*tokenKey)
			for _, secret := range tc.secrets {
				attr, err := tk.tc.c11.GetAttribute(tk.key, secret)
				if err == nil {
					t.Errorf("reading attribute %#x succeeded: %x", secret, attr.Value)
					continue
				}
				if !isCKR(err, pkcs11.CKR_ATTRIBUTE_SENSITIVE) {
					t.Errorf("reading attribute %#x: %v, want CKR_ATTRIBUTE_SENSITIVE", secret, err)
				}
			}
			// Signing works, and only through the token.
			digest := sha256.Sum256([]byte("chancery"))
			sig, err := k.Sign(rand.Reader, digest[:], crypto.SHA256)
			if err != nil {
				t.Fatal(err)
			}
			switch pub := k.Public().(type) {
			case *ecdsa.PublicKey:
				if !ecdsa.VerifyASN1(pub, digest[:], sig) {
					t.Error("the token's ECDSA signature does not verify")
				}
			case *rsa.PublicKey:
				if err := rsa.VerifyPKCS1v15(pub, crypto.SHA256, digest[:], sig); err != nil {
					t.Errorf("the token's RSA signature does not verify: %v", err)
				}
			}
		})
	}
}

// TestPKCS11ToolListsKey runs the command the README shows, and checks
// that OpenSC reads the same attributes back.
func TestPKCS11ToolListsKey(t *testing.T) {
	k, tok := newTestKey(t, P256)
	tool, err := exec.LookPath("pkcs11-tool")
	if err != nil {
		if softhsm.InCI() {
			t.Fatal("pkcs11-tool (opensc) is not installed; CI=true, so this is a failure")
		}
		t.Skip("pkcs11-tool (opensc) is not installed")
	}
	cmd := exec.Command(tool, "--module", tok.Module, "--token-label", tok.Label,
		"--login", "--pin", "env:"+PINEnv, "--list-objects", "--type", "privkey")
	cmd.Env = append(os.Environ(), PINEnv+"="+tok.PIN)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("pkcs11-tool: %v\n%s", err, out)
	}
	t.Logf("pkcs11-tool --list-objects --type privkey:\n%s", out)
	for _, want := range []string{
		"Private Key Object; EC",
		"label:      root",
		"ID:         " + hex.EncodeToString(k.Info().ID),
		"Usage:      sign",
		"Access:     sensitive, always sensitive, never extractable, local",
	} {
		if !strings.Contains(string(out), want) {
			t.Errorf("pkcs11-tool's listing lacks %q", want)
		}
	}
	if strings.Contains(string(out), tok.PIN) {
		t.Error("pkcs11-tool's listing shows the PIN")
	}
}

func TestEnsureKeyFindsExisting(t *testing.T) {
	k, tok := newTestKey(t, P384)
	for _, tc := range []struct {
		name string
		uri  string
	}{
		{"ByLabel", tok.URI("root")},
		{"ByID", "pkcs11:token=" + tok.Label + ";id=" + pctEncode(k.Info().ID, func(byte) bool { return false }) + "?module-path=" + tok.Module + "&pin-source=" + tok.PINFile},
		{"ByLabelAndSerial", "pkcs11:token=" + tok.Label + ";serial=" + k.Info().TokenSerial + ";object=root?module-path=" + tok.Module + "&pin-source=" + tok.PINFile},
	} {
		t.Run(tc.name, func(t *testing.T) {
			k2, generated, err := EnsureKey(context.Background(), Config{URI: tc.uri}, RSA3072)
			if err != nil {
				t.Fatal(err)
			}
			defer k2.Close()
			if generated {
				t.Error("EnsureKey generated a key that exists")
			}
			if !signer.SamePublicKey(k2.Public(), k.Public()) {
				t.Error("EnsureKey found another key")
			}
			// The key's URI names it exactly, by label and id.
			u := k2.URI()
			if u.Object != "root" || string(u.ID) != string(k.Info().ID) || u.HasPINValue() {
				t.Errorf("URI() = %s", u)
			}
		})
	}
}

func TestEnsureKeyIDOnly(t *testing.T) {
	tok := softhsm.NewToken(t)
	k, generated, err := EnsureKey(context.Background(), Config{
		URI: "pkcs11:token=" + tok.Label + ";id=%c0%ff%ee?module-path=" + tok.Module + "&pin-source=" + tok.PINFile,
	}, "")
	if err != nil {
		t.Fatal(err)
	}
	defer k.Close()
	if !generated || k.Info().Label != DefaultObjectLabel || hex.EncodeToString(k.Info().ID) != "c0ffee" || k.Info().Algorithm != "P-256" {
		t.Errorf("generated=%v info=%+v", generated, k.Info())
	}
}

// TestModuleThroughSymlink opens one token through two paths of one
// library, at once: crypto11 counts contexts per path string, so without
// canonical paths the second would initialize the library again and fail.
func TestModuleThroughSymlink(t *testing.T) {
	k, tok := newTestKey(t, P256)
	link := filepath.Join(t.TempDir(), "libsofthsm2.so")
	if err := os.Symlink(tok.Module, link); err != nil {
		t.Fatal(err)
	}
	k2, err := OpenKey(context.Background(), Config{URI: "pkcs11:token=" + tok.Label + ";object=root?module-path=" + link + "&pin-source=" + tok.PINFile})
	if err != nil {
		t.Fatal(err)
	}
	defer k2.Close()
	if k2.Info().Module != link {
		t.Errorf("Info().Module = %q, want the URI's %q", k2.Info().Module, link)
	}
	digest := sha256.Sum256([]byte("x"))
	for _, key := range []*Key{k, k2} {
		if _, err := key.Sign(rand.Reader, digest[:], crypto.SHA256); err != nil {
			t.Error(err)
		}
	}
}
