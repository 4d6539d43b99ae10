// Package server is the manager's API: HTTPS with TLS 1.2 at least, JSON
// bodies from package api. Nodes fetch the root and join with a token
// (no client certificate), then renew and report over mutual TLS with their
// node certificate; managers administer the cluster over mutual TLS, and the
// CLI on the manager's host over a unix socket in the data directory that
// only its owner can reach.
//
// The server does no CA work itself: it authenticates and authorizes, then
// calls package cluster.
package server

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"golang.org/x/time/rate"

	"github.com/chancery-pki/chancery/api"
	"github.com/chancery-pki/chancery/audit"
	"github.com/chancery-pki/chancery/backends"
	"github.com/chancery-pki/chancery/ca"
	"github.com/chancery-pki/chancery/clock"
	"github.com/chancery-pki/chancery/cluster"
	"github.com/chancery-pki/chancery/internal/ratelimit"
	"github.com/chancery-pki/chancery/signer"
	"github.com/chancery-pki/chancery/store"
)

// DefaultHeartbeatPeriod is how often nodes report, as swarm's dispatcher.
const DefaultHeartbeatPeriod = 5 * time.Second

// Refused joins are throttled per source address: after JoinRefusalBurst
// refused joins, an address gets one more refusal every JoinRefusalEvery,
// and its other refused joins are answered 429 Too Many Requests with
// Retry-After. Joins that succeed cost nothing and are served whatever the
// address did, so that an attacker sharing a node's address cannot keep it
// out.
const (
	JoinRefusalBurst = 20
	JoinRefusalEvery = 3 * time.Second
)

// Config configures a Server.
type Config struct {
	// DataDir holds the administration socket.
	DataDir string
	// Store is the cluster's store; Authority issues with the root's Signer.
	// Authority may be nil for a server used only for AdminHandler, as the
	// CLI does when no manager is running.
	Store     store.Store
	Authority *cluster.Authority
	// NodeID is this manager's node ID.
	NodeID string
	// Clock and Rand default to the wall clock and crypto/rand.
	Clock clock.Clock
	Rand  io.Reader
	// Logger defaults to slog.Default().
	Logger *slog.Logger
	// Shared says the store is shared by managers that each serve (a store
	// in etcd): no manager forwards calls to another, so
	// ForwardedCertHeader is never believed; a manager that sends it is
	// served as itself.
	Shared bool
	// Leader, when set, names the manager that leads now (the election's
	// answer with a shared store); otherwise the cluster record's LeaderID
	// does.
	Leader func(ctx context.Context) (string, error)
	// Managers, when set, returns the API addresses of the live managers
	// (of a shared store), for the status answer; otherwise that answer
	// lists the cluster record's advertise address alone.
	Managers func() []string
	// Registry receives the metrics; nil means a new registry.
	Registry *prometheus.Registry
	// HeartbeatPeriod defaults to DefaultHeartbeatPeriod.
	HeartbeatPeriod time.Duration
	// Backend names the signer backend, for the signing latency metric.
	Backend string
	// RenewRate is how many nodes per second are asked to renew during a
	// root rotation; default DefaultRenewRate.
	RenewRate float64
	// StragglerGrace is how long a node may stay silent before a rotation
	// counts it as a straggler; default DefaultStragglerGrace.
	StragglerGrace time.Duration
	// NodeStatsInterval is how often the node counts and certificate
	// expiries behind the metrics are read from the store again; default
	// DefaultNodeStatsInterval.
	NodeStatsInterval time.Duration
	// RenewalLimit bounds the renewals a node asks for of its own accord;
	// zero means cluster.DefaultRenewalLimit.
	RenewalLimit cluster.RenewalLimit
	// BackendOverrides are the backend settings the manager was started
	// with on top of the stored ones (a passphrase file), for a rotation's
	// new root beside the current one.
	BackendOverrides backends.Settings
}

// Server is the manager's API.
type Server struct {
	cfg      Config
	log      *slog.Logger
	clock    clock.Clock
	live     *liveness
	metrics  *metrics
	stats    *nodeStatsCache
	registry *prometheus.Registry
	refusals audit.RefusalLimiter
	// refusalLog limits the log lines of refused requests, per source and
	// reason, as refusals does the audit entries.
	refusalLog *ratelimit.Refusals
	// joinRefusals counts refused joins per source, to throttle them.
	joinRefusals *ratelimit.Keyed[struct{}]
	// storeErrLog limits the log lines of the store's errors, and
	// storeErrs counts those errors since the last line (storeUnavailable).
	storeErrLog rate.Sometimes
	storeErrs   atomic.Int64
	// renames limits each node's host name changes.
	renames  *ratelimit.Keyed[struct{}]
	cert     atomic.Pointer[tls.Certificate]
	roots    atomic.Pointer[x509.CertPool]
	renewals *renewals
	// renewing holds the locks of the nodes whose renewal is being
	// served: one at a time per node.
	renewingMu sync.Mutex
	renewing   map[string]*renewalLock
	started    time.Time
	// rotationChanged wakes the leader's reconciler.
	rotationChanged chan struct{}
	lastRotationMu  sync.Mutex
	lastRotation    string
}

