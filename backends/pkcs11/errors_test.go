//go:build cgo

package pkcs11

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/miekg/pkcs11"

	"github.com/chancery-pki/chancery/backends"
	"github.com/chancery-pki/chancery/hint"
	"github.com/chancery-pki/chancery/softhsm"
)

// wrongPIN is distinctive, so that the tests can look for it in messages.
const wrongPIN = "Wrong-PIN-31337"

// TestErrors triggers every failure to open a key, against a real token,
// and checks that each matches its sentinel, says what to do, and never
// shows the right or the wrong PIN.
func TestErrors(t *testing.T) {
	tok := softhsm.NewToken(t)
	twin1 := softhsm.NewTokenLabeled(t, "chancery-twin")
	softhsm.NewTokenLabeled(t, "chancery-twin")
	logger, logs := captureLogs()
	ctx := context.Background()

	// A key in tok, and two keys sharing one label.
	k, _, err := EnsureKey(ctx, Config{URI: tok.URI("root"), Logger: logger}, P256)
	if err != nil {
		t.Fatal(err)
	}
	k.Close()
	for _, id := range []string{"%01", "%02"} {
		k, _, err := EnsureKey(ctx, Config{URI: "pkcs11:token=" + tok.Label + ";object=dup;id=" + id + "?module-path=" + tok.Module + "&pin-source=" + tok.PINFile, Logger: logger}, P256)
		if err != nil {
			t.Fatal(err)
		}
		k.Close()
	}

	dir := t.TempDir()
	wrongFile := filepath.Join(dir, "wrong-pin")
	notAModule := filepath.Join(dir, "libnot-a-module.so")
	for name, content := range map[string]string{wrongFile: wrongPIN + "\n", notAModule: "not an ELF file"} {
		if err := os.WriteFile(name, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	t.Setenv("WRONG_PIN", wrongPIN)
	t.Setenv("RIGHT_PIN", tok.PIN)
	t.Setenv(PINEnv, "")
	uri := func(path, query string) string {
		return "pkcs11:" + path + "?module-path=" + tok.Module + query
	}

	for _, tc := range []struct {
		name string
		uri  string
		kind error
		says []string
	}{
		{"ModuleMissing", "pkcs11:token=T;object=root?module-path=/nonexistent/softhsm/libsofthsm2.so&pin-value=" + tok.PIN,
			ErrModuleNotFound, []string{"does not exist", "apt-get install softhsm2"}},
		{"ModuleNotALibrary", "pkcs11:token=T;object=root?module-path=" + notAModule + "&pin-value=" + tok.PIN,
			ErrModuleNotFound, []string{"cannot be loaded as a PKCS#11 module", "module-path"}},
		{"TokenMissing", uri("token=no-such-token;object=root", "&pin-source="+tok.PINFile),
			ErrTokenNotFound, []string{`label "no-such-token"`, "tokens present", tok.Label, "--list-token-slots"}},
		{"SerialMismatch", uri("token="+tok.Label+";serial=0000;object=root", "&pin-source="+tok.PINFile),
			ErrTokenNotFound, []string{`serial "0000"`}},
		{"TokenAmbiguous", uri("token=chancery-twin;object=root", "&pin-source="+twin1.PINFile),
			ErrAmbiguous, []string{"2 tokens", "serial="}},
		{"WrongPINValue", uri("token="+tok.Label+";object=root", "&pin-value="+wrongPIN),
			ErrWrongPIN, []string{"refused the PIN from the URI's pin-value", "CKR_PIN_INCORRECT", "check the PIN"}},
		{"WrongPINFile", uri("token="+tok.Label+";object=root", "&pin-source="+wrongFile),
			ErrWrongPIN, []string{"refused the PIN from the pin-source file " + wrongFile}},
		{"WrongPINEnv", uri("token="+tok.Label+";object=root", "&pin-env=WRONG_PIN"),
			ErrWrongPIN, []string{"refused the PIN from $WRONG_PIN"}},
		{"NoPIN", uri("token="+tok.Label+";object=root", ""),
			ErrNoPIN, []string{"needs a user PIN", "pin-source=FILE", PINEnv}},
		{"PINEnvUnset", uri("token="+tok.Label+";object=root", "&pin-env=UNSET_PIN"),
			ErrNoPIN, []string{"$UNSET_PIN, which is not set"}},
		{"PINFileMissing", uri("token="+tok.Label+";object=root", "&pin-source="+filepath.Join(dir, "absent")),
			ErrNoPIN, []string{"failed to read the PIN file"}},
		{"KeyMissing", uri("token="+tok.Label+";object=absent", "&pin-env=RIGHT_PIN"),
			ErrKeyNotFound, []string{`no private key with label "absent"`, "object= and id="}},
		{"KeyIDMissing", uri("token="+tok.Label+";object=root;id=%ff", "&pin-env=RIGHT_PIN"),
			ErrKeyNotFound, []string{`label "root" and id ff`}},
		{"KeyAmbiguous", uri("token="+tok.Label+";object=dup", "&pin-env=RIGHT_PIN"),
			ErrAmbiguous, []string{"2 private keys", "add id=", "pkcs11-tool"}},
		{"BadURI", "pkcs11:token=T;object=root?module-path=/m.so&pin-value=" + wrongPIN + "&pin-source=/p",
			ErrInvalidURI, []string{"contradict"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			k, err := OpenKey(ctx, Config{URI: tc.uri, Logger: logger})
			if err == nil {
				k.Close()
				t.Fatal("OpenKey succeeded")
			}
			checkError(t, err, tc.kind, tc.says, tok.PIN, wrongPIN)

			// CreateRoot reaches the same errors through the registry.
			b, _ := backends.Get(Name)
			if tc.kind != ErrKeyNotFound && tc.kind != ErrAmbiguous {
				_, _, err := b.CreateRoot(ctx, backends.CreateRootRequest{Settings: backends.Settings{SettingURI: tc.uri}, Now: time.Now()})
				if err == nil {
					t.Fatal("CreateRoot succeeded")
				}
				if tc.kind != ErrNoPIN || tc.name == "PINFileMissing" {
					checkError(t, err, tc.kind, nil, tok.PIN, wrongPIN)
				}
			}
		})
	}
	if s := logs.String(); strings.Contains(s, tok.PIN) || strings.Contains(s, wrongPIN) {
		t.Errorf("the logs show a PIN:\n%s", s)
	}
	// A failed open leaves the token usable.
	k, err = OpenKey(ctx, Config{URI: tok.URI("root")})
	if err != nil {
		t.Fatal(err)
	}
	k.Close()
}

func checkError(t *testing.T, err error, kind error, says []string, pins ...string) {
	t.Helper()
	msg := shown(err)
	t.Log(msg)
	if !errors.Is(err, kind) {
		t.Errorf("error %q does not match %v", msg, kind)
	}
	if !strings.HasPrefix(err.Error(), "pkcs11: ") {
		t.Errorf("error %q lacks the pkcs11: prefix", msg)
	}
	for _, s := range says {
		if !strings.Contains(msg, s) {
			t.Errorf("error %q does not say %q", msg, s)
		}
	}
	for _, pin := range pins {
		if strings.Contains(msg, pin) || strings.Contains(fmt.Sprintf("%+v", err), pin) || strings.Contains(fmt.Sprintf("%#v", err), pin) {
			t.Errorf("error shows a PIN: %q", msg)
		}
	}
}

// shown is what a user sees of err: its message, then its hints.
func shown(err error) string {
	s := err.Error()
	for _, h := range hint.All(err) {
		s += "\nhint: " + h
	}
	return s
}

func TestRedact(t *testing.T) {
	inner := &Error{Kind: ErrWrongPIN, Msg: "module said PIN 4711 is wrong", Err: pkcs11.Error(pkcs11.CKR_PIN_INCORRECT)}
	err := redact(inner, "4711")
	if strings.Contains(err.Error(), "4711") {
		t.Errorf("redact left the PIN: %v", err)
	}
	if !errors.Is(err, ErrWrongPIN) || !isCKR(err, pkcs11.CKR_PIN_INCORRECT) {
		t.Errorf("redact broke the error chain: %v", err)
	}
	if e := errors.New("fine"); redact(e, "4711") != e || redact(e, "") != e || redact(nil, "4711") != nil {
		t.Error("redact changed an error without the PIN")
	}
}

func TestSessionLost(t *testing.T) {
	for _, tc := range []struct {
		err  error
		want bool
	}{
		{pkcs11.Error(pkcs11.CKR_SESSION_HANDLE_INVALID), true},
		{pkcs11.Error(pkcs11.CKR_USER_NOT_LOGGED_IN), true},
		{pkcs11.Error(pkcs11.CKR_DEVICE_REMOVED), true},
		{pkcs11.Error(pkcs11.CKR_TOKEN_NOT_PRESENT), true},
		{pkcs11.Error(pkcs11.CKR_CRYPTOKI_NOT_INITIALIZED), true},
		{fmt.Errorf("wrapped: %w", pkcs11.Error(pkcs11.CKR_SESSION_CLOSED)), true},
		{causer{pkcs11.Error(pkcs11.CKR_KEY_HANDLE_INVALID)}, true},
		{pkcs11.Error(pkcs11.CKR_MECHANISM_INVALID), false},
		{pkcs11.Error(pkcs11.CKR_PIN_INCORRECT), false},
		{errors.New("context is closed"), false},
		{nil, false},
	} {
		if got := sessionLost(tc.err); got != tc.want {
			t.Errorf("sessionLost(%v) = %v, want %v", tc.err, got, tc.want)
		}
	}
}

// causer wraps an error the github.com/pkg/errors way, as crypto11 does.
type causer struct{ err error }

func (c causer) Error() string { return "crypto11: " + c.err.Error() }
func (c causer) Cause() error  { return c.err }

// TestErrorHint checks that an error's advice is its Hint, said once: on
// a line of its own where it is shown, not in the message.
func TestErrorHint(t *testing.T) {
	for _, tc := range []struct {
		err       *Error
		msg, hint string
	}{
		{&Error{Kind: ErrWrongPIN, Msg: `token "T" refused the PIN`, Err: pkcs11.Error(pkcs11.CKR_PIN_INCORRECT), Advice: "check the PIN"},
			`pkcs11: token "T" refused the PIN: pkcs11: 0xA0: CKR_PIN_INCORRECT`, "check the PIN"},
		{&Error{Kind: ErrKeyNotFound, Msg: "no private key"}, "pkcs11: no private key", ""},
	} {
		if tc.err.Error() != tc.msg || tc.err.Hint() != tc.hint {
			t.Errorf("message %q, hint %q; want %q, %q", tc.err, tc.err.Hint(), tc.msg, tc.hint)
		}
		var want []string
		if tc.hint != "" {
			want = []string{tc.hint}
		}
		if got := hint.All(fmt.Errorf("opening the root: %w", tc.err)); !slices.Equal(got, want) {
			t.Errorf("hint.All = %q, want %q", got, want)
		}
	}
}
