package pkcs11

import (
	"bytes"
	"errors"
	"fmt"
	"reflect"
	"strings"
	"testing"
)

func TestParseURI(t *testing.T) {
	for _, tc := range []struct {
		name string
		in   string
		want URI
		pin  string
		str  string // canonical String(); "" means in
	}{
		{name: "Empty", in: "pkcs11:", want: URI{}},
		{name: "SchemeCaseInsensitive", in: "PKCS11:token=a", want: URI{Token: "a"}, str: "pkcs11:token=a"},
		{
			name: "Full",
			in:   "pkcs11:token=chancery;serial=0123abcd;object=root;id=%01%02%ff;type=private?module-path=/usr/lib/softhsm/libsofthsm2.so&pin-source=/etc/chancery/pin",
			want: URI{Token: "chancery", Serial: "0123abcd", Object: "root", ID: []byte{1, 2, 0xff}, Type: "private",
				ModulePath: "/usr/lib/softhsm/libsofthsm2.so", PINSource: "/etc/chancery/pin"},
			str: "pkcs11:token=chancery;serial=0123abcd;object=root;id=%01%02%FF;type=private?module-path=/usr/lib/softhsm/libsofthsm2.so&pin-source=/etc/chancery/pin",
		},
		{
			name: "AttributeOrderFree",
			in:   "pkcs11:object=root;token=T?pin-env=HSM_PIN&module-path=/m.so",
			want: URI{Token: "T", Object: "root", ModulePath: "/m.so", PINEnv: "HSM_PIN"},
			str:  "pkcs11:token=T;object=root?module-path=/m.so&pin-env=HSM_PIN",
		},
		{
			name: "PercentDecoding",
			in:   "pkcs11:token=My%20Token;object=a%2Fb%3Bc?module-path=/opt/hsm%20lib/p11.so",
			want: URI{Token: "My Token", Object: "a/b;c", ModulePath: "/opt/hsm lib/p11.so"},
			str:  "pkcs11:token=My%20Token;object=a%2Fb%3Bc?module-path=/opt/hsm%20lib/p11.so",
		},
		{
			name: "UTF8Label",
			in:   "pkcs11:token=%C3%A9t%C3%A9",
			want: URI{Token: "été"},
			str:  "pkcs11:token=%C3%A9t%C3%A9",
		},
		{
			name: "IDLiteralBytes",
			in:   "pkcs11:id=ab",
			want: URI{ID: []byte("ab")},
			str:  "pkcs11:id=%61%62",
		},
		{
			name: "ReservedCharactersInValues",
			in:   "pkcs11:object=a:b@c!$'()*+,=&d?pin-source=file:///run/pin?x|y",
			want: URI{Object: "a:b@c!$'()*+,=&d", PINSource: "file:///run/pin?x|y"},
			str:  "pkcs11:object=a:b@c%21%24%27%28%29%2A%2B%2C%3D%26d?pin-source=file:///run/pin%3Fx%7Cy",
		},
		{
			name: "PINValueKeptButNotPrinted",
			in:   "pkcs11:token=T;object=k?module-path=/m.so&pin-value=12%2634",
			want: URI{Token: "T", Object: "k", ModulePath: "/m.so"},
			pin:  "12&34",
			str:  "pkcs11:token=T;object=k?module-path=/m.so",
		},
		{name: "EmptyQuery", in: "pkcs11:token=T?", want: URI{Token: "T"}, str: "pkcs11:token=T"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			u, err := ParseURI(tc.in)
			if err != nil {
				t.Fatalf("ParseURI(%q): %v", tc.in, err)
			}
			if string(u.pinValue) != tc.pin {
				t.Errorf("pin-value = %q, want %q", string(u.pinValue), tc.pin)
			}
			got := *u
			got.pinValue = ""
			if !reflect.DeepEqual(got, tc.want) {
				t.Errorf("ParseURI(%q) =\n %#v\nwant\n %#v", tc.in, fields(got), fields(tc.want))
			}
			want := tc.str
			if want == "" {
				want = tc.in
			}
			if s := u.String(); s != want {
				t.Errorf("String() = %q, want %q", s, want)
			}
			again, err := ParseURI(u.String())
			if err != nil {
				t.Fatalf("ParseURI(String()): %v", err)
			}
			if again.String() != u.String() {
				t.Errorf("String() does not round-trip: %q, then %q", u.String(), again.String())
			}
		})
	}
}

// fields prints a URI's fields, for failure messages (String hides some).
func fields(u URI) string {
	return fmt.Sprintf("{Token:%q Serial:%q Object:%q ID:%x Type:%q ModulePath:%q PINSource:%q PINEnv:%q}",
		u.Token, u.Serial, u.Object, u.ID, u.Type, u.ModulePath, u.PINSource, u.PINEnv)
}

