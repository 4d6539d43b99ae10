// Package store defines the state a chancery manager keeps: the cluster
// record, the nodes, and every certificate issued, behind the small Store
// interface.
//
// Implementations register as drivers (registry.go) under a type name,
// and a data directory's settings file (store.json) says which one holds
// its cluster's state: the embedded store/boltstore, or store/etcdstore,
// which several managers can share. Both must pass the conformance
// suite in store/storetest. The JSON field names on the types below are the
// stored encoding shared by implementations, so records can be copied from
// one store to another.
//
// The cluster record also keeps every root the cluster has had (Cluster.Roots,
// Cluster.RootAt) and the root rotation in progress, so that what an old root
// signed, such as the audit log's checkpoints, still verifies after a
// rotation. ValidateCluster is the shape every store enforces on it.
//
// The cluster record holds the join tokens, which are secrets: a store keeps
// them readable only by its owner, and no error a store returns includes
// them. Callers must not log or serve a Cluster as a whole.
package store

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/chancery-pki/chancery/audit"
)

// ErrNotFound is matched by the errors for records that do not exist, as
// in "store: node \"abc\" not found" (NotFound). Test for it with
// errors.Is.
var ErrNotFound = errors.New("store: not found")

// ErrConflict is matched by RecordIssuance's error when the node changed
// since the caller read it: it was removed, or its role changed (Conflict).
// Nothing is written; the caller reads the node again.
var ErrConflict = errors.New("store: the node changed meanwhile")

// ErrExists is matched by the errors for records that may be created only
// once, such as the cluster record or an issued certificate's serial
// (AlreadyExists). Test for it with errors.Is.
var ErrExists = errors.New("store: already exists")

// ErrUnavailable is matched by the error of a call the store could not
// answer for now: a shared store did not answer within its call timeout
// (etcdstore.ErrNoAnswer), or answered that it cannot serve the call
// (etcdstore.ErrUnavailable: etcd has no leader). Nothing is known of a change that failed so; the
// caller may try again, here or through another manager.
var ErrUnavailable = errors.New("store: the store did not answer")

// recordError is an error about one record: it names the record once, says
// what is wrong with it, and matches its kind with errors.Is.
type recordError struct {
	kind    error  // ErrNotFound, ErrExists or ErrConflict
	record  string // "cluster", `node "abc"`, "certificate 0a1b"
	problem string // "not found", "already exists", "changed meanwhile: ..."
}

func (e *recordError) Error() string { return "store: " + e.record + " " + e.problem }

// Is reports whether target is e's kind.
func (e *recordError) Is(target error) bool { return target == e.kind }

// NotFound returns the error of a Store for a record that does not exist,
// such as `store: node "abc" not found`; it matches ErrNotFound. record
// names the record: "cluster", `node "abc"`.
func NotFound(record string) error {
	return &recordError{kind: ErrNotFound, record: record, problem: "not found"}
}

// AlreadyExists returns the error of a Store for a record that may be
// created only once and exists, such as "store: certificate 0a1b already
// exists"; it matches ErrExists.
func AlreadyExists(record string) error {
	return &recordError{kind: ErrExists, record: record, problem: "already exists"}
}

// Conflict returns RecordIssuance's error for a node that changed since the
// caller read it, such as `store: node "abc" changed meanwhile: it was
// removed`; it matches ErrConflict. change says what changed.
func Conflict(record, change string) error {
	return &recordError{kind: ErrConflict, record: record, problem: "changed meanwhile: " + change}
}

// Cluster is the cluster's record. There is at most one per store.
type Cluster struct {
	// ID is the cluster ID, the O of every node certificate. It never changes.
	ID string `json:"id"`
	// CreatedAt is when the cluster was created; set by the store if zero.
	CreatedAt time.Time `json:"created_at"`
	// RootCAPEM is the PEM of the root CA certificate bundle nodes trust,
	// and whose digest the join tokens pin. Its first certificate is the
	// current root (see Roots).
	RootCAPEM []byte `json:"root_ca_pem"`
	// Backend says how to reach the current root's key. It never holds
	// secrets.
	Backend BackendConfig `json:"backend"`
	// IntermediatesPEM are the CA certificates between the current root's
	// signing key and the root, the signing CA first: an external CA that
	// signs with an intermediate has them; empty when the root's own key
	// signs. They are handed out after every certificate issued.
	IntermediatesPEM []byte `json:"intermediates_pem,omitempty"`
	// RootSince is when the current root became current; zero means
	// CreatedAt (the cluster's first root, as in records written before
	// root rotation).
	RootSince time.Time `json:"root_since,omitzero"`
	// RootHistory holds the roots the cluster had before the current one,
	// oldest first, each with the time range it was current, so that what
	// they signed (audit checkpoints) can still be verified.
	RootHistory []Root `json:"root_history,omitempty"`
	// Rotation is the root rotation in progress, or nil.
	Rotation *Rotation `json:"rotation,omitempty"`
	// RetiredKeys are the keys of roots that a rotation retired (the old
	// root when it is done, a new root it discarded when it is aborted or
	// re-targeted), queued in the same update, for the leader to forget:
	// see RetiredKey.
	RetiredKeys []RetiredKey `json:"retired_keys,omitempty"`
	// WorkerToken is the join token for workers. It is a secret.
	WorkerToken string `json:"worker_token"`
	// ManagerToken is the join token for managers. It is a secret.
	ManagerToken string `json:"manager_token"`
	// CertExpiry is the lifetime of node certificates issued from now on.
	CertExpiry time.Duration `json:"cert_expiry"`
	// CertRecordRetention is how long the record of an issued certificate
	// is kept after the certificate expired, when the store is a Pruner;
	// 0 keeps every record. The audit log keeps every issuance whatever
	// it is.
	CertRecordRetention time.Duration `json:"cert_record_retention,omitempty"`
	// ListenAddr is the address the manager's API listens on.
	ListenAddr string `json:"listen_addr"`
	// AdvertiseAddr is the address other nodes reach the manager on.
	AdvertiseAddr string `json:"advertise_addr"`
	// LeaderID is the node ID of the manager that holds the store and signs:
	// the first manager, until several managers share a store.
	LeaderID string `json:"leader_id,omitempty"`
	// Version is set by the store: 1 when created, incremented by each update.
	Version uint64 `json:"version"`
}

