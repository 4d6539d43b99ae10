package cluster

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/chancery-pki/chancery/audit"
	"github.com/chancery-pki/chancery/ca"
	"github.com/chancery-pki/chancery/store"
)

// Refusals of the node administration operations, matched with errors.Is.
// FindNode, SetRole and RemoveNode return them, or a *RefusalError of their
// kind that says more (which node).
var (
	ErrNodeNotFound  = &RefusalError{Reason: "no such node"}
	ErrIsLeader      = &RefusalError{Reason: "the leader cannot be demoted or removed"}
	ErrNodeIsManager = &RefusalError{Reason: "the node is a manager and must be demoted to worker before removal"}
	ErrNodeNotDown   = &RefusalError{Reason: "the node is not down and can't be removed; stop it first, or use --force"}
	ErrAmbiguousNode = &RefusalError{Reason: "the node name is ambiguous"}
	ErrSoleManager   = &RefusalError{Reason: "this node is the cluster's leader, which holds its store and signs; it cannot leave (not even with --force), or the cluster would be lost"}
	ErrManagerLeave  = &RefusalError{Reason: "this node is a manager: leaving lowers the number of managers; demote it first, or use --force"}
	ErrLastManager   = &RefusalError{Reason: "the node is the cluster's last manager; promote another node first"}
)

// LeaderFunc names the manager that leads now, or "" when none does: with
// a store that managers share (etcd), the election's answer. SetRole,
// RemoveNode and LeaveNode never demote or remove the manager it names. A
// nil LeaderFunc means the cluster record's LeaderID, as with the embedded
// store, which that one manager holds.
type LeaderFunc func(ctx context.Context) (string, error)

// leaderNow returns the manager that leads now (see LeaderFunc), and the
// refusal that protects it.
func leaderNow(ctx context.Context, c store.Cluster, elected LeaderFunc, held *RefusalError) (string, *RefusalError, error) {
	if elected == nil {
		return c.LeaderID, held, nil
	}
	id, err := elected(ctx)
	if err != nil {
		return "", nil, err
	}
	return id, ErrIsLeader.detail("%s leads the managers now; stop it ('chancery run' on its host) so that another manager is elected, then try again", id), nil
}

// lastManager reports whether n is the only manager of the cluster that is
// not removed.
func lastManager(ctx context.Context, st store.Store, n store.Node) (bool, error) {
	if n.Role != string(ca.RoleManager) || n.State == store.StateRemoved {
		return false, nil
	}
	nodes, err := st.Nodes(ctx)
	if err != nil {
		return false, err
	}
	for _, o := range nodes {
		if o.ID != n.ID && o.Role == string(ca.RoleManager) && o.State != store.StateRemoved {
			return false, nil
		}
	}
	return true, nil
}

// RefusalError is a request that the cluster refuses, such as removing a
// node that does not exist or demoting the leader. Its message is
// "cluster: " and Reason; the manager's API answers with Reason alone.
type RefusalError struct {
	// Kind is the refusal this one details (ErrNodeNotFound, ...), which it
	// matches with errors.Is; nil for the refusals declared above.
	Kind *RefusalError
	// Reason says what was refused and why, without the package prefix:
	// `no such node: "abc"`.
	Reason string
	// Candidates are the IDs of the nodes an ambiguous name matches.
	Candidates []string
}

func (e *RefusalError) Error() string { return "cluster: " + e.Reason }

// Is reports whether target is e's Kind.
func (e *RefusalError) Is(target error) bool { return e.Kind != nil && target == e.Kind }

// detail returns a refusal of e's kind whose Reason adds detail to e's.
func (e *RefusalError) detail(format string, args ...any) *RefusalError {
	return &RefusalError{Kind: e, Reason: e.Reason + ": " + fmt.Sprintf(format, args...)}
}

// FindNode returns the node whose ID is id or, if none is, the only node
// whose ID starts with id or whose host name is id, as docker accepts ID
// prefixes and names. A name that matches several nodes is refused with an
// error of kind ErrAmbiguousNode that lists their IDs, never resolved to
// one of them: nodes name themselves, so a name alone cannot be trusted to
// pick the node an administrator meant.
func FindNode(ctx context.Context, st store.Store, id string) (store.Node, error) {
	n, err := st.Node(ctx, id)
	if err == nil {
		return n, nil
	}
	if !errors.Is(err, store.ErrNotFound) {
		return store.Node{}, err
	}
	nodes, err := st.Nodes(ctx)
	if err != nil {
		return store.Node{}, err
	}
	var found []store.Node
	for _, n := range nodes {
		if n.State == store.StateRemoved {
			// A removed node is found by its full ID only, so that a host
			// that joins again under the same name is not ambiguous.
			continue
		}
		if id != "" && len(n.ID) >= len(id) && n.ID[:len(id)] == id || n.Hostname == id {
			found = append(found, n)
		}
	}
	switch len(found) {
	case 0:
		return store.Node{}, ErrNodeNotFound.detail("%q", id)
	case 1:
		return found[0], nil
	}
	refusal := ErrAmbiguousNode.detail("%q matches %d nodes: %s; give the node ID", id, len(found), describe(found))
	for _, n := range found {
		refusal.Candidates = append(refusal.Candidates, n.ID)
	}
	return store.Node{}, refusal
}

