// Package audit defines chancery's tamper-evident record of CA actions: a
// hash chain of entries, each holding the SHA-256 of the one before it, and
// checkpoints that bind the chain's head to the CA's key.
//
// Entries are appended by the store in the same transaction as the change
// they record, so the record and the state cannot disagree. This package
// holds the entry format, the hashing and the verification; it does no I/O.
//
// What the chain proves: an entry edited, deleted or moved breaks the hash
// links from that entry on, and Verify names the first entry that is wrong.
// What it cannot prove alone: that nobody rewrote the whole chain after a
// point, or cut its tail. Checkpoints close that gap up to the last one: a
// checkpoint holds a certificate issued by the cluster's CA (through the
// Signer, so an HSM- or Vault-held key) whose name carries the head's
// sequence number and hash, and nobody without the CA key can forge one.
//
// A cluster's root changes when it is rotated, so Verify takes the roots
// the cluster has had, each with the time range it was current (Root), and
// checks each checkpoint against the root that was current when the
// checkpoint was written; its Report says which root each checkpoint chains
// to. A checkpoint signed during a rotation by the new key carries the
// cross-signed certificate and chains to the old root, which is still the
// current one then.
package audit

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"time"
)

// Action names what an entry records.
type Action string

// The actions chancery records.
const (
	ActionInit           Action = "cluster.init"
	ActionKeyCreated     Action = "key.created"
	ActionIssued         Action = "certificate.issued"
	ActionRenewed        Action = "certificate.renewed"
	ActionTokenRotated   Action = "join_token.rotated"
	ActionPromoted       Action = "node.promoted"
	ActionDemoted        Action = "node.demoted"
	ActionRemoved        Action = "node.removed"
	ActionLeft           Action = "node.left"
	ActionPruned         Action = "certificates.pruned"
	ActionRetention      Action = "cert_record_retention.changed"
	ActionRenamed        Action = "node.renamed"
	ActionCertExpiry     Action = "cert_expiry.changed"
	ActionRefused        Action = "auth.refused"
	ActionCheckpoint     Action = "checkpoint"
	ActionRootRotation   Action = "root.rotation"
	ActionManagerStarted Action = "manager.started"
)

// Event is what a caller records. Every field but Action is optional. It
// never holds a secret: no token, key, PIN or passphrase.
type Event struct {
	Action Action `json:"action"`
	// Actor is the acting manager's node ID.
	Actor string `json:"actor,omitempty"`
	// NodeID and Role are the node acted on.
	NodeID string `json:"node_id,omitempty"`
	Role   string `json:"role,omitempty"`
	// Serial, NotAfter and IssuerKeyID describe an issued certificate.
	Serial      string    `json:"serial,omitempty"`
	NotAfter    time.Time `json:"not_after,omitzero"`
	IssuerKeyID string    `json:"issuer_key_id,omitempty"`
	// Backend names the signer backend that signed or holds a key.
	Backend string `json:"backend,omitempty"`
	// Reason says why a request was refused.
	Reason string `json:"reason,omitempty"`
	// Remote is the caller's network address.
	Remote string `json:"remote,omitempty"`
	// Details are further facts, such as a new cert-expiry.
	Details map[string]string `json:"details,omitempty"`
}

// Entry is one sealed record.
type Entry struct {
	// Seq numbers entries from 1, without gaps.
	Seq uint64 `json:"seq"`
	// Time is when the entry was appended, UTC.
	Time time.Time `json:"time"`
	Event
	// Prev is the Hash of entry Seq-1 (GenesisHash for the first).
	Prev string `json:"prev"`
	// Hash is the SHA-256, in hex, of the entry's canonical JSON with Hash
	// empty.
	Hash string `json:"hash"`
}

// GenesisHash is the Prev of the first entry.
const GenesisHash = "0000000000000000000000000000000000000000000000000000000000000000"

// Head is the last entry's sequence number and hash.
type Head struct {
	Seq  uint64 `json:"seq"`
	Hash string `json:"hash"`
}

// Genesis is the head of an empty log.
var Genesis = Head{Seq: 0, Hash: GenesisHash}

// Seal makes the entry that follows head.
func Seal(head Head, now time.Time, ev Event) Entry {
	e := Entry{Seq: head.Seq + 1, Time: now.UTC(), Event: ev, Prev: head.Hash}
	e.Hash = e.ComputeHash()
	return e
}

// Head returns the head the log has after e.
func (e Entry) Head() Head { return Head{Seq: e.Seq, Hash: e.Hash} }

// ComputeHash returns the hash e should carry: SHA-256 over its canonical
// JSON (encoding/json of the struct, fields in declaration order, map keys
// sorted) with Hash empty.
func (e Entry) ComputeHash() string {
	e.Hash = ""
	data, err := json.Marshal(e)
	if err != nil {
		// An Entry always encodes; a failure here is a programming error.
		panic(fmt.Sprintf("audit: cannot encode entry %d: %v", e.Seq, err))
	}
	sum := sha256.Sum256(data)
	return hex.EncodeToString(sum[:])
}

// Marshal encodes e as stored: one line of JSON.
func (e Entry) Marshal() []byte {
	data, err := json.Marshal(e)
	if err != nil {
		panic(fmt.Sprintf("audit: cannot encode entry %d: %v", e.Seq, err))
	}
	return data
}

// Unmarshal decodes a stored entry.
func Unmarshal(data []byte) (Entry, error) {
	var e Entry
	if err := json.Unmarshal(data, &e); err != nil {
		return e, fmt.Errorf("audit: unreadable entry: %w", err)
	}
	return e, nil
}

type actorKey struct{}

// WithActor returns ctx carrying the acting manager's node ID, which the
// operations that record audit entries read with ActorFrom.
func WithActor(ctx context.Context, nodeID string) context.Context {
	return context.WithValue(ctx, actorKey{}, nodeID)
}

// ActorFrom returns the acting manager's node ID carried by ctx, or "".
func ActorFrom(ctx context.Context) string {
	s, _ := ctx.Value(actorKey{}).(string)
	return s
}
