// Package manager runs a cluster's manager from its data directory, as a
// supervisor: it opens the store the data directory's settings name, serves
// the API (package server), keeps the manager's own node certificate fresh
// with an in-process node agent (package agent) whose certificate is the one
// the API presents, holds the issuer in force, and, while this manager
// leads, runs the work done once (leader.go): audit checkpoints and a root
// rotation's transitions, under a context that ends when leadership ends.
// With the embedded store, the manager that holds it leads; with a store in
// etcd, every manager serves and one leads, elected in etcd. One errgroup
// starts, stops and waits for every goroutine.
package manager

import (
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/sync/errgroup"

	"github.com/chancery-pki/chancery/agent"
	"github.com/chancery-pki/chancery/audit"
	"github.com/chancery-pki/chancery/backends"
	"github.com/chancery-pki/chancery/certdir"
	"github.com/chancery-pki/chancery/clock"
	"github.com/chancery-pki/chancery/cluster"
	"github.com/chancery-pki/chancery/datadir"
	"github.com/chancery-pki/chancery/extca"
	"github.com/chancery-pki/chancery/issuer"
	"github.com/chancery-pki/chancery/server"
	"github.com/chancery-pki/chancery/store"
)

// DefaultListenAddr is where a manager serves its API unless told
// otherwise.
var DefaultListenAddr = cluster.DefaultListenAddr

// Config configures Run.
type Config struct {
	// DataDir is the manager's data directory, made by `chancery init`.
	DataDir string
	// ListenAddr overrides the stored listen address when not empty: the
	// state file's for a manager that joined (agent.State), else the
	// cluster record's.
	ListenAddr string
	// AdvertiseAddr is the API address nodes are told to reach this
	// manager on, with a shared store, in any form init's --advertise-addr
	// takes (a bare IP or an interface with the listener's port); empty
	// means the state file's for a
	// manager that joined (chancery join --advertise-addr), else the
	// listener's address when it is not a wildcard, else the cluster
	// record's for the manager that created the cluster.
	AdvertiseAddr string
	// Listener, when set, is used instead of listening on ListenAddr.
	Listener net.Listener
	// MetricsAddr, when set, serves Prometheus metrics over plain HTTP
	// there (they are always on the administration socket at /metrics).
	MetricsAddr string
	// BackendOverrides replace stored backend settings (for example a
	// passphrase file).
	BackendOverrides backends.Settings
	// Clock defaults to the wall clock; Logger to slog.Default().
	Clock  clock.Clock
	Logger *slog.Logger
	// HeartbeatPeriod is told to nodes; default server.DefaultHeartbeatPeriod.
	HeartbeatPeriod time.Duration
	// Ready, when set, is called with the API's address once it listens.
	Ready func(addr string)
	// ExternalCA, when set, also serves the CFSSL-compatible external CA
	// endpoint (package extca) on its own listener, signing with the same
	// root.
	ExternalCA *ExternalCAConfig
	// CheckpointInterval is how often the audit log's head is signed by
	// the CA when it has moved; default DefaultCheckpointInterval. The head
	// is also signed at start and at shutdown.
	CheckpointInterval time.Duration
	// PruneInterval is how often the leader prunes the records of
	// certificates expired for longer than the cluster's
	// cert-record-retention (none while it is 0); default
	// DefaultPruneInterval. The first prune runs when leadership begins.
	PruneInterval time.Duration
	// ReconcileInterval is how often the leader looks at a root rotation
	// when nothing wakes it; default DefaultReconcileInterval.
	ReconcileInterval time.Duration
	// RenewRate is how many nodes per second are asked to renew during a
	// root rotation; default server.DefaultRenewRate.
	RenewRate float64
	// StragglerGrace is how long a node may stay silent before a rotation
	// counts it as a straggler; default server.DefaultStragglerGrace.
	StragglerGrace time.Duration
	// SessionTTL, with a store in etcd, is the TTL of the manager's etcd
	// leases (its session, and its campaign to lead): a manager cut off
	// from etcd stops issuing, and stops leading, within it. Default
	// election.DefaultTTL; election.MinTTL at least.
	SessionTTL time.Duration
}

