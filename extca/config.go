package extca

import (
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"time"

	"github.com/chancery-pki/chancery/audit"
	"github.com/chancery-pki/chancery/ca"
	"github.com/chancery-pki/chancery/clock"
	"github.com/chancery-pki/chancery/issuer"
	"github.com/chancery-pki/chancery/signer"
)

// Defaults of Config.
const (
	// DefaultTLSCertExpiry is the lifetime of the endpoint's own TLS
	// certificate; it is renewed at two thirds of it.
	DefaultTLSCertExpiry = 7 * 24 * time.Hour
	// DefaultMaxBodyBytes caps a request's body, as swarm caps answers.
	DefaultMaxBodyBytes = 256 << 10
	// DefaultReplayWindow is how far an authsign timestamp may be from the
	// endpoint's clock.
	DefaultReplayWindow = 5 * time.Minute
	// DefaultReplayTTL is how long a spent authsign token is remembered.
	DefaultReplayTTL = 24 * time.Hour
	// DefaultReplayCacheSize bounds the tokens remembered.
	DefaultReplayCacheSize = 1 << 16
)

// AuditLog records refusals and issuances. store.Store implements it.
type AuditLog interface {
	AppendAudit(ctx context.Context, events ...audit.Event) ([]audit.Entry, error)
}

// Config configures New.
type Config struct {
	// Issuers holds the cluster's Issuer in force (package issuer). It
	// signs only the endpoint's own intermediate CA (see Server.Intermediate),
	// which issues every certificate of the endpoint: node certificates,
	// cross-signed CA certificates and the endpoint's own TLS certificate,
	// each followed by the intermediate and the chain the Issuer hands out. Replacing it (a root rotation, a change of leader)
	// applies to the next request, without a restart. Any backend (file,
	// PKCS#11, Vault, CFSSL) will do. Give Issuers or Signer.
	Issuers *issuer.Holder
	// Signer, when Issuers is nil, is the one Signer that issues, with its
	// intermediates after each certificate.
	Signer signer.Signer
	// Policy says which clients may ask for what. Required; see
	// LoadPolicy and DefaultPolicy.
	Policy *Policy
	// ClientCAs verify client certificates on /sign. For a swarm, they are
	// the swarm's current root (and, during its root rotation, the next
	// one): its managers present their node certificates. Nil accepts no
	// client certificate, so only /authsign can issue.
	ClientCAs *x509.CertPool

	// DNSNames and IPAddresses are the SANs of the endpoint's TLS
	// certificate: every name clients put in the URL (swarm checks it). At
	// least one is required.
	DNSNames    []string
	IPAddresses []net.IP

	// CertExpiry is a node certificate's lifetime; zero means
	// ca.DefaultCertExpiry. NotBefore is backdated by ca.CertBackdate.
	CertExpiry time.Duration
	// CAExpiry is a cross-signed CA certificate's lifetime; zero means
	// ca.RootCAExpiry. Both it and CertExpiry are cut at the signing CA's
	// own NotAfter.
	CAExpiry time.Duration
	// TLSCertExpiry is the lifetime of the endpoint's TLS certificate;
	// zero means DefaultTLSCertExpiry.
	TLSCertExpiry time.Duration

	// MaxBodyBytes caps a request's body; zero means DefaultMaxBodyBytes.
	MaxBodyBytes int64
	// ReplayWindow is how far an authsign request's timestamp, when it
	// has one, may be from the endpoint's clock; zero means
	// DefaultReplayWindow.
	ReplayWindow time.Duration
	// ReplayTTL is how long a spent authsign token is refused; zero means
	// DefaultReplayTTL.
	ReplayTTL time.Duration
	// ReplayCacheSize bounds the tokens remembered; zero means
	// DefaultReplayCacheSize.
	ReplayCacheSize int

	// Audit, when set, records every issuance and refusal. An issuance
	// that cannot be recorded is withheld.
	Audit AuditLog
	// ClusterID is the ID of the cluster whose root the endpoint issues
	// under: the O of the endpoint's own intermediate.
	ClusterID string
	// ReservedClusters are cluster IDs the endpoint never issues node
	// certificates for, whatever the policy says: the manager's own
	// cluster, whose identities only its own API issues.
	ReservedClusters []string

	// Actor is recorded as the actor of audit events: the manager's node
	// ID.
	Actor string

	// Clock defaults to the wall clock, Logger to slog.Default(), Rand (for
	// the TLS key) to crypto/rand.
	Clock  clock.Clock
	Logger *slog.Logger
	Rand   io.Reader

	// wrapIntermediate, in tests, wraps the Signer of the endpoint's
	// intermediate, to inject faults.
	wrapIntermediate func(signer.Signer) signer.Signer
}

