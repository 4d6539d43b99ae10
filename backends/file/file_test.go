package file

import (
	"bytes"
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/chancery-pki/chancery/backends"
	"github.com/chancery-pki/chancery/ca"
	"github.com/chancery-pki/chancery/conformance"
	"github.com/chancery-pki/chancery/secretfile"
	"github.com/chancery-pki/chancery/signer"
)

// newRoot makes a root key of alg, writes it to a fresh directory
// (encrypted with passphrase when set) and opens it as a Signer, as init
// does.
func newRoot(t *testing.T, alg Algorithm, passphrase []byte) *signer.LocalIssuer {
	t.Helper()
	key, err := GenerateKey(alg, nil)
	if err != nil {
		t.Fatal(err)
	}
	root, err := signer.SelfSign(nil, key, ca.NewRootTemplate("", time.Now()))
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "ca", "root-ca.key")
	if err := WriteKey(path, key, passphrase); err != nil {
		t.Fatal(err)
	}
	s, err := Open(context.Background(), Config{KeyPath: path, Passphrase: passphrase, Chain: []*x509.Certificate{root}})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestConformance(t *testing.T) {
	for _, tc := range []struct {
		name       string
		alg        Algorithm
		passphrase []byte
	}{
		{"P256", P256, nil},
		{"P384", P384, nil},
		{"RSA3072", RSA3072, nil},
		{"P256Encrypted", P256, []byte("correct horse battery staple")},
	} {
		t.Run(tc.name, func(t *testing.T) {
			conformance.Run(t, func(t *testing.T) signer.Signer {
				return newRoot(t, tc.alg, tc.passphrase)
			}, conformance.Options{})
		})
	}
}

func TestKeyFileModeAndFormat(t *testing.T) {
	for _, tc := range []struct {
		name       string
		passphrase []byte
		pemType    string
	}{
		{"Plain", nil, "PRIVATE KEY"},
		{"Encrypted", []byte("s3cret-passphrase"), "ENCRYPTED PRIVATE KEY"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			key, err := GenerateKey(P256, nil)
			if err != nil {
				t.Fatal(err)
			}
			path := filepath.Join(t.TempDir(), "k", "root.key")
			if err := WriteKey(path, key, tc.passphrase); err != nil {
				t.Fatal(err)
			}
			st, err := os.Stat(path)
			if err != nil {
				t.Fatal(err)
			}
			if st.Mode().Perm() != 0o600 {
				t.Errorf("key file mode = %o, want 600", st.Mode().Perm())
			}
			data, _ := os.ReadFile(path)
			block, _ := pem.Decode(data)
			if block == nil || block.Type != tc.pemType {
				t.Fatalf("key file PEM type = %v, want %q", block, tc.pemType)
			}
			got, err := LoadKey(path, tc.passphrase)
			if err != nil {
				t.Fatal(err)
			}
			if !got.Public().(*ecdsa.PublicKey).Equal(key.Public()) {
				t.Error("the loaded key differs from the written one")
			}
			entries, _ := os.ReadDir(filepath.Dir(path))
			if len(entries) != 1 {
				t.Errorf("the key directory holds %d entries, want only the key (no temporary file left)", len(entries))
			}
			if err := WriteKey(path, key, nil); !errors.Is(err, ErrKeyExists) {
				t.Errorf("writing over an existing key: error %v, want ErrKeyExists", err)
			}
			after, _ := os.ReadFile(path)
			if !bytes.Equal(after, data) {
				t.Error("a refused write changed the existing key file")
			}
		})
	}
}

func TestEncryptedKeyPassphrase(t *testing.T) {
	const pass = "the-right-passphrase-41"
	key, err := GenerateKey(P256, nil)
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "root.key")
	if err := WriteKey(path, key, []byte(pass)); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name       string
		passphrase string
		want       error
	}{
		{"Wrong", "not-the-passphrase", ErrWrongPassphrase},
		{"Missing", "", ErrPassphraseNeeded},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := LoadKey(path, []byte(tc.passphrase))
			if !errors.Is(err, tc.want) {
				t.Fatalf("error %v, want %v", err, tc.want)
			}
			if !strings.Contains(err.Error(), path) {
				t.Errorf("error %q does not name the key file", err)
			}
			if tc.passphrase != "" && strings.Contains(err.Error(), tc.passphrase) {
				t.Errorf("error %q contains the passphrase", err)
			}
		})
	}
}

