package ca

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/hex"
	"errors"
	"math/big"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// tokenTestRoot returns the PEM of a new self-signed ECDSA P-256 root.
func tokenTestRoot(t testing.TB, cn string) []byte {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: cn},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(time.Hour),
		IsCA:                  true,
		BasicConstraintsValid: true,
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
	if err != nil {
		t.Fatal(err)
	}
	c, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return EncodeCertificatesPEM(c)
}

// Token parts, valid unless said otherwise.
const (
	testDigest = "40bggaq4ho5oqnunucvcqxtd8511hezah7vcspq7srqqiefsf7"
	testSecret = "3a8mwf0cz2vbmxzs6i1o3w8ev"
	testToken  = "SWMTKN-1-" + testDigest + "-" + testSecret
)

func TestGenerateJoinToken(t *testing.T) {
	if TokenLength != 85 {
		t.Errorf("TokenLength = %d, want 85", TokenLength)
	}
	root := tokenTestRoot(t, "swarm-ca")
	tok1, err := GenerateJoinToken(root, rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tok2, err := GenerateJoinToken(root, rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	for _, tok := range []string{tok1, tok2} {
		if len(tok) != 85 {
			t.Errorf("len(%q) = %d, want 85", tok, len(tok))
		}
		if !strings.HasPrefix(tok, "SWMTKN-1-") {
			t.Errorf("token %q does not start with SWMTKN-1-", tok)
		}
		jt, err := ParseJoinToken(tok)
		if err != nil {
			t.Fatalf("ParseJoinToken(%q): %v", tok, err)
		}
		if jt.String() != tok {
			t.Errorf("round trip: %q became %q", tok, jt.String())
		}
		if jt.Digest != RootDigest(root) || jt.Digest != sha256.Sum256(root) {
			t.Errorf("digest = %x, want sha256 of the root PEM", jt.Digest)
		}
		if err := jt.CheckRoot(root); err != nil {
			t.Errorf("CheckRoot on its own root: %v", err)
		}
	}
	if tok1[:60] != tok2[:60] {
		t.Errorf("two tokens for the same root differ before the secret: %q, %q", tok1, tok2)
	}
	if tok1[60:] == tok2[60:] {
		t.Errorf("two tokens share a secret: %q", tok1)
	}
}

func TestGenerateJoinTokenSecret(t *testing.T) {
	tests := []struct {
		rand []byte
		want string
	}{
		{make([]byte, 16), strings.Repeat("0", 25)},
		{bytes.Repeat([]byte{0xff}, 16), "f5lxx1zz5pnorynqglhzmsp33"},
	}
	for _, tt := range tests {
		tok, err := GenerateJoinToken([]byte("root"), bytes.NewReader(tt.rand))
		if err != nil {
			t.Fatal(err)
		}
		if got := tok[len(tok)-25:]; got != tt.want {
			t.Errorf("secret from %x = %q, want %q", tt.rand, got, tt.want)
		}
	}
	if _, err := GenerateJoinToken([]byte("root"), bytes.NewReader(make([]byte, 8))); err == nil ||
		!strings.HasPrefix(err.Error(), "ca: ") {
		t.Errorf("short reader: err = %v, want a ca: error", err)
	}
}

func TestJoinTokenDigestVectors(t *testing.T) {
	dir := filepath.Join("..", "testdata", "vectors", "join-token-digest")
	files, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, f := range files {
		if f.IsDir() {
			continue
		}
		n++
		t.Run(f.Name(), func(t *testing.T) {
			data, err := os.ReadFile(filepath.Join(dir, f.Name()))
			if err != nil {
				t.Fatal(err)
			}
			head, pemBytes, ok := bytes.Cut(data, []byte("\n\n"))
			want, ok2 := strings.CutPrefix(string(head), "digest: ")
			if !ok || !ok2 || len(want) != 50 {
				t.Fatalf("malformed vector file (see testdata/vectors/README.md)")
			}
			if _, err := ParseCertificatesPEM(pemBytes); err != nil {
				t.Fatalf("vector PEM: %v", err)
			}
			tok, err := GenerateJoinToken(pemBytes, rand.Reader)
			if err != nil {
				t.Fatal(err)
			}
			if got := strings.Split(tok, "-")[2]; got != want {
				t.Errorf("digest = %s, want %s", got, want)
			}
		})
	}
	if n < 2 {
		t.Errorf("found %d vectors in %s, want at least 2", n, dir)
	}
}

func TestCheckRootMismatch(t *testing.T) {
	rootA, rootB := tokenTestRoot(t, "swarm-ca"), tokenTestRoot(t, "swarm-ca")
	tok, err := GenerateJoinToken(rootA, rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	jt, err := ParseJoinToken(tok)
	if err != nil {
		t.Fatal(err)
	}
	err = jt.CheckRoot(rootB)
	var mismatch *DigestMismatchError
	if !errors.As(err, &mismatch) {
		t.Fatalf("CheckRoot on another root: err = %v, want *DigestMismatchError", err)
	}
	da, db := sha256.Sum256(rootA), sha256.Sum256(rootB)
	wantExpected, wantActual := "sha256:"+hex.EncodeToString(da[:]), "sha256:"+hex.EncodeToString(db[:])
	if mismatch.Expected != wantExpected || mismatch.Actual != wantActual {
		t.Errorf("mismatch = %+v, want Expected %s, Actual %s", mismatch, wantExpected, wantActual)
	}
	msg := err.Error()
	if !strings.HasPrefix(msg, "ca: ") || !strings.Contains(msg, "expected "+wantExpected) {
		t.Errorf("message %q does not name the expected digest %s", msg, wantExpected)
	}
}

// tokenParseErrors are all the errors ParseJoinToken may return.
var tokenParseErrors = []error{
	errTokenForm, errTokenPrefix, errTokenVersion,
	errTokenDigestLength, errTokenDigestChars, errTokenDigestRange,
	errTokenSecretLength, errTokenSecretChars,
}

func TestParseJoinToken(t *testing.T) {
	tests := []struct {
		name  string
		token string
		want  error // nil: valid
	}{
		{"valid", testToken, nil},
		{"zero digest", "SWMTKN-1-" + strings.Repeat("0", 50) + "-" + testSecret, nil},
		{"max digest", "SWMTKN-1-6dp5qcb22im238nr3wvp0ic7q99w035jmy2iw7i6n43d37jtof-" + testSecret, nil},
		{"digest over 256 bits", "SWMTKN-1-6dp5qcb22im238nr3wvp0ic7q99w035jmy2iw7i6n43d37jtog-" + testSecret, errTokenDigestRange},
		{"all z digest", "SWMTKN-1-" + strings.Repeat("z", 50) + "-" + testSecret, errTokenDigestRange},
		{"empty", "", errTokenForm},
		{"three parts", "SWMTKN-1-" + testDigest + testSecret, errTokenForm},
		{"five parts", testToken + "-x", errTokenForm},
		{"trailing dash", testToken + "-", errTokenForm},
		{"prefix", "SWMTKX-1-" + testDigest + "-" + testSecret, errTokenPrefix},
		{"lower-case prefix", "swmtkn-1-" + testDigest + "-" + testSecret, errTokenPrefix},
		{"version", "SWMTKN-2-" + testDigest + "-" + testSecret, errTokenVersion},
		{"empty version", "SWMTKN--" + testDigest + "-" + testSecret, errTokenVersion},
		{"short digest", "SWMTKN-1-" + testDigest[1:] + "-" + testSecret, errTokenDigestLength},
		{"long digest", "SWMTKN-1-0" + testDigest + "-" + testSecret, errTokenDigestLength},
		{"upper-case digest", "SWMTKN-1-" + strings.ToUpper(testDigest) + "-" + testSecret, errTokenDigestChars},
		{"signed digest", "SWMTKN-1-+" + testDigest[1:] + "-" + testSecret, errTokenDigestChars},
		{"underscore digest", "SWMTKN-1-_" + testDigest[1:] + "-" + testSecret, errTokenDigestChars},
		{"short secret", "SWMTKN-1-" + testDigest + "-" + testSecret[1:], errTokenSecretLength},
		{"long secret", testToken + "a", errTokenSecretLength},
		{"upper-case secret", "SWMTKN-1-" + testDigest + "-" + strings.ToUpper(testSecret), errTokenSecretChars},
		{"space in secret", "SWMTKN-1-" + testDigest + "-" + testSecret[1:] + " ", errTokenSecretChars},
		{"padded token", " " + testToken, errTokenPrefix},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			jt, err := ParseJoinToken(tt.token)
			if tt.want == nil {
				if err != nil {
					t.Fatalf("ParseJoinToken: %v", err)
				}
				if jt.String() != tt.token {
					t.Errorf("round trip: %q became %q", tt.token, jt.String())
				}
				return
			}
			if err != tt.want {
				t.Fatalf("err = %v, want %v", err, tt.want)
			}
			checkTokenError(t, tt.token, err)
		})
	}
}

// checkTokenError checks that err, from parsing token, matches
// ErrInvalidJoinToken, reads "invalid join token..." and leaks no secret.
func checkTokenError(t *testing.T, token string, err error) {
	t.Helper()
	if !errors.Is(err, ErrInvalidJoinToken) {
		t.Errorf("err = %v, want it to match ErrInvalidJoinToken", err)
	}
	msg := err.Error()
	if !strings.HasPrefix(msg, "invalid join token") {
		t.Errorf("message %q does not start with \"invalid join token\"", msg)
	}
	if parts := strings.Split(token, "-"); len(parts) > 1 {
		if s := parts[len(parts)-1]; len(s) >= 8 && strings.Contains(msg, s) {
			t.Errorf("message %q includes the secret %q", msg, s)
		}
	}
}

func TestRotateJoinToken(t *testing.T) {
	root := tokenTestRoot(t, "swarm-ca")
	tok, err := GenerateJoinToken(root, rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	rotated, err := RotateJoinToken(tok, rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	if len(rotated) != 85 || rotated[:60] != tok[:60] {
		t.Errorf("rotation changed more than the secret: %q -> %q", tok, rotated)
	}
	if rotated[60:] == tok[60:] {
		t.Errorf("rotation kept the secret: %q", rotated)
	}
	jt, err := ParseJoinToken(rotated)
	if err != nil {
		t.Fatal(err)
	}
	if err := jt.CheckRoot(root); err != nil {
		t.Errorf("rotated token no longer matches the root: %v", err)
	}
	if _, err := RotateJoinToken("SWMTKN-2-x-y", rand.Reader); !errors.Is(err, ErrInvalidJoinToken) {
		t.Errorf("RotateJoinToken on a bad token: err = %v, want ErrInvalidJoinToken", err)
	}
}

func TestTokenRole(t *testing.T) {
	root := tokenTestRoot(t, "swarm-ca")
	worker, err := GenerateJoinToken(root, rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	manager, err := GenerateJoinToken(root, rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	other, err := GenerateJoinToken(root, rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name                       string
		presented, worker, manager string
		want                       Role // "": refused
	}{
		{"worker", worker, worker, manager, RoleWorker},
		{"manager", manager, worker, manager, RoleManager},
		{"other secret", other, worker, manager, ""},
		{"prefix of worker", worker[:84], worker, manager, ""},
		{"worker plus", worker + "a", worker, manager, ""},
		{"digest only", worker[:60], worker, manager, ""},
		{"empty", "", worker, manager, ""},
		{"empty everywhere", "", "", "", ""},
		{"no manager token", manager, worker, "", ""},
		{"garbage", "hello", worker, manager, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := TokenRole(tt.presented, tt.worker, tt.manager)
			if tt.want == "" {
				if err != ErrTokenNotAccepted || got != "" {
					t.Errorf("TokenRole = %q, %v, want ErrTokenNotAccepted", got, err)
				}
				return
			}
			if err != nil || got != tt.want {
				t.Errorf("TokenRole = %q, %v, want %q", got, err, tt.want)
			}
		})
	}
}

func TestParseRole(t *testing.T) {
	tests := []struct {
		in    string
		want  Role
		short string
	}{
		{"manager", RoleManager, "manager"},
		{"swarm-manager", RoleManager, "manager"},
		{"worker", RoleWorker, "worker"},
		{"swarm-worker", RoleWorker, "worker"},
		{"Manager", "", ""},
		{"swarm-ca", "", ""},
		{"", "", ""},
	}
	for _, tt := range tests {
		got, err := ParseRole(tt.in)
		if tt.want == "" {
			if err == nil || !strings.HasPrefix(err.Error(), "ca: ") {
				t.Errorf("ParseRole(%q) = %q, %v, want a ca: error", tt.in, got, err)
			}
			continue
		}
		if err != nil || got != tt.want || !got.Valid() || got.Short() != tt.short {
			t.Errorf("ParseRole(%q) = %q (short %q), %v, want %q", tt.in, got, got.Short(), err, tt.want)
		}
	}
	if Role("swarm-ca").Valid() || Role("").Valid() {
		t.Error("Valid accepts a non-role")
	}
}

func FuzzParseJoinToken(f *testing.F) {
	f.Add(testToken)
	f.Add("SWMTKN-1-" + strings.Repeat("0", 50) + "-" + strings.Repeat("0", 25))
	f.Add("SWMTKN-1-6dp5qcb22im238nr3wvp0ic7q99w035jmy2iw7i6n43d37jtog-" + testSecret)
	f.Add("SWMTKN-1-" + strings.ToUpper(testDigest) + "-" + testSecret)
	f.Add("SWMTKN-2-" + testDigest + "-" + testSecret)
	f.Add("SWMTKN-1-+" + testDigest[1:] + "-" + testSecret)
	f.Add(testToken + "-")
	f.Add("")
	f.Fuzz(func(t *testing.T, s string) {
		jt, err := ParseJoinToken(s)
		if err != nil {
			known := false
			for _, e := range tokenParseErrors {
				known = known || err == e
			}
			if !known {
				t.Fatalf("ParseJoinToken returned an unlisted error %v", err)
			}
			checkTokenError(t, s, err)
			return
		}
		if got := jt.String(); got != s {
			t.Fatalf("round trip: %q became %q", s, got)
		}
	})
}
