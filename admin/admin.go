// Package admin reaches the administration API of a data directory, by
// the way that fits it: the running manager's unix socket; else, when no
// manager runs, the cluster's store directly, through the same handler the
// manager serves; else, on a joined manager's host, a manager over mutual
// TLS with this node's manager certificate. The CLI's administration
// commands use it, whatever the transport.
package admin

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"os"
	"path/filepath"
	"strings"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/chancery-pki/chancery/agent"
	"github.com/chancery-pki/chancery/api"
	"github.com/chancery-pki/chancery/audit"
	"github.com/chancery-pki/chancery/ca"
	"github.com/chancery-pki/chancery/certdir"
	"github.com/chancery-pki/chancery/client"
	"github.com/chancery-pki/chancery/cluster"
	"github.com/chancery-pki/chancery/datadir"
	"github.com/chancery-pki/chancery/election"
	"github.com/chancery-pki/chancery/server"
	"github.com/chancery-pki/chancery/store"
)

// ErrWorker means the data directory is a worker's: administration needs a
// manager.
var ErrWorker = errors.New("admin: this node is a worker: administration needs a manager")

// Open returns a client of the administration API for dataDir, and the
// function that releases it. A data directory that holds no cluster gives
// an error wrapping cluster.ErrNoCluster.
func Open(ctx context.Context, dataDir string) (*client.Client, func(), error) {
	// Nothing in the directory is trusted (the socket, the store's tokens,
	// the node's key) unless no other user could have changed it.
	if err := datadir.Check(dataDir); err != nil {
		return nil, nil, err
	}
	sock := filepath.Join(dataDir, api.SocketFile)
	if err := datadir.CheckSocket(sock); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return nil, nil, err
	}
	if conn, err := net.DialTimeout("unix", sock, time.Second); err == nil {
		conn.Close()
		c := client.NewSocket(sock)
		return c, c.Close, nil
	}
	if ok, err := cluster.HasStore(dataDir); err != nil {
		return nil, nil, err
	} else if ok {
		return direct(ctx, dataDir)
	}
	if state, err := agent.ReadState(dataDir); err == nil {
		return overTLS(dataDir, state)
	}
	return nil, nil, fmt.Errorf("%w (%s)", cluster.ErrNoCluster, dataDir)
}

// direct serves the administration API from the store, in process.
func direct(ctx context.Context, dataDir string) (*client.Client, func(), error) {
	st, err := cluster.OpenStore(dataDir)
	if err != nil {
		return nil, nil, err
	}
	c, err := st.Cluster(ctx)
	if err != nil {
		st.Close()
		return nil, nil, err
	}
	srv, err := server.New(server.Config{DataDir: dataDir, Store: st, NodeID: c.LeaderID, Leader: electedLeader(st)})
	if err != nil {
		st.Close()
		return nil, nil, err
	}
	return client.NewHandler(srv.AdminHandler()), func() { st.Close() }, nil
}

// electedLeader reads the election of a store in etcd: the leader is the
// manager it names (none while every manager is stopped), not the one that
// ran init; the read is bounded and its errors mapped as the store's calls
// are. nil for the embedded store, whose leader is the cluster record's.
func electedLeader(st store.Store) cluster.LeaderFunc {
	eb, ok := st.(interface {
		Client() *clientv3.Client
		Prefix() string
		Bounded(context.Context, func(context.Context) error) error
	})
	if !ok {
		return nil
	}
	return func(ctx context.Context) (leader string, err error) {
		err = eb.Bounded(ctx, func(ctx context.Context) (err error) {
			leader, err = election.LeaderOf(ctx, eb.Client(), eb.Prefix()+election.StoreKey)
			return err
		})
		return leader, err
	}
}

// LeaveShared makes the manager of dataDir, whose store is in etcd, leave
// the cluster, as 'chancery leave' does on a node: its record is marked
// left in the store (a node.left entry), under cluster.LeaveNode's rules
// (a manager only with force; never the elected leader), and then its
// node files (node.json, certificates/) and its store settings are
// removed, so that the data directory no longer names the cluster's store.
// A manager still running there stops at its next heartbeat.
func LeaveShared(ctx context.Context, dataDir string, force bool) (*agent.Left, error) {
	chain, err := certdir.In(dataDir).NodeChain()
	if err != nil {
		return nil, fmt.Errorf("admin: %s holds no node to leave with: %w", dataDir, err)
	}
	id := chain[0].Subject.CommonName
	st, err := cluster.OpenStore(dataDir)
	if err != nil {
		return nil, err
	}
	defer st.Close()
	leaderOf := electedLeader(st)
	if leaderOf == nil {
		return nil, fmt.Errorf("admin: the store of %s is not shared: its manager never leaves", dataDir)
	}
	n, err := cluster.LeaveNode(audit.WithActor(ctx, id), st, id, force, leaderOf)
	if err != nil {
		return nil, err
	}
	for _, p := range []string{filepath.Join(dataDir, agent.StateFile), string(certdir.In(dataDir)), filepath.Join(dataDir, store.SettingsFile)} {
		if err := os.RemoveAll(p); err != nil {
			return nil, fmt.Errorf("admin: the node left, but removing %s failed: %w", p, err)
		}
	}
	return &agent.Left{NodeID: id, Role: ca.Role(n.Role), Told: true}, nil
}

// overTLS calls the first manager the node knows, with its manager
// certificate.
func overTLS(dataDir string, state agent.State) (*client.Client, func(), error) {
	dir := certdir.In(dataDir)
	key, chain, err := dir.LoadNode()
	if err != nil {
		return nil, nil, err
	}
	if ou := chain[0].Subject.OrganizationalUnit; len(ou) != 1 || ou[0] != string(ca.RoleManager) {
		return nil, nil, ErrWorker
	}
	roots, _, err := dir.Root()
	if err != nil {
		return nil, nil, err
	}
	if len(state.Managers) == 0 {
		return nil, nil, errors.New("admin: this node knows no manager to call")
	}
	cert := &tls.Certificate{PrivateKey: key, Leaf: chain[0]}
	for _, x := range chain {
		cert.Certificate = append(cert.Certificate, x.Raw)
	}
	pool := x509.NewCertPool()
	for _, r := range roots {
		pool.AddCert(r)
	}
	c := client.NewForCluster(state.Managers[0], pool, func() *tls.Certificate { return cert }, strings.Join(chain[0].Subject.Organization, ""))
	return c, c.Close, nil
}