func TestReadPassphrase(t *testing.T) {
	dir := t.TempDir()
	write := func(name, content string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	good := write("good", "hunter2-long\n")
	empty := write("empty", "\n")
	big := write("big", strings.Repeat("x", MaxPassphraseBytes+1))
	const env = "CHANCERY_TEST_PASSPHRASE"
	t.Setenv(env, "from-env-value")
	t.Setenv("CHANCERY_TEST_EMPTY", "")
	tests := []struct {
		name, path, env, want, wantErr string
	}{
		{name: "File", path: good, env: env, want: "hunter2-long"},
		{name: "Env", env: env, want: "from-env-value"},
		{name: "Neither", env: "CHANCERY_TEST_UNSET"},
		{name: "EmptyFile", path: empty, wantErr: "is empty"},
		{name: "BigFile", path: big, wantErr: "larger than"},
		{name: "MissingFile", path: filepath.Join(dir, "nope"), wantErr: "no such file"},
		{name: "EmptyEnv", env: "CHANCERY_TEST_EMPTY", wantErr: "set but empty"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ReadPassphrase(tt.path, tt.env)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("error %v, want one containing %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if string(got) != tt.want {
				t.Errorf("passphrase = %q, want %q", got, tt.want)
			}
		})
	}
}

// pemOf encodes a DER certificate or a key.
func certPEM(t *testing.T, der []byte) []byte {
	t.Helper()
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
}

func keyPEM(t *testing.T, key crypto.Signer) []byte {
	t.Helper()
	der, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der})
}

// rootDER self-signs a certificate for key with tweak applied to a valid
// root template. It bypasses signer.SelfSign so that invalid roots can be
// made.
func rootDER(t *testing.T, key crypto.Signer, now time.Time, tweak func(*x509.Certificate)) []byte {
	t.Helper()
	tmpl := ca.NewRootTemplate("imported-ca", now)
	tmpl.SerialNumber, _ = signer.RandomSerial(rand.Reader)
	if tweak != nil {
		tweak(tmpl)
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
	if err != nil {
		t.Fatal(err)
	}
	return der
}

func TestImportRoot(t *testing.T) {
	now := time.Now()
	p256, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	other, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	p224, _ := ecdsa.GenerateKey(elliptic.P224(), rand.Reader)
	rsa1024, _ := rsa.GenerateKey(rand.Reader, 1024)
	rsa2048, _ := rsa.GenerateKey(rand.Reader, 2048)
	good := certPEM(t, rootDER(t, p256, now, nil))
	encKey, err := MarshalKey(p256, []byte("import-pass"))
	if err != nil {
		t.Fatal(err)
	}
	ecSEC1, _ := x509.MarshalECPrivateKey(p256)
	tests := []struct {
		name       string
		cert, key  []byte
		passphrase string
		wantErr    error
		wantMsg    string
	}{
		{name: "P256", cert: good, key: keyPEM(t, p256)},
		{name: "SEC1Key", cert: good, key: pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: ecSEC1})},
		{name: "EncryptedKey", cert: good, key: encKey, passphrase: "import-pass"},
		{name: "RSA2048", cert: certPEM(t, rootDER(t, rsa2048, now, nil)), key: pem.EncodeToMemory(&pem.Block{Type: "RSA PRIVATE KEY", Bytes: x509.MarshalPKCS1PrivateKey(rsa2048)})},
		{name: "KeyMismatch", cert: good, key: keyPEM(t, other), wantErr: ca.ErrRootKeyMismatch},
		{name: "NotCA", cert: certPEM(t, rootDER(t, p256, now, func(c *x509.Certificate) { c.IsCA = false; c.KeyUsage = x509.KeyUsageDigitalSignature })), key: keyPEM(t, p256), wantErr: ca.ErrRootNotCA},
		{name: "RSA1024", cert: certPEM(t, rootDER(t, rsa1024, now, nil)), key: keyPEM(t, rsa1024), wantMsg: "RSA key of 1024 bits is too small"},
		{name: "P224", cert: certPEM(t, rootDER(t, p224, now, nil)), key: keyPEM(t, p224), wantMsg: "unsupported ECDSA curve P-224"},
		{name: "ExpiresWithinAYear", cert: certPEM(t, rootDER(t, p256, now, func(c *x509.Certificate) { c.NotAfter = now.Add(300 * 24 * time.Hour) })), key: keyPEM(t, p256), wantErr: ca.ErrRootExpiresTooSoon},
		{name: "SHA1Signature", cert: certPEM(t, rootDER(t, rsa2048, now, func(c *x509.Certificate) { c.SignatureAlgorithm = x509.SHA1WithRSA })), key: keyPEM(t, rsa2048), wantErr: ca.ErrRootSignatureAlg},
		{name: "UnparseableCertPEM", cert: []byte("-----BEGIN CERTIFICATE-----\nnot base64!\n-----END CERTIFICATE-----\n"), key: keyPEM(t, p256), wantMsg: "CA certificate"},
		{name: "NoCertPEM", cert: []byte("hello"), key: keyPEM(t, p256), wantMsg: "CA certificate"},
		{name: "TwoCerts", cert: append(append([]byte{}, good...), good...), key: keyPEM(t, p256), wantMsg: "holds 2 certificates"},
		{name: "UnparseableKeyPEM", cert: good, key: []byte("garbage"), wantErr: ErrBadKey},
		{name: "EncryptedKeyNoPassphrase", cert: good, key: encKey, wantErr: ErrPassphraseNeeded},
		{name: "EncryptedKeyWrongPassphrase", cert: good, key: encKey, passphrase: "nope", wantErr: ErrWrongPassphrase},
		{name: "CertAsKey", cert: good, key: good, wantErr: ErrBadKey},
	}
	seen := map[string]string{}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cert, key, err := ImportRoot(tt.cert, tt.key, []byte(tt.passphrase), now)
			if tt.wantErr == nil && tt.wantMsg == "" {
				if err != nil {
					t.Fatal(err)
				}
				if !cert.IsCA || key == nil {
					t.Fatal("import returned no usable root")
				}
				return
			}
			if err == nil {
				t.Fatal("import accepted a bad root")
			}
			if tt.wantErr != nil && !errors.Is(err, tt.wantErr) {
				t.Errorf("error %q, want one matching %q", err, tt.wantErr)
			}
			if tt.wantMsg != "" && !strings.Contains(err.Error(), tt.wantMsg) {
				t.Errorf("error %q, want one containing %q", err, tt.wantMsg)
			}
			if prev, dup := seen[err.Error()]; dup {
				t.Errorf("error %q is the same as case %s's: each refusal needs its own", err, prev)
			}
			seen[err.Error()] = tt.name
			if strings.Contains(err.Error(), "PRIVATE KEY") && !strings.Contains(err.Error(), "want a private key") {
				t.Errorf("error %q may quote key material", err)
			}
		})
	}
}

