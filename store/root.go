package store

import (
	"bytes"
	"encoding/pem"
	"errors"
	"fmt"
	"slices"
	"time"
)

// Root is a root CA the cluster has had: its certificate, the backend that
// holds (or held) its key, and when it was the cluster's root.
type Root struct {
	// CertPEM is the root's certificate, one PEM CERTIFICATE block.
	CertPEM []byte `json:"cert_pem"`
	// IntermediatesPEM are the CA certificates between the root's signing
	// key and the root, the signing CA first; empty when the root's own key
	// signs (see Cluster.IntermediatesPEM).
	IntermediatesPEM []byte `json:"intermediates_pem,omitempty"`
	// Backend says how to reach the root's key. It never holds secrets.
	Backend BackendConfig `json:"backend"`
	// ActiveFrom is when the root became the cluster's root.
	ActiveFrom time.Time `json:"active_from,omitzero"`
	// ActiveUntil is when the next root replaced it; zero for the current
	// root.
	ActiveUntil time.Time `json:"active_until,omitzero"`
}

// RotationPhase is the stored phase of a root rotation. Done is not a
// stored phase: when a rotation is done, Cluster.Rotation is cleared and
// the old root moves to Cluster.RootHistory, in the same update.
type RotationPhase string

// The phases of a root rotation, in order.
const (
	// PhasePrepare: the new root is being made and cross-signed; the old
	// key still signs everything.
	PhasePrepare RotationPhase = "prepare"
	// PhaseReissue: the new key signs, every certificate carries the
	// appendix, and nodes renew until each holds a certificate from the new
	// key.
	PhaseReissue RotationPhase = "reissue"
	// PhaseSwitchTrust: nodes are given the new root to trust, and the join
	// tokens pin it.
	PhaseSwitchTrust RotationPhase = "switch-trust"
)

// How a rotation's cross-sign connected the old root to the new one
// (Rotation.Path).
const (
	// CrossSignPublicKey: the old root signed the new root's public key.
	CrossSignPublicKey = "public-key"
	// CrossSignCSR: the old root signed a CSR made with the new root's key.
	CrossSignCSR = "csr"
	// CrossSignBridge: the old root signed a one-time bridge key, which
	// signed the new root's public key.
	CrossSignBridge = "bridge"
)

// Rotation is a root rotation in progress.
type Rotation struct {
	// Phase is where the rotation stands.
	Phase RotationPhase `json:"phase"`
	// Target is the new root: its certificate and backend. Its ActiveFrom
	// and ActiveUntil stay zero; ActiveFrom becomes Cluster.RootSince when
	// the rotation is done.
	Target Root `json:"target"`
	// AppendixPEM is the cross-signed certificate(s) attached after every
	// certificate issued during the rotation, so that nodes that trust only
	// the old root validate them. Empty until the cross-sign is made, in
	// PhasePrepare.
	AppendixPEM []byte `json:"appendix_pem,omitempty"`
	// Path says how the cross-sign connected the roots: CrossSignPublicKey,
	// CrossSignCSR or CrossSignBridge; empty until it is made.
	Path string `json:"path,omitempty"`
	// StartedAt is when the rotation started.
	StartedAt time.Time `json:"started_at,omitzero"`
	// UpdatedAt is when the rotation last changed phase or settings.
	UpdatedAt time.Time `json:"updated_at,omitzero"`
	// AllowBridge records the operator's consent to a one-time bridge key
	// (rotation.Options.AllowBridge), for pairs of backends that need one.
	AllowBridge bool `json:"allow_bridge,omitempty"`
	// ExcludedNodes are the IDs of stragglers the operator excluded, so
	// that they do not block the rotation.
	ExcludedNodes []string `json:"excluded_nodes,omitempty"`
	// DeleteOldKey records the operator's consent to delete, from an HSM or
	// Vault, the keys this rotation retires that chancery made (the old
	// root's once done, the new root's if it is aborted or re-targeted). A
	// key file chancery made is deleted without it; an external CA is
	// always left alone.
	DeleteOldKey bool `json:"delete_old_key,omitempty"`
}

// Why a root's key was retired (RetiredKey.Reason).
const (
	// RetiredDone: the rotation is done, and the root it replaced is no
	// longer used.
	RetiredDone = "done"
	// RetiredAborted: the rotation to this new root was aborted.
	RetiredAborted = "aborted"
	// RetiredReplaced: the rotation was re-targeted to another new root.
	RetiredReplaced = "replaced"
)