// withDefaults checks cfg and fills in its defaults.
func (cfg Config) withDefaults() (Config, error) {
	switch {
	case cfg.Issuers != nil && cfg.Signer != nil:
		return cfg, errors.New("extca: give an issuer holder or a signer, not both")
	case cfg.Issuers == nil && cfg.Signer == nil:
		return cfg, errors.New("extca: a signer is needed")
	case cfg.Issuers == nil:
		if len(cfg.Signer.Chain()) == 0 {
			return cfg, errors.New("extca: the signer has no chain")
		}
		h, err := issuer.Hold(cfg.Signer, issuer.Options{})
		if err != nil {
			return cfg, err
		}
		cfg.Issuers, cfg.Signer = h, nil
	}
	if err := cfg.Policy.Validate(); err != nil {
		return cfg, err
	}
	if cfg.ClientCAs == nil && cfg.Policy.usesCerts() {
		return cfg, errors.New("extca: the policy admits client certificates, but no client CA is given to verify them")
	}
	if len(cfg.DNSNames) == 0 && len(cfg.IPAddresses) == 0 {
		return cfg, errors.New("extca: the endpoint's TLS certificate needs at least one DNS name or IP address: the names clients use in its URL")
	}
	for _, n := range cfg.DNSNames {
		if n == "" || net.ParseIP(n) != nil {
			return cfg, fmt.Errorf("extca: DNS name %q: give IP addresses as IP addresses", n)
		}
	}
	if cfg.CertExpiry == 0 {
		cfg.CertExpiry = ca.DefaultCertExpiry
	}
	if cfg.CertExpiry < ca.MinCertExpiry {
		return cfg, fmt.Errorf("extca: cert-expiry %s is below the minimum of %s", cfg.CertExpiry, ca.MinCertExpiry)
	}
	positive := []struct {
		name string
		v    *time.Duration
		def  time.Duration
	}{
		{"CA expiry", &cfg.CAExpiry, ca.RootCAExpiry},
		{"TLS certificate expiry", &cfg.TLSCertExpiry, DefaultTLSCertExpiry},
		{"replay window", &cfg.ReplayWindow, DefaultReplayWindow},
		{"replay TTL", &cfg.ReplayTTL, DefaultReplayTTL},
	}
	for _, p := range positive {
		if *p.v < 0 {
			return cfg, fmt.Errorf("extca: negative %s", p.name)
		}
		if *p.v == 0 {
			*p.v = p.def
		}
	}
	if cfg.TLSCertExpiry < ca.MinCertExpiry || cfg.CAExpiry < ca.MinCertExpiry {
		return cfg, fmt.Errorf("extca: the TLS and CA certificate lifetimes must be at least %s", ca.MinCertExpiry)
	}
	if cfg.ReplayTTL < cfg.ReplayWindow {
		return cfg, fmt.Errorf("extca: the replay TTL (%s) must be at least the replay window (%s)", cfg.ReplayTTL, cfg.ReplayWindow)
	}
	if cfg.MaxBodyBytes < 0 || cfg.ReplayCacheSize < 0 {
		return cfg, errors.New("extca: negative body size or replay cache size")
	}
	if cfg.MaxBodyBytes == 0 {
		cfg.MaxBodyBytes = DefaultMaxBodyBytes
	}
	if cfg.ReplayCacheSize == 0 {
		cfg.ReplayCacheSize = DefaultReplayCacheSize
	}
	if cfg.Clock == nil {
		cfg.Clock = clock.Real{}
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	return cfg, nil
}