// New returns a Server. Call SetCertificate before serving TLS.
func New(cfg Config) (*Server, error) {
	if cfg.Store == nil {
		return nil, errors.New("server: a store is needed")
	}
	if cfg.Clock == nil {
		cfg.Clock = clock.Real{}
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.HeartbeatPeriod <= 0 {
		cfg.HeartbeatPeriod = DefaultHeartbeatPeriod
	}
	if cfg.Registry == nil {
		cfg.Registry = prometheus.NewRegistry()
	}
	if cfg.RenewRate <= 0 {
		cfg.RenewRate = DefaultRenewRate
	}
	if cfg.StragglerGrace <= 0 {
		cfg.StragglerGrace = DefaultStragglerGrace
	}
	if cfg.RenewalLimit == (cluster.RenewalLimit{}) {
		cfg.RenewalLimit = cluster.DefaultRenewalLimit
	}
	s := &Server{cfg: cfg, log: cfg.Logger, clock: cfg.Clock, registry: cfg.Registry,
		renewals: newRenewals(cfg.RenewRate), renewing: map[string]*renewalLock{}, started: cfg.Clock.Now(), rotationChanged: make(chan struct{}, 1),
		refusalLog:   ratelimit.NewRefusals(ratelimit.RefusalsConfig{Interval: audit.RefusalInterval}),
		joinRefusals: ratelimit.New(ratelimit.Config[struct{}]{Every: JoinRefusalEvery, Burst: JoinRefusalBurst}),
		renames:      ratelimit.New(ratelimit.Config[struct{}]{Every: RenameInterval, Burst: RenameBurst}),
		storeErrLog:  rate.Sometimes{Interval: storeErrorLogInterval}}
	s.live = newLiveness(cfg.NodeID, cfg.HeartbeatPeriod)
	if sh, ok := cfg.Store.(store.SeenSharer); ok && cfg.Shared {
		s.live.share(sh)
	}
	if cfg.NodeStatsInterval <= 0 {
		cfg.NodeStatsInterval = DefaultNodeStatsInterval
	}
	s.stats = &nodeStatsCache{store: cfg.Store, live: s.live, clock: cfg.Clock, interval: cfg.NodeStatsInterval}
	s.metrics = newMetrics(cfg.Registry, cfg.Store, cfg.Clock, s.rotationProgress, s.stats)
	if err := s.ReloadRoots(context.Background()); err != nil {
		return nil, err
	}
	return s, nil
}

// SetCertificate sets the certificate the server presents: the manager's
// own node certificate, replaced at each renewal.
func (s *Server) SetCertificate(c *tls.Certificate) { s.cert.Store(c) }

// ReloadRoots reads the root bundle from the store: the CAs that client
// certificates must chain to.
func (s *Server) ReloadRoots(ctx context.Context) error {
	c, err := s.cfg.Store.Cluster(ctx)
	if err != nil {
		return err
	}
	roots, err := cluster.ClientRoots(c)
	if err != nil {
		return err
	}
	pool := x509.NewCertPool()
	for _, r := range roots {
		pool.AddCert(r)
	}
	s.roots.Store(pool)
	return nil
}

// TLSConfig is the server's TLS configuration: TLS 1.2 at least, the
// current node certificate, and client certificates verified against the
// current roots when given (the root fetch and join need none).
func (s *Server) TLSConfig() *tls.Config { return serverTLS(s.cert.Load, s.roots.Load) }

// Handler returns the HTTPS API: nodes and managers authenticate with
// their certificates.
func (s *Server) Handler() http.Handler {
	if s.cfg.Authority == nil {
		panic("server: Handler needs an Authority")
	}
	mux := http.NewServeMux()
	mux.HandleFunc("GET "+api.PathRoot, s.handleRoot)
	mux.Handle("POST "+api.PathJoin, s.requireIssuer(http.HandlerFunc(s.handleJoin)))
	mux.Handle("POST "+api.PathRenew, s.requireIssuer(s.requireNode(http.HandlerFunc(s.handleRenew))))
	mux.Handle("POST "+api.PathStatus, s.requireNode(http.HandlerFunc(s.handleStatus)))
	mux.Handle("POST "+api.PathLeave, s.requireNode(http.HandlerFunc(s.handleLeave)))
	s.adminRoutes(mux, s.requireManager)
	return s.limitBody(mux)
}

// Actor returns the node ID this server records as the actor of what it
// does.
func (s *Server) Actor() string { return s.cfg.NodeID }

// AdminHandler returns the administration API for the unix socket: the
// socket's permissions are the authentication. It also serves /metrics.
func (s *Server) AdminHandler() http.Handler {
	mux := http.NewServeMux()
	s.adminRoutes(mux, func(h http.Handler) http.Handler { return h })
	mux.Handle("GET /metrics", s.MetricsHandler())
	return s.limitBody(mux)
}

// MetricsHandler serves the Prometheus metrics.
func (s *Server) MetricsHandler() http.Handler {
	return promhttp.HandlerFor(s.registry, promhttp.HandlerOpts{})
}

// limitBody caps request bodies and marks every request's context with
// this manager as the actor of what it records.
func (s *Server) limitBody(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		r.Body = http.MaxBytesReader(w, r.Body, api.MaxBodyBytes)
		h.ServeHTTP(w, r.WithContext(audit.WithActor(r.Context(), s.cfg.NodeID)))
	})
}

