package extca

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/chancery-pki/chancery/audit"
	"github.com/chancery-pki/chancery/internal/cfsslwire"
	"github.com/chancery-pki/chancery/internal/ratelimit"
)

// Server is chancery's CFSSL-compatible external CA endpoint.
type Server struct {
	cfg    Config
	log    *slog.Logger
	keys   []namedKey
	replay *replayCache
	// refusals limits the refusal entries written to the audit log.
	refusals audit.RefusalLimiter
	// refusalLog limits the log lines of refusals likewise.
	refusalLog *ratelimit.Refusals
	cert       atomic.Pointer[tls.Certificate]
	// ext is the endpoint's own Issuer (see intermediate.go); extMu
	// serialises its making.
	ext   atomic.Pointer[madeIssuer]
	extMu sync.Mutex
	tls   atomic.Pointer[tls.Config]
}

type namedKey struct {
	name string
	key  *cfsslwire.AuthKey
}

// New checks cfg and issues the endpoint's TLS certificate through
// cfg.Signer. Serve then serves, or the caller serves Handler with
// TLSConfig on a listener of its own and runs RenewTLSCertificate.
func New(ctx context.Context, cfg Config) (*Server, error) {
	cfg, err := cfg.withDefaults()
	if err != nil {
		return nil, err
	}
	s := &Server{cfg: cfg, log: cfg.Logger, replay: newReplayCache(cfg.ReplayTTL, cfg.ReplayCacheSize),
		refusalLog: ratelimit.NewRefusals(ratelimit.RefusalsConfig{Interval: audit.RefusalInterval})}
	for _, name := range cfg.Policy.keyNames() {
		s.keys = append(s.keys, namedKey{name: name, key: cfg.Policy.AuthKeys[name]})
	}
	if ar, ok := cfg.Audit.(AuditReader); ok && len(s.keys) > 0 {
		n, err := s.replay.recoverReplays(ctx, ar, cfg.Clock.Now())
		if err != nil {
			return nil, fmt.Errorf("extca: cannot recover the authsign tokens spent in the last %s from the audit log: %w", cfg.ReplayTTL, err)
		}
		if n > 0 {
			s.log.Info("authsign replay cache recovered from the audit log", "tokens", n)
		}
	}
	s.SetClientCAs(cfg.ClientCAs)
	c, err := s.issueTLSCert(ctx)
	if err != nil {
		return nil, err
	}
	s.cert.Store(c)
	return s, nil
}

// SetClientCAs replaces the CAs that verify client certificates: during a
// swarm's root rotation, its old and new roots; after it, the new one. It
// applies to new connections: a connection open before keeps the
// verification of its handshake until it closes (at most
// http.Server.IdleTimeout, 2 minutes, after its last request, when Serve
// serves). Nil accepts no client certificate.
func (s *Server) SetClientCAs(pool *x509.CertPool) {
	c := &tls.Config{
		MinVersion:     tls.VersionTLS12,
		GetCertificate: func(*tls.ClientHelloInfo) (*tls.Certificate, error) { return s.cert.Load(), nil },
		NextProtos:     []string{"h2", "http/1.1"},
		// A nil ClientCAs would verify client certificates against the
		// system's roots: never ask for one then.
		ClientAuth: tls.NoClientCert,
	}
	if pool != nil {
		c.ClientCAs = pool
		// Optional: /info and /authsign need no certificate.
		c.ClientAuth = tls.VerifyClientCertIfGiven
	}
	s.tls.Store(c)
}

// TLSConfig returns the endpoint's TLS configuration: TLS 1.2 or later,
// the current TLS certificate, and client certificates verified against
// the current client CAs when presented.
func (s *Server) TLSConfig() *tls.Config {
	return &tls.Config{
		MinVersion: tls.VersionTLS12,
		NextProtos: []string{"h2", "http/1.1"},
		// GetCertificate tells net/http that there is a certificate; the
		// configuration GetConfigForClient returns is the one used.
		GetCertificate:     func(*tls.ClientHelloInfo) (*tls.Certificate, error) { return s.cert.Load(), nil },
		GetConfigForClient: func(*tls.ClientHelloInfo) (*tls.Config, error) { return s.tls.Load(), nil },
	}
}

// Certificate returns the endpoint's current TLS certificate.
func (s *Server) Certificate() *tls.Certificate { return s.cert.Load() }

// ReissueTLSCertificate issues the endpoint a new TLS certificate at once,
// through the Issuer in force: after a root rotation moved the signing key
// or the appendix, so that clients that trust the new root verify it. On
// error the current certificate stays.
func (s *Server) ReissueTLSCertificate(ctx context.Context) error {
	c, err := s.issueTLSCert(ctx)
	if err != nil {
		return err
	}
	s.cert.Store(c)
	return nil
}

// RenewTLSCertificate renews the endpoint's TLS certificate at two thirds
// of its lifetime, until ctx is done. Serve runs it.
func (s *Server) RenewTLSCertificate(ctx context.Context) { s.renewTLSCert(ctx) }

// Serve serves the endpoint over TLS on ln, and renews its TLS
// certificate, until ctx is done.
func (s *Server) Serve(ctx context.Context, ln net.Listener) error {
	hs := &http.Server{
		Handler:           s.Handler(),
		TLSConfig:         s.TLSConfig(),
		ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout:       30 * time.Second,
		WriteTimeout:      30 * time.Second,
		IdleTimeout:       2 * time.Minute,
		MaxHeaderBytes:    64 << 10,
		ErrorLog:          slog.NewLogLogger(s.log.Handler(), slog.LevelDebug),
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	go s.renewTLSCert(ctx)
	errc := make(chan error, 1)
	go func() { errc <- hs.ServeTLS(ln, "", "") }()
	s.log.Info("external CA listening", "addr", ln.Addr().String(), "dns_names", s.cfg.DNSNames, "ip_addresses", s.cfg.IPAddresses)
	var err error
	select {
	case <-ctx.Done():
	case err = <-errc:
	}
	shut, stop := context.WithTimeout(context.Background(), 5*time.Second)
	defer stop()
	hs.Shutdown(shut)
	if err != nil && !errors.Is(err, http.ErrServerClosed) {
		return fmt.Errorf("extca: %w", err)
	}
	return nil
}