// RetiredKey is a root whose key material is to be forgotten: queued in
// the same update that stops using it, so that a crash cannot leave it
// behind unrecorded, and removed, with an audit entry saying what became of
// it, once its backend has forgotten it (or kept it, as an HSM key or a
// Vault issuer without the operator's consent, or an external CA).
type RetiredKey struct {
	// Root is the retired root: its certificate and backend.
	Root Root `json:"root"`
	// Reason is RetiredDone, RetiredAborted or RetiredReplaced.
	Reason string `json:"reason"`
	// Delete is the operator's consent to delete an HSM key or a Vault
	// issuer that chancery made (Rotation.DeleteOldKey).
	Delete bool `json:"delete,omitempty"`
	// Attempts counts the failed attempts so far.
	Attempts int `json:"attempts,omitempty"`
	// NextAttempt is when to try again after a failure; zero means now.
	NextAttempt time.Time `json:"next_attempt,omitzero"`
	// LastError is the last failure, for `chancery ca` and the audit log.
	LastError string `json:"last_error,omitempty"`
}

// Roots returns every root the cluster has had: RootHistory, oldest first,
// followed by the current root, whose CertPEM is the first certificate of
// RootCAPEM, Backend is c.Backend, ActiveFrom is RootSince (CreatedAt if
// zero) and ActiveUntil is zero. The slice is new; the history's byte
// slices are shared with c.
func (c Cluster) Roots() []Root {
	return append(slices.Clip(c.RootHistory), c.currentRoot())
}

// currentRoot is the last of Roots.
func (c Cluster) currentRoot() Root {
	from := c.RootSince
	if from.IsZero() {
		from = c.CreatedAt
	}
	return Root{CertPEM: firstCertificatePEM(c.RootCAPEM), IntermediatesPEM: c.IntermediatesPEM, Backend: c.Backend, ActiveFrom: from}
}

// CurrentRoot returns the current root, the last of Roots.
func (c Cluster) CurrentRoot() Root { return c.currentRoot() }

// RootAt returns the root that was the cluster's root at t: the one with
// ActiveFrom <= t < ActiveUntil, or the current root from its ActiveFrom
// on. ok is false for a time before the first root's ActiveFrom, or in a
// gap between two roots.
func (c Cluster) RootAt(t time.Time) (r Root, ok bool) {
	for _, r := range c.Roots() {
		if !t.Before(r.ActiveFrom) && (r.ActiveUntil.IsZero() || t.Before(r.ActiveUntil)) {
			return r, true
		}
	}
	return Root{}, false
}

// firstCertificatePEM returns the first PEM CERTIFICATE block of data,
// encoded alone, or nil if there is none.
func firstCertificatePEM(data []byte) []byte {
	for {
		var b *pem.Block
		if b, data = pem.Decode(data); b == nil {
			return nil
		}
		if b.Type == "CERTIFICATE" {
			return pem.EncodeToMemory(b)
		}
	}
}

// onlyCertificates reports whether data is empty, or PEM CERTIFICATE
// blocks and nothing else.
func onlyCertificates(data []byte) bool {
	for len(bytes.TrimSpace(data)) > 0 {
		var b *pem.Block
		if b, data = pem.Decode(data); b == nil || b.Type != "CERTIFICATE" {
			return false
		}
	}
	return true
}

// ErrInvalidCluster is wrapped by the errors of ValidateCluster, and so by
// those of CreateCluster and UpdateCluster when they refuse a record. Test
// for it with errors.Is.
var ErrInvalidCluster = errors.New("store: invalid cluster record")

