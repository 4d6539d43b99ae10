//go:build cgo

package softhsm

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/miekg/pkcs11"
)

func TestMain(m *testing.M) { os.Exit(Main(m)) }

// login opens the module, finds the token by label, and logs in with the
// PIN read from tok.PINFile.
func login(t *testing.T, p *pkcs11.Ctx, tok *Token) {
	t.Helper()
	pin, err := os.ReadFile(tok.PINFile)
	if err != nil {
		t.Fatal(err)
	}
	if string(pin) != tok.PIN+"\n" {
		t.Fatalf("PIN file holds %q", pin)
	}
	slots, err := p.GetSlotList(true)
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range slots {
		ti, err := p.GetTokenInfo(s)
		if err != nil || ti.Label != tok.Label {
			continue
		}
		sh, err := p.OpenSession(s, pkcs11.CKF_SERIAL_SESSION)
		if err != nil {
			t.Fatal(err)
		}
		defer p.CloseSession(sh)
		if err := p.Login(sh, pkcs11.CKU_USER, tok.PIN); err != nil {
			t.Fatalf("login with the token's PIN: %v", err)
		}
		if err := p.Logout(sh); err != nil {
			t.Fatal(err)
		}
		return
	}
	t.Fatalf("token %q not found", tok.Label)
}

// TestNewTokenFinalized makes tokens while the module is not initialized
// in the process (softhsm2-util makes them), and checks that the module
// sees them when initialized.
func TestNewTokenFinalized(t *testing.T) {
	a, b := NewToken(t), NewToken(t)
	if a.Label == b.Label || a.PIN == b.PIN {
		t.Error("two tokens share a label or a PIN")
	}
	if got := os.Getenv(ConfEnv); got != ConfigPath() || !strings.HasPrefix(got, os.TempDir()) {
		t.Errorf("%s = %q, want the private configuration %q", ConfEnv, got, ConfigPath())
	}
	if fi, err := os.Stat(a.PINFile); err != nil || fi.Mode().Perm() != 0o600 {
		t.Errorf("PIN file: %v, %v", fi, err)
	}
	p := pkcs11.New(a.Module)
	defer p.Destroy()
	if err := p.Initialize(); err != nil {
		t.Fatal(err)
	}
	defer p.Finalize()
	login(t, p, a)
	login(t, p, b)
}

// TestNewTokenInitialized makes a token while the module is initialized in
// the process, and checks that the running module sees it at once.
func TestNewTokenInitialized(t *testing.T) {
	module := Require(t)
	NewToken(t) // sets up the configuration before the module is initialized
	p := pkcs11.New(module)
	defer p.Destroy()
	if err := p.Initialize(); err != nil {
		t.Fatal(err)
	}
	defer p.Finalize()
	tok := NewToken(t)
	login(t, p, tok)
	twin1, twin2 := NewTokenLabeled(t, "twin"), NewTokenLabeled(t, "twin")
	if twin1.Label != twin2.Label {
		t.Fatal("labels differ")
	}
	login(t, p, twin1)
}

func TestTokenURI(t *testing.T) {
	tok := &Token{Module: "/m.so", Label: "L", PINFile: "/p"}
	for _, tc := range []struct {
		query []string
		want  string
	}{
		{nil, "pkcs11:token=L;object=root?module-path=/m.so&pin-source=/p"},
		{[]string{"pin-env=X"}, "pkcs11:token=L;object=root?module-path=/m.so&pin-env=X"},
		{[]string{"pin-value=1234"}, "pkcs11:token=L;object=root?module-path=/m.so&pin-value=1234"},
	} {
		if got := tok.URI("root", tc.query...); got != tc.want {
			t.Errorf("URI(%q) = %q, want %q", tc.query, got, tc.want)
		}
	}
}

func TestWriteConfig(t *testing.T) {
	dir := t.TempDir()
	conf, err := WriteConfig(dir)
	if err != nil {
		t.Fatal(err)
	}
	body, err := os.ReadFile(conf)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(body), "directories.tokendir = "+filepath.Join(dir, "tokens")+"\n") {
		t.Errorf("configuration:\n%s", body)
	}
	if fi, err := os.Stat(filepath.Join(dir, "tokens")); err != nil || !fi.IsDir() || fi.Mode().Perm() != 0o700 {
		t.Errorf("token directory: %v, %v", fi, err)
	}
}

// TestNewTokenScript runs new-token.sh, as a developer would, and checks
// with softhsm2-util and pkcs11-tool that the token exists in the private
// configuration only.
func TestNewTokenScript(t *testing.T) {
	module := Require(t)
	for _, tool := range []string{"bash", "softhsm2-util", "pkcs11-tool"} {
		if _, err := exec.LookPath(tool); err != nil {
			if InCI() {
				t.Fatalf("%s is not installed; CI=true, so this is a failure", tool)
			}
			t.Skipf("%s is not installed", tool)
		}
	}
	dir := filepath.Join(t.TempDir(), "hsm")
	run := func(args ...string) (string, error) {
		cmd := exec.Command("bash", append([]string{"new-token.sh"}, args...)...)
		cmd.Env = append(os.Environ(), ModuleEnv+"="+module)
		out, err := cmd.CombinedOutput()
		return string(out), err
	}
	out, err := run("-d", dir, "-l", "script-token")
	if err != nil {
		t.Fatalf("new-token.sh: %v\n%s", err, out)
	}
	conf := filepath.Join(dir, "softhsm2.conf")
	pinFile := filepath.Join(dir, "script-token.pin")
	for _, want := range []string{
		"export SOFTHSM2_CONF=" + conf + "\n",
		"pkcs11:token=script-token;object=chancery-root?module-path=" + module + "&pin-source=" + pinFile,
	} {
		if !strings.Contains(out, want) {
			t.Errorf("new-token.sh printed\n%s\nwithout %q", out, want)
		}
	}
	pin, err := os.ReadFile(pinFile)
	if err != nil {
		t.Fatal(err)
	}
	list := exec.Command("pkcs11-tool", "--module", module, "--token-label", "script-token",
		"--login", "--pin", strings.TrimSpace(string(pin)), "--list-objects")
	list.Env = append(os.Environ(), ConfEnv+"="+conf)
	if out, err := list.CombinedOutput(); err != nil {
		t.Fatalf("pkcs11-tool cannot log in to the new token: %v\n%s", err, out)
	}
	if out, err := run("-d", dir, "-l", "script-token"); err == nil || !strings.Contains(out, "already exists") {
		t.Errorf("a second token with the same label: %v\n%s", err, out)
	}
	if out, err := run("-d", dir, "-l", "bad/label"); err == nil || !strings.Contains(out, "escaping") {
		t.Errorf("a label that needs escaping: %v\n%s", err, out)
	}
}
