package pkcs11

import (
	"bytes"
	"strings"
	"testing"

	"github.com/chancery-pki/chancery/backends"
)

func TestNextRootSettings(t *testing.T) {
	const id = "20250102T030405Z-1a2b3c"
	for _, tc := range []struct {
		name    string
		current backends.Settings
		want    URI // without ID, checked apart
		wantMax string
		err     string
	}{
		{name: "Labeled",
			current: backends.Settings{SettingURI: "pkcs11:token=hsm;object=root;id=%01?module-path=/m.so&pin-source=/p", SettingGenerated: "true"},
			want:    URI{Token: "hsm", Object: "root-" + id, ModulePath: "/m.so", PINSource: "/p"}},
		{name: "RotatedBefore",
			current: backends.Settings{SettingURI: "pkcs11:token=hsm;object=root-20240101T000000Z-ffee00;id=%02?module-path=/m.so&pin-env=PIN", SettingMaxSessions: "4"},
			want:    URI{Token: "hsm", Object: "root-" + id, ModulePath: "/m.so", PINEnv: "PIN"}, wantMax: "4"},
		{name: "IDOnly",
			current: backends.Settings{SettingURI: "pkcs11:serial=abc;id=%03;type=private?module-path=/m.so"},
			want:    URI{Serial: "abc", Object: DefaultObjectLabel + "-" + id, Type: "private", ModulePath: "/m.so"}},
		{name: "NoURI", current: backends.Settings{}, err: "no PKCS#11 URI"},
		{name: "BadURI", current: backends.Settings{SettingURI: "pkcs12:token=x"}, err: "pkcs11:"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := Backend{}.NextRootSettings(tc.current, id)
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("NextRootSettings: %v, want an error with %q", err, tc.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			u, err := ParseURI(got[SettingURI])
			if err != nil {
				t.Fatal(err)
			}
			cur, _ := ParseURI(tc.current[SettingURI])
			if len(u.ID) != 16 || bytes.Equal(u.ID, cur.ID) {
				t.Errorf("new id %x: want 16 bytes, not the current id", u.ID)
			}
			u.ID = nil
			if u.String() != tc.want.String() {
				t.Errorf("new URI %s, want %s (and an id)", u, &tc.want)
			}
			wantLen := 1
			if tc.wantMax != "" {
				wantLen++
			}
			if got[SettingMaxSessions] != tc.wantMax || len(got) != wantLen {
				t.Errorf("settings %v: want the URI, and max_sessions %q when the current root has it", got, tc.wantMax)
			}
			// Deterministic: the same input gives the same key.
			again, _ := Backend{}.NextRootSettings(tc.current, id)
			if again[SettingURI] != got[SettingURI] {
				t.Errorf("NextRootSettings is not a function of its input: %s, then %s", got[SettingURI], again[SettingURI])
			}
		})
	}
	if _, err := (Backend{}).NextRootSettings(backends.Settings{SettingURI: "pkcs11:token=t;object=o"}, ""); err == nil {
		t.Error("an empty id was accepted")
	}
}
