package agent

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"github.com/chancery-pki/chancery/ca"
	"github.com/chancery-pki/chancery/certdir"
	"github.com/chancery-pki/chancery/client"
)

// LeaveRequest makes a node leave its cluster.
type LeaveRequest struct {
	// DataDir is the node's data directory.
	DataDir string
	// Force lets a manager that is not the leader leave (the leader never
	// does), and removes the node's files even when no manager could be
	// reached to be told.
	Force bool
}

// Left is the outcome of a leave.
type Left struct {
	NodeID string
	Role   ca.Role
	// Told is false when no manager was reached (Force): the node is still
	// a member on the managers' side until 'chancery node rm' there.
	Told bool
	// Unreachable is the last error of the managers that could not be
	// reached, when Told is false.
	Unreachable error
}

// Leave tells the node's manager that the node leaves the cluster, as
// `docker swarm leave`: the manager marks it left, and refuses its
// certificate from then on. Then it removes the node's key, certificates
// and state from DataDir. A node the managers had already removed leaves
// too. If no manager can be reached, nothing is removed unless Force is
// set. A node agent still running on DataDir stops at its next heartbeat,
// which the manager refuses.
func Leave(ctx context.Context, req LeaveRequest) (*Left, error) {
	dir := certdir.In(req.DataDir)
	key, chain, err := dir.LoadNode()
	if err != nil {
		return nil, fmt.Errorf("agent: %s holds no node to leave with: %w", req.DataDir, err)
	}
	roots, _, err := dir.Root()
	if err != nil {
		return nil, err
	}
	st, err := ReadState(req.DataDir)
	if err != nil {
		return nil, err
	}
	subj := chain[0].Subject
	if len(subj.Organization) != 1 || len(subj.OrganizationalUnit) != 1 {
		return nil, fmt.Errorf("agent: the node's certificate (%s) names no cluster or role", subj)
	}
	left := &Left{NodeID: subj.CommonName, Role: ca.Role(subj.OrganizationalUnit[0])}
	cert := &tls.Certificate{PrivateKey: key, Leaf: chain[0]}
	for _, c := range chain {
		cert.Certificate = append(cert.Certificate, c.Raw)
	}
	for _, addr := range st.Managers {
		c := client.NewForCluster(addr, pool(roots), func() *tls.Certificate { return cert }, subj.Organization[0])
		_, err := c.Leave(ctx, req.Force)
		c.Close()
		var apiErr *client.APIError
		switch {
		case err == nil, removed(err):
			left.Told = true
		case errors.As(err, &apiErr):
			return nil, fmt.Errorf("agent: the manager refused to let this node leave: %w", err)
		default:
			left.Unreachable = err
			continue
		}
		break
	}
	if !left.Told && !req.Force {
		return nil, fmt.Errorf("agent: no manager could be told that this node leaves (%v); nothing was removed: retry when one is reachable, or use --force to remove the node's files anyway", left.Unreachable)
	}
	for _, p := range []string{filepath.Join(req.DataDir, StateFile), string(dir)} {
		if err := os.RemoveAll(p); err != nil {
			return left, fmt.Errorf("agent: the node left, but removing %s failed: %w", p, err)
		}
	}
	return left, nil
}
