package store

import (
	"context"
	"time"
)

// Seen is a node's last heartbeat as the managers of a shared store share
// it: who is down is then the same answer on every manager.
type Seen struct {
	// NodeID is the node.
	NodeID string `json:"node_id"`
	// At is when a manager received the heartbeat.
	At time.Time `json:"at"`
	// Trusted is the fingerprint of the root the node said it trusts;
	// Serial the serial of the certificate it said it presents (each
	// empty when it did not say).
	Trusted string `json:"trusted,omitempty"`
	Serial  string `json:"serial,omitempty"`
}

// SeenSharer is implemented by stores that several managers share, to
// share the nodes' heartbeats. Heartbeats are not state: they are written
// without an audit entry, last writer wins, and they are kept apart from
// the nodes' records.
type SeenSharer interface {
	// PutSeen writes records, in as few transactions as the store allows.
	PutSeen(ctx context.Context, recs []Seen) error
	// WatchSeen calls fn with every record stored, then with every record
	// written, until ctx ends or the watch fails. fn is called from one
	// goroutine.
	WatchSeen(ctx context.Context, fn func(Seen)) error
}

// SeenPruner is implemented by a SeenSharer that can delete the heartbeat
// records of nodes that were removed, or are gone: a heartbeat a manager
// accepted just before a node's removal may be written just after it.
type SeenPruner interface {
	// PruneSeen deletes those records and returns how many it deleted.
	PruneSeen(ctx context.Context) (int, error)
}
