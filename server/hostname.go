package server

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/chancery-pki/chancery/audit"
	"github.com/chancery-pki/chancery/store"
)

// A node may change its host name through its status reports RenameBurst
// times at once, then once every RenameInterval: names are for people, and
// a node that renames itself in a loop would otherwise fill the audit log.
const (
	RenameBurst    = 3
	RenameInterval = 10 * time.Minute
)

// errNameIsNodeID refuses a host name that is a node's ID.
var errNameIsNodeID = errors.New("the host name is the ID of another node")

// checkNameNotID refuses a host name that is the ID of a node other than
// self, so that no command given that ID can reach another node.
func (s *Server) checkNameNotID(ctx context.Context, hostname, self string) error {
	if hostname == "" || hostname == self {
		return nil
	}
	_, err := s.cfg.Store.Node(ctx, hostname)
	switch {
	case err == nil:
		return fmt.Errorf("%w: %q", errNameIsNodeID, hostname)
	case errors.Is(err, store.ErrNotFound):
		return nil
	}
	return err
}

// rename records the host name a node reports, if it changed: within the
// node's rate limit, never another node's ID, and on the audit log
// (node.renamed, with the old and the new name) in the same transaction. A
// refused change leaves the name as it was; the node's report is answered
// all the same.
func (s *Server) rename(ctx context.Context, n store.Node, hostname, remote string) {
	if hostname == "" || hostname == n.Hostname || checkHostname(hostname) != nil {
		return
	}
	if !s.renames.Take(n.ID, s.clock.Now(), nil) {
		s.log.Debug("host name change over the node's limit", "node_id", n.ID)
		return
	}
	if err := s.checkNameNotID(ctx, hostname, n.ID); err != nil {
		s.metrics.failures.WithLabelValues("hostname_is_node_id").Inc()
		s.log.Warn("host name change refused", "node_id", n.ID, "err", err)
		if errors.Is(err, errNameIsNodeID) {
			ev := audit.Event{Action: audit.ActionRefused, Actor: s.cfg.NodeID, NodeID: n.ID, Role: n.Role,
				Reason: "hostname_is_node_id", Remote: remote, Details: map[string]string{"path": "/v1/status", "hostname": hostname}}
			if _, err := s.cfg.Store.AppendAudit(ctx, ev); err != nil {
				s.log.Error("failed to record a refusal in the audit log", "err", err)
			}
		}
		return
	}
	var old string
	_, err := s.cfg.Store.UpdateNode(ctx, n.ID, func(n *store.Node) error {
		old = n.Hostname
		n.Hostname = hostname
		return nil
	}, audit.Event{Action: audit.ActionRenamed, Actor: s.cfg.NodeID, NodeID: n.ID, Role: n.Role,
		Details: map[string]string{"old": n.Hostname, "new": hostname}})
	if err != nil {
		s.log.Warn("failed to record a node's host name", "node_id", n.ID, "err", err)
		return
	}
	s.log.Info("node renamed", "node_id", n.ID, "old", old, "new", hostname)
}
