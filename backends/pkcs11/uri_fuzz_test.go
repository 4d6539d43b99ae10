package pkcs11

import (
	"bytes"
	"errors"
	"strings"
	"testing"
)

// FuzzParseURI checks that ParseURI never panics, that every error it
// returns is a *URIError, that the canonical form of what it accepts parses
// back to the same URI, and that the canonical form never carries
// pin-value. Run it with go test -fuzz FuzzParseURI ./backends/pkcs11.
func FuzzParseURI(f *testing.F) {
	for _, s := range []string{
		"pkcs11:",
		"pkcs11:token=chancery;object=root?module-path=/usr/lib/softhsm/libsofthsm2.so&pin-source=/etc/chancery/pin",
		"pkcs11:token=My%20Token;serial=0123;object=a%2Fb;id=%01%02%ff;type=private",
		"pkcs11:object=a:b@c!$'()*+,=&d?pin-source=file:///run/pin?x|y&module-path=/m.so",
		"pkcs11:token=T?pin-value=12%2634",
		"pkcs11:token=T?pin-env=HSM_PIN",
		"PKCS11:id=ab",
		"pkcs11:token=A;;object=B",
		"pkcs11:token=%zz",
		"pkcs11:slot-id=3",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		u, err := ParseURI(s)
		if err != nil {
			var ue *URIError
			if !errors.As(err, &ue) || !errors.Is(err, ErrInvalidURI) {
				t.Fatalf("ParseURI(%q): error %v is not a *URIError", s, err)
			}
			return
		}
		canon := u.String()
		if strings.Contains(canon, "?pin-value=") || strings.Contains(canon, "&pin-value=") {
			t.Fatalf("String() of %q carries pin-value: %q", s, canon)
		}
		again, err := ParseURI(canon)
		if err != nil {
			t.Fatalf("ParseURI(%q) accepted, but its String() %q does not parse: %v", s, canon, err)
		}
		if again.HasPINValue() {
			t.Fatalf("String() of %q kept pin-value: %q", s, canon)
		}
		if again.Token != u.Token || again.Serial != u.Serial || again.Object != u.Object ||
			!bytes.Equal(again.ID, u.ID) || again.Type != u.Type || again.ModulePath != u.ModulePath ||
			again.PINSource != u.PINSource || again.PINEnv != u.PINEnv {
			t.Fatalf("round trip changed the URI: %q -> %q -> %q", s, canon, again.String())
		}
		if again.String() != canon {
			t.Fatalf("String() is not canonical: %q then %q", canon, again.String())
		}
	})
}
