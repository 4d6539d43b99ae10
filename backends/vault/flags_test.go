package vault

import (
	"errors"
	"reflect"
	"strings"
	"testing"

	"github.com/spf13/pflag"

	"github.com/chancery-pki/chancery/backends"
)

// TestFlagsCoverUserSettings checks that each setting a user may give has
// exactly one flag, and each flag a setting a user may give.
func TestFlagsCoverUserSettings(t *testing.T) {
	seen := map[string]bool{}
	for _, f := range flagSettings {
		if !userSettings[f.setting] || seen[f.setting] {
			t.Errorf("flag --%s: setting %q is not a user setting, or has two flags", f.flag, f.setting)
		}
		seen[f.setting] = true
	}
	for s := range userSettings {
		if !seen[s] {
			t.Errorf("setting %q has no flag", s)
		}
	}
}

func TestFlags(t *testing.T) {
	for _, tc := range []struct {
		name string
		args []string
		opts backends.RootOptions
		want backends.Settings
		err  string
	}{
		{"Address", []string{"--vault-addr", "https://vault:8200"}, backends.RootOptions{}, backends.Settings{SettingAddress: "https://vault:8200"}, ""},
		{"GivenOnly", []string{"--vault-addr", "a", "--vault-engine", "transit", "--vault-key", "k", "--vault-namespace="}, backends.RootOptions{CommonName: true, KeyAlgorithm: true},
			backends.Settings{SettingAddress: "a", SettingEngine: EngineTransit, SettingKey: "k", SettingNamespace: ""}, ""},
		{"AppRole", []string{"--vault-approle-role-id-file", "r", "--vault-approle-secret-id-file", "s", "--vault-approle-mount", "m"}, backends.RootOptions{},
			backends.Settings{SettingAppRoleRoleIDFile: "r", SettingAppRoleSecretIDFile: "s", SettingAppRoleMount: "m"}, ""},
		{"None", nil, backends.RootOptions{}, nil, "the vault backend needs --vault-addr"},
		{"Cert", []string{"--vault-addr", "a"}, backends.RootOptions{Cert: true}, nil, "--ca-cert and --ca-key cannot be used with the vault backend"},
		{"Key", []string{"--vault-addr", "a"}, backends.RootOptions{Key: true}, nil, "--ca-cert and --ca-key cannot be used with the vault backend"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			fs := pflag.NewFlagSet("vault", pflag.ContinueOnError)
			p := Backend{}.Flags(fs)
			if err := fs.Parse(tc.args); err != nil {
				t.Fatal(err)
			}
			s, err := p.Settings(tc.opts)
			if tc.err != "" {
				var fe *backends.FlagError
				if !errors.As(err, &fe) || fe.Msg != tc.err || fe.Hint() == "" {
					t.Fatalf("Settings: %v; want %q with a hint", err, tc.err)
				}
				return
			}
			if err != nil || !reflect.DeepEqual(s, tc.want) {
				t.Errorf("Settings = %v, %v; want %v", s, err, tc.want)
			}
		})
	}
}

func TestPolicyFlags(t *testing.T) {
	const id = "0f3c1c8e-5e1a-4d2b-9f55-6a1f0f2b7c11"
	for _, tc := range []struct {
		name string
		args []string
		want string // the policy, or a substring of the error
		hint string // the error's hint, when a *backends.FlagError
	}{
		{"PKIInit", nil, Policy(DefaultMount), ""},
		{"PKIRun", []string{"--vault-mount", "pki-int", "--vault-issuer", id}, RunPolicy("pki-int", id), ""},
		{"TransitInit", []string{"--vault-engine", "transit"}, TransitPolicy(DefaultTransitMount, DefaultTransitKey), ""},
		{"TransitRun", []string{"--vault-engine", " TRANSIT", "--vault-mount", "t", "--vault-key", "k", "--run"}, TransitRunPolicy("t", "k"), ""},

		{"IssuerWithTransit", []string{"--vault-engine", "transit", "--vault-issuer", "x"}, "--vault-issuer names a PKI issuer", "--vault-key"},
		{"KeyWithPKI", []string{"--vault-key", "k"}, "--vault-key names a transit key", "--vault-engine transit"},
		{"RunWithPKI", []string{"--run"}, "--run is for the transit engine", "--vault-issuer ID"},
		{"UnknownEngine", []string{"--vault-engine", "kv"}, `unknown --vault-engine "kv": want pki or transit`, ""},
		{"BadKey", []string{"--vault-engine", "transit", "--vault-key", "root/*"}, "letters, digits", ""},
		{"BadTransitMount", []string{"--vault-engine", "transit", "--vault-mount", "+"}, "invalid mount path", ""},
		{"BadMount", []string{"--vault-mount", "pki/*"}, "invalid mount path", ""},
		{"BadIssuer", []string{"--vault-issuer", "x y"}, "issuer", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			fs := pflag.NewFlagSet("policy", pflag.ContinueOnError)
			p := DeclarePolicyFlags(fs)
			if err := fs.Parse(tc.args); err != nil {
				t.Fatal(err)
			}
			got, err := p.Policy()
			if strings.HasPrefix(tc.want, "path ") || strings.Contains(tc.want, "\npath ") {
				if err != nil || got != tc.want {
					t.Errorf("Policy = %q, %v; want\n%s", got, err, tc.want)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("Policy: %q, %v; want an error with %q", got, err, tc.want)
			}
			var fe *backends.FlagError
			if errors.As(err, &fe) != (tc.hint != "") || tc.hint != "" && !strings.Contains(fe.Hint(), tc.hint) {
				t.Errorf("Policy: %#v; want hint %q", err, tc.hint)
			}
		})
	}
}
