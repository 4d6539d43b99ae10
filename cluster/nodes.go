package cluster

import (
	"context"
	"errors"
	"fmt"

	"github.com/chancery-pki/chancery/audit"
	"github.com/chancery-pki/chancery/ca"
	"github.com/chancery-pki/chancery/store"
)

// Errors of the node administration operations, matched with errors.Is.
var (
	ErrNodeNotFound  = errors.New("cluster: no such node")
	ErrIsLeader      = errors.New("cluster: the leader cannot be demoted or removed")
	ErrNodeIsManager = errors.New("cluster: the node is a manager and must be demoted to worker before removal")
	ErrNodeNotDown   = errors.New("cluster: the node is not down and can't be removed; stop it first, or use --force")
	ErrAmbiguousNode = errors.New("cluster: the node name is ambiguous")
)

// FindNode returns the node whose ID is id or, if none is, the only node
// whose ID starts with id, as docker accepts ID prefixes.
func FindNode(ctx context.Context, st store.Store, id string) (store.Node, error) {
	n, err := st.Node(ctx, id)
	if err == nil {
		return n, nil
	}
	if !errors.Is(err, store.ErrNotFound) {
		return store.Node{}, fmt.Errorf("cluster: %w", err)
	}
	nodes, err := st.Nodes(ctx)
	if err != nil {
		return store.Node{}, fmt.Errorf("cluster: %w", err)
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
		return store.Node{}, fmt.Errorf("%w: %q", ErrNodeNotFound, id)
	case 1:
		return found[0], nil
	}
	return store.Node{}, fmt.Errorf("%w: %q matches %d nodes; give more of the node ID", ErrAmbiguousNode, id, len(found))
}

// SetRole promotes or demotes a node: the store's role changes now, and the
// node renews its certificate with the new OU when it next reports. The
// leader cannot be demoted; a removed node cannot change role.
func SetRole(ctx context.Context, st store.Store, id string, role ca.Role) (store.Node, error) {
	if !role.Valid() {
		return store.Node{}, fmt.Errorf("cluster: unknown role %q", role)
	}
	n, err := FindNode(ctx, st, id)
	if err != nil {
		return store.Node{}, err
	}
	c, err := st.Cluster(ctx)
	if err != nil {
		return store.Node{}, fmt.Errorf("cluster: %w", err)
	}
	if n.ID == c.LeaderID && role != ca.RoleManager {
		return store.Node{}, ErrIsLeader
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
// force is set.
func RemoveNode(ctx context.Context, st store.Store, id string, force, down bool) (store.Node, error) {
	n, err := FindNode(ctx, st, id)
	if err != nil {
		return store.Node{}, err
	}
	c, err := st.Cluster(ctx)
	if err != nil {
		return store.Node{}, fmt.Errorf("cluster: %w", err)
	}
	switch {
	case n.State == store.StateRemoved:
		return store.Node{}, fmt.Errorf("%w: %s was already removed", ErrNodeNotFound, n.ID)
	case n.ID == c.LeaderID:
		return store.Node{}, ErrIsLeader
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