// BackendConfig says which signer backend holds the root key and how to reach
// it, for example {Type: "file", Settings: {"key_path": "/var/lib/chancery/root.key"}}.
// It never holds secrets such as PINs or Vault tokens.
type BackendConfig struct {
	// Type names the backend: "file", "pkcs11", "vault" or "cfssl".
	Type string `json:"type"`
	// Settings are the backend's non-secret settings.
	Settings map[string]string `json:"settings,omitempty"`
}

// NodeState is the lifecycle state of a node.
type NodeState string

const (
	// StateReady is a node that may renew its certificate.
	StateReady NodeState = "ready"
	// StateDown is a node that is known but not currently reachable.
	StateDown NodeState = "down"
	// StateRemoved is a node removed from the cluster; it is refused
	// certificates.
	StateRemoved NodeState = "removed"
)

// Node is a member of the cluster.
type Node struct {
	// ID is the node ID, the CN of its certificates. It never changes.
	ID string `json:"id"`
	// Hostname is the node's host name, for display.
	Hostname string `json:"hostname"`
	// Role is "swarm-manager" or "swarm-worker", the OU of its certificates.
	Role string `json:"role"`
	// State is the node's lifecycle state.
	State NodeState `json:"state"`
	// CertSerial is the serial of the node's current certificate, in lower
	// case hex.
	CertSerial string `json:"cert_serial"`
	// CertNotAfter is when the node's current certificate expires.
	CertNotAfter time.Time `json:"cert_not_after"`
	// CertIssuerKeyID is the hex subject key ID of the CA key that issued
	// the node's current certificate (its authority key ID): during a root
	// rotation, whether the node holds a certificate from the new key.
	// Empty for records written before it was kept.
	CertIssuerKeyID string `json:"cert_issuer_key_id,omitempty"`
	// RenewalTokens is how many renewals the node may still ask for of its
	// own accord, as of RenewalTokensAt (zero: as many as the limit
	// allows); see cluster.RenewalLimit. Written with each certificate.
	RenewalTokens   float64   `json:"renewal_tokens,omitempty"`
	RenewalTokensAt time.Time `json:"renewal_tokens_at,omitzero"`
	// CreatedAt is when the node was first recorded; kept by the store.
	CreatedAt time.Time `json:"created_at"`
	// UpdatedAt is when the node was last changed; set by the store.
	UpdatedAt time.Time `json:"updated_at"`
}

// IssuedCertificate is the record of one issued node certificate.
type IssuedCertificate struct {
	// Serial is the certificate's serial number in lower case hex; it is the
	// record's key and is unique.
	Serial string `json:"serial"`
	// NodeID is the node the certificate was issued to.
	NodeID string `json:"node_id"`
	// Role is the role (OU) the certificate grants.
	Role string `json:"role"`
	// NotBefore is the start of the certificate's validity.
	NotBefore time.Time `json:"not_before"`
	// NotAfter is the end of the certificate's validity.
	NotAfter time.Time `json:"not_after"`
	// IssuerKeyID is the hex subject key ID of the CA that issued it.
	IssuerKeyID string `json:"issuer_key_id"`
	// IssuedAt is when the certificate was issued; set by the store if zero.
	IssuedAt time.Time `json:"issued_at"`
}