// ValidateCluster checks a cluster record's shape, so that every Store
// refuses the same bad records: CreateCluster and UpdateCluster call it
// (CreateCluster after setting CreatedAt) and write nothing if it fails.
// It requires an ID; a PEM CERTIFICATE block in RootCAPEM and in every
// root's CertPEM, and nothing but certificates in IntermediatesPEM; a backend Type for every root; a RootHistory oldest
// first, each root with ActiveFrom <= ActiveUntil, not overlapping the next
// nor the current root (which is current from RootSince, or CreatedAt);
// and a Rotation, if any, with a known phase, a target other than the
// current root and not yet active, a known cross-sign path, and once past
// PhasePrepare an appendix. It does not parse certificates: that is for the
// callers that make them. Its errors wrap ErrInvalidCluster and name the
// field at fault; they never include the join tokens.
func ValidateCluster(c Cluster) error {
	bad := func(format string, args ...any) error {
		return fmt.Errorf("%w: "+format, append([]any{ErrInvalidCluster}, args...)...)
	}
	if c.ID == "" {
		return bad("it has no ID")
	}
	cur := c.currentRoot()
	if cur.CertPEM == nil {
		return bad("RootCAPEM holds no PEM CERTIFICATE block; it must start with the current root's certificate")
	}
	if c.Backend.Type == "" {
		return bad("Backend has no Type; name the backend that holds the current root's key")
	}
	if !onlyCertificates(c.IntermediatesPEM) {
		return bad("IntermediatesPEM holds something else than PEM CERTIFICATE blocks")
	}
	for i, r := range c.RootHistory {
		field := fmt.Sprintf("RootHistory[%d]", i)
		switch {
		case firstCertificatePEM(r.CertPEM) == nil:
			return bad("%s.CertPEM holds no PEM CERTIFICATE block; keep the old root's certificate", field)
		case r.Backend.Type == "":
			return bad("%s.Backend has no Type; name the backend that held the old root's key", field)
		case !onlyCertificates(r.IntermediatesPEM):
			return bad("%s.IntermediatesPEM holds something else than PEM CERTIFICATE blocks", field)
		case r.ActiveFrom.IsZero():
			return bad("%s has no ActiveFrom; set when it became the root", field)
		case r.ActiveUntil.IsZero():
			return bad("%s has no ActiveUntil; a past root must say when it was replaced", field)
		case r.ActiveUntil.Before(r.ActiveFrom):
			return bad("%s.ActiveUntil %s is before its ActiveFrom %s", field, stamp(r.ActiveUntil), stamp(r.ActiveFrom))
		}
		if i > 0 {
			if prev := c.RootHistory[i-1]; r.ActiveFrom.Before(prev.ActiveUntil) {
				return bad("%s became the root at %s, before RootHistory[%d] stopped being it at %s; keep RootHistory oldest first, without overlap",
					field, stamp(r.ActiveFrom), i-1, stamp(prev.ActiveUntil))
			}
		}
	}
	if n := len(c.RootHistory); n > 0 {
		if last := c.RootHistory[n-1]; cur.ActiveFrom.Before(last.ActiveUntil) {
			return bad("the current root is the root from %s (RootSince, or CreatedAt if zero), before RootHistory[%d] stopped being it at %s; set RootSince to when the current root replaced it",
				stamp(cur.ActiveFrom), n-1, stamp(last.ActiveUntil))
		}
	}
	if r := c.Rotation; r != nil {
		switch r.Phase {
		case PhasePrepare, PhaseReissue, PhaseSwitchTrust:
		default:
			return bad("Rotation.Phase %q is not a phase; want %q, %q or %q (a done rotation is cleared)", r.Phase, PhasePrepare, PhaseReissue, PhaseSwitchTrust)
		}
		target := firstCertificatePEM(r.Target.CertPEM)
		switch {
		case target == nil:
			return bad("Rotation.Target.CertPEM holds no PEM CERTIFICATE block; store the new root's certificate")
		case bytes.Equal(target, cur.CertPEM):
			return bad("Rotation.Target is the current root; a rotation to the current root is an abort: clear Rotation instead")
		case r.Target.Backend.Type == "":
			return bad("Rotation.Target.Backend has no Type; name the backend that holds the new root's key")
		case !onlyCertificates(r.Target.IntermediatesPEM):
			return bad("Rotation.Target.IntermediatesPEM holds something else than PEM CERTIFICATE blocks")
		case !r.Target.ActiveFrom.IsZero() || !r.Target.ActiveUntil.IsZero():
			return bad("Rotation.Target has ActiveFrom or ActiveUntil set; a target is not active until the rotation is done, when it moves to RootCAPEM and RootSince")
		}
		switch r.Path {
		case "", CrossSignPublicKey, CrossSignCSR, CrossSignBridge:
		default:
			return bad("Rotation.Path %q is not a cross-sign path; want %q, %q or %q", r.Path, CrossSignPublicKey, CrossSignCSR, CrossSignBridge)
		}
		if r.Phase != PhasePrepare {
			switch {
			case firstCertificatePEM(r.AppendixPEM) == nil:
				return bad("Rotation in phase %s has no certificate in AppendixPEM; the cross-sign must be made in phase %s", r.Phase, PhasePrepare)
			case r.Path == "":
				return bad("Rotation in phase %s has no Path; say how the cross-sign was made", r.Phase)
			}
		}
		for i, id := range r.ExcludedNodes {
			if id == "" {
				return bad("Rotation.ExcludedNodes[%d] is empty; list node IDs", i)
			}
		}
	}
	for i, k := range c.RetiredKeys {
		field := fmt.Sprintf("RetiredKeys[%d]", i)
		switch {
		case firstCertificatePEM(k.Root.CertPEM) == nil:
			return bad("%s.Root.CertPEM holds no PEM CERTIFICATE block; keep the retired root's certificate", field)
		case k.Root.Backend.Type == "":
			return bad("%s.Root.Backend has no Type; name the backend that holds the retired key", field)
		case bytes.Equal(firstCertificatePEM(k.Root.CertPEM), cur.CertPEM):
			return bad("%s is the current root, whose key is in use", field)
		case c.Rotation != nil && bytes.Equal(firstCertificatePEM(k.Root.CertPEM), firstCertificatePEM(c.Rotation.Target.CertPEM)):
			return bad("%s is the rotation's new root, whose key is in use", field)
		}
		switch k.Reason {
		case RetiredDone, RetiredAborted, RetiredReplaced:
		default:
			return bad("%s.Reason %q is not a reason; want %q, %q or %q", field, k.Reason, RetiredDone, RetiredAborted, RetiredReplaced)
		}
	}
	return nil
}

// stamp formats a time for errors.
func stamp(t time.Time) string { return t.UTC().Format(time.RFC3339Nano) }
