//go:build cgo

package softhsm

import (
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/miekg/pkcs11"
)

// Token is a fresh SoftHSM2 token in the process's private configuration.
type Token struct {
	// Module is the SoftHSM2 module's path.
	Module string
	// Label is the token's label, unique in the process unless the test
	// chose it.
	Label string
	// PIN and SOPIN are the user and security officer PINs: random, so
	// that a test can look for them in errors and logs.
	PIN, SOPIN string
	// PINFile holds PIN and a newline, mode 0600, in the test's temporary
	// directory.
	PINFile string
}

// NewToken makes a fresh token with a random label and random PINs. It
// skips the test when SoftHSM2 is missing, or fails it under CI=true.
func NewToken(t testing.TB) *Token {
	t.Helper()
	return NewTokenLabeled(t, "chancery-"+randomHex(t, 6))
}

// NewTokenLabeled makes a fresh token labeled label (at most 32 bytes).
// Labels need not be unique: this makes two tokens with one label for a
// test that needs them.
func NewTokenLabeled(t testing.TB, label string) *Token {
	t.Helper()
	module := Require(t)
	if err := setup(module); err != nil {
		t.Fatal(err)
	}
	tok := &Token{Module: module, Label: label, PIN: "pin-" + randomHex(t, 8), SOPIN: "so-" + randomHex(t, 8)}
	proc.mu.Lock()
	err := createToken(module, tok)
	proc.mu.Unlock()
	if err != nil {
		t.Fatal(err)
	}
	tok.PINFile = filepath.Join(t.TempDir(), "pin")
	if err := os.WriteFile(tok.PINFile, []byte(tok.PIN+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	return tok
}

// URI returns the RFC 7512 URI of the key labeled object in the token, with
// the module's path and the PIN file. Extra query attributes, such as
// "pin-env=NAME", replace pin-source when one starts with "pin-".
func (tok *Token) URI(object string, query ...string) string {
	q := "module-path=" + tok.Module
	pin := "&pin-source=" + tok.PINFile
	for _, a := range query {
		if len(a) > 4 && a[:4] == "pin-" {
			pin = ""
		}
	}
	for _, a := range query {
		q += "&" + a
	}
	return "pkcs11:token=" + tok.Label + ";object=" + object + "?" + q + pin
}

// createToken initializes a token in the free slot and sets its user PIN.
// When the module is initialized in this process, that goes through the
// module, which sees new tokens only that way; otherwise softhsm2-util
// does it and the module sees the token at its next C_Initialize.
func createToken(module string, tok *Token) error {
	p := pkcs11.New(module)
	if p == nil {
		return fmt.Errorf("softhsm: cannot load %s", module)
	}
	defer p.Destroy()
	if _, err := p.GetInfo(); err == nil {
		err := createInProcess(p, tok)
		if err == nil {
			return nil
		}
		if pe, ok := err.(pkcs11.Error); !ok || pe != pkcs11.CKR_CRYPTOKI_NOT_INITIALIZED {
			return err
		}
		// The module was finalized meanwhile: softhsm2-util it is.
	}
	out, err := exec.Command("softhsm2-util", "--init-token", "--free",
		"--label", tok.Label, "--so-pin", tok.SOPIN, "--pin", tok.PIN).CombinedOutput()
	if err != nil {
		return fmt.Errorf("softhsm: softhsm2-util --init-token failed: %v: %s", err, out)
	}
	return nil
}

func createInProcess(p *pkcs11.Ctx, tok *Token) error {
	slots, err := p.GetSlotList(true)
	if err != nil {
		return err
	}
	free, found := uint(0), false
	for _, s := range slots {
		ti, err := p.GetTokenInfo(s)
		if err == nil && ti.Flags&pkcs11.CKF_TOKEN_INITIALIZED == 0 {
			free, found = s, true
			break
		}
	}
	if !found {
		return fmt.Errorf("softhsm: no free slot")
	}
	if err := p.InitToken(free, tok.SOPIN, tok.Label); err != nil {
		return err
	}
	// The new token moved to a slot of its own; the free slot is new.
	slots, err = p.GetSlotList(true)
	if err != nil {
		return err
	}
	for _, s := range slots {
		ti, err := p.GetTokenInfo(s)
		if err != nil || ti.Label != tok.Label || ti.Flags&pkcs11.CKF_USER_PIN_INITIALIZED != 0 {
			continue
		}
		sh, err := p.OpenSession(s, pkcs11.CKF_SERIAL_SESSION|pkcs11.CKF_RW_SESSION)
		if err != nil {
			return err
		}
		defer p.CloseSession(sh)
		if err := p.Login(sh, pkcs11.CKU_SO, tok.SOPIN); err != nil {
			return err
		}
		defer p.Logout(sh)
		return p.InitPIN(sh, tok.PIN)
	}
	return fmt.Errorf("softhsm: the token labeled %q vanished after C_InitToken", tok.Label)
}

func randomHex(t testing.TB, n int) string {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return hex.EncodeToString(b)
}
