package softhsm

import (
	"path/filepath"
	"strings"
	"testing"
)

// recorder is a testing.TB that records Fatalf and Skip instead of ending
// the test.
type recorder struct {
	testing.TB
	failed, skipped bool
}

func (r *recorder) Helper()                {}
func (r *recorder) Fatalf(string, ...any)  { r.failed = true; panic(r) }
func (r *recorder) Skip(...any)            { r.skipped = true; panic(r) }
func (r *recorder) run(f func(testing.TB)) { defer func() { recover() }(); f(r) }

func TestRequireMissingModule(t *testing.T) {
	t.Setenv(ModuleEnv, filepath.Join(t.TempDir(), "libsofthsm2.so"))
	if _, err := Module(); err == nil || !strings.Contains(err.Error(), ModuleEnv) {
		t.Errorf("Module() with a missing $%s: %v", ModuleEnv, err)
	}
	for _, tc := range []struct {
		ci         string
		fail, skip bool
	}{
		{"true", true, false},
		{"", false, true},
		{"false", false, true},
	} {
		t.Setenv("CI", tc.ci)
		r := &recorder{}
		r.run(func(tb testing.TB) { Require(tb) })
		if r.failed != tc.fail || r.skipped != tc.skip {
			t.Errorf("CI=%q: failed=%v skipped=%v, want failed=%v skipped=%v", tc.ci, r.failed, r.skipped, tc.fail, tc.skip)
		}
	}
}
