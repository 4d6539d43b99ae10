package vault

import (
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/vault/api"

	"github.com/chancery-pki/chancery/backends"
	"github.com/chancery-pki/chancery/ca"
	"github.com/chancery-pki/chancery/hint"
)

// These tests need no Vault server.

func TestConfigFromSettings(t *testing.T) {
	for _, tc := range []struct {
		name     string
		settings backends.Settings
		want     string // substring of the error; "" for success
		check    func(c Config) bool
	}{
		{"Defaults", backends.Settings{SettingAddress: "https://vault:8200"}, "", func(c Config) bool {
			return c.Mount == DefaultMount && c.TokenEnv == DefaultTokenEnv && c.AppRoleMount == DefaultAppRoleMount &&
				c.Retry == DefaultRetry && c.NotBeforeSkew == DefaultNotBeforeSkew && c.authMethod() == "token-env"
		}},
		{"RelativeFiles", backends.Settings{SettingAddress: "a", SettingTokenFile: "tok", SettingCACert: "/etc/ca.pem"}, "", func(c Config) bool {
			return c.TokenFile == "/data/tok" && c.CACert == "/etc/ca.pem" && c.authMethod() == "token-file"
		}},
		{"MountSlashes", backends.Settings{SettingAddress: "a", SettingMount: "/pki/int/", SettingNamespace: "/team/"}, "", func(c Config) bool {
			return c.Mount == "pki/int" && c.Namespace == "team"
		}},
		{"AppRole", backends.Settings{SettingAddress: "a", SettingAppRoleRoleIDFile: "r", SettingAppRoleSecretIDFile: "s"}, "", func(c Config) bool {
			return c.authMethod() == "approle" && c.AppRoleRoleIDFile == "/data/r"
		}},
		{"NoAddress", backends.Settings{}, "address is missing", nil},
		{"BadMount", backends.Settings{SettingAddress: "a", SettingMount: "p ki"}, "invalid mount", nil},
		{"HalfClientCert", backends.Settings{SettingAddress: "a", SettingClientCert: "c"}, "both --vault-client-cert and --vault-client-key", nil},
		{"TokenAndAppRole", backends.Settings{SettingAddress: "a", SettingTokenFile: "t", SettingAppRoleRoleIDFile: "r", SettingAppRoleSecretIDFile: "s"}, "not both", nil},
		{"RoleIDOnly", backends.Settings{SettingAddress: "a", SettingAppRoleRoleIDFile: "r"}, "secret ID file", nil},
		{"SecretIDOnly", backends.Settings{SettingAddress: "a", SettingAppRoleSecretIDFile: "s"}, "role ID file", nil},
		{"Transit", backends.Settings{SettingAddress: "a", SettingEngine: " Transit ", SettingKey: "root-1", SettingKeyVersion: "3"}, "", func(c Config) bool {
			return c.Engine == EngineTransit && c.Mount == DefaultTransitMount && c.Key == "root-1" && c.KeyVersion == 3
		}},
		{"TransitMount", backends.Settings{SettingAddress: "a", SettingEngine: "transit", SettingMount: "/team/transit/"}, "", func(c Config) bool {
			return c.Mount == "team/transit"
		}},
		{"UnknownEngine", backends.Settings{SettingAddress: "a", SettingEngine: "kv"}, "unknown secrets engine", nil},
		{"IssuerWithTransit", backends.Settings{SettingAddress: "a", SettingEngine: "transit", SettingIssuer: "x"}, "--vault-key", nil},
		{"KeyWithPKI", backends.Settings{SettingAddress: "a", SettingKey: "x"}, "--vault-engine transit", nil},
		{"VersionWithPKI", backends.Settings{SettingAddress: "a", SettingKeyVersion: "1"}, "transit setting", nil},
		{"BadKeyName", backends.Settings{SettingAddress: "a", SettingEngine: "transit", SettingKey: "root/*"}, "letters, digits", nil},
		{"WildcardKeyName", backends.Settings{SettingAddress: "a", SettingEngine: "transit", SettingKey: "root+"}, "letters, digits", nil},
		{"BadKeyVersion", backends.Settings{SettingAddress: "a", SettingEngine: "transit", SettingKeyVersion: "0"}, "positive integer", nil},
		{"NonNumericKeyVersion", backends.Settings{SettingAddress: "a", SettingEngine: "transit", SettingKeyVersion: "v1"}, "positive integer", nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, err := ConfigFromSettings("/data", tc.settings)
			if tc.want != "" {
				if err == nil || !strings.Contains(err.Error(), tc.want) || !errors.Is(err, ErrConfig) {
					t.Fatalf("error %v, want ErrConfig saying %q", err, tc.want)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !tc.check(c) {
				t.Errorf("config %+v", c)
			}
		})
	}
}

func TestRecordSettings(t *testing.T) {
	in := backends.Settings{SettingAddress: "a", SettingAppRoleRoleIDFile: "r", SettingAppRoleSecretIDFile: "s", SettingTokenEnv: ""}
	got := recordSettings(in, "iss", "key", true)
	want := backends.Settings{SettingAddress: "a", SettingAppRoleRoleIDFile: "r", SettingAppRoleSecretIDFile: "s",
		SettingMount: DefaultMount, SettingIssuer: "iss", SettingKeyID: "key", SettingGenerated: "true"}
	if len(got) != len(want) {
		t.Fatalf("settings %v, want %v", got, want)
	}
	for k, v := range want {
		if got[k] != v {
			t.Errorf("%s = %q, want %q", k, got[k], v)
		}
	}
}

func TestKindOf(t *testing.T) {
	for _, tc := range []struct {
		status int
		msgs   []string
		want   error
	}{
		{503, []string{"Vault is sealed"}, ErrSealed},
		{403, []string{"2 errors occurred:\n\t* permission denied\n\t* invalid token\n\n"}, ErrTokenInvalid},
		{400, []string{"invalid role or secret ID"}, ErrTokenInvalid},
		{403, []string{"1 error occurred:\n\t* permission denied\n\n"}, ErrPermissionDenied},
		{404, []string{`no handler for route "nope/issuers". route entry not found.`}, ErrMountNotFound},
		{500, []string{"unable to find PKI issuer for reference: x"}, ErrIssuerNotFound},
		{500, []string{"internal error"}, ErrVault},
		{503, []string{"Vault is in standby"}, ErrVault},
	} {
		if got := kindOf(tc.status, tc.msgs); got != tc.want {
			t.Errorf("kindOf(%d, %q) = %v, want %v", tc.status, tc.msgs, got, tc.want)
		}
	}
}

func TestClassify(t *testing.T) {
	secret := "hvs.CHANCERYSECRETINVAULTSANSWER"
	err := classify(&api.ResponseError{StatusCode: 400, Errors: []string{"bad value " + secret}}, "sign", "pki/sign/x", redactor{secret})
	if strings.Contains(err.Error(), secret) || !strings.Contains(err.Error(), "[redacted]") {
		t.Errorf("error %q: the secret is not redacted", err)
	}
	for _, tc := range []struct {
		e         *Error
		transient bool
	}{
		{&Error{Kind: ErrUnreachable}, true},
		{&Error{Kind: ErrVault, Status: 500}, true},
		{&Error{Kind: ErrVault, Status: 502}, true},
		{&Error{Kind: ErrVault, Status: 429}, true},
		{&Error{Kind: ErrVault, Status: 501}, false},
		{&Error{Kind: ErrVault, Status: 400}, false},
		{&Error{Kind: ErrSealed, Status: 503}, false},
		{&Error{Kind: ErrIssuerNotFound, Status: 500}, false},
		{&Error{Kind: ErrPermissionDenied, Status: 403}, false},
	} {
		if got := tc.e.transient(); got != tc.transient {
			t.Errorf("%v (HTTP %d) transient = %v, want %v", tc.e.Kind, tc.e.Status, got, tc.transient)
		}
	}
	if !errors.Is(&Error{Kind: ErrTokenInvalid}, ErrPermissionDenied) || errors.Is(&Error{Kind: ErrPermissionDenied}, ErrTokenInvalid) {
		t.Error("ErrTokenInvalid must match ErrPermissionDenied, not the other way")
	}
}

func TestCleanMessages(t *testing.T) {
	got := cleanMessages([]string{"2 errors occurred:\n\t* permission denied\n\t* invalid token\n\n", "permission denied"})
	if got != "permission denied; invalid token" {
		t.Errorf("cleanMessages = %q", got)
	}
}

func TestBackoff(t *testing.T) {
	r := Retry{Attempts: 10, Min: 100 * time.Millisecond, Max: time.Second}
	for _, tc := range []struct {
		attempt int
		max     time.Duration
	}{
		{1, 100 * time.Millisecond}, {2, 200 * time.Millisecond}, {3, 400 * time.Millisecond},
		{4, 800 * time.Millisecond}, {5, time.Second}, {9, time.Second},
	} {
		for i := 0; i < 50; i++ {
			if d := backoff(r, tc.attempt); d < tc.max/2 || d > tc.max {
				t.Fatalf("backoff(%d) = %s, want within [%s, %s]", tc.attempt, d, tc.max/2, tc.max)
			}
		}
	}
}

func TestPlanNode(t *testing.T) {
	issuer := &x509.Certificate{PublicKey: newP256(t).Public()}
	req := nodeRequest(t, &x509.Certificate{NotAfter: time.Now().Add(24 * 365 * time.Hour)}, ca.RoleManager, time.Now())
	p, err := planNode(req, issuer)
	if err != nil {
		t.Fatal(err)
	}
	if p.cn != testNodeID || !slices.Equal(p.dnsNames, []string{testNodeID, "swarm-ca", "swarm-manager"}) {
		t.Errorf("cn %q, DNS %v", p.cn, p.dnsNames)
	}
	want := roleSpec{Organization: []string{testClusterID}, OU: []string{"swarm-manager"},
		KeyUsage: []string{"DigitalSignature", "KeyEncipherment"}, ExtKeyUsage: []string{"ServerAuth", "ClientAuth"},
		BasicConstraints: true, SignatureBits: 256}
	if p.spec.name("i") != want.name("i") {
		t.Errorf("spec %+v, want %+v", p.spec, want)
	}
	worker := nodeRequest(t, &x509.Certificate{NotAfter: time.Now().Add(24 * 365 * time.Hour)}, ca.RoleWorker, time.Now())
	pw, _ := planNode(worker, issuer)
	if pw.spec.name("i") == p.spec.name("i") || p.spec.name("i") == p.spec.name("j") {
		t.Error("role names must differ by shape and by issuer")
	}
}

func TestPlanSubject(t *testing.T) {
	marshal := func(rdns pkix.RDNSequence) []byte {
		b, err := asn1.Marshal(rdns)
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	for _, tc := range []struct {
		name string
		der  []byte
		ok   bool
	}{
		{"Node", marshal(ca.NodeSubject(testClusterID, testNodeID, ca.RoleWorker).ToRDNSequence()), true},
		{"Full", marshal(pkix.Name{Country: []string{"DE"}, Province: []string{"BE"}, Locality: []string{"Berlin"},
			StreetAddress: []string{"x"}, PostalCode: []string{"1"}, Organization: []string{"o1", "o2"},
			OrganizationalUnit: []string{"u"}, CommonName: "cn"}.ToRDNSequence()), true},
		{"CNOnly", marshal(pkix.Name{CommonName: "swarm-ca"}.ToRDNSequence()), true},
		{"Duplicate", marshal(pkix.Name{Organization: []string{"o", "o"}}.ToRDNSequence()), false},
		{"SerialNumber", marshal(pkix.Name{CommonName: "x", SerialNumber: "1"}.ToRDNSequence()), false},
		{"UTF8WherePrintable", marshal(pkix.RDNSequence{{{Type: []int{2, 5, 4, 3}, Value: asn1.RawValue{Tag: asn1.TagUTF8String, Bytes: []byte("x")}}}}), false},
		{"TwoCNs", marshal(pkix.RDNSequence{{{Type: []int{2, 5, 4, 3}, Value: "a"}}, {{Type: []int{2, 5, 4, 3}, Value: "b"}}}), false},
		{"Garbage", []byte{0x04, 0x00}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := planSubject(tc.der)
			if (err == nil) != tc.ok {
				t.Errorf("planSubject: %v, want ok=%v", err, tc.ok)
			}
			if err != nil && !errors.Is(err, ErrUnsupported) {
				t.Errorf("error %v is not ErrUnsupported", err)
			}
		})
	}
}

func TestPlanExtKeyUsages(t *testing.T) {
	for _, tc := range []struct {
		in   []x509.ExtKeyUsage
		want []string
	}{
		{nil, []string{}},
		{[]x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth}, []string{"ServerAuth", "ClientAuth"}},
		{[]x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}, []string{"ClientAuth"}},
		{[]x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth, x509.ExtKeyUsageServerAuth}, nil},
		{[]x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageServerAuth}, nil},
		{[]x509.ExtKeyUsage{x509.ExtKeyUsageMicrosoftKernelCodeSigning}, nil},
	} {
		got, err := planExtKeyUsages(tc.in)
		if (tc.want == nil) != (err != nil) || !slices.Equal(got, tc.want) {
			t.Errorf("planExtKeyUsages(%v) = %v, %v; want %v", tc.in, got, err, tc.want)
		}
	}
}

