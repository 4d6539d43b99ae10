package cfssl

import (
	"bytes"
	"context"
	"crypto/sha256"
	"crypto/x509"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chancery-pki/chancery/backends"
	"github.com/chancery-pki/chancery/ca"
	"github.com/chancery-pki/chancery/signer"
)

// TestBackendCreateRootAndOpen goes through the registry as `chancery init`
// and a restarted manager do, against a real cfssl with authsign.
func TestBackendCreateRootAndOpen(t *testing.T) {
	srv := startCFSSL(t, serveOptions{Auth: true, Intermediate: true})
	b, err := backends.Get(Name)
	if err != nil {
		t.Fatal(err)
	}
	// cacert given relative to the working directory is recorded absolute.
	wd, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	relCA, err := filepath.Rel(wd, srv.Spec.CACertFile)
	if err != nil {
		t.Fatal(err)
	}
	spec := "protocol=CFSSL,url=" + srv.Spec.URL + ",cacert=" + relCA
	ctx := context.Background()
	sg, settings, err := b.CreateRoot(ctx, backends.CreateRootRequest{
		DataDir:      t.TempDir(),
		Settings:     NewSettings([]string{spec}, srv.AuthKeyFile),
		CommonName:   ca.DefaultRootCN, // ignored: the root is the CA's
		KeyAlgorithm: "P-256",          // ignored
		Now:          time.Now(),
	})
	if err != nil {
		t.Fatalf("CreateRoot: %v", err)
	}
	defer sg.(*Signer).Close()
	chain := sg.Chain()
	if len(chain) != 2 || !chain[0].Equal(srv.Cert) || !chain[1].Equal(srv.Root) {
		t.Fatalf("chain %v, want the intermediate and the root", subjects(chain))
	}
	want := backends.Settings{
		"external_ca.1": (ExternalCA{URL: srv.Spec.URL, CACertFile: srv.Spec.CACertFile}).String(),
		"auth_key_file": srv.AuthKeyFile,
	}
	if len(settings) != len(want) || settings["external_ca.1"] != want["external_ca.1"] || settings["auth_key_file"] != want["auth_key_file"] {
		t.Errorf("settings %v, want %v", settings, want)
	}
	for k, v := range settings {
		assertNoSecret(t, k+"="+v)
		if strings.Contains(v, srv.AuthKeyHex) {
			t.Errorf("setting %s holds the auth key", k)
		}
	}
	req := workerRequest(t, sg)
	if _, err := sg.Sign(ctx, req); err != nil {
		t.Fatalf("Sign after CreateRoot: %v", err)
	}

	// Open, as the cluster does, with the recorded root.
	opened, err := b.Open(ctx, backends.OpenRequest{Settings: settings, Chain: []*x509.Certificate{srv.Root}})
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	defer opened.(*Signer).Close()
	if _, err := opened.Sign(ctx, workerRequest(t, opened)); err != nil {
		t.Fatalf("Sign after Open: %v", err)
	}

	// A cluster whose root is another is refused.
	other := startCFSSL(t, serveOptions{})
	if _, err := b.Open(ctx, backends.OpenRequest{Settings: settings, Chain: []*x509.Certificate{other.Root}}); err == nil ||
		!strings.Contains(err.Error(), "not under the cluster's root") {
		t.Errorf("Open with another cluster root: error %v, want one saying the roots differ", err)
	}
}

func subjects(certs []*x509.Certificate) []string {
	var s []string
	for _, c := range certs {
		s = append(s, c.Subject.String())
	}
	return s
}

func TestBackendCreateRootImportedCert(t *testing.T) {
	srv := startCFSSL(t, serveOptions{})
	b := Backend{}
	ctx := context.Background()
	settings := NewSettings([]string{srv.Spec.String()}, "")
	// --ca-cert alone names the root the CA must issue under.
	sg, _, err := b.CreateRoot(ctx, backends.CreateRootRequest{Settings: settings, ImportCertPEM: ca.EncodeCertificatesPEM(srv.Root), Now: time.Now()})
	if err != nil {
		t.Fatalf("CreateRoot with the CA's root: %v", err)
	}
	sg.(*Signer).Close()
	other := startCFSSL(t, serveOptions{})
	if _, _, err := b.CreateRoot(ctx, backends.CreateRootRequest{Settings: settings, ImportCertPEM: ca.EncodeCertificatesPEM(other.Root), Now: time.Now()}); err == nil {
		t.Error("CreateRoot accepted a --ca-cert that is not the CA's root")
	}
	if _, _, err := b.CreateRoot(ctx, backends.CreateRootRequest{Settings: settings, ImportCertPEM: []byte("x"), ImportKeyPEM: []byte("y"), Now: time.Now()}); err == nil ||
		!strings.Contains(err.Error(), "holds its own key") {
		t.Errorf("CreateRoot with --ca-key: error %v, want a refusal", err)
	}
}

