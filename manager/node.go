package manager

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"log/slog"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/chancery-pki/chancery/agent"
	"github.com/chancery-pki/chancery/ca"
	"github.com/chancery-pki/chancery/certdir"
	"github.com/chancery-pki/chancery/clock"
	"github.com/chancery-pki/chancery/datadir"
	"github.com/chancery-pki/chancery/server"
)

// NodeConfig configures RunNode.
type NodeConfig struct {
	// DataDir is the node's data directory, made by `chancery join`.
	DataDir string
	// ListenAddr is where the node serves the manager API while it holds a
	// manager certificate; empty means the state file's, else
	// DefaultListenAddr. Listener, when set, is used instead.
	ListenAddr string
	Listener   net.Listener
	// Hostname is reported with each heartbeat.
	Hostname string
	// Clock defaults to the wall clock; Logger to slog.Default().
	Clock  clock.Clock
	Logger *slog.Logger
}

// RunNode runs a joined node until ctx is done: its agent keeps the
// certificate fresh, and while the certificate says swarm-manager the node
// also serves the manager API, forwarding every call to the leader at the
// address the managers announce (the store lives with the leader). A
// promotion starts the API, a demotion stops it.
func RunNode(ctx context.Context, cfg NodeConfig) error {
	if cfg.Clock == nil {
		cfg.Clock = clock.Real{}
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if err := datadir.Check(cfg.DataDir); err != nil {
		return err
	}
	st, err := agent.ReadState(cfg.DataDir)
	if err != nil {
		return err
	}
	dir := certdir.In(cfg.DataDir)
	var (
		cert  atomic.Pointer[tls.Certificate]
		roots atomic.Pointer[x509.CertPool]
		role  = make(chan ca.Role, 1)
	)
	loadRoots := func() {
		if rs, _, err := dir.Root(); err == nil {
			p := x509.NewCertPool()
			for _, r := range rs {
				p.AddCert(r)
			}
			roots.Store(p)
		}
	}
	loadRoots()
	ag, err := agent.New(agent.Config{
		DataDir: cfg.DataDir, Hostname: cfg.Hostname, Clock: cfg.Clock, Logger: cfg.Logger,
		OnRoots: loadRoots,
		OnCertificate: func(c *tls.Certificate) {
			cert.Store(c)
			loadRoots()
			if ou := c.Leaf.Subject.OrganizationalUnit; len(ou) == 1 {
				select {
				case <-role:
				default:
				}
				role <- ca.Role(ou[0])
			}
		},
	})
	if err != nil {
		return err
	}
	fwd, err := server.NewForwarder(server.ForwarderConfig{
		Leader: ag.Leader, Certificate: cert.Load, Roots: roots.Load, Logger: cfg.Logger,
	})
	if err != nil {
		return err
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var wg sync.WaitGroup
	defer wg.Wait()
	agentErr := make(chan error, 1)
	wg.Add(1)
	go func() {
		defer wg.Done()
		agentErr <- ag.Run(ctx)
	}()

	// Serve the API while the certificate says manager.
	var stopAPI context.CancelFunc
	listenAddr := cfg.ListenAddr
	if listenAddr == "" {
		listenAddr = st.ListenAddr
	}
	if listenAddr == "" {
		listenAddr = DefaultListenAddr
	}
	for {
		select {
		case <-ctx.Done():
			if stopAPI != nil {
				stopAPI()
			}
			return nil
		case err := <-agentErr:
			if stopAPI != nil {
				stopAPI()
			}
			return err
		case r := <-role:
			switch {
			case r == ca.RoleManager && stopAPI == nil:
				ln := cfg.Listener
				cfg.Listener = nil
				if ln == nil {
					if ln, err = listenRetry(ctx, listenAddr); err != nil {
						cfg.Logger.Error("cannot serve the manager API", "addr", listenAddr, "err", err)
						continue
					}
				}
				var apiCtx context.Context
				apiCtx, stopAPI = context.WithCancel(ctx)
				wg.Add(1)
				go func() {
					defer wg.Done()
					if err := fwd.Serve(apiCtx, ln); err != nil {
						cfg.Logger.Error("manager API stopped", "err", err)
					}
					ln.Close()
				}()
			case r != ca.RoleManager && stopAPI != nil:
				cfg.Logger.Info("demoted: no longer serving the manager API")
				stopAPI()
				stopAPI = nil
			}
		}
	}
}

// listenRetry listens on addr, retrying briefly while a previous listener
// on the same address shuts down.
func listenRetry(ctx context.Context, addr string) (net.Listener, error) {
	var lastErr error
	for i := 0; i < 10; i++ {
		ln, err := net.Listen("tcp", addr)
		if err == nil {
			return ln, nil
		}
		lastErr = err
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(200 * time.Millisecond):
		}
	}
	return nil, fmt.Errorf("manager: failed to listen on %s: %w", addr, lastErr)
}
