// Package api defines the manager's HTTPS API: its paths and the JSON
// bodies that the manager (package server) and its clients (package client,
// the node agent, the CLI) exchange. It holds no logic.
//
// Every body is JSON. Errors are an Error body with a 4xx or 5xx status.
// Certificates and CSRs travel as PEM strings.
package api

import "time"

// Paths of the API. Root and Join need no client certificate; the others
// need a node certificate of this cluster (mutual TLS), and the Admin paths
// a manager's.
const (
	PathRoot   = "/v1/ca"
	PathJoin   = "/v1/join"
	PathRenew  = "/v1/renew"
	PathStatus = "/v1/status"
	PathLeave  = "/v1/leave" // POST LeaveRequest: the calling node leaves the cluster

	PathAdminInfo      = "/v1/admin/info"
	PathAdminNodes     = "/v1/admin/nodes"          // GET: one NodePage (?after=, ?limit=, ?filter=)
	PathAdminNode      = "/v1/admin/nodes/"         // + ID: GET inspect, DELETE remove (?force=true)
	PathAdminPromote   = "/v1/admin/nodes/promote/" // + ID: POST
	PathAdminDemote    = "/v1/admin/nodes/demote/"  // + ID: POST
	PathAdminJoinToken = "/v1/admin/join-token/"    // + role: GET, POST ?rotate=true
	PathAdminUpdate    = "/v1/admin/update"         // POST Update
	PathAdminCA        = "/v1/admin/ca"             // GET CAStatus
	PathAdminCARotate  = "/v1/admin/ca/rotate"      // POST RotateRequest: CAStatus
	PathAdminCAAbort   = "/v1/admin/ca/abort"       // POST: CAStatus
)

// MaxBodyBytes bounds every request body.
const MaxBodyBytes = 64 << 10

// SocketFile is the manager's administration socket in the data directory.
const SocketFile = "chancery.sock"

// Error is the body of every error answer.
type Error struct {
	// Message says what went wrong and what to do.
	Message string `json:"message"`
	// Code is a stable machine-readable reason, such as "invalid_token".
	Code string `json:"code"`
	// Candidates, with CodeAmbiguousName, are the IDs of the nodes the
	// name matches.
	Candidates []string `json:"candidates,omitempty"`
}

// Error codes.
const (
	CodeInvalidToken = "invalid_token"
	CodeInvalidCSR   = "invalid_csr"
	CodeBadRequest   = "bad_request"
	CodeTooLarge     = "too_large"
	CodeUnauthorized = "unauthorized"
	CodeForbidden    = "forbidden"
	CodeNodeRemoved  = "node_removed"
	CodeNotFound     = "not_found"
	CodeConflict     = "conflict"
	// CodeAmbiguousName answers a node name that matches several nodes;
	// Error.Candidates lists their IDs.
	CodeAmbiguousName = "ambiguous_name"
	CodeInternal      = "internal"
	CodeSignerFailure = "signer_failure"
	// CodeTooManyRequests comes with HTTP 429 and a Retry-After header
	// saying, in seconds, when to try again.
	CodeTooManyRequests = "too_many_requests"
	// CodeUnavailable: this manager cannot serve the call now (it lost
	// its store's session, say); another manager may.
	CodeUnavailable = "unavailable"
)

// Root is the answer of PathRoot: the root CA bundle nodes trust. A joining
// node fetches it without trusting the connection and accepts it only if
// its digest matches the join token's.
type Root struct {
	RootCAPEM string `json:"root_ca_pem"`
}

// JoinRequest asks to join with a token.
type JoinRequest struct {
	Token    string `json:"token"`
	CSR      string `json:"csr"`
	Hostname string `json:"hostname"`
}

// RenewRequest asks for a new certificate for the calling node.
type RenewRequest struct {
	CSR string `json:"csr"`
}

// Certificate is the answer of PathJoin and PathRenew.
type Certificate struct {
	NodeID string `json:"node_id"`
	Role   string `json:"role"`
	// CertificatePEM is the node certificate followed by any intermediates.
	CertificatePEM string `json:"certificate_pem"`
	// RootCAPEM is the root bundle to trust.
	RootCAPEM string `json:"root_ca_pem"`
	// LeaderAddr is the leader's API address, which the node should call.
	LeaderAddr string `json:"leader_addr,omitempty"`
}

