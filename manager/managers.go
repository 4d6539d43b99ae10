package manager

import (
	"context"
	"log/slog"
	"net"
	"strings"
	"sync/atomic"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/chancery-pki/chancery/api"
	"github.com/chancery-pki/chancery/ca"
	"github.com/chancery-pki/chancery/store"
)

// managersPrefix is where, under the store's prefix, each manager of a
// shared store keeps its API address, bound to its session's lease: the
// key goes when the manager stops or loses its session.
const managersPrefix = "managers/"

// managersRefresh is how often the list of live managers is read again.
const managersRefresh = time.Second

// advertiseOf is the API address this manager tells nodes: cfg's, else
// the listener's when it is not a wildcard, else the cluster record's for
// the manager that created the cluster; empty when none is known.
func advertiseOf(cfg Config, ln net.Listener, c store.Cluster, nodeID string) string {
	if cfg.AdvertiseAddr != "" {
		return cfg.AdvertiseAddr
	}
	if host, _, err := net.SplitHostPort(ln.Addr().String()); err == nil {
		if ip := net.ParseIP(host); ip != nil && !ip.IsUnspecified() {
			return ln.Addr().String()
		}
	}
	if nodeID == c.LeaderID {
		return c.AdvertiseAddr
	}
	return ""
}

// liveManagers keeps the API addresses of the live managers of a shared
// store, read from etcd every managersRefresh.
type liveManagers struct {
	etcd   *clientv3.Client
	prefix string
	st     store.Store
	log    *slog.Logger
	addrs  atomic.Pointer[[]string]
}

// get returns the last list read; nil before the first.
func (m *liveManagers) get() []string {
	if p := m.addrs.Load(); p != nil {
		return *p
	}
	return nil
}

// run reads the list until ctx ends.
func (m *liveManagers) run(ctx context.Context) error {
	for {
		if err := m.read(ctx); err != nil && ctx.Err() == nil {
			m.log.Warn("reading the managers' addresses failed", "err", err)
		}
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(managersRefresh):
		}
	}
}

// read lists the registered managers that are still managers of the
// cluster (not removed, not demoted), at most api.MaxManagers.
func (m *liveManagers) read(ctx context.Context) error {
	key := m.prefix + managersPrefix
	resp, err := m.etcd.Get(ctx, key, clientv3.WithPrefix(), clientv3.WithLimit(4*api.MaxManagers))
	if err != nil {
		return err
	}
	out := []string{}
	for _, kv := range resp.Kvs {
		id, addr := strings.TrimPrefix(string(kv.Key), key), string(kv.Value)
		if _, _, err := net.SplitHostPort(addr); err != nil {
			continue
		}
		n, err := m.st.Node(ctx, id)
		if err != nil || n.State == store.StateRemoved || n.Role != string(ca.RoleManager) {
			continue
		}
		if out = append(out, addr); len(out) == api.MaxManagers {
			break
		}
	}
	m.addrs.Store(&out)
	return nil
}

// register puts this manager's address under its session's lease.
func register(ctx context.Context, etcd *clientv3.Client, prefix, nodeID, addr string, lease clientv3.LeaseID) error {
	if addr == "" {
		return nil
	}
	_, err := etcd.Put(ctx, prefix+managersPrefix+nodeID, addr, clientv3.WithLease(lease))
	return err
}
