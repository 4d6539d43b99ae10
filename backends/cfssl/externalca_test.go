package cfssl

import (
	"errors"
	"strings"
	"testing"
)

func TestParseExternalCA(t *testing.T) {
	const sign = "https://ca.example:8888/api/v1/cfssl/sign"
	tests := []struct {
		name string
		spec string
		want ExternalCA
		err  string // substring of the error; empty means success
	}{
		{"Minimal", "protocol=cfssl,url=" + sign, ExternalCA{URL: sign}, ""},
		{"WithCACert", "protocol=cfssl,url=" + sign + ",cacert=/etc/ca.pem", ExternalCA{URL: sign, CACertFile: "/etc/ca.pem"}, ""},
		{"AnyOrder", "cacert=ca.pem,url=" + sign + ",protocol=cfssl", ExternalCA{URL: sign, CACertFile: "ca.pem"}, ""},
		{"ProtocolCaseInsensitive", "protocol=CFSSL,url=" + sign, ExternalCA{URL: sign}, ""},
		{"KeysCaseInsensitive", "Protocol=cfssl,URL=" + sign, ExternalCA{URL: sign}, ""},
		{"QuotedFieldWithComma", `protocol=cfssl,url=` + sign + `,"cacert=/etc/a,b.pem"`, ExternalCA{URL: sign, CACertFile: "/etc/a,b.pem"}, ""},
		{"ShortPath", "protocol=cfssl,url=https://127.0.0.1:1/sign", ExternalCA{URL: "https://127.0.0.1:1/sign"}, ""},
		{"IPv6", "protocol=cfssl,url=https://[::1]:8888/api/v1/cfssl/sign", ExternalCA{URL: "https://[::1]:8888/api/v1/cfssl/sign"}, ""},
		{"ValueWithEquals", "protocol=cfssl,url=" + sign + ",cacert=a=b.pem", ExternalCA{URL: sign, CACertFile: "a=b.pem"}, ""},

		{"Empty", "", ExternalCA{}, "empty"},
		{"Blank", "   ", ExternalCA{}, "empty"},
		{"NoProtocol", "url=" + sign, ExternalCA{}, "no protocol"},
		{"NoURL", "protocol=cfssl", ExternalCA{}, "no url"},
		{"OtherProtocol", "protocol=acme,url=" + sign, ExternalCA{}, `unsupported protocol "acme"`},
		{"EmptyProtocol", "protocol=,url=" + sign, ExternalCA{}, `unsupported protocol ""`},
		{"UnknownKey", "protocol=cfssl,url=" + sign + ",label=primary", ExternalCA{}, `unknown key "label"`},
		{"UnknownKeyKeepsCase", "protocol=cfssl,url=" + sign + ",AuthKey=x", ExternalCA{}, `unknown key "AuthKey"`},
		{"NotKeyValue", "protocol=cfssl,url=" + sign + ",cfssl", ExternalCA{}, `field "cfssl" is not key=value`},
		{"DuplicateKey", "protocol=cfssl,url=" + sign + ",URL=" + sign, ExternalCA{}, `key "url" is given twice`},
		{"EmptyCACert", "protocol=cfssl,url=" + sign + ",cacert=", ExternalCA{}, "cacert is empty"},
		{"HTTP", "protocol=cfssl,url=http://ca.example:8888/api/v1/cfssl/sign", ExternalCA{}, "is not https"},
		{"NoScheme", "protocol=cfssl,url=ca.example:8888/api/v1/cfssl/sign", ExternalCA{}, "is not https"},
		{"NoHost", "protocol=cfssl,url=https:///api/v1/cfssl/sign", ExternalCA{}, "has no host"},
		{"PortOnly", "protocol=cfssl,url=https://:8888/api/v1/cfssl/sign", ExternalCA{}, "has no host"},
		{"UserInfo", "protocol=cfssl,url=https://user:secret@ca.example/api/v1/cfssl/sign", ExternalCA{}, "user information"},
		{"Query", "protocol=cfssl,url=" + sign + "?x=1", ExternalCA{}, "query or fragment"},
		{"EmptyQuery", "protocol=cfssl,url=" + sign + "?", ExternalCA{}, "query or fragment"},
		{"Fragment", "protocol=cfssl,url=" + sign + "#x", ExternalCA{}, "query or fragment"},
		{"NotSignEndpoint", "protocol=cfssl,url=https://ca.example/api/v1/cfssl/authsign", ExternalCA{}, "must end in /sign"},
		{"NoPath", "protocol=cfssl,url=https://ca.example", ExternalCA{}, "must end in /sign"},
		{"EscapedSign", "protocol=cfssl,url=https://ca.example/%73ign", ExternalCA{}, "must end in /sign"},
		{"TwoRecords", "protocol=cfssl,url=" + sign + "\nprotocol=cfssl,url=" + sign, ExternalCA{}, "more than one CSV record"},
		{"BadQuote", `protocol=cfssl,url="` + sign, ExternalCA{}, "not a CSV record"},
		{"BareQuote", `protocol=cfssl,url=a"b`, ExternalCA{}, "not a CSV record"},
		{"LeadingSpaceKey", "protocol=cfssl, url=" + sign, ExternalCA{}, `unknown key " url"`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := ParseExternalCA(tc.spec)
			if tc.err != "" {
				if err == nil {
					t.Fatalf("ParseExternalCA(%q) = %+v, want an error saying %q", tc.spec, got, tc.err)
				}
				var se *SpecError
				if !errors.As(err, &se) || se.Spec != tc.spec {
					t.Errorf("error %v is not a *SpecError for the spec", err)
				}
				if !strings.Contains(err.Error(), tc.err) || !strings.HasPrefix(err.Error(), "cfssl: ") {
					t.Errorf("error %q does not say %q", err, tc.err)
				}
				return
			}
			if err != nil {
				t.Fatalf("ParseExternalCA(%q): %v", tc.spec, err)
			}
			if got != tc.want {
				t.Errorf("ParseExternalCA(%q) = %+v, want %+v", tc.spec, got, tc.want)
			}
			again, err := ParseExternalCA(got.String())
			if err != nil || again != got {
				t.Errorf("String() = %q reads back as %+v, %v", got.String(), again, err)
			}
		})
	}
}