func TestPolicyText(t *testing.T) {
	p := Policy("/pki-int/")
	for _, want := range []string{
		`path "pki-int/issuers/generate/root/internal"`,
		`path "pki-int/roles/chancery-*" {` + "\n" + `  capabilities = ["create", "update", "delete"]`,
		`path "pki-int/sign/chancery-*"`,
		`path "pki-int/issuer/+/sign-self-issued" {` + "\n" + `  capabilities = ["update", "sudo"]`,
		`path "pki-int/intermediate/cross-sign"`,
		`path "auth/token/renew-self"`,
	} {
		if !strings.Contains(p, want) {
			t.Errorf("the policy lacks %q:\n%s", want, p)
		}
	}
	if strings.Contains(p, `"pki-int/*"`) {
		t.Error("the policy grants the whole mount")
	}
	for _, line := range strings.Split(p, "\n") {
		if strings.HasPrefix(line, `path "sys/`) && line != `path "sys/capabilities-self" {` {
			t.Errorf("the policy grants %s", line)
		}
	}
	if Policy("") != Policy(DefaultMount) {
		t.Error("Policy(\"\") is not the default mount's")
	}
}

// TestKeyParams checks that Vault takes the algorithm names every backend
// takes (backends.ParseKeyAlgorithm), and refuses others with its error.
func TestKeyParams(t *testing.T) {
	for alg, want := range map[string]struct {
		keyType string
		bits    int
	}{"": {"ec", 256}, "p256": {"ec", 256}, "ECDSA-P384": {"ec", 384}, "rsa": {"rsa", 3072}, "RSA-3072": {"rsa", 3072}} {
		if kt, bits, err := keyParams(alg); err != nil || kt != want.keyType || bits != want.bits {
			t.Errorf("keyParams(%q) = %s, %d, %v; want %s, %d", alg, kt, bits, err, want.keyType, want.bits)
		}
	}
	_, _, err := keyParams("ed25519")
	_, shared := backends.ParseKeyAlgorithm("ed25519")
	if !errors.Is(err, ErrConfig) || !strings.Contains(err.Error(), shared.Error()) {
		t.Errorf("keyParams(ed25519): %v; want ErrConfig with %q", err, shared)
	}
}