func TestParseURIRefuses(t *testing.T) {
	for _, tc := range []struct {
		name, in string
		attr     string // the attribute the error names, if any
		want     string // a substring of the error
	}{
		{"NoScheme", "token=T", "", `must start with "pkcs11:"`},
		{"OtherScheme", "pkcs12:token=T", "", `must start with "pkcs11:"`},
		{"Unknown", "pkcs11:tokne=T", "tokne", "unknown attribute"},
		{"UnknownQuery", "pkcs11:token=T?pin=1234", "pin", "unknown attribute"},
		{"NameCase", "pkcs11:Token=T", "", "unknown name (attribute names are lower case"},
		{"UnknownNoValue", "pkcs11:tokn", "tokn", "unknown attribute"},
		{"Unsupported", "pkcs11:slot-id=3", "slot-id", "slot IDs change"},
		{"ModuleName", "pkcs11:token=T?module-name=softhsm2", "module-name", "module-path"},
		{"PathAttrInQuery", "pkcs11:?token=T", "token", "belongs in the path"},
		{"QueryAttrInPath", "pkcs11:module-path=/m.so", "module-path", "belongs in the query"},
		{"Duplicate", "pkcs11:token=A;token=B", "token", "more than once"},
		{"DuplicateQuery", "pkcs11:token=A?module-path=/a&module-path=/b", "module-path", "more than once"},
		{"TwoPINs", "pkcs11:token=A?pin-source=/p&pin-value=1", "", "pin-value and pin-source contradict"},
		{"PINSourceAndEnv", "pkcs11:token=A?pin-source=/p&pin-env=X", "", "contradict"},
		{"NoValue", "pkcs11:token", "token", "has no value"},
		{"EmptyValue", "pkcs11:token=", "token", "empty value"},
		{"EmptyAttribute", "pkcs11:token=A;;object=B", "", "empty attribute 2"},
		{"TrailingSemicolon", "pkcs11:token=A;", "", "empty attribute 2"},
		{"NoName", "pkcs11:=A", "", "no valid name"},
		{"BadName", "pkcs11:to ken=A", "", "no valid name"},
		{"BadPercent", "pkcs11:token=%zz", "token", "bad percent-encoding"},
		{"TruncatedPercent", "pkcs11:token=a%4", "token", "bad percent-encoding"},
		{"UnencodedSpace", "pkcs11:token=a b", "token", "must be percent-encoded"},
		{"UnencodedSlashInPath", "pkcs11:object=a/b", "object", "must be percent-encoded"},
		{"UnencodedSemicolonInQuery", "pkcs11:token=T?module-path=/a;b", "module-path", "must be percent-encoded"},
		{"InvalidUTF8", "pkcs11:token=%ff", "token", "UTF-8"},
		{"TypeCert", "pkcs11:type=cert", "type", "chancery uses a private key"},
		{"TypeUnknown", "pkcs11:type=keypair", "type", "unknown object type"},
		{"PINSourceProgram", "pkcs11:token=T?pin-source=|/bin/getpin", "pin-source", "not supported"},
		{"PINEnvBadName", "pkcs11:token=T?pin-env=1X", "pin-env", "not an environment variable name"},
		{"ModulePathNUL", "pkcs11:token=T?module-path=/a%00b", "module-path", "NUL"},
		{"Fragment", "pkcs11:token=T#frag", "token", "must be percent-encoded"},
		{"TooLong", "pkcs11:object=" + strings.Repeat("a", maxURILength), "", "longer than"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			u, err := ParseURI(tc.in)
			if err == nil {
				t.Fatalf("ParseURI(%q) = %s, want an error", tc.in, u)
			}
			if !errors.Is(err, ErrInvalidURI) {
				t.Errorf("error %v does not match ErrInvalidURI", err)
			}
			var ue *URIError
			if !errors.As(err, &ue) {
				t.Fatalf("error %T is not a *URIError", err)
			}
			if ue.Attr != tc.attr {
				t.Errorf("error names attribute %q, want %q", ue.Attr, tc.attr)
			}
			if !strings.Contains(err.Error(), tc.want) || !strings.HasPrefix(err.Error(), "pkcs11: ") {
				t.Errorf("error %q does not say %q", err, tc.want)
			}
		})
	}
}

// TestParseURIErrorsHideValues checks that no parse error quotes a value,
// which could be a PIN.
func TestParseURIErrorsHideValues(t *testing.T) {
	const pin = "Secret-PIN-4711"
	for _, in := range []string{
		"pkcs11:token=T?pin-value=" + pin + "&pin-source=/p",
		"pkcs11:token=T?pin-value=" + pin + " x",
		"pkcs11:token=T?pin-value=" + pin + "%zz",
		"pkcs11:token=T?pin-value=" + pin + "&pin-value=" + pin,
		"pkcs11:token=T?pinvalue=" + pin,
		"pkcs11:token=T?" + pin,
		"pkcs11:" + pin,
		"pkcs11:token=T;" + pin + "=x",
		"pkcs11:token=" + pin + " x",
	} {
		_, err := ParseURI(in)
		if err == nil {
			t.Errorf("ParseURI(%q) succeeded", in)
			continue
		}
		if strings.Contains(err.Error(), "4711") {
			t.Errorf("ParseURI(%q): the error quotes the value: %v", in, err)
		}
	}
}

func TestURINeverPrintsPINValue(t *testing.T) {
	u, err := ParseURI("pkcs11:token=T;object=k?module-path=/m.so&pin-value=Secret-4711")
	if err != nil {
		t.Fatal(err)
	}
	if !u.HasPINValue() {
		t.Fatal("HasPINValue() = false")
	}
	for _, format := range []string{"%v", "%+v", "%#v", "%s"} {
		for _, v := range []any{u, *u} {
			if s := fmt.Sprintf(format, v); strings.Contains(s, "4711") {
				t.Errorf("Sprintf(%q, %T) shows the PIN: %s", format, v, s)
			}
		}
	}
	if c := u.WithoutPINValue(); c.HasPINValue() || !u.HasPINValue() {
		t.Error("WithoutPINValue changed the original or kept the PIN")
	}
}

func TestURIIDCopied(t *testing.T) {
	u := &URI{ID: []byte{1, 2}}
	c := u.WithoutPINValue()
	c.ID[0] = 9
	if !bytes.Equal(u.ID, []byte{1, 2}) {
		t.Error("WithoutPINValue shares the ID's bytes")
	}
}
