package file

import (
	"testing"

	"github.com/chancery-pki/chancery/backends"
)

// TestNameIsDefault checks that the file backend is the one chosen when no
// flag selects another.
func TestNameIsDefault(t *testing.T) {
	if Name != backends.Default {
		t.Errorf("Name %q, backends.Default %q", Name, backends.Default)
	}
}
