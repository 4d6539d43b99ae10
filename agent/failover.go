package agent

import (
	"context"
	"errors"
	"net"
	"slices"

	"github.com/chancery-pki/chancery/api"
	"github.com/chancery-pki/chancery/ca"
	"github.com/chancery-pki/chancery/client"
)

// unreachable reports whether err is a failure to reach the manager (no
// connection, no answer in time, a failed handshake), not its answer.
func unreachable(err error) bool {
	var e *client.APIError
	return err != nil && !errors.As(err, &e)
}

// call calls the agent's manager with f. When the agent made its own client
// and the manager cannot be reached, it tries the other managers of the
// state file in turn, each verified as a manager of the node's cluster
// under its root, and keeps the first that answers (recorded first in the
// state file). It returns that answer's error, or the first manager's.
func (a *Agent) call(ctx context.Context, f func(Manager) error) error {
	err := f(a.mgr)
	if a.addr == "" || !unreachable(err) || ctx.Err() != nil {
		return err
	}
	st, serr := ReadState(a.cfg.DataDir)
	if serr != nil {
		return err
	}
	roots, rerr := ca.ParseCertificatesPEM(a.roots)
	if rerr != nil {
		return err
	}
	for _, addr := range st.Managers {
		if addr == a.addr {
			continue
		}
		c := client.NewForCluster(addr, pool(roots), a.Certificate, a.clusterID())
		e := f(c)
		if unreachable(e) {
			c.Close()
			a.log.Warn("manager unreachable", "addr", addr, "err", e)
			if ctx.Err() != nil {
				return err
			}
			continue
		}
		a.log.Warn("manager unreachable; switched to another", "from", a.addr, "to", addr, "err", err)
		if old, ok := a.mgr.(interface{ Close() }); ok {
			old.Close()
		}
		a.addr, a.mgr = addr, c
		a.calling.Store(addr)
		st.Managers = withFirst(addr, st.Managers)
		if werr := WriteState(a.cfg.DataDir, st); werr != nil {
			a.log.Warn("failed to record the manager's address", "err", werr)
		}
		return e
	}
	return err
}

// keepManagers records the managers a status answer listed (which came
// over a connection authenticated as a manager of the node's cluster),
// after the one the agent calls, at most api.MaxManagers in all.
func (a *Agent) keepManagers(list []string) {
	if a.addr == "" || len(list) == 0 {
		return
	}
	st, err := ReadState(a.cfg.DataDir)
	if err != nil {
		return
	}
	out := []string{a.addr}
	for _, m := range list {
		if _, _, err := net.SplitHostPort(m); err != nil || len(m) > 261 || slices.Contains(out, m) {
			continue
		}
		if out = append(out, m); len(out) == api.MaxManagers {
			break
		}
	}
	if slices.Equal(out, st.Managers) {
		return
	}
	st.Managers = out
	if err := WriteState(a.cfg.DataDir, st); err != nil {
		a.log.Warn("failed to record the managers' addresses", "err", err)
	}
}

// Manager returns the address of the manager the agent calls, when it made
// its own client; empty otherwise.
func (a *Agent) Manager() string {
	s, _ := a.calling.Load().(string)
	return s
}
