package pkcs11

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
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
