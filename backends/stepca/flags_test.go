package stepca

import (
	"errors"
	"reflect"
	"strings"
	"testing"

	"github.com/spf13/pflag"

	"github.com/chancery-pki/chancery/backends"
)

func TestFlags(t *testing.T) {
	fp := strings.Repeat("0a", 32)
	all := []string{"--stepca-url", "https://ca:9000", "--stepca-root-fingerprint", fp, "--stepca-provisioner", "chancery", "--stepca-password-file", "pw"}
	want := backends.Settings{SettingURL: "https://ca:9000", SettingRootFingerprint: fp, SettingProvisioner: "chancery", SettingPasswordFile: "pw"}
	for _, tc := range []struct {
		name string
		args []string
		opts backends.RootOptions
		want backends.Settings
		err  string
	}{
		{"All", all, backends.RootOptions{}, want, ""},
		{"KeyFile", append(all, "--stepca-provisioner-key-file", "k"), backends.RootOptions{}, func() backends.Settings {
			s := want.Clone()
			s[SettingProvisionerKeyFile] = "k"
			return s
		}(), ""},
		{"CACert", all, backends.RootOptions{Cert: true}, want, ""},
		{"X5C", append(all[:6:6], "--stepca-x5c-cert-file", "c", "--stepca-x5c-key-file", "k"), backends.RootOptions{},
			backends.Settings{SettingURL: "https://ca:9000", SettingRootFingerprint: fp, SettingProvisioner: "chancery", SettingX5CCertFile: "c", SettingX5CKeyFile: "k"}, ""},
		{"X5CNoKey", append(all[:6:6], "--stepca-x5c-cert-file", "c"), backends.RootOptions{}, nil, "the stepca backend needs --stepca-x5c-key-file"},
		{"X5CAndJWKKey", append(all[:6:6], "--stepca-x5c-cert-file", "c", "--stepca-x5c-key-file", "k", "--stepca-provisioner-key-file", "j"), backends.RootOptions{}, nil,
			"--stepca-provisioner-key-file is a JWK provisioner's, --stepca-x5c-cert-file an X5C one's: give one"},
		{"None", nil, backends.RootOptions{}, nil, "the stepca backend needs --stepca-url"},
		{"NoFingerprint", all[:2], backends.RootOptions{}, nil, "the stepca backend needs --stepca-root-fingerprint"},
		{"NoPasswordFile", all[:6], backends.RootOptions{}, nil, "the stepca backend needs --stepca-password-file"},
		{"HTTP", append([]string{"--stepca-url", "http://ca:9000"}, all[2:]...), backends.RootOptions{}, nil, `stepca: the URL "http://ca:9000" is not https://HOST:PORT (step-ca serves TLS only)`},
		{"BadFingerprint", append(all[:2:2], append([]string{"--stepca-root-fingerprint", "abc"}, all[4:]...)...), backends.RootOptions{}, nil, `stepca: the root fingerprint "abc" is not a SHA-256 fingerprint (64 hex digits)`},
		{"Key", all, backends.RootOptions{Cert: true, Key: true}, nil, "--ca-key cannot be used with --stepca-url: step-ca holds the key"},
		{"CommonName", all, backends.RootOptions{CommonName: true}, nil, "--ca-common-name does not apply to a step-ca: its root is used as it is"},
		{"KeyAlgorithm", all, backends.RootOptions{KeyAlgorithm: true}, nil, "--ca-key-algorithm does not apply to a step-ca: its root is used as it is"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			fs := pflag.NewFlagSet(Name, pflag.ContinueOnError)
			p := Backend{}.Flags(fs)
			if err := fs.Parse(tc.args); err != nil {
				t.Fatal(err)
			}
			s, err := p.Settings(tc.opts)
			if tc.err != "" {
				var fe *backends.FlagError
				if !errors.As(err, &fe) || fe.Msg != tc.err {
					t.Fatalf("Settings: %v; want %q", err, tc.err)
				}
				return
			}
			if err != nil || !reflect.DeepEqual(s, tc.want) {
				t.Errorf("Settings = %v, %v; want %v", s, err, tc.want)
			}
		})
	}
}