func TestExternalCAEndpoints(t *testing.T) {
	for _, tc := range []struct{ url, name, want string }{
		{"https://ca.example:8888/api/v1/cfssl/sign", "info", "https://ca.example:8888/api/v1/cfssl/info"},
		{"https://ca.example:8888/api/v1/cfssl/sign", "authsign", "https://ca.example:8888/api/v1/cfssl/authsign"},
		{"https://ca.example/sign", "info", "https://ca.example/info"},
		{"https://ca.example/a%2Fb/sign", "info", "https://ca.example/a%2Fb/info"},
		{"https://ca.example/sign", "sign", "https://ca.example/sign"},
	} {
		if got := (ExternalCA{URL: tc.url}).endpoint(tc.name); got != tc.want {
			t.Errorf("endpoint(%q) of %s = %s, want %s", tc.name, tc.url, got, tc.want)
		}
	}
}

func TestExternalCAString(t *testing.T) {
	e := ExternalCA{URL: "https://ca.example/api/v1/cfssl/sign", CACertFile: "/etc/x,y.pem"}
	if got, want := e.String(), `protocol=cfssl,url=https://ca.example/api/v1/cfssl/sign,"cacert=/etc/x,y.pem"`; got != want {
		t.Errorf("String() = %s, want %s", got, want)
	}
}

// FuzzParseExternalCA checks that no input panics, that what is accepted is
// an https sign URL, and that accepted values read back from String().
func FuzzParseExternalCA(f *testing.F) {
	for _, s := range []string{
		"protocol=cfssl,url=https://ca.example:8888/api/v1/cfssl/sign",
		"protocol=cfssl,url=https://ca.example:8888/api/v1/cfssl/sign,cacert=/etc/ca.pem",
		`"protocol=cfssl","url=https://[::1]/sign","cacert=a,b"`,
		"PROTOCOL=CFSSL,URL=https://x/sign",
		"protocol=cfssl,url=http://x/sign",
		"protocol=cfssl,url=https://u:p@x/sign?q#f",
		"a\nb",
		`"unterminated`,
		"",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, spec string) {
		e, err := ParseExternalCA(spec)
		if err != nil {
			if e != (ExternalCA{}) {
				t.Errorf("error %v with a non-zero result %+v", err, e)
			}
			return
		}
		if !strings.HasPrefix(strings.ToLower(e.URL), "https://") || checkURL(e.URL) != "" {
			t.Errorf("accepted url %q", e.URL)
		}
		again, err := ParseExternalCA(e.String())
		if err != nil || again != e {
			t.Errorf("%+v: String() = %q reads back as %+v, %v", e, e.String(), again, err)
		}
	})
}
