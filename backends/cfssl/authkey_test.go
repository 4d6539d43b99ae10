package cfssl

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/chancery-pki/chancery/internal/cfsslwire"
	"github.com/chancery-pki/chancery/secretfile"
)

// secretHex is a distinctive auth key: the tests check it never shows.
const secretHex = "5ec2e75ec2e75ec2e75ec2e75ec2e75e"

func TestReadAuthKey(t *testing.T) {
	dir := t.TempDir()
	write := func(name, content string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	// loose writes a key file of mode mode, whatever the umask.
	loose := func(name string, mode os.FileMode) string {
		p := write(name, secretHex+"\n")
		if err := os.Chmod(p, mode); err != nil {
			t.Fatal(err)
		}
		return p
	}
	const env = "CHANCERY_TEST_CFSSL_KEY"
	tests := []struct {
		name    string
		path    string
		envVal  *string
		want    string // hex of the key; empty means an error
		wantErr string
	}{
		{"File", write("ok", secretHex), nil, secretHex, ""},
		{"FileWithNewline", write("nl", secretHex+"\n"), nil, secretHex, ""},
		{"FileWithCRLFAndSpaces", write("crlf", "  "+secretHex+"\r\n"), nil, secretHex, ""},
		{"UpperCaseHex", write("upper", strings.ToUpper(secretHex)), nil, secretHex, ""},
		{"EnvVar", "", ptr(secretHex), secretHex, ""},
		{"FileWinsOverEnv", write("wins", "00ff00ff00ff00ff00ff00ff00ff00ff"), ptr(secretHex), "00ff00ff00ff00ff00ff00ff00ff00ff", ""},
		{"MissingFile", filepath.Join(dir, "nope"), nil, "", "failed to read the auth key file"},
		{"EmptyFile", write("empty", "\n"), nil, "", "the auth key is empty"},
		{"NotHex", write("nothex", "5ec2e7zz"+secretHex), nil, "", "is not hex"},
		{"OddHex", write("odd", secretHex+"5"), nil, "", "is not hex"},
		{"Oversized", write("big", strings.Repeat("00", cfsslwire.MaxAuthKeyFileSize)), nil, "", "larger than"},
		{"EnvUnset", "", nil, "", "is not set"},
		{"EnvEmpty", "", ptr(""), "", "is not set"},
		{"EnvNotHex", "", ptr("x" + secretHex), "", "is not hex"},
		{"TooShort", write("short", "00ff"), nil, "", "use at least 16"},
		// A file that others may read or write is refused before it is
		// read: the error says the fix.
		{"WorldReadable", loose("world", 0o644), nil, "", "chmod 600"},
		{"GroupReadable", loose("group", 0o640), nil, "", "chmod 600"},
		{"ReadOnlyForAll", loose("readonly", 0o444), nil, "", "has mode 0444"},
		{"Directory", dir, nil, "", "not a regular file"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if tc.envVal != nil {
				t.Setenv(env, *tc.envVal)
			} else {
				t.Setenv(env, "")
				os.Unsetenv(env)
			}
			envName := env
			k, err := ReadAuthKey(tc.path, envName)
			if tc.wantErr != "" {
				if err == nil {
					t.Fatalf("ReadAuthKey accepted the key")
				}
				if !strings.Contains(err.Error(), tc.wantErr) || !strings.HasPrefix(err.Error(), "cfssl: ") {
					t.Errorf("error %q does not say %q", err, tc.wantErr)
				}
				assertNoSecret(t, err.Error())
				if unsafe := strings.Contains(tc.wantErr, "mode") || strings.Contains(tc.wantErr, "chmod"); errors.Is(err, secretfile.ErrUnsafe) != unsafe {
					t.Errorf("errors.Is(%v, secretfile.ErrUnsafe) = %v, want %v", err, !unsafe, unsafe)
				}
				return
			}
			if err != nil {
				t.Fatalf("ReadAuthKey: %v", err)
			}
			// The key is only seen through its tokens.
			want, _ := hex.DecodeString(tc.want)
			m := hmac.New(sha256.New, want)
			m.Write([]byte(`{"profile":""}`))
			if !k.Verify([]byte(`{"profile":""}`), m.Sum(nil)) {
				t.Errorf("the key read is not %s", tc.want)
			}
		})
	}
	if _, err := ReadAuthKey("", ""); err == nil {
		t.Error("ReadAuthKey with neither a file nor a variable succeeded")
	}
}

func ptr(s string) *string { return &s }

// assertNoSecret fails t if s shows secretHex or a piece of it long enough
// to matter.
func assertNoSecret(t *testing.T, s string) {
	t.Helper()
	low := strings.ToLower(s)
	for _, piece := range []string{secretHex, secretHex[:8], "5ec2e7"} {
		if strings.Contains(low, piece) {
			t.Errorf("%q shows the auth key", s)
			return
		}
	}
}

func TestAuthKeyIsRedacted(t *testing.T) {
	k, err := ParseAuthKey([]byte(secretHex))
	if err != nil {
		t.Fatal(err)
	}
	cfg := Config{AuthKey: k, AuthKeySource: "$X"}
	for _, format := range []string{"%v", "%+v", "%#v", "%s", "%x", "%X", "%q", "%d"} {
		for _, v := range []any{k, *k, cfg, &cfg} {
			out := fmt.Sprintf(format, v)
			assertNoSecret(t, out)
			if !strings.Contains(out, "[redacted]") || strings.Contains(out, "194") {
				t.Errorf("%s of %T does not redact the key: %s", format, v, out)
			}
		}
	}
	if got := fmt.Sprint(k); got != "[redacted]" {
		t.Errorf("fmt.Sprint(key) = %q, want [redacted]", got)
	}
}

// TestBadAuthKeyRefusedByCFSSL has a real cfssl, whose profiles need the
// auth key, refuse a request made with another key; the error has cfssl's
// message and not the key.
func TestBadAuthKeyRefusedByCFSSL(t *testing.T) {
	srv := startCFSSL(t, serveOptions{Auth: true})
	good := newTestSigner(t, srv, true)
	wrong, err := ParseAuthKey([]byte(secretHex))
	if err != nil {
		t.Fatal(err)
	}
	s, err := New(context.Background(), Config{CAs: []ExternalCA{srv.Spec}, AuthKey: wrong, AuthKeySource: "file /wrong"})
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	defer s.Close()
	req := workerRequest(t, good)
	_, err = s.Sign(context.Background(), req)
	var re *RemoteError
	if !errors.As(err, &re) {
		t.Fatalf("error %v is not cfssl's refusal", err)
	}
	if !strings.Contains(err.Error(), "invalid token") {
		t.Errorf("error %q does not carry cfssl's message \"invalid token\"", err)
	}
	assertNoSecret(t, err.Error())
	if strings.Contains(err.Error(), srv.AuthKeyHex) {
		t.Errorf("error %q shows the CA's auth key", err)
	}
	// The right key gets the certificate.
	if _, err := good.Sign(context.Background(), req); err != nil {
		t.Fatalf("Sign with the right key: %v", err)
	}
	// Without a key, /sign is refused: every profile needs authentication.
	nokey := newTestSigner(t, srv, false)
	if _, err := nokey.Sign(context.Background(), req); err == nil {
		t.Error("cfssl signed through /sign a profile that needs the auth key")
	}
}
