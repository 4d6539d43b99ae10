// Package manager runs a cluster's manager from its data directory: it
// opens the store and the root's Signer, serves the API (package server),
// and keeps the manager's own node certificate fresh with an in-process
// node agent (package agent) whose certificate is the one the API
// presents.
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
	"sync"
	"time"

	"github.com/chancery-pki/chancery/agent"
	"github.com/chancery-pki/chancery/audit"
	"github.com/chancery-pki/chancery/backends"
	"github.com/chancery-pki/chancery/certdir"
	"github.com/chancery-pki/chancery/clock"
	"github.com/chancery-pki/chancery/cluster"
	"github.com/chancery-pki/chancery/extca"
	"github.com/chancery-pki/chancery/issuer"
	"github.com/chancery-pki/chancery/server"
)

// DefaultListenAddr is where a manager serves its API unless told
// otherwise.
var DefaultListenAddr = cluster.DefaultListenAddr

// Config configures Run.
type Config struct {
	// DataDir is the manager's data directory, made by `chancery init`.
	DataDir string
	// ListenAddr overrides the stored listen address when not empty.
	ListenAddr string
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

// Run runs the manager until ctx is done.
func Run(ctx context.Context, cfg Config) error {
	if cfg.Clock == nil {
		cfg.Clock = clock.Real{}
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	st, err := cluster.OpenStore(cfg.DataDir)
	if err != nil {
		return err
	}
	defer st.Close()
	c, err := st.Cluster(ctx)
	if err != nil {
		return fmt.Errorf("manager: %w", err)
	}
	chain, err := certdir.In(cfg.DataDir).NodeChain()
	if err != nil {
		return fmt.Errorf("manager: this manager's certificate: %w", err)
	}
	nodeID := chain[0].Subject.CommonName
	if nodeID != c.LeaderID {
		return fmt.Errorf("manager: this data directory's node %s is not the cluster's leader %s", nodeID, c.LeaderID)
	}
	sg, err := cluster.OpenSigner(ctx, cfg.DataDir, c, cfg.BackendOverrides, nil)
	if err != nil {
		return err
	}
	if c, ok := sg.(io.Closer); ok {
		defer c.Close() // after the shutdown checkpoint, deferred below
	}
	issuers, err := issuer.Hold(sg, issuer.Options{Now: cfg.Clock.Now})
	if err != nil {
		return err
	}
	auth := cluster.NewAuthority(st, issuers, cfg.Clock.Now)
	srv, err := server.New(server.Config{
		DataDir: cfg.DataDir, Store: st, Authority: auth, NodeID: nodeID,
		Clock: cfg.Clock, Logger: cfg.Logger, HeartbeatPeriod: cfg.HeartbeatPeriod, Backend: c.Backend.Type,
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
	// What can fail comes first, before anything runs in the background.
	actx := audit.WithActor(ctx, nodeID)
	if _, err := st.AppendAudit(actx, audit.Event{Action: audit.ActionManagerStarted, Actor: nodeID, Backend: c.Backend.Type}); err != nil {
		ln.Close()
		return fmt.Errorf("manager: the audit log: %w", err)
	}
	checkpoint := func(ctx context.Context) {
		if _, err := cluster.Checkpoint(ctx, st, issuers.Load(), cfg.Clock.Now()); err != nil {
			cfg.Logger.Error("audit checkpoint failed", "err", err)
		}
	}
	checkpoint(actx)
	// Runs after every goroutine below has stopped (deferred before the
	// wait), and before the signer and the store close (deferred after).
	defer checkpoint(audit.WithActor(context.Background(), nodeID))
	var (
		ext *extca.Server
		eln net.Listener
	)
	if e := cfg.ExternalCA; e != nil {
		ips, names := e.IPAddresses, e.DNSNames
		if host, _, err := net.SplitHostPort(c.AdvertiseAddr); err == nil {
			if ip := net.ParseIP(host); ip != nil {
				ips = append(ips, ip)
			} else if host != "" {
				names = append(names, host)
			}
		}
		if ext, err = extca.New(actx, extca.Config{
			Issuers: issuers, Policy: e.Policy, ClientCAs: e.ClientCAs, DNSNames: names, IPAddresses: ips,
			CertExpiry: e.CertExpiry, Audit: st, Actor: nodeID, Clock: cfg.Clock, Logger: cfg.Logger,
			ReservedClusters: []string{c.ID},
		}); err != nil {
			ln.Close()
			return err
		}
		if eln, err = net.Listen("tcp", e.ListenAddr); err != nil {
			ln.Close()
			return fmt.Errorf("manager: failed to listen on %s for the external CA endpoint: %w", e.ListenAddr, err)
		}
	}
	uln, err := server.ListenSocket(cfg.DataDir)
	if err != nil {
		ln.Close()
		if eln != nil {
			eln.Close()
		}
		return err
	}

	// Deferred in this order, cancel runs first, then the wait for every
	// goroutine below.
	var wg sync.WaitGroup
	defer wg.Wait()
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	srvDone, agDone, metricsErr := make(chan error, 1), make(chan error, 1), make(chan error, 1)
	wg.Add(2)
	go func() { defer wg.Done(); srvDone <- srv.Serve(ctx, ln, uln) }()
	go func() { defer wg.Done(); agDone <- ag.Run(ctx) }()
	if cfg.MetricsAddr != "" {
		ms := &http.Server{Addr: cfg.MetricsAddr, Handler: srv.MetricsHandler(), ReadHeaderTimeout: 10 * time.Second}
		wg.Add(2)
		go func() {
			defer wg.Done()
			<-ctx.Done()
			ms.Close()
		}()
		go func() {
			defer wg.Done()
			if err := ms.ListenAndServe(); err != nil && !errors.Is(err, http.ErrServerClosed) {
				metricsErr <- fmt.Errorf("manager: metrics: %w", err)
			}
		}()
	}
	wg.Add(1)
	go func() {
		defer wg.Done()
		interval := cfg.CheckpointInterval
		if interval <= 0 {
			interval = DefaultCheckpointInterval
		}
		for {
			select {
			case <-ctx.Done():
				return
			case <-cfg.Clock.After(interval):
				checkpoint(actx)
			}
		}
	}()
	// extDone stays nil (never ready) unless the endpoint runs.
	var extDone chan error
	if ext != nil {
		extDone = make(chan error, 1)
		wg.Add(1)
		go func() { defer wg.Done(); extDone <- ext.Serve(ctx, eln) }()
	}
	if cfg.Ready != nil {
		cfg.Ready(ln.Addr().String())
	}
	cfg.Logger.Info("manager running", "cluster_id", c.ID, "node_id", nodeID, "backend", c.Backend.Type)
	// Stop when ctx is done or the API, the agent, the metrics listener or
	// the external CA endpoint stops, and wait for the API, the agent and
	// the endpoint before the store closes.
	var mErr, srvErr, agErr error
	srvOver, agOver := false, false
	select {
	case <-ctx.Done():
	case srvErr = <-srvDone:
		srvOver = true
	case agErr = <-agDone:
		agOver = true
	case mErr = <-metricsErr:
	case mErr = <-extDone:
		extDone = nil
	}
	cancel()
	if extDone != nil {
		if err := <-extDone; err != nil && mErr == nil {
			mErr = err
		}
	}
	if !srvOver {
		srvErr = <-srvDone
	}
	if !agOver {
		agErr = <-agDone
	}
	for _, e := range []error{mErr, srvErr, agErr} {
		if e != nil {
			return e
		}
	}
	return nil
}
