package stepca_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/chancery-pki/chancery/backends"
	. "github.com/chancery-pki/chancery/backends/stepca"
	"github.com/chancery-pki/chancery/ca"
	"github.com/chancery-pki/chancery/internal/stepcadev"
	"github.com/chancery-pki/chancery/secretfile"
	"github.com/chancery-pki/chancery/signer"
)

const (
	testClusterID = "4h5log5xpip966c6c0000z2cy"
	testNodeID    = "kgwuvt1oqhqjsht0qcsq67rvu"
)

// nodeRequest returns a worker certificate request with a fresh key's CSR.
func nodeRequest(t *testing.T, s signer.Signer) *signer.Request {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	csr, err := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{Subject: pkix.Name{CommonName: testNodeID}}, key)
	if err != nil {
		t.Fatal(err)
	}
	req, err := ca.NodeCertificateRequest(ca.NodeRequest{
		ClusterID: testClusterID, NodeID: testNodeID, Role: ca.RoleWorker, CSR: csr, Now: time.Now(),
	}, s.Chain()[0])
	if err != nil {
		t.Fatal(err)
	}
	return req
}

// open opens the backend on settings, as a restart does.
func open(t *testing.T, settings backends.Settings, chain []*x509.Certificate) (signer.Signer, error) {
	t.Helper()
	s, err := Backend{}.Open(context.Background(), backends.OpenRequest{DataDir: t.TempDir(), Settings: settings, Chain: chain})
	if err == nil {
		t.Cleanup(func() { s.(*Signer).Close() })
	}
	return s, err
}

func readFile(t *testing.T, path string) string {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(data)
}

func writeFile(t *testing.T, data string, mode os.FileMode) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "f")
	if err := os.WriteFile(p, []byte(data), mode); err != nil {
		t.Fatal(err)
	}
	// The mode as asked, whatever the umask.
	if err := os.Chmod(p, mode); err != nil {
		t.Fatal(err)
	}
	return p
}

// TestBadSettings: each mistake in the settings is refused by Open with an
// error that names it, and no Signer is returned.
func TestBadSettings(t *testing.T) {
	srv := stepcadev.Start(t, stepcadev.Options{})
	chain := []*x509.Certificate{srv.Intermediate, srv.Root}
	otherFP := strings.Repeat("ab", 32)
	tests := []struct {
		name string
		mod  func(s backends.Settings)
		want string
		as   any
	}{
		{"WrongRootFingerprint", func(s backends.Settings) { s[SettingRootFingerprint] = otherFP }, "has no root with the fingerprint " + otherFP, new(*FingerprintError)},
		{"BadFingerprint", func(s backends.Settings) { s[SettingRootFingerprint] = "sha1:abcd" }, "is not a SHA-256 fingerprint", nil},
		{"WrongPassword", func(s backends.Settings) { s[SettingPasswordFile] = writeFile(t, "not the password\n", 0o600) }, "cannot be decrypted with the password from file", new(*PasswordError)},
		// The right password, in files that others may read: refused
		// before they are read, saying the fix, not showing the password.
		{"PasswordFileReadableByOthers", func(s backends.Settings) { s[SettingPasswordFile] = writeFile(t, readFile(t, srv.PasswordFile), 0o644) }, "chmod 600", secretfile.ErrUnsafe},
		{"PasswordFileGroupReadable", func(s backends.Settings) { s[SettingPasswordFile] = writeFile(t, readFile(t, srv.PasswordFile), 0o640) }, "chmod 600", secretfile.ErrUnsafe},
		{"PasswordFileGroupReadOnly", func(s backends.Settings) { s[SettingPasswordFile] = writeFile(t, readFile(t, srv.PasswordFile), 0o440) }, "has mode 0440", secretfile.ErrUnsafe},
		{"PasswordFileDirectory", func(s backends.Settings) { s[SettingPasswordFile] = t.TempDir() }, "not a regular file", nil},
		{"NoPasswordFile", func(s backends.Settings) { s[SettingPasswordFile] = filepath.Join(t.TempDir(), "missing") }, "password file", nil},
		{"UnknownProvisioner", func(s backends.Settings) { s[SettingProvisioner] = "other" }, `has no provisioner named "other"`, nil},
		{"PlainHTTP", func(s backends.Settings) { s[SettingURL] = strings.Replace(srv.URL, "https", "http", 1) }, "is not https://HOST:PORT", nil},
		{"UnknownSetting", func(s backends.Settings) { s["token"] = "x" }, `unknown setting "token"`, nil},
		{"MissingURL", func(s backends.Settings) { delete(s, SettingURL) }, "setting url is missing (--stepca-url)", nil},
		{"OtherKeyFile", func(s backends.Settings) {
			other := stepcadev.Start(t, stepcadev.Options{})
			s[SettingProvisionerKeyFile], s[SettingPasswordFile] = other.KeyFile, other.PasswordFile
		}, "is not the key of provisioner", nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			settings := srv.Settings()
			tt.mod(settings)
			s, err := open(t, settings, chain)
			if err == nil {
				t.Fatalf("Open accepted the settings (%v)", s.Chain()[0].Subject)
			}
			t.Log(err)
			if !strings.Contains(err.Error(), tt.want) {
				t.Errorf("error %q does not say %q", err, tt.want)
			}
			if pw, _ := os.ReadFile(srv.PasswordFile); strings.Contains(err.Error(), string(pw)) {
				t.Errorf("error %q holds the password", err)
			}
			switch target := tt.as.(type) {
			case **FingerprintError:
				if !errors.As(err, target) {
					t.Errorf("error %T is not a *FingerprintError", err)
				}
			case **PasswordError:
				if !errors.As(err, target) {
					t.Errorf("error %T is not a *PasswordError", err)
				}
			case error:
				if !errors.Is(err, target) {
					t.Errorf("error %q does not match %q", err, target)
				}
			}
		})
	}
	t.Run("KeyFileGiven", func(t *testing.T) {
		settings := srv.Settings()
		settings[SettingProvisionerKeyFile] = srv.KeyFile
		s, err := open(t, settings, chain)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := s.Sign(context.Background(), nodeRequest(t, s)); err != nil {
			t.Fatal(err)
		}
	})
	t.Run("OtherClusterRoot", func(t *testing.T) {
		other := stepcadev.Start(t, stepcadev.Options{})
		_, err := open(t, srv.Settings(), []*x509.Certificate{other.Root})
		if err == nil || !strings.Contains(err.Error(), "not under the cluster's root") {
			t.Errorf("Open under another cluster root: %v", err)
		}
	})
}

