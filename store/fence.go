package store

import (
	"context"
	"errors"
	"fmt"
)

// This file is the fence of the writes only the leader may make: a root
// rotation's transitions, audit checkpoints, forgetting retired keys.
// Where several managers share a store, the leader's context carries the
// fence of its election, and a store that several processes share commits
// a change made under a fenced context only if the election's key still
// exists with the revision it was created at, in the same transaction: a
// manager that lost leadership, even one that does not know it yet, writes
// nothing. A store that only one process opens (the embedded store) has a
// single manager, which is the leader, and ignores fences.

// ErrFenced is matched by the error of a fenced change whose fence no
// longer holds: this manager is no longer the leader. Nothing was written.
var ErrFenced = errors.New("store: this manager is no longer the leader")

// Fence names the key an elected leader holds and the revision it was
// created at.
type Fence struct {
	// Key is the leader's election key.
	Key string
	// Revision is the key's create revision.
	Revision int64
}

// Validate checks that f names a key and a revision.
func (f Fence) Validate() error {
	if f.Key == "" || f.Revision <= 0 {
		return fmt.Errorf("store: invalid fence (key %q, revision %d)", f.Key, f.Revision)
	}
	return nil
}

type fenceKey struct{}

// WithFence returns a context whose changes a shared store commits only
// while f holds.
func WithFence(ctx context.Context, f Fence) context.Context {
	return context.WithValue(ctx, fenceKey{}, f)
}

// FenceFrom returns the fence ctx carries, if any.
func FenceFrom(ctx context.Context) (Fence, bool) {
	f, ok := ctx.Value(fenceKey{}).(Fence)
	return f, ok
}

// Fenced returns the error of a change refused because f no longer holds;
// it matches ErrFenced.
func Fenced(op string, f Fence) error {
	return fmt.Errorf("%w: %s refused: the leader key %s no longer has revision %d", ErrFenced, op, f.Key, f.Revision)
}
