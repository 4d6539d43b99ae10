package server

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"strings"
	"time"

	"github.com/chancery-pki/chancery/api"
	"github.com/chancery-pki/chancery/client"
)

// ForwardedCertHeader carries, from a manager that forwards a call to the
// leader, the client certificate chain it verified (base64 DER, leaf
// first, comma-separated), or ForwardedNone. A forwarder sets it on every
// call, so that the leader never mistakes a caller without a certificate
// for the forwarding manager. The leader believes it only from a manager.
const ForwardedCertHeader = "X-Chancery-Forwarded-Client-Cert"

// ForwardedNone is ForwardedCertHeader's value for a caller that presented
// no certificate.
const ForwardedNone = "none"

// ForwarderConfig configures a Forwarder.
type ForwarderConfig struct {
	// Leader returns the leader's API address (HOST:PORT), read at each
	// call so that the forwarder follows the address the leader announces.
	// Calls go to the leader only, never to another forwarder.
	Leader func() string
	// Certificate returns this manager's current node certificate, which it
	// presents both to nodes and to the leader.
	Certificate func() *tls.Certificate
	// Roots returns the root pool that client certificates and the leader
	// must chain to.
	Roots func() *x509.CertPool
	// Logger defaults to slog.Default().
	Logger *slog.Logger
}

// Forwarder is the API of a manager that does not hold the store: it
// checks callers' certificates against the roots at the TLS layer and
// forwards every call to the leader over mutual TLS, passing on the
// verified client chain (or that there was none), so that the leader
// authenticates and authorizes the caller itself. A call that already
// carries ForwardedCertHeader is refused: forwarding never chains.
type Forwarder struct {
	cfg   ForwarderConfig
	proxy *httputil.ReverseProxy
}

// NewForwarder returns a Forwarder.
func NewForwarder(cfg ForwarderConfig) (*Forwarder, error) {
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.Leader == nil || cfg.Leader() == "" {
		return nil, errors.New("server: the forwarder needs the leader's address")
	}
	tr := &http.Transport{
		TLSClientConfig: &tls.Config{
			MinVersion: tls.VersionTLS12,
			ServerName: client.ServerName,
			// The leader's certificate is checked against the current roots
			// at each handshake.
			InsecureSkipVerify: true,
			VerifyConnection: func(cs tls.ConnectionState) error {
				if len(cs.PeerCertificates) == 0 {
					return errors.New("server: the leader presented no certificate")
				}
				inter := x509.NewCertPool()
				for _, c := range cs.PeerCertificates[1:] {
					inter.AddCert(c)
				}
				chains, err := cs.PeerCertificates[0].Verify(x509.VerifyOptions{
					Roots: cfg.Roots(), Intermediates: inter, DNSName: client.ServerName,
					KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
				})
				if err != nil {
					return err
				}
				cs.VerifiedChains = chains // for CheckManager's check of the issuer
				// The leader is a manager of this manager's own cluster.
				if own := cfg.Certificate(); own != nil && own.Leaf != nil && len(own.Leaf.Subject.Organization) == 1 {
					return client.CheckManager(cs, own.Leaf.Subject.Organization[0])
				}
				return errors.New("server: this manager has no certificate to check the leader against")
			},
			GetClientCertificate: func(*tls.CertificateRequestInfo) (*tls.Certificate, error) {
				if c := cfg.Certificate(); c != nil {
					return c, nil
				}
				return &tls.Certificate{}, nil
			},
		},
		ForceAttemptHTTP2:   true,
		MaxIdleConnsPerHost: 64,
		TLSHandshakeTimeout: 10 * time.Second,
	}
	proxy := &httputil.ReverseProxy{
		Rewrite: func(pr *httputil.ProxyRequest) {
			pr.SetURL(&url.URL{Scheme: "https", Host: cfg.Leader()})
			pr.SetXForwarded()
			value := ForwardedNone
			if tlsState := pr.In.TLS; tlsState != nil && len(tlsState.VerifiedChains) > 0 {
				var parts []string
				for _, c := range tlsState.VerifiedChains[0] {
					parts = append(parts, base64.StdEncoding.EncodeToString(c.Raw))
				}
				value = strings.Join(parts, ",")
			}
			pr.Out.Header.Set(ForwardedCertHeader, value)
		},
		Transport: tr,
		ErrorHandler: func(w http.ResponseWriter, r *http.Request, err error) {
			cfg.Logger.Warn("forwarding to the leader failed", "path", r.URL.Path, "err", err)
			writeJSON(w, http.StatusBadGateway, api.Error{Code: api.CodeInternal, Message: "this manager cannot reach the leader; try again later"})
		},
	}
	return &Forwarder{cfg: cfg, proxy: proxy}, nil
}