func TestParseAlgorithm(t *testing.T) {
	for in, want := range map[string]Algorithm{"": P256, "p256": P256, "P-256": P256, "p-384": P384, "RSA-3072": RSA3072, "rsa3072": RSA3072} {
		got, err := ParseAlgorithm(in)
		if err != nil || got != want {
			t.Errorf("ParseAlgorithm(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
	if _, err := ParseAlgorithm("ed25519"); err == nil {
		t.Error("ParseAlgorithm(ed25519) succeeded")
	}
}

func FuzzParseKey(f *testing.F) {
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	der, _ := x509.MarshalPKCS8PrivateKey(key)
	f.Add(pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}), []byte(""))
	f.Add([]byte("-----BEGIN EC PRIVATE KEY-----\nAAAA\n-----END EC PRIVATE KEY-----\n"), []byte(""))
	f.Add([]byte("-----BEGIN ENCRYPTED PRIVATE KEY-----\nMAA=\n-----END ENCRYPTED PRIVATE KEY-----\n"), []byte("x"))
	f.Fuzz(func(t *testing.T, data, pass []byte) {
		k, err := ParseKey(data, pass)
		if err == nil && signer.CheckPublicKey(k.Public()) != nil {
			t.Fatal("ParseKey returned an unsupported key")
		}
	})
}

// TestNextRootSettingsKeepsEncryption: a rotation's new key file beside an
// encrypted one is encrypted too, or refused when the manager knows no
// passphrase for it.
func TestNextRootSettingsKeepsEncryption(t *testing.T) {
	for _, tc := range []struct {
		name    string
		current backends.Settings
		env     string
		ok      bool
		pass    string
	}{
		{"Plain", backends.Settings{SettingKeyPath: DefaultKeyPath, SettingEncrypted: "false"}, "", true, ""},
		{"EncryptedWithFile", backends.Settings{SettingKeyPath: DefaultKeyPath, SettingEncrypted: "true", SettingPassphraseFile: "/etc/pass"}, "", true, "/etc/pass"},
		{"EncryptedWithEnv", backends.Settings{SettingKeyPath: DefaultKeyPath, SettingEncrypted: "true"}, "correct horse", true, ""},
		{"EncryptedWithNothing", backends.Settings{SettingKeyPath: DefaultKeyPath, SettingEncrypted: "true"}, "", false, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Setenv(PassphraseEnv, tc.env)
			if tc.env == "" {
				os.Unsetenv(PassphraseEnv)
			}
			next, err := Backend{}.NextRootSettings(tc.current, "20261204T000000Z-abcdef")
			if tc.ok != (err == nil) {
				t.Fatalf("NextRootSettings = %v, %v; want ok=%v", next, err, tc.ok)
			}
			if err != nil {
				return
			}
			if next[SettingKeyPath] == DefaultKeyPath || next[SettingPassphraseFile] != tc.pass {
				t.Errorf("next settings %v", next)
			}
		})
	}
	if _, err := (Backend{}).NextRootSettings(nil, "../x"); err == nil {
		t.Error("an id with a path in it was accepted")
	}
}