// Serve serves the API on ln with TLS, and the administration API on uln
// (from ListenSocket; nil to create it here), until ctx is done.
func (s *Server) Serve(ctx context.Context, ln, uln net.Listener) error {
	if uln == nil {
		var err error
		if uln, err = ListenSocket(s.cfg.DataDir); err != nil {
			return err
		}
	}
	sock := uln.Addr().String()
	tlsSrv := &http.Server{
		Handler:           s.Handler(),
		TLSConfig:         s.TLSConfig(),
		ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout:       30 * time.Second,
		WriteTimeout:      30 * time.Second,
		IdleTimeout:       2 * time.Minute,
		ErrorLog:          slog.NewLogLogger(s.log.Handler(), slog.LevelDebug),
	}
	adminSrv := &http.Server{Handler: s.AdminHandler(), ReadHeaderTimeout: 10 * time.Second}
	errc := make(chan error, 2)
	liveCtx, stopLive := context.WithCancel(ctx)
	defer stopLive()
	go s.live.run(liveCtx, s.log)
	go func() { errc <- tlsSrv.Serve(tls.NewListener(ln, tlsSrv.TLSConfig)) }()
	go func() { errc <- adminSrv.Serve(uln) }()
	s.log.Info("manager API listening", "addr", ln.Addr().String(), "socket", sock)
	var serveErr error
	select {
	case <-ctx.Done():
	case serveErr = <-errc:
	}
	shut, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	tlsSrv.Shutdown(shut)
	adminSrv.Shutdown(shut)
	uln.Close() // removes the socket file of a ListenSocket listener
	if serveErr != nil && !errors.Is(serveErr, http.ErrServerClosed) {
		return fmt.Errorf("server: %w", serveErr)
	}
	return nil
}

// peer is the authenticated caller of a mutual TLS request.
type peer struct {
	id   ca.NodeIdentity
	node store.Node
	// cert is the certificate the caller authenticated with.
	cert *x509.Certificate
}

type peerKey struct{}

// callerKey marks a request with the node a forwarding manager calls for,
// so that a refusal is recorded against that node, not the forwarder.
type callerKey struct{}

// sourceKey marks a request with the node ID of its authenticated caller,
// the source its refusals are limited under.
type sourceKey struct{}

func peerOf(r *http.Request) peer { return r.Context().Value(peerKey{}).(peer) }