// LeaveRequest is a node leaving the cluster (chancery leave): the manager
// marks it removed, so that its certificate is refused from then on.
type LeaveRequest struct {
	// Force lets a manager that is not the leader leave, as docker's
	// `swarm leave --force`; the leader never leaves.
	Force bool `json:"force,omitempty"`
}

// StatusRequest is a node's heartbeat.
type StatusRequest struct {
	Hostname string `json:"hostname"`
	// TrustedRoot is the SHA-256 fingerprint ("sha256:" and hex) of the
	// root the node trusts now, the first certificate of its root file: a
	// root rotation finishes once every node trusts the new root.
	TrustedRoot string `json:"trusted_root,omitempty"`
	// CertSerial is the serial (lower case hex) of the certificate the node
	// presents now: a root rotation counts a node as holding a certificate
	// from the new key once it says it presents the one the manager last
	// issued it, not as soon as it was issued (the node may not be using
	// it yet).
	CertSerial string `json:"cert_serial,omitempty"`
}

// MaxManagers bounds the managers' addresses a status answer lists, and a
// node keeps.
const MaxManagers = 16

// Status is the manager's answer to a heartbeat: what the node should be.
type Status struct {
	// Role is the node's role as the store holds it now; a node whose
	// certificate says otherwise renews at once.
	Role string `json:"role"`
	// RootCAPEM is the root bundle to trust; a node whose bundle differs
	// takes this one.
	RootCAPEM string `json:"root_ca_pem"`
	// HeartbeatPeriod is how often the node should report.
	HeartbeatPeriod time.Duration `json:"heartbeat_period"`
	// LeaderAddr is the leader's API address, which the node should call.
	// Managers that share a store (etcd) each serve, and send none.
	LeaderAddr string `json:"leader_addr,omitempty"`
	// Managers are the API addresses (HOST:PORT) of the live managers, at
	// most MaxManagers: a node whose manager stops answering tries the
	// others. With the embedded store, the one manager's address.
	Managers []string `json:"managers,omitempty"`
	// RenewNow asks the node to renew its certificate now: during a root
	// rotation, its certificate is not from the key that signs now. Nodes
	// are asked in batches, at a bounded rate.
	RenewNow bool `json:"renew_now,omitempty"`
}

// RotateRequest asks for a root rotation (chancery ca --rotate).
type RotateRequest struct {
	// Backend names the new root's backend; empty means the current one,
	// with a new key where it can make one.
	Backend string `json:"backend,omitempty"`
	// Settings are the new root's backend settings (never secrets), as
	// the backend's flags give them; empty for the current backend's own
	// choice of a new key.
	Settings map[string]string `json:"settings,omitempty"`
	// CertPEM, when set, is the new root's certificate (--ca-cert): for an
	// external CA, the root it must issue under. Never a key.
	CertPEM string `json:"cert_pem,omitempty"`
	// KeyAlgorithm and CommonName are a new root key's algorithm and a new
	// root's common name; empty means the backend's default and swarm-ca.
	KeyAlgorithm string `json:"key_algorithm,omitempty"`
	CommonName   string `json:"common_name,omitempty"`
	// AllowBridge allows a one-time bridge key, for a pair of backends that
	// no other path connects (from one external CA to another).
	AllowBridge bool `json:"allow_bridge,omitempty"`
	// DeleteOldKey consents to deleting, from an HSM or Vault, the keys the
	// rotation retires that chancery made: the old root's once it is done,
	// the new root's if it is aborted or re-targeted. A key file chancery
	// made is deleted without it; an external CA is always left alone.
	DeleteOldKey bool `json:"delete_old_key,omitempty"`
	// ExcludeStragglers excludes the nodes that have not reported for
	// longer than the grace: they stop blocking the rotation, and must join
	// again. With no rotation asked (Backend and Settings empty and a
	// rotation in progress), it applies to the rotation in progress.
	ExcludeStragglers bool `json:"exclude_stragglers,omitempty"`
	// ExcludeOnly asks only to exclude the stragglers of the rotation in
	// progress (chancery ca --force): it never starts a rotation, and is
	// refused when none is in progress.
	ExcludeOnly bool `json:"exclude_only,omitempty"`
}