// TestBadX5C: an X5C credential that step-ca would refuse is refused by
// Open, naming the file.
func TestBadX5C(t *testing.T) {
	srv := stepcadev.Start(t, stepcadev.Options{X5C: true})
	other := stepcadev.Start(t, stepcadev.Options{X5C: true})
	chain := []*x509.Certificate{srv.Intermediate, srv.Root}
	for _, tt := range []struct {
		name string
		mod  func(s backends.Settings)
		want string
	}{
		{"OtherCA", func(s backends.Settings) {
			s[SettingX5CCertFile], s[SettingX5CKeyFile], s[SettingPasswordFile] = other.X5CCertFile, other.X5CKeyFile, other.PasswordFile
		}, "is not valid under the roots of provisioner"},
		{"KeyOfAnother", func(s backends.Settings) {
			s[SettingX5CKeyFile], s[SettingPasswordFile] = other.X5CKeyFile, other.PasswordFile
		}, "is not the key of the certificate"},
		{"WrongPassword", func(s backends.Settings) { s[SettingPasswordFile] = writeFile(t, "wrong", 0o600) }, "cannot be decrypted with the password from file"},
		{"NoPassword", func(s backends.Settings) { delete(s, SettingPasswordFile) }, "is encrypted: give its password"},
		{"KeyReadableByOthers", func(s backends.Settings) { s[SettingX5CKeyFile] = writeFile(t, readFile(t, srv.X5CKeyFile), 0o644) }, "chmod 600"},
		{"KeyGroupReadable", func(s backends.Settings) { s[SettingX5CKeyFile] = writeFile(t, readFile(t, srv.X5CKeyFile), 0o640) }, "chmod 600"},
		{"KeyFIFO", func(s backends.Settings) {
			p := filepath.Join(t.TempDir(), "fifo")
			if err := syscall.Mkfifo(p, 0o600); err != nil {
				t.Fatal(err)
			}
			s[SettingX5CKeyFile] = p
		}, "not a regular file"},
		{"NoKey", func(s backends.Settings) { delete(s, SettingX5CKeyFile) }, "setting x5c_key_file is missing"},
		{"JWKProvisioner", func(s backends.Settings) { s[SettingProvisioner] = stepcadev.Provisioner }, "is of type JWK"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			settings := srv.X5CSettings()
			tt.mod(settings)
			_, err := open(t, settings, chain)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("Open: %v, want an error saying %q", err, tt.want)
			}
			if keyLine := strings.Split(readFile(t, srv.X5CKeyFile), "\n")[1]; strings.Contains(err.Error(), keyLine) {
				t.Errorf("error %q shows the X5C key", err)
			}
		})
	}
}