// ExternalCAConfig configures the CFSSL-compatible endpoint a manager can
// serve, for Docker swarm's --external-ca and cfssl's -remote.
type ExternalCAConfig struct {
	// ListenAddr is the endpoint's address.
	ListenAddr string
	// ClientCAs verify client certificates (for a swarm: its current root).
	ClientCAs *x509.CertPool
	// Policy says what each client may ask for.
	Policy *extca.Policy
	// DNSNames and IPAddresses go into the endpoint's TLS certificate,
	// besides the manager's advertise address.
	DNSNames    []string
	IPAddresses []net.IP
	// CertExpiry is the lifetime of the node certificates it issues; zero
	// means ca.DefaultCertExpiry.
	CertExpiry time.Duration
}

// DefaultCheckpointInterval is how often a running manager signs the audit
// log's head when it has moved.
const DefaultCheckpointInterval = time.Minute

// DefaultPruneInterval is how often the leader prunes expired certificates'
// records.
const DefaultPruneInterval = time.Hour

// Run runs the manager until ctx is done, or until one of its parts (the
// API, the agent, the metrics listener, the leader's duties) stops; it
// returns the first error, after every part has stopped.
func Run(ctx context.Context, cfg Config) error {
	if cfg.Clock == nil {
		cfg.Clock = clock.Real{}
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if err := datadir.Check(cfg.DataDir); err != nil {
		return err
	}
	st, err := cluster.OpenStore(cfg.DataDir)
	if err != nil {
		return err
	}
	defer st.Close()
	c, err := st.Cluster(ctx)
	if err != nil {
		return err
	}
	// A manager that joined keeps its own listen and advertise addresses
	// in its state file: the cluster record's are the first manager's.
	if js, err := agent.ReadState(cfg.DataDir); err == nil {
		if cfg.ListenAddr == "" {
			cfg.ListenAddr = js.ListenAddr
			if cfg.ListenAddr == "" {
				cfg.ListenAddr = DefaultListenAddr
			}
		}
		if cfg.AdvertiseAddr == "" {
			cfg.AdvertiseAddr = js.AdvertiseAddr
		}
	}
	chain, err := certdir.In(cfg.DataDir).NodeChain()
	if err != nil {
		return fmt.Errorf("this manager's certificate: %w", err)
	}
	nodeID := chain[0].Subject.CommonName
	election, shared, err := electionFor(st, nodeID, cfg)
	if err != nil {
		return err
	}
	if shared != nil {
		// A manager removed while it was stopped (excluded from a
		// rotation, or removed with node rm) stops before it serves or
		// campaigns, as its agent would at its first heartbeat.
		if n, err := st.Node(ctx, nodeID); err != nil && !errors.Is(err, store.ErrNotFound) {
			return err
		} else if err == nil && n.State == store.StateRemoved {
			return fmt.Errorf("%w (node %s)", agent.ErrRemoved, nodeID)
		}
	}
	issuers := &issuer.Holder{}
	auth := cluster.NewAuthority(st, issuers, cfg.Clock.Now)
	reg := prometheus.NewRegistry()
	var leaderOf func(context.Context) (string, error)
	if el, ok := election.(interface {
		Leader(context.Context) (string, error)
	}); ok {
		// node ls's MANAGER STATUS, info's leader and the refusals of
		// node demote, rm and leave follow the election, read as the
		// store's calls are: under its call timeout, etcd's
		// unavailability answered 503.
		leaderOf = el.Leader
		if b, ok := st.(interface {
			Bounded(context.Context, func(context.Context) error) error
		}); ok {
			leaderOf = func(ctx context.Context) (leader string, err error) {
				err = b.Bounded(ctx, func(ctx context.Context) (err error) {
					leader, err = el.Leader(ctx)
					return err
				})
				return leader, err
			}
		}
	}
	var managers *liveManagers
	var managersOf func() []string
	if shared != nil {
		managers = &liveManagers{etcd: shared.Client(), prefix: shared.Prefix(), st: st, log: cfg.Logger}
		managersOf = managers.get
	}
	srv, err := server.New(server.Config{
		DataDir: cfg.DataDir, Store: st, Authority: auth, NodeID: nodeID, Registry: reg, Shared: shared != nil, Leader: leaderOf,
		Managers: managersOf,
		Clock:    cfg.Clock, Logger: cfg.Logger, HeartbeatPeriod: cfg.HeartbeatPeriod, Backend: c.Backend.Type,
		RenewRate: cfg.RenewRate, StragglerGrace: cfg.StragglerGrace, BackendOverrides: cfg.BackendOverrides,
	})
	if err != nil {
		return err
	}
	// The manager keeps the host name it was registered with.
	hostname := ""
	if n, err := st.Node(ctx, nodeID); err == nil {
		hostname = n.Hostname
	}
	ag, err := agent.New(agent.Config{
		DataDir: cfg.DataDir, Manager: srv.Self(nodeID), Clock: cfg.Clock, Logger: cfg.Logger,
		Hostname: hostname, HeartbeatPeriod: cfg.HeartbeatPeriod, OnCertificate: srv.SetCertificate,
	})
	if err != nil {
		return err
	}

	// What can fail comes first, before anything runs in the background:
	// the listeners, the Signer and the external CA endpoint.
	var closers []io.Closer
	defer func() {
		for _, c := range closers {
			c.Close()
		}
	}()
	ln := cfg.Listener
	if ln == nil {
		addr := cfg.ListenAddr
		if addr == "" {
			addr = c.ListenAddr
		}
		if ln, err = net.Listen("tcp", addr); err != nil {
			return fmt.Errorf("manager: failed to listen on %s: %w", addr, err)
		}
	}
	closers = append(closers, ln)
	if cfg.AdvertiseAddr != "" {
		// As init and join take it: a bare IP or an interface takes the
		// listener's port.
		if cfg.AdvertiseAddr, err = cluster.ResolveAdvertise(cfg.AdvertiseAddr, ln.Addr().String()); err != nil {
			return err
		}
	}
	if shared == nil {
		// The embedded store: this manager must be its leader before
		// anything starts.
		if _, err := election.Campaign(ctx); err != nil {
			return err
		}
	}
	dcfg := dutiesConfig{
		Config: cfg, store: st, cluster: c, nodeID: nodeID, issuers: issuers, api: srv,
		election: election, shared: shared != nil, metrics: newDutiesMetrics(reg),
	}
	if shared != nil {
		dcfg.etcd, dcfg.clusterKey = shared.Client(), shared.ClusterKey()
		dcfg.prefix, dcfg.advertise = shared.Prefix(), advertiseOf(cfg, ln, c, nodeID)
		if dcfg.advertise == "" {
			cfg.Logger.Warn("this manager listens on a wildcard address and has no advertise address: nodes are not told of it")
		}
	}
	lead, err := startDuties(audit.WithActor(ctx, nodeID), dcfg)
	if err != nil {
		return err
	}
	actx := audit.WithActor(ctx, nodeID)
	if _, err := st.AppendAudit(actx, audit.Event{Action: audit.ActionManagerStarted, Actor: nodeID, Backend: c.Backend.Type}); err != nil {
		lead.release()
		return fmt.Errorf("failed to record the manager's start in the audit log: %w", err)
	}
	// After every part has stopped: the shutdown checkpoint, then the
	// Signer closes (and the store, deferred above).
	defer lead.stop()
	if err := lead.begin(); err != nil {
		return err
	}
	uln, err := server.ListenSocket(cfg.DataDir)
	if err != nil {
		return err
	}
	closers = append(closers, uln)

	g, gctx := errgroup.WithContext(ctx)
	// part runs f in the group; a part that returns, even without an
	// error, stops the others.
	part := func(name string, f func(context.Context) error) {
		g.Go(func() error {
			err := f(gctx)
			// ctx ends before gctx, its child, does: a part that saw it
			// end (the leader's duties, whose leadership is ctx's) is
			// stopping, not stopped on its own.
			if err == nil && gctx.Err() == nil && ctx.Err() == nil {
				err = fmt.Errorf("manager: the %s stopped", name)
			}
			return err
		})
	}
	part("API", func(ctx context.Context) error { return srv.Serve(ctx, ln, uln) })
	part("agent", ag.Run)
	if cfg.MetricsAddr != "" {
		ms := &http.Server{Addr: cfg.MetricsAddr, Handler: srv.MetricsHandler(), ReadHeaderTimeout: 10 * time.Second}
		part("metrics listener", func(ctx context.Context) error {
			go func() {
				<-ctx.Done()
				ms.Close()
			}()
			if err := ms.ListenAndServe(); !errors.Is(err, http.ErrServerClosed) {
				return fmt.Errorf("manager: metrics: %w", err)
			}
			return nil
		})
	}
	part("CA work", func(ctx context.Context) error { return lead.run(ctx) })
	if managers != nil {
		g.Go(func() error { return managers.run(gctx) })
	}
	if cfg.Ready != nil {
		cfg.Ready(ln.Addr().String())
	}
	cfg.Logger.Info("manager running", "cluster_id", c.ID, "node_id", nodeID, "backend", c.Backend.Type)
	err = g.Wait()
	if ctx.Err() != nil && errors.Is(err, context.Canceled) {
		err = nil
	}
	return err
}