// describe lists nodes as "ID (host name)".
func describe(nodes []store.Node) string {
	var b strings.Builder
	for i, n := range nodes {
		if i > 0 {
			b.WriteString(", ")
		}
		b.WriteString(n.ID)
		if n.Hostname != "" {
			fmt.Fprintf(&b, " (%s)", n.Hostname)
		}
	}
	return b.String()
}

// SetRole promotes or demotes a node: the store's role changes now, and the
// node renews its certificate with the new OU when it next reports. The
// leader (see LeaderFunc) cannot be demoted; with a shared store and no
// manager leading, nor can the last manager, as docker refuses; a removed
// node cannot change role.
func SetRole(ctx context.Context, st store.Store, id string, role ca.Role, leaderOf LeaderFunc) (store.Node, error) {
	if !role.Valid() {
		return store.Node{}, fmt.Errorf("cluster: unknown role %q", role)
	}
	n, err := FindNode(ctx, st, id)
	if err != nil {
		return store.Node{}, err
	}
	c, err := st.Cluster(ctx)
	if err != nil {
		return store.Node{}, err
	}
	if role != ca.RoleManager {
		leader, refusal, err := leaderNow(ctx, c, leaderOf, ErrIsLeader)
		if err != nil {
			return store.Node{}, err
		}
		if n.ID == leader {
			return store.Node{}, refusal
		}
		if leaderOf != nil && leader == "" {
			if last, err := lastManager(ctx, st, n); err != nil {
				return store.Node{}, err
			} else if last {
				return store.Node{}, ErrLastManager
			}
		}
	}
	if n.Role == string(role) && n.State != store.StateRemoved {
		return n, nil // nothing changes, nothing is recorded
	}
	action := audit.ActionPromoted
	if role == ca.RoleWorker {
		action = audit.ActionDemoted
	}
	return st.UpdateNode(ctx, n.ID, func(n *store.Node) error {
		if n.State == store.StateRemoved {
			return ErrNodeRemoved
		}
		n.Role = string(role)
		return nil
	}, audit.Event{Action: action, Actor: audit.ActorFrom(ctx), NodeID: n.ID, Role: string(role)})
}

// RemoveNode removes a node from the cluster: its certificates are refused
// from then on, and it must join again with a token. Like docker, it
// refuses a manager (demote it first), and a node that is not down unless
// force is set; the leader (see LeaderFunc) is refused as such.
func RemoveNode(ctx context.Context, st store.Store, id string, force, down bool, leaderOf LeaderFunc) (store.Node, error) {
	n, err := FindNode(ctx, st, id)
	if err != nil {
		return store.Node{}, err
	}
	c, err := st.Cluster(ctx)
	if err != nil {
		return store.Node{}, err
	}
	leader, refusal, err := leaderNow(ctx, c, leaderOf, ErrIsLeader)
	if err != nil {
		return store.Node{}, err
	}
	switch {
	case n.State == store.StateRemoved:
		return store.Node{}, ErrNodeNotFound.detail("%s was already removed", n.ID)
	case n.ID == leader:
		return store.Node{}, refusal
	case n.Role == string(ca.RoleManager):
		return store.Node{}, ErrNodeIsManager
	case !down && !force:
		return store.Node{}, ErrNodeNotDown
	}
	return st.UpdateNode(ctx, n.ID, func(n *store.Node) error {
		n.State = store.StateRemoved
		return nil
	}, audit.Event{Action: audit.ActionRemoved, Actor: audit.ActorFrom(ctx), NodeID: n.ID, Role: n.Role,
		Details: map[string]string{"forced": fmt.Sprint(force)}})
}

// LeaveNode records that node id leaves the cluster on its own, as `docker
// swarm leave`: it is marked removed, so its certificate is refused from
// then on, with a node.left audit entry. The leader never leaves: with the
// embedded store it holds the store and signs; with a shared store (see
// LeaderFunc) it leaves once another manager leads, and with no manager
// leading, the last manager does not. Another manager leaves only with
// force.
func LeaveNode(ctx context.Context, st store.Store, id string, force bool, leaderOf LeaderFunc) (store.Node, error) {
	n, err := st.Node(ctx, id)
	if errors.Is(err, store.ErrNotFound) {
		return store.Node{}, ErrNodeNotFound.detail("%q", id)
	} else if err != nil {
		return store.Node{}, err
	}
	c, err := st.Cluster(ctx)
	if err != nil {
		return store.Node{}, err
	}
	leader, refusal, err := leaderNow(ctx, c, leaderOf, ErrSoleManager)
	if err != nil {
		return store.Node{}, err
	}
	switch {
	case n.State == store.StateRemoved:
		return store.Node{}, ErrNodeRemoved
	case n.ID == leader:
		return store.Node{}, refusal
	case n.Role == string(ca.RoleManager) && !force:
		return store.Node{}, ErrManagerLeave
	}
	if leaderOf != nil && leader == "" {
		if last, err := lastManager(ctx, st, n); err != nil {
			return store.Node{}, err
		} else if last {
			return store.Node{}, ErrLastManager
		}
	}
	return st.UpdateNode(ctx, n.ID, func(n *store.Node) error {
		if n.State == store.StateRemoved {
			return ErrNodeRemoved
		}
		n.State = store.StateRemoved
		return nil
	}, audit.Event{Action: audit.ActionLeft, Actor: audit.ActorFrom(ctx), NodeID: n.ID, Role: n.Role,
		Details: map[string]string{"forced": fmt.Sprint(force)}})
}
