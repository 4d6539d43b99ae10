package server

import (
	"context"
	"net/http"

	"github.com/chancery-pki/chancery/api"
	"github.com/chancery-pki/chancery/audit"
	"github.com/chancery-pki/chancery/ca"
	"github.com/chancery-pki/chancery/client"
	"github.com/chancery-pki/chancery/cluster"
	"github.com/chancery-pki/chancery/store"
)

// Self is the manager's own node agent talking to its manager in-process:
// the same renewal and heartbeat as a remote node, without the network.
type Self struct {
	s      *Server
	nodeID string
}

// Self returns the in-process manager for the node nodeID, this manager.
func (s *Server) Self(nodeID string) *Self { return &Self{s: s, nodeID: nodeID} }

func (m *Self) node(ctx context.Context) (store.Node, store.Cluster, error) {
	c, err := m.s.cfg.Store.Cluster(ctx)
	if err != nil {
		return store.Node{}, c, err
	}
	n, err := m.s.cfg.Store.Node(ctx, m.nodeID)
	if err != nil {
		return n, c, err
	}
	if n.State == store.StateRemoved {
		// As the API refuses a removed node's call, so that this
		// manager's agent stops, and with it the manager (agent.ErrRemoved):
		// a manager removed while it ran (a rotation's straggler that
		// 'ca --force' excluded) must join again.
		return n, c, &client.APIError{Status: http.StatusForbidden, Code: api.CodeNodeRemoved, Message: cluster.ErrNodeRemoved.Error()}
	}
	return n, c, nil
}

// Renew issues this manager a new certificate with its stored role.
func (m *Self) Renew(ctx context.Context, req api.RenewRequest) (*api.Certificate, error) {
	ctx = audit.WithActor(ctx, m.s.cfg.NodeID)
	n, c, err := m.node(ctx)
	if err != nil {
		return nil, err
	}
	return m.s.issueCert(ctx, "renew", cluster.IssueRequest{NodeID: n.ID, Role: ca.Role(n.Role), CSR: []byte(req.CSR)}, c, "local")
}

// Status reports this manager's role and the root.
func (m *Self) Status(ctx context.Context, req api.StatusRequest) (*api.Status, error) {
	n, c, err := m.node(ctx)
	if err != nil {
		return nil, err
	}
	return m.s.status(n, c, req), nil
}