// Serve serves the forwarding API on ln until ctx is done.
func (f *Forwarder) Serve(ctx context.Context, ln net.Listener) error {
	srv := &http.Server{
		Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if _, chained := r.Header[ForwardedCertHeader]; chained {
				writeJSON(w, http.StatusBadRequest, api.Error{Code: api.CodeBadRequest,
					Message: "a forwarded call cannot be forwarded again; call the leader"})
				return
			}
			r.Body = http.MaxBytesReader(w, r.Body, api.MaxBodyBytes)
			f.proxy.ServeHTTP(w, r)
		}),
		TLSConfig:         serverTLS(f.cfg.Certificate, f.cfg.Roots),
		ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout:       30 * time.Second,
		WriteTimeout:      30 * time.Second,
		ErrorLog:          slog.NewLogLogger(f.cfg.Logger.Handler(), slog.LevelDebug),
	}
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(tls.NewListener(ln, srv.TLSConfig)) }()
	f.cfg.Logger.Info("forwarding the manager API to the leader", "addr", ln.Addr().String(), "leader", f.cfg.Leader())
	select {
	case <-ctx.Done():
	case err := <-errc:
		if !errors.Is(err, http.ErrServerClosed) {
			return fmt.Errorf("server: %w", err)
		}
	}
	shut, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	srv.Shutdown(shut)
	return nil
}

// serverTLS is the TLS configuration every manager serves with: TLS 1.2 at
// least, its current node certificate, and client certificates verified
// against the current roots when given.
func serverTLS(cert func() *tls.Certificate, roots func() *x509.CertPool) *tls.Config {
	return &tls.Config{
		MinVersion: tls.VersionTLS12,
		GetConfigForClient: func(*tls.ClientHelloInfo) (*tls.Config, error) {
			c := cert()
			if c == nil {
				return nil, errors.New("server: no certificate yet")
			}
			return &tls.Config{
				MinVersion:   tls.VersionTLS12,
				Certificates: []tls.Certificate{*c},
				ClientAuth:   tls.VerifyClientCertIfGiven,
				ClientCAs:    roots(),
			}, nil
		},
	}
}

// forwardedChain reads the chain a forwarding manager verified, and checks
// it again against roots.
func forwardedChain(h string, roots *x509.CertPool, now time.Time) ([]*x509.Certificate, error) {
	var chain []*x509.Certificate
	for _, part := range strings.Split(h, ",") {
		der, err := base64.StdEncoding.DecodeString(part)
		if err != nil {
			return nil, fmt.Errorf("the forwarded client certificate is not base64: %w", err)
		}
		c, err := x509.ParseCertificate(der)
		if err != nil {
			return nil, fmt.Errorf("the forwarded client certificate: %w", err)
		}
		chain = append(chain, c)
	}
	if len(chain) == 0 {
		return nil, errors.New("no forwarded client certificate")
	}
	inter := x509.NewCertPool()
	for _, c := range chain[1:] {
		inter.AddCert(c)
	}
	chains, err := chain[0].Verify(x509.VerifyOptions{Roots: roots, Intermediates: inter, CurrentTime: now,
		KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}})
	if err != nil {
		return nil, fmt.Errorf("the forwarded client certificate: %w", err)
	}
	return chains[0], nil
}
