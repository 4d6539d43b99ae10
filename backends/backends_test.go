package backends

import "testing"

func TestNextName(t *testing.T) {
	const id = "20250102T030405Z-1a2b3c"
	for _, tc := range []struct {
		name, current, want string
	}{
		{"Empty", "", "chancery-root-" + id},
		{"First", "team-root", "team-root-" + id},
		{"Again", "team-root-20240101T000000Z-ffee00", "team-root-" + id},
		{"OtherShape", "team-root-2024", "team-root-2024-" + id},
		{"UpperCaseHex", "team-root-20240101T000000Z-FFEE00", "team-root-20240101T000000Z-FFEE00-" + id},
		{"OtherLetters", "team-root-20240101X000000Z-ffee00", "team-root-20240101X000000Z-ffee00-" + id},
		{"OnlyASuffix", "-20240101T000000Z-ffee00", "-20240101T000000Z-ffee00-" + id},
		{"NoDash", "root20240101T000000Z-ffee00", "root20240101T000000Z-ffee00-" + id},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := NextName(tc.current, "chancery-root", id); got != tc.want {
				t.Errorf("NextName(%q) = %q, want %q", tc.current, got, tc.want)
			}
		})
	}
}