// CAStatus is the answer of PathAdminCA: the root nodes trust, and the
// rotation in progress.
type CAStatus struct {
	// RootCAPEM is the root nodes are given now, the one the join tokens
	// pin.
	RootCAPEM string `json:"root_ca_pem"`
	// RootFingerprint is its SHA-256 fingerprint.
	RootFingerprint string `json:"root_fingerprint"`
	// Rotation is the rotation in progress, or nil.
	Rotation *RotationStatus `json:"rotation,omitempty"`
	// LastRotation says how the last rotation ended: "done", "aborted", or
	// "" when there was none since the manager started.
	LastRotation string `json:"last_rotation,omitempty"`
	// RetiredKeys are the retired roots whose key the leader has yet to
	// forget (delete, or keep and say why in the audit log).
	RetiredKeys []RetiredKey `json:"retired_keys,omitempty"`
}

// RetiredKey is a retired root whose key is still to be forgotten.
type RetiredKey struct {
	// Fingerprint is the retired root's SHA-256 fingerprint.
	Fingerprint string `json:"fingerprint"`
	// Backend names the backend that holds its key.
	Backend string `json:"backend"`
	// Reason is "done", "aborted" or "replaced".
	Reason string `json:"reason"`
	// Attempts counts failed attempts to delete it; LastError is the last
	// failure.
	Attempts  int    `json:"attempts,omitempty"`
	LastError string `json:"last_error,omitempty"`
}

// RotationStatus is where a root rotation stands.
type RotationStatus struct {
	// Phase is "prepare", "reissue" or "switch-trust".
	Phase string `json:"phase"`
	// TargetFingerprint is the new root's SHA-256 fingerprint.
	TargetFingerprint string `json:"target_fingerprint"`
	// Path is how the new root was cross-signed: "public-key", "csr" or
	// "bridge"; empty until it is.
	Path string `json:"path,omitempty"`
	// Total counts the nodes the rotation waits for; Converged those that
	// hold a certificate from the new key; TrustingNew those that trust the
	// new root.
	Total       int `json:"total"`
	Converged   int `json:"converged"`
	TrustingNew int `json:"trusting_new"`
	// Stragglers have not reported for longer than the grace.
	Stragglers []string `json:"stragglers,omitempty"`
	// Excluded were excluded by the operator.
	Excluded []string `json:"excluded,omitempty"`
	// StartedAt is when the rotation started.
	StartedAt time.Time `json:"started_at"`
	// DeleteOldKey says whether the operator consented to deleting the
	// retired root's key from an HSM or Vault (RotateRequest.DeleteOldKey).
	DeleteOldKey bool `json:"delete_old_key,omitempty"`
}

// Info is the answer of PathAdminInfo.
type Info struct {
	ClusterID       string        `json:"cluster_id"`
	LeaderID        string        `json:"leader_id"`
	Managers        int           `json:"managers"`
	Nodes           int           `json:"nodes"`
	CertExpiry      time.Duration `json:"cert_expiry"`
	Backend         string        `json:"backend"`
	BackendDetails  [][2]string   `json:"backend_details,omitempty"`
	AdvertiseAddr   string        `json:"advertise_addr"`
	RootSubject     string        `json:"root_subject"`
	RootFingerprint string        `json:"root_fingerprint"`
	RootNotAfter    time.Time     `json:"root_not_after"`
	// CertRecordRetention is how long expired certificates' records are
	// kept; 0 keeps them all.
	CertRecordRetention time.Duration `json:"cert_record_retention,omitempty"`
}

// Node is a node as PathAdminNodes lists it.
type Node struct {
	ID            string    `json:"id"`
	Hostname      string    `json:"hostname"`
	Role          string    `json:"role"`
	Status        string    `json:"status"`         // "Ready", "Down", "Removed"
	Availability  string    `json:"availability"`   // "Active"
	ManagerStatus string    `json:"manager_status"` // "Leader", "Reachable", "Unreachable", "" for workers
	CertSerial    string    `json:"cert_serial"`
	CertNotAfter  time.Time `json:"cert_not_after"`
	LastSeen      time.Time `json:"last_seen,omitzero"`
	// CreatedAt is when the node joined.
	CreatedAt time.Time `json:"created_at,omitzero"`
}