// TestTokens: an expired token and a reused one are refused by step-ca,
// with no certificate.
func TestTokens(t *testing.T) {
	srv := stepcadev.Start(t, stepcadev.Options{})
	t.Run("Expired", func(t *testing.T) {
		cfg := Config{URL: srv.URL, RootFingerprint: srv.Fingerprint, Provisioner: stepcadev.Provisioner, PasswordFile: srv.PasswordFile,
			Now: func() time.Time { return time.Now().Add(-10 * time.Minute) }}
		s, err := New(context.Background(), cfg)
		if err != nil {
			t.Fatal(err)
		}
		defer s.Close()
		cert, err := s.Sign(context.Background(), nodeRequest(t, s))
		t.Log(err)
		checkRefused(t, cert, err, http.StatusUnauthorized, "refused the one-time token")
	})
	t.Run("Reused", func(t *testing.T) {
		s := newTestSigner(t, srv)
		req := nodeRequest(t, s)
		ott, serial, err := s.MintToken(req)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := s.SignWithToken(context.Background(), req, ott, serial); err != nil {
			t.Fatalf("the token's first use: %v", err)
		}
		cert, err := s.SignWithToken(context.Background(), req, ott, serial)
		t.Log(err)
		checkRefused(t, cert, err, http.StatusUnauthorized, "refused the one-time token")
	})
}

func checkRefused(t *testing.T, cert *x509.Certificate, err error, status int, want string) {
	t.Helper()
	if err == nil {
		t.Fatalf("step-ca issued serial %x", cert.SerialNumber)
	}
	if cert != nil {
		t.Errorf("a certificate came back with the error %v", err)
	}
	var re *RemoteError
	if !errors.As(err, &re) || re.Status != status {
		t.Errorf("error %v is not step-ca's %d", err, status)
	}
	if !strings.Contains(err.Error(), want) {
		t.Errorf("error %q does not say %q", err, want)
	}
}

// TestStepCADown: step-ca not running is a clear error at Open and at
// Sign.
func TestStepCADown(t *testing.T) {
	srv := stepcadev.Start(t, stepcadev.Options{})
	s := newTestSigner(t, srv)
	req := nodeRequest(t, s)
	srv.Kill()
	cert, err := s.Sign(context.Background(), req)
	var te *TransportError
	if err == nil || cert != nil || !errors.As(err, &te) || !strings.Contains(err.Error(), "is step-ca running there?") {
		t.Errorf("Sign with step-ca down: %v, %v", cert, err)
	}
	if _, err := open(t, srv.Settings(), s.Chain()); !errors.As(err, &te) {
		t.Errorf("Open with step-ca down: %v, want a *TransportError", err)
	}
}

// TestWrongSubjectTemplate: a provisioner template that writes the subject
// from the request's unsigned template data gets its certificate refused,
// naming the subject, and revoked at step-ca.
func TestWrongSubjectTemplate(t *testing.T) {
	bad := strings.Replace(Template, `"organization": {{ toJson $c.o }}`, `"organization": {{ toJson .Insecure.User.o }}`, 1)
	if bad == Template {
		t.Fatal("the template's organization line changed: update the test")
	}
	srv := stepcadev.Start(t, stepcadev.Options{Template: bad})
	s := newTestSigner(t, srv)
	cert, err := s.Sign(context.Background(), nodeRequest(t, s))
	if err == nil {
		t.Fatalf("a certificate with the subject %q was accepted", cert.Subject)
	}
	var me *MismatchError
	if !errors.As(err, &me) || me.Field != "subject" || !errors.Is(err, signer.ErrIssuedMismatch) {
		t.Errorf("error %v does not name the subject", err)
	}
	if me != nil && me.RevokeErr != nil {
		t.Errorf("the discarded certificate was not revoked: %v", me.RevokeErr)
	}
	t.Log(err)
}

// TestNoCrossSign: without the cross-sign template data a CA certificate
// is refused before step-ca is asked.
func TestNoCrossSign(t *testing.T) {
	srv := stepcadev.Start(t, stepcadev.Options{RootSigns: true})
	s := newTestSigner(t, srv)
	if s.CrossSigns() {
		t.Fatal("CrossSigns is true without the template data")
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	root, err := signer.SelfSign(rand.Reader, key, ca.NewRootTemplate("swarm-ca", now))
	if err != nil {
		t.Fatal(err)
	}
	der, err := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{RawSubject: root.RawSubject}, key)
	if err != nil {
		t.Fatal(err)
	}
	csr, _ := x509.ParseCertificateRequest(der)
	srv.Kill() // nothing must reach step-ca
	_, err = s.Sign(context.Background(), &signer.Request{PublicKey: key.Public(), CSR: csr, Profile: signer.ProfileCA, Template: &x509.Certificate{
		RawSubject: root.RawSubject, NotBefore: now, NotAfter: now.Add(time.Hour), IsCA: true, BasicConstraintsValid: true, MaxPathLen: -1,
		KeyUsage: x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
	}})
	if !errors.Is(err, ErrNoCrossSign) {
		t.Errorf("Sign of a CA certificate: %v, want ErrNoCrossSign", err)
	}
}