// TestSelect: the stepca flags select the backend through the registry's
// command flags, and no flag takes a secret.
func TestSelect(t *testing.T) {
	fs := pflag.NewFlagSet("init", pflag.ContinueOnError)
	c := backends.DeclareFlags(fs)
	if err := fs.Parse([]string{"--stepca-url", "https://ca:9000", "--stepca-root-fingerprint", strings.Repeat("AB", 32),
		"--stepca-provisioner", "p", "--stepca-password-file", "pw"}); err != nil {
		t.Fatal(err)
	}
	name, s, err := c.Select(backends.RootOptions{})
	if err != nil || name != Name || s[SettingProvisioner] != "p" {
		t.Errorf("Select = %q, %v, %v", name, s, err)
	}
	fs.VisitAll(func(f *pflag.Flag) {
		if strings.HasPrefix(f.Name, "stepca-") && (strings.Contains(f.Name, "password") || strings.Contains(f.Name, "key")) && !strings.HasSuffix(f.Name, "-file") {
			t.Errorf("--%s takes a secret on the command line", f.Name)
		}
	})
}

func TestParseFingerprint(t *testing.T) {
	hexFP := strings.Repeat("0a", 32)
	for _, tc := range []struct{ in, want string }{
		{hexFP, hexFP},
		{strings.ToUpper(hexFP), hexFP},
		{"sha256:" + hexFP, hexFP},
		{" SHA256:" + strings.Repeat("0A:", 31) + "0A ", hexFP},
		{"", ""},
		{hexFP[:62], ""},
		{hexFP + "00", ""},
		{strings.Repeat("zz", 32), ""},
		{"sha1:" + hexFP[:40], ""},
	} {
		got, err := ParseFingerprint(tc.in)
		if got != tc.want || (err != nil) != (tc.want == "") {
			t.Errorf("ParseFingerprint(%q) = %q, %v; want %q", tc.in, got, err, tc.want)
		}
	}
}

func TestParseURL(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"https://ca:9000", "https://ca:9000"},
		{"https://ca:9000/", "https://ca:9000"},
		{"https://127.0.0.1", "https://127.0.0.1"},
		{"https://[::1]:9000", "https://[::1]:9000"},
		{"http://ca:9000", ""},
		{"ca:9000", ""},
		{"https://", ""},
		{"https://user@ca:9000", ""},
		{"https://ca:9000/1.0/sign", ""},
		{"https://ca:9000?x=1", ""},
		{"https://ca:9000#f", ""},
	} {
		got, err := ParseURL(tc.in)
		if got != tc.want || (err != nil) != (tc.want == "") {
			t.Errorf("ParseURL(%q) = %q, %v; want %q", tc.in, got, err, tc.want)
		}
	}
}

func FuzzParseFingerprint(f *testing.F) {
	f.Add(strings.Repeat("0a", 32))
	f.Add("sha256:" + strings.Repeat("AB:", 31) + "AB")
	f.Fuzz(func(t *testing.T, s string) {
		fp, err := ParseFingerprint(s)
		if err != nil {
			return
		}
		if len(fp) != 64 || strings.ToLower(fp) != fp {
			t.Fatalf("ParseFingerprint(%q) = %q", s, fp)
		}
		if again, err := ParseFingerprint(fp); err != nil || again != fp {
			t.Fatalf("ParseFingerprint is not idempotent on %q: %q, %v", fp, again, err)
		}
	})
}

func FuzzParseURL(f *testing.F) {
	f.Add("https://ca:9000")
	f.Add("https://[::1]:9000/")
	f.Fuzz(func(t *testing.T, s string) {
		u, err := ParseURL(s)
		if err != nil {
			return
		}
		if !strings.HasPrefix(u, "https://") || strings.HasSuffix(u, "/") {
			t.Fatalf("ParseURL(%q) = %q", s, u)
		}
		if again, err := ParseURL(u); err != nil || again != u {
			t.Fatalf("ParseURL is not idempotent on %q: %q, %v", u, again, err)
		}
	})
}
