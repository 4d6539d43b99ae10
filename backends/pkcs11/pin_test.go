package pkcs11

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/chancery-pki/chancery/secretfile"
)

func TestResolvePIN(t *testing.T) {
	dir := t.TempDir()
	write := func(name, content string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	plain := write("plain", "1234")
	newline := write("newline", "1234\n")
	crlf := write("crlf", "1234\r\n")
	twoLines := write("two", "1234\n\n")
	spaces := write("spaces", " 12 34 \n")
	empty := write("empty", "")
	onlyNewline := write("nl", "\n")
	big := write("big", strings.Repeat("P", MaxPINFileSize+1))
	maxed := write("max", strings.Repeat("P", MaxPINFileSize))
	env := map[string]string{"HSM_PIN": "from-env", PINEnv: "from-default-env", "EMPTY": ""}
	lookup := func(k string) (string, bool) { v, ok := env[k]; return v, ok }
	noEnv := func(string) (string, bool) { return "", false }

	for _, tc := range []struct {
		name   string
		uri    string
		lookup func(string) (string, bool)
		want   string
		from   string
		err    error
	}{
		{"PINValue", "pkcs11:token=T?pin-value=12%2034", lookup, "12 34", "pin-value", nil},
		{"File", "pkcs11:token=T?pin-source=" + plain, lookup, "1234", plain, nil},
		{"FileNewline", "pkcs11:token=T?pin-source=" + newline, lookup, "1234", newline, nil},
		{"FileCRLF", "pkcs11:token=T?pin-source=" + crlf, lookup, "1234", crlf, nil},
		{"FileOneLineEndingOnly", "pkcs11:token=T?pin-source=" + twoLines, lookup, "1234\n", twoLines, nil},
		{"FileSpacesKept", "pkcs11:token=T?pin-source=" + spaces, lookup, " 12 34 ", spaces, nil},
		{"FileURI", "pkcs11:token=T?pin-source=file://" + newline, lookup, "1234", newline, nil},
		{"FileURILocalhost", "pkcs11:token=T?pin-source=file://localhost" + newline, lookup, "1234", newline, nil},
		{"FileAtCap", "pkcs11:token=T?pin-source=" + maxed, lookup, strings.Repeat("P", MaxPINFileSize), maxed, nil},
		{"FileTooBig", "pkcs11:token=T?pin-source=" + big, lookup, "", "", ErrNoPIN},
		{"FileEmpty", "pkcs11:token=T?pin-source=" + empty, lookup, "", "", ErrNoPIN},
		{"FileOnlyNewline", "pkcs11:token=T?pin-source=" + onlyNewline, lookup, "", "", ErrNoPIN},
		{"FileMissing", "pkcs11:token=T?pin-source=" + filepath.Join(dir, "absent"), lookup, "", "", ErrNoPIN},
		{"FileURIRemoteHost", "pkcs11:token=T?pin-source=file://host/etc/pin", lookup, "", "", ErrInvalidURI},
		{"Env", "pkcs11:token=T?pin-env=HSM_PIN", lookup, "from-env", "$HSM_PIN", nil},
		{"EnvUnset", "pkcs11:token=T?pin-env=NOPE", lookup, "", "", ErrNoPIN},
		{"EnvEmpty", "pkcs11:token=T?pin-env=EMPTY", lookup, "", "", ErrNoPIN},
		{"DefaultEnv", "pkcs11:token=T", lookup, "from-default-env", "$" + PINEnv, nil},
		{"NoPINAnywhere", "pkcs11:token=T", noEnv, "", "", nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			u, err := ParseURI(tc.uri)
			if err != nil {
				t.Fatal(err)
			}
			pin, from, err := resolvePIN(u, tc.lookup)
			if tc.err != nil {
				if !errors.Is(err, tc.err) {
					t.Fatalf("resolvePIN: %v, want %v", err, tc.err)
				}
				// (Not digits: the temporary directory's name has some.)
				if strings.Contains(err.Error(), "PPPPPPPP") {
					t.Errorf("the error shows the file's contents: %v", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if pin != tc.want {
				t.Errorf("PIN = %q, want %q", pin, tc.want)
			}
			if !strings.Contains(string(from), tc.from) {
				t.Errorf("from = %q, want it to mention %q", from, tc.from)
			}
		})
	}
}

func TestAbsPINSource(t *testing.T) {
	dir := t.TempDir()
	t.Chdir(dir)
	for _, tc := range []struct{ in, want string }{
		{"pin", filepath.Join(dir, "pin")},
		{"sub/pin", filepath.Join(dir, "sub/pin")},
		{"/etc/pin", "/etc/pin"},
		{"file:///etc/pin", "file:///etc/pin"},
		{"", ""},
	} {
		u := &URI{PINSource: tc.in}
		got, err := absPINSource(u)
		if err != nil {
			t.Fatal(err)
		}
		if got.PINSource != tc.want {
			t.Errorf("absPINSource(%q) = %q, want %q", tc.in, got.PINSource, tc.want)
		}
	}
}

// TestPINFileRefused checks that a pin-source file others may read or
// write, or that is not a regular file, is refused before it is read, with
// an error that names the file and the fix and never shows the PIN.
func TestPINFileRefused(t *testing.T) {
	dir := t.TempDir()
	const pin = "PIN-8675309-secret"
	fifo := filepath.Join(dir, "fifo")
	if err := syscall.Mkfifo(fifo, 0o600); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name   string
		mode   os.FileMode
		path   string // instead of a new file of mode mode
		want   string
		unsafe bool
	}{
		{name: "WorldReadable", mode: 0o644, want: "chmod 600", unsafe: true},
		{name: "GroupReadable", mode: 0o640, want: "chmod 600", unsafe: true},
		{name: "GroupWritable", mode: 0o620, want: "mode 0620", unsafe: true},
		{name: "OthersOnly", mode: 0o604, want: "chmod 600", unsafe: true},
		{name: "FIFO", path: fifo, want: "not a regular file"},
		{name: "Directory", path: dir, want: "not a regular file"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := tc.path
			if p == "" {
				p = filepath.Join(dir, tc.name)
				if err := os.WriteFile(p, []byte(pin+"\n"), 0o600); err != nil {
					t.Fatal(err)
				}
				if err := os.Chmod(p, tc.mode); err != nil {
					t.Fatal(err)
				}
			}
			u, err := ParseURI("pkcs11:token=T?pin-source=" + p)
			if err != nil {
				t.Fatal(err)
			}
			got, _, err := resolvePIN(u, func(string) (string, bool) { return "", false })
			if err == nil {
				t.Fatalf("resolvePIN = %q, want an error", got)
			}
			if !errors.Is(err, ErrNoPIN) || errors.Is(err, secretfile.ErrUnsafe) != tc.unsafe {
				t.Errorf("errors.Is(%v, ErrNoPIN) = %v, errors.Is(ErrUnsafe) = %v; want true, %v",
					err, errors.Is(err, ErrNoPIN), errors.Is(err, secretfile.ErrUnsafe), tc.unsafe)
			}
			if msg := err.Error(); !strings.Contains(msg, tc.want) || !strings.Contains(msg, p) || strings.Contains(msg, pin) {
				t.Errorf("error %q: want it to name %s and say %q, and not show the PIN", msg, p, tc.want)
			}
			var e *Error
			if !errors.As(err, &e) || e.Hint() == "" {
				t.Errorf("error %v: want a *Error with advice", err)
			}
		})
	}
}
