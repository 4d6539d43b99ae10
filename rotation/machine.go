package rotation

import (
	"fmt"
	"slices"

	"github.com/chancery-pki/chancery/store"
)

// This file is the root rotation's state machine, pure: given the stored
// rotation and the facts the leader observes, it says what to do next. The
// leader's reconciler carries the step out, each transition in one store
// transaction, and asks again; after a crash it resumes from the stored
// phase. The phases are ordered so that no node is ever shown a
// certificate it cannot verify:
//
//	prepare       the new root exists; the old key signs; the appendix is made
//	reissue       the new key signs and the appendix is attached; nodes
//	              renew until every live node holds a certificate from the
//	              new key
//	switch-trust  nodes are given the new root, and the join tokens pin it;
//	              the appendix is still attached, until every live node
//	              reports that it trusts the new root
//	done          the appendix is no longer attached; the old root moves
//	              to the history
//
// Abort is allowed until the switch of trust.

// Action is what the reconciler does next.
type Action int

const (
	// Wait: nothing to do until the facts change.
	Wait Action = iota
	// MakeAppendix: cross-sign the new root under the current one
	// (CrossSign) and record the appendix, moving to reissue.
	MakeAppendix
	// SwitchTrust: move to switch-trust: nodes are given the new root and
	// both join tokens change.
	SwitchTrust
	// Finish: the rotation is done: the new root becomes the current one,
	// the old one moves to the history, and its key material is forgotten.
	Finish
)

func (a Action) String() string {
	switch a {
	case Wait:
		return "wait"
	case MakeAppendix:
		return "make the appendix"
	case SwitchTrust:
		return "switch trust"
	case Finish:
		return "finish"
	}
	return fmt.Sprintf("action %d", int(a))
}

// NodeFacts is what the leader knows of one node during a rotation.
type NodeFacts struct {
	// ID is the node's ID.
	ID string
	// Converged: the certificate the store records for the node was issued
	// by the new root's key.
	Converged bool
	// TrustsNew: the node last reported that it trusts the new root.
	TrustsNew bool
	// Straggler: the node has not reported for longer than the grace.
	Straggler bool
}

// Facts are what the leader observes of the cluster's nodes: every node
// that is a member (not removed).
type Facts struct {
	Nodes []NodeFacts
}

// Progress counts the nodes a rotation waits for: members that are not
// excluded.
type Progress struct {
	// Total is the number of nodes the rotation waits for.
	Total int
	// Converged hold a certificate from the new key.
	Converged int
	// TrustingNew report that they trust the new root.
	TrustingNew int
	// Stragglers have not reported for longer than the grace; they block
	// the rotation until they report again or the operator excludes them.
	Stragglers []string
}

// Count returns the progress of r given f: excluded nodes do not count.
func Count(r *store.Rotation, f Facts) Progress {
	var p Progress
	for _, n := range f.Nodes {
		if r != nil && slices.Contains(r.ExcludedNodes, n.ID) {
			continue
		}
		p.Total++
		if n.Converged {
			p.Converged++
		}
		if n.TrustsNew {
			p.TrustingNew++
		}
		if n.Straggler {
			p.Stragglers = append(p.Stragglers, n.ID)
		}
	}
	slices.Sort(p.Stragglers)
	return p
}

// Step returns what to do next for the stored rotation r given f, and the
// progress it is based on. A nil r needs nothing.
func Step(r *store.Rotation, f Facts) (Action, Progress) {
	p := Count(r, f)
	if r == nil {
		return Wait, p
	}
	switch r.Phase {
	case store.PhasePrepare:
		return MakeAppendix, p
	case store.PhaseReissue:
		if p.Converged == p.Total {
			return SwitchTrust, p
		}
	case store.PhaseSwitchTrust:
		if p.TrustingNew == p.Total {
			return Finish, p
		}
	}
	return Wait, p
}

// CanAbort reports whether a rotation in phase ph may still be aborted:
// until the switch of trust, nodes have not been given the new root.
func CanAbort(ph store.RotationPhase) bool {
	return ph == store.PhasePrepare || ph == store.PhaseReissue
}
