package store_test

import (
	"errors"
	"strings"
	"testing"

	"github.com/chancery-pki/chancery/store"
)

// TestRecordErrors pins the record errors' messages: the record named once,
// "store: " once, and the kind matched with errors.Is.
func TestRecordErrors(t *testing.T) {
	kinds := []error{store.ErrNotFound, store.ErrExists, store.ErrConflict}
	for _, tc := range []struct {
		err  error
		kind error
		want string
	}{
		{store.NotFound(`node "abc"`), store.ErrNotFound, `store: node "abc" not found`},
		{store.NotFound("cluster"), store.ErrNotFound, "store: cluster not found"},
		{store.AlreadyExists("certificate 0a1b"), store.ErrExists, "store: certificate 0a1b already exists"},
		{store.Conflict(`node "abc"`, "it was removed"), store.ErrConflict, `store: node "abc" changed meanwhile: it was removed`},
	} {
		t.Run(tc.want, func(t *testing.T) {
			if got := tc.err.Error(); got != tc.want {
				t.Errorf("Error() = %q, want %q", got, tc.want)
			}
			if n := strings.Count(tc.err.Error(), "store: "); n != 1 {
				t.Errorf("%q says \"store: \" %d times, want once", tc.err, n)
			}
			for _, k := range kinds {
				if errors.Is(tc.err, k) != (k == tc.kind) {
					t.Errorf("errors.Is(%q, %v) = %v", tc.err, k, !(k == tc.kind))
				}
			}
		})
	}
}