// Node listings are paged: GET PathAdminNodes takes ?after=CURSOR (a
// NodePage's Next; none for the first page), ?limit=N (1 to MaxNodePage;
// default DefaultNodePage), repeated ?filter=KEY=VALUE (see `chancery
// node ls --filter`) and ?brief=true (see NodeQuery), and answers a
// NodePage. A page holds the nodes of the
// next run of at most limit stored nodes, in ID order, that pass the
// filters and are not removed: it may hold fewer than limit, or none, and
// still have a Next. Paging is stable under concurrent joins: a node that
// exists for the whole listing is listed exactly once.
const (
	DefaultNodePage = 500
	MaxNodePage     = 2000
)

// NodeQuery asks for one page of a node listing: the query parameters of
// PathAdminNodes.
type NodeQuery struct {
	// After is the previous page's Next, "" for the first page.
	After string
	// Limit is the most stored nodes the page covers (1 to MaxNodePage);
	// 0 means DefaultNodePage.
	Limit int
	// Filters are KEY=VALUE filters (see `chancery node ls --filter`).
	Filters []string
	// Brief (?brief=true) leaves out of each node its certificate's serial
	// and expiry and its times, which the default listing does not show:
	// a third of the bytes to encode and decode at 100,000 nodes.
	Brief bool
}

// NodePage is one page of a node listing.
type NodePage struct {
	Nodes []Node `json:"nodes"`
	// Next is the cursor of the next page, or "" when this page is the
	// last.
	Next string `json:"next,omitempty"`
}

// JoinToken is the answer of PathAdminJoinToken.
type JoinToken struct {
	Role          string `json:"role"`
	Token         string `json:"token"`
	AdvertiseAddr string `json:"advertise_addr"`
}

// Update changes cluster settings; zero fields are left alone.
type Update struct {
	CertExpiry time.Duration `json:"cert_expiry,omitempty"`
	// CertRecordRetention, when set, is how long the records of issued
	// certificates are kept once expired; 0 keeps them all.
	CertRecordRetention *time.Duration `json:"cert_record_retention,omitempty"`
}

// PathAdminAudit serves the audit log's stored records: GET with ?from=SEQ
// and ?limit=N (at most MaxAuditPage).
const PathAdminAudit = "/v1/admin/audit"

// MaxAuditPage bounds the records of one audit page, and MaxAuditPageBytes
// their stored size, so that a page always fits a client's answer cap.
const (
	MaxAuditPage      = 1000
	MaxAuditPageBytes = 256 << 10
)

// AuditRecord is one stored audit record, as stored, so that the reader
// verifies it itself.
type AuditRecord struct {
	Key  uint64 `json:"key"`
	Data []byte `json:"data"`
}

// AuditPage is a page of audit records. More says whether records follow;
// Next is the key to ask for next.
type AuditPage struct {
	Records []AuditRecord `json:"records"`
	More    bool          `json:"more"`
	Next    uint64        `json:"next"`
}

// PathAdminRoots serves the roots the cluster has had (GET), oldest first,
// the current root last, for `chancery audit verify`.
const PathAdminRoots = "/v1/admin/roots"

// RootRecord is one root the cluster has had, as PathAdminRoots lists it.
type RootRecord struct {
	// CertificatePEM is the root's certificate.
	CertificatePEM string `json:"certificate_pem"`
	// Backend names the backend that holds, or held, the root's key.
	Backend string `json:"backend"`
	// ActiveFrom is when it became the cluster's root; ActiveUntil when the
	// next root replaced it, zero for the current root.
	ActiveFrom  time.Time `json:"active_from"`
	ActiveUntil time.Time `json:"active_until,omitzero"`
}

// Roots is the answer of PathAdminRoots.
type Roots struct {
	Roots []RootRecord `json:"roots"`
}