// requireNode admits requests whose client certificate chains to the roots
// (the TLS layer checked that), names this cluster and a known role, and
// belongs to a node that has not been removed.
//
// A call that another manager forwards always carries ForwardedCertHeader:
// the caller's verified chain, or ForwardedNone when the caller presented
// no certificate. The header is believed only from a manager; the chain is
// verified again, and the caller it names is then authorized as if it had
// called directly, never as the forwarding manager. A forwarded call
// without a caller certificate is unauthenticated. With a shared store
// (Config.Shared) nothing is forwarded and the header is dropped.
func (s *Server) requireNode(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if s.cfg.Shared {
			// Nobody forwards: whatever the header says is no identity.
			r.Header.Del(ForwardedCertHeader)
		}
		if r.TLS == nil || len(r.TLS.VerifiedChains) == 0 {
			s.fail(w, r, http.StatusUnauthorized, api.CodeUnauthorized, "unauthenticated",
				"this call needs the node's certificate (mutual TLS)")
			return
		}
		direct := r.TLS.VerifiedChains[0][0]
		r = r.WithContext(context.WithValue(r.Context(), callerKey{}, direct.Subject.CommonName))
		p, ok := s.authenticate(w, r, direct)
		if !ok {
			return
		}
		hs, forwarded := r.Header[ForwardedCertHeader]
		if !forwarded {
			r = r.WithContext(context.WithValue(r.Context(), sourceKey{}, p.node.ID))
		} else {
			if p.id.Role != ca.RoleManager || p.node.Role != string(ca.RoleManager) {
				s.fail(w, r, http.StatusForbidden, api.CodeForbidden, "forward_not_manager", "only managers may forward calls")
				return
			}
			if len(hs) != 1 || hs[0] == ForwardedNone || hs[0] == "" {
				s.fail(w, r, http.StatusUnauthorized, api.CodeUnauthorized, "unauthenticated",
					"this call needs the node's certificate (mutual TLS)")
				return
			}
			chain, err := forwardedChain(hs[0], s.roots.Load(), s.clock.Now())
			if err != nil {
				s.fail(w, r, http.StatusForbidden, api.CodeForbidden, "bad_forwarded_certificate", err.Error())
				return
			}
			r = r.WithContext(context.WithValue(r.Context(), callerKey{}, chain[0].Subject.CommonName))
			if p, ok = s.authenticate(w, r, chain[0]); !ok {
				return
			}
			r = r.WithContext(context.WithValue(r.Context(), sourceKey{}, p.node.ID))
		}
		ctx := context.WithValue(r.Context(), peerKey{}, p)
		next.ServeHTTP(w, r.WithContext(ctx))
	})
}

// authenticate maps a verified client certificate to a member node, or
// answers the refusal.
func (s *Server) authenticate(w http.ResponseWriter, r *http.Request, leaf *x509.Certificate) (peer, bool) {
	c, err := s.cfg.Store.Cluster(r.Context())
	if err != nil {
		s.internal(w, r, err)
		return peer{}, false
	}
	id, err := ca.IdentityOf(leaf, c.ID)
	if err != nil {
		s.fail(w, r, http.StatusForbidden, api.CodeForbidden, "foreign_certificate", err.Error())
		return peer{}, false
	}
	node, err := s.cfg.Store.Node(r.Context(), id.NodeID)
	switch {
	case errors.Is(err, store.ErrNotFound):
		s.fail(w, r, http.StatusForbidden, api.CodeForbidden, "unknown_node", "node "+id.NodeID+" is not a member of this cluster")
		return peer{}, false
	case err != nil:
		s.internal(w, r, err)
		return peer{}, false
	case node.State == store.StateRemoved:
		s.fail(w, r, http.StatusForbidden, api.CodeNodeRemoved, "node_removed",
			"node "+id.NodeID+" was removed from the cluster; it must join again with a join token")
		return peer{}, false
	}
	// Only certificates this cluster issued to this node are its identity.
	// The root may also sign for others (the external CA endpoint, a
	// cross-signed intermediate): a certificate that merely chains to it
	// and names a node of this cluster is not enough.
	issued, err := s.cfg.Store.IssuedCertificate(r.Context(), signer.SerialHex(leaf.SerialNumber))
	switch {
	case errors.Is(err, store.ErrNotFound) || err == nil && issued.NodeID != id.NodeID:
		s.fail(w, r, http.StatusForbidden, api.CodeForbidden, "unissued_certificate",
			"the certificate for node "+id.NodeID+" was not issued by this cluster")
		return peer{}, false
	case err != nil:
		s.internal(w, r, err)
		return peer{}, false
	}
	return peer{id: id, node: node, cert: leaf}, true
}

// requireIssuer refuses at once, before reading the store, calls that
// issue while this manager has no Issuer in force, saying why (it lost its
// session with a shared store, say): the caller tries another manager
// instead of waiting on a store this manager cannot reach.
func (s *Server) requireIssuer(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if _, err := s.cfg.Authority.Issuers().Current(); err != nil {
			s.fail(w, r, http.StatusServiceUnavailable, api.CodeUnavailable, "no_issuer", err.Error())
			return
		}
		next.ServeHTTP(w, r)
	})
}

// requireManager admits nodes whose certificate says swarm-manager and whose
// stored role is still manager.
func (s *Server) requireManager(next http.Handler) http.Handler {
	return s.requireNode(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		p := peerOf(r)
		if p.id.Role != ca.RoleManager || p.node.Role != string(ca.RoleManager) {
			s.fail(w, r, http.StatusForbidden, api.CodeForbidden, "not_manager",
				"administration needs a manager's certificate; node "+p.id.NodeID+" is a worker")
			return
		}
		// The manager that asked is the actor of what administration records.
		next.ServeHTTP(w, r.WithContext(audit.WithActor(r.Context(), p.id.NodeID)))
	}))
}