// Store keeps the cluster record, the nodes and the issued certificates.
//
// Every method first returns ctx.Err() if ctx is done. Implementations are
// safe for concurrent use, and each method is atomic.
//
// The mutating methods take audit events, which the store appends to the
// audit log (package audit) in the same transaction as the change, so that
// the record and the state never disagree: both are written, or neither.
type Store interface {
	// CreateCluster stores the cluster record with Version 1. It fails with
	// ErrExists if a cluster record exists, and with an error wrapping
	// ErrInvalidCluster if ValidateCluster refuses c.
	CreateCluster(ctx context.Context, c Cluster, events ...audit.Event) error
	// Cluster returns the cluster record, or an error wrapping ErrNotFound.
	Cluster(ctx context.Context) (Cluster, error)
	// UpdateCluster atomically reads the cluster record, passes it to fn and
	// stores the result with Version incremented. If fn returns an error,
	// changes ID, or leaves a record ValidateCluster refuses (the error
	// wraps ErrInvalidCluster), nothing is written and that error is
	// returned.
	UpdateCluster(ctx context.Context, fn func(*Cluster) error, events ...audit.Event) (Cluster, error)

	// Node returns the node with the given ID, or an error wrapping
	// ErrNotFound.
	Node(ctx context.Context, id string) (Node, error)
	// Nodes returns every node, sorted by ID. Listings that may be large
	// page with ListNodes instead.
	Nodes(ctx context.Context) ([]Node, error)
	// ListNodes returns one page of nodes, sorted by ID, starting after
	// opts.After (see ListOptions). Paging is stable under concurrent
	// changes: a node that exists for the whole listing is listed exactly
	// once. A cursor no node listing returned fails with ErrInvalidCursor,
	// a negative limit with ErrInvalidListOptions.
	ListNodes(ctx context.Context, opts ListOptions) (NodePage, error)
	// UpdateNode atomically reads a node, passes it to fn and stores the
	// result with UpdatedAt set. It fails with ErrNotFound if the node does
	// not exist; if fn returns an error, or changes ID, nothing is written.
	UpdateNode(ctx context.Context, id string, fn func(*Node) error, events ...audit.Event) (Node, error)

	// RecordIssuance atomically stores cert and creates or updates the node
	// it was issued to. The caller sets n.CertSerial and n.CertNotAfter from
	// cert; arguments ValidateIssuance refuses change nothing. An
	// existing node keeps its CreatedAt, and its State and Hostname where n
	// leaves them empty, so a renewal need not read the node first; a new
	// node with no State is StateReady. A serial already recorded fails with
	// ErrExists. If the node exists and is removed, or its stored role is not
	// n.Role, nothing is written and the error wraps ErrConflict: a removal or
	// a role change that commits while a certificate is being issued is
	// never undone by the issuance.
	RecordIssuance(ctx context.Context, n Node, cert IssuedCertificate, events ...audit.Event) error
	// IssuedCertificate returns the certificate with the given serial, or an
	// error wrapping ErrNotFound.
	IssuedCertificate(ctx context.Context, serial string) (IssuedCertificate, error)
	// IssuedCertificates returns the certificates issued to nodeID, or all of
	// them if nodeID is "", ordered by IssuedAt then Serial.
	IssuedCertificates(ctx context.Context, nodeID string) ([]IssuedCertificate, error)
	// ListIssuedCertificates returns one page of the certificates issued
	// to nodeID, or to every node if nodeID is "", sorted by serial (as
	// strings), starting after opts.After; as stable as ListNodes, and
	// refusing what it refuses.
	ListIssuedCertificates(ctx context.Context, nodeID string, opts ListOptions) (CertificatePage, error)

	// AppendAudit appends events that record no state change (a refused
	// request, a checkpoint) and returns their sealed entries.
	AppendAudit(ctx context.Context, events ...audit.Event) ([]audit.Entry, error)
	// AuditHead returns the audit log's last sequence number and hash
	// (audit.Genesis for an empty log).
	AuditHead(ctx context.Context) (audit.Head, error)
	// AuditRecords returns at most limit stored audit records (all when
	// limit <= 0) with sequence numbers from from on, in order, as stored
	// (for verification and export).
	AuditRecords(ctx context.Context, from uint64, limit int) ([]audit.Record, error)

	// Close releases the store. Methods called after Close fail.
	Close() error
}

// Destroyer is implemented by a Store outside the data directory (etcd)
// that can remove everything it holds, as `chancery init` does to undo a
// cluster it created in an empty one.
type Destroyer interface {
	// Destroy removes every record of the store.
	Destroy(ctx context.Context) error
}

// ValidateIssuance checks the arguments of RecordIssuance, so every Store
// refuses the same bad input: n.ID and cert.Serial are required, the serial
// is lower case hex, and n names the certificate it was issued
// (n.ID == cert.NodeID, n.CertSerial == cert.Serial).
func ValidateIssuance(n Node, cert IssuedCertificate) error {
	switch {
	case n.ID == "":
		return errors.New("store: record issuance: the node has no ID")
	case cert.Serial == "":
		return errors.New("store: record issuance: the certificate has no serial")
	case strings.Trim(cert.Serial, "0123456789abcdef") != "":
		return fmt.Errorf("store: record issuance: serial %q is not lower case hex", cert.Serial)
	case cert.NodeID != n.ID:
		return fmt.Errorf("store: record issuance: certificate %s was issued to node %q, not %q", cert.Serial, cert.NodeID, n.ID)
	case n.CertSerial != cert.Serial:
		return fmt.Errorf("store: record issuance: node %q has CertSerial %q; set it to the certificate's serial %s", n.ID, n.CertSerial, cert.Serial)
	}
	return nil
}