// TestSecretFilesRefused checks that a passphrase file or key file that
// others may read or write, or that is not a regular file, is refused
// before it is read, with an error that names the file and the fix and
// never shows its content.
func TestSecretFilesRefused(t *testing.T) {
	dir := t.TempDir()
	key, err := GenerateKey(P256, nil)
	if err != nil {
		t.Fatal(err)
	}
	keyPEM, err := MarshalKey(key, nil)
	if err != nil {
		t.Fatal(err)
	}
	// A line of the key's base64, which no error may show.
	keyLine := strings.Split(string(keyPEM), "\n")[1]
	const passphrase = "correct-horse-battery-staple"
	fifo := filepath.Join(dir, "fifo")
	if err := syscall.Mkfifo(fifo, 0o600); err != nil {
		t.Fatal(err)
	}
	readPassphrase := func(p string) error { _, err := ReadPassphrase(p, ""); return err }
	loadKey := func(p string) error { _, err := LoadKey(p, nil); return err }
	for _, tc := range []struct {
		name    string
		read    func(string) error
		content string
		mode    os.FileMode
		path    string // instead of a new file of mode mode
		want    string
		unsafe  bool
	}{
		{"PassphraseWorldReadable", readPassphrase, passphrase, 0o644, "", "chmod 600", true},
		{"PassphraseGroupReadable", readPassphrase, passphrase, 0o640, "", "chmod 600", true},
		{"PassphraseOthersWritable", readPassphrase, passphrase, 0o602, "", "mode 0602", true},
		{"PassphraseFIFO", readPassphrase, "", 0, fifo, "not a regular file", false},
		{"KeyWorldReadable", loadKey, string(keyPEM), 0o644, "", "chmod 600", true},
		{"KeyGroupReadOnly", loadKey, string(keyPEM), 0o440, "", "mode 0440", true},
		{"KeyFIFO", loadKey, "", 0, fifo, "not a regular file", false},
		{"KeyTooLarge", loadKey, strings.Repeat("k", MaxKeyFileBytes+1), 0o600, "", "larger than", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := tc.path
			if p == "" {
				p = filepath.Join(dir, tc.name)
				if err := os.WriteFile(p, []byte(tc.content), 0o600); err != nil {
					t.Fatal(err)
				}
				if err := os.Chmod(p, tc.mode); err != nil {
					t.Fatal(err)
				}
			}
			err := tc.read(p)
			if err == nil {
				t.Fatal("no error")
			}
			if errors.Is(err, secretfile.ErrUnsafe) != tc.unsafe {
				t.Errorf("errors.Is(%v, secretfile.ErrUnsafe) = %v, want %v", err, !tc.unsafe, tc.unsafe)
			}
			msg := err.Error()
			if !strings.Contains(msg, tc.want) || !strings.Contains(msg, p) {
				t.Errorf("error %q: want it to name %s and say %q", msg, p, tc.want)
			}
			if strings.Contains(msg, passphrase) || strings.Contains(msg, keyLine) {
				t.Errorf("error %q shows the file's content", msg)
			}
		})
	}
}