func TestBackendSettings(t *testing.T) {
	const spec = "protocol=cfssl,url=https://ca.example/api/v1/cfssl/sign"
	for _, tc := range []struct {
		name     string
		settings backends.Settings
		err      string
	}{
		{"None", backends.Settings{}, "no external CA"},
		{"UnknownKey", backends.Settings{"external_ca.1": spec, "url": "x"}, `unknown setting "url"`},
		{"BadIndex", backends.Settings{"external_ca.one": spec}, `unknown setting "external_ca.one"`},
		{"ZeroIndex", backends.Settings{"external_ca.0": spec}, `unknown setting "external_ca.0"`},
		{"LeadingZero", backends.Settings{"external_ca.01": spec}, `unknown setting "external_ca.01"`},
		{"Gap", backends.Settings{"external_ca.1": spec, "external_ca.3": spec}, "external_ca.2 is missing"},
		{"BadSpec", backends.Settings{"external_ca.1": "protocol=cfssl,url=http://x/sign"}, "is not https"},
		{"BothKeySources", backends.Settings{"external_ca.1": spec, "auth_key_file": "/k", "auth_key_env": "K"}, "both set"},
		{"EmptyKeyFile", backends.Settings{"external_ca.1": spec, "auth_key_file": ""}, "is empty"},
		{"MissingKeyFile", backends.Settings{"external_ca.1": spec, "auth_key_file": "/nonexistent/key"}, "failed to read the auth key file"},
		{"MissingKeyEnv", backends.Settings{"external_ca.1": spec, "auth_key_env": "CHANCERY_TEST_UNSET_VARIABLE"}, "CHANCERY_TEST_UNSET_VARIABLE"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, _, err := Backend{}.CreateRoot(context.Background(), backends.CreateRootRequest{Settings: tc.settings, Now: time.Now()})
			if err == nil || !strings.Contains(err.Error(), tc.err) || !strings.HasPrefix(err.Error(), "cfssl: ") {
				t.Errorf("CreateRoot: error %v, want one saying %q", err, tc.err)
			}
			_, err = Backend{}.Open(context.Background(), backends.OpenRequest{Settings: tc.settings})
			if err == nil {
				t.Error("Open accepted the settings")
			}
		})
	}
	got := NewSettings([]string{"a", "b"}, "/k")
	if len(got) != 3 || got["external_ca.1"] != "a" || got["external_ca.2"] != "b" || got["auth_key_file"] != "/k" {
		t.Errorf("NewSettings = %v", got)
	}
}

func TestBackendCreateRootRecordsAuthKeyEnv(t *testing.T) {
	srv := startCFSSL(t, serveOptions{Auth: true})
	t.Setenv(AuthKeyEnv, srv.AuthKeyHex)
	sg, settings, err := Backend{}.CreateRoot(context.Background(), backends.CreateRootRequest{
		Settings: NewSettings([]string{srv.Spec.String()}, ""), Now: time.Now(),
	})
	if err != nil {
		t.Fatalf("CreateRoot: %v", err)
	}
	defer sg.(*Signer).Close()
	if settings[SettingAuthKeyEnv] != AuthKeyEnv {
		t.Errorf("settings %v do not record $%s", settings, AuthKeyEnv)
	}
	if d := sg.(signer.Describer).Describe().String(); !strings.Contains(d, "$"+AuthKeyEnv) || strings.Contains(d, srv.AuthKeyHex) {
		t.Errorf("description %q", d)
	}
	if _, err := sg.Sign(context.Background(), workerRequest(t, sg)); err != nil {
		t.Fatalf("Sign: %v", err)
	}
}

// TestCrossSignSHA256KeyIDRefused cross-signs, on a real cfssl 1.2.0, a root
// whose subject key ID is truncated SHA-256 (what Go 1.25 and later compute
// by default). cfssl ignores the key ID chancery sends and computes SHA-1,
// so the certificate is refused for its subject key id.
func TestCrossSignSHA256KeyIDRefused(t *testing.T) {
	srv := startCFSSL(t, serveOptions{})
	s := newTestSigner(t, srv, false)
	key := newECKey(t, p256())
	pub, err := key.PublicKey.Bytes()
	if err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(pub)
	tmpl := ca.NewRootTemplate("swarm-ca", time.Now())
	tmpl.SubjectKeyId = sum[:20]
	req := crossSignRequestForKey(t, s, tmpl, key)
	_, err = s.Sign(context.Background(), req)
	var me *MismatchError
	if !errors.As(err, &me) || me.Field != "subject key id" {
		t.Fatalf("error %v, want a mismatch of the subject key id", err)
	}
	if !strings.Contains(me.Hint(), "SHA-1") {
		t.Errorf("error %q, hint %q: does not explain the key ID", err, me.Hint())
	}
	// The same root with a SHA-1 key ID (as under x509sha256skid=0, this
	// test binary's setting) is cross-signed.
	sha1Root := ca.NewRootTemplate("swarm-ca", time.Now())
	req = crossSignRequestForKey(t, s, sha1Root, key)
	cross, err := s.Sign(context.Background(), req)
	if err != nil {
		t.Fatalf("cross-sign with a SHA-1 key ID: %v", err)
	}
	if !bytes.Equal(cross.RawSubject, req.Template.RawSubject) || !cross.IsCA {
		t.Errorf("cross-signed certificate: subject %q, CA %v", cross.Subject, cross.IsCA)
	}
}