// TestErrorHint checks that an error's advice is its Hint, said once: on
// a line of its own where it is shown, not in the message.
func TestErrorHint(t *testing.T) {
	for _, tc := range []struct {
		name      string
		err       *Error
		msg, hint string
	}{
		{"Sealed", classify(&api.ResponseError{StatusCode: 503, Errors: []string{"Vault is sealed"}}, "sign", "pki/sign/x", nil),
			"vault: Vault is sealed: sign (pki/sign/x): HTTP 503: Vault is sealed", hints[ErrSealed]},
		{"Denied", classify(&api.ResponseError{StatusCode: 403, Errors: []string{"1 error occurred:\n\t* permission denied\n\n"}}, "sign", "pki/sign/x", nil),
			"vault: permission denied: sign (pki/sign/x): HTTP 403: permission denied", hints[ErrPermissionDenied]},
		{"Other", classify(&api.ResponseError{StatusCode: 400, Errors: []string{"bad"}}, "sign", "pki/sign/x", nil),
			"vault: request failed: sign (pki/sign/x): HTTP 400: bad", ""},
		{"Config", &Error{Kind: ErrConfig, Detail: "no address", Advice: "give --vault-addr"},
			"vault: invalid configuration: no address", "give --vault-addr"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if tc.err.Error() != tc.msg || tc.err.Hint() != tc.hint {
				t.Errorf("message %q, hint %q; want %q, %q", tc.err, tc.err.Hint(), tc.msg, tc.hint)
			}
			got := hint.All(fmt.Errorf("opening the root: %w", tc.err))
			if want := []string{tc.hint}; tc.hint == "" && len(got) != 0 || tc.hint != "" && !slices.Equal(got, want) {
				t.Errorf("hint.All = %q, want %q", got, tc.hint)
			}
		})
	}
}
