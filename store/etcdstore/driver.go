package etcdstore

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"

	"github.com/chancery-pki/chancery/secretfile"
	"github.com/chancery-pki/chancery/store"
)

// Name is the store type of this package in a data directory's settings
// (store.Settings.Type).
const Name = "etcd"

// The options of an etcd store in store.Settings.Options. Paths are
// relative to the data directory unless absolute.
const (
	// OptionEndpoints is the comma-separated list of etcd client URLs,
	// such as "https://10.0.0.1:2379,https://10.0.0.2:2379". Required.
	OptionEndpoints = "endpoints"
	// OptionPrefix is the key prefix of the cluster's keys. Default
	// DefaultPrefix.
	OptionPrefix = "prefix"
	// OptionCACert is the PEM file of the CA that signed etcd's server
	// certificates. Default: the system's roots.
	OptionCACert = "cacert"
	// OptionCert and OptionKey are the PEM files of the client certificate
	// and key to present to etcd (its --client-cert-auth). The key file
	// must not be readable by group or others.
	OptionCert = "cert"
	OptionKey  = "key"
	// OptionCallTimeout is how long a call waits for etcd before it fails
	// (Options.CallTimeout), as a Go duration such as "10s". Default
	// DefaultCallTimeout.
	OptionCallTimeout = "call-timeout"
)

// MinCallTimeout and MaxCallTimeout bound OptionCallTimeout: shorter, a
// busy etcd would fail calls that it answers; longer, a manager cut off
// from etcd keeps its callers waiting long after it stopped issuing.
const (
	MinCallTimeout = 500 * time.Millisecond
	MaxCallTimeout = 5 * time.Minute
)

// dialTimeout bounds how long Open waits to reach etcd.
const dialTimeout = 5 * time.Second

func init() { store.Register(Name, driver{}) }

type driver struct{}

// Config is how to reach an etcd store, parsed from the settings' options.
type Config struct {
	// Endpoints are etcd's client URLs.
	Endpoints []string
	// Prefix is the key prefix.
	Prefix string
	// TLS is the client's TLS configuration; nil for http endpoints.
	TLS *tls.Config
	// CallTimeout is the store's call timeout (Options.CallTimeout); zero
	// means DefaultCallTimeout.
	CallTimeout time.Duration
}

// ParseOptions checks a store's options and returns its configuration;
// relative paths are relative to dataDir. Files are read here, so that a
// missing or unreadable one is reported before etcd is dialed.
func ParseOptions(dataDir string, opts map[string]string) (Config, error) {
	known := []string{OptionEndpoints, OptionPrefix, OptionCACert, OptionCert, OptionKey, OptionCallTimeout}
	for k := range opts {
		if !slices.Contains(known, k) {
			return Config{}, fmt.Errorf("etcdstore: unknown store option %q (the etcd store takes %s)", k, strings.Join(known, ", "))
		}
	}
	var cfg Config
	var schemes []string
	for e := range strings.SplitSeq(opts[OptionEndpoints], ",") {
		e = strings.TrimSpace(e)
		if e == "" {
			continue
		}
		u, err := url.Parse(e)
		if err == nil && u.User != nil {
			// Never repeat a password given in the URL.
			return Config{}, fmt.Errorf("etcdstore: endpoint %q holds a user name or password: etcd endpoints are URLs such as https://10.0.0.1:2379, with client certificates for authentication", u.Redacted())
		}
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || (u.Path != "" && u.Path != "/") || u.RawQuery != "" {
			return Config{}, fmt.Errorf("etcdstore: endpoint %q is not an etcd client URL such as https://10.0.0.1:2379", e)
		}
		cfg.Endpoints = append(cfg.Endpoints, u.Scheme+"://"+u.Host)
		schemes = append(schemes, u.Scheme)
	}
	if len(cfg.Endpoints) == 0 {
		return Config{}, fmt.Errorf("etcdstore: no endpoints: option %q lists etcd's client URLs, comma-separated", OptionEndpoints)
	}
	if slices.Contains(schemes, "http") && slices.Contains(schemes, "https") {
		return Config{}, errors.New("etcdstore: the endpoints mix http and https URLs")
	}
	cfg.Prefix = opts[OptionPrefix]
	if cfg.Prefix == "" {
		cfg.Prefix = DefaultPrefix
	}
	if !strings.HasPrefix(cfg.Prefix, "/") || !strings.HasSuffix(cfg.Prefix, "/") {
		return Config{}, fmt.Errorf("etcdstore: the key prefix %q must start and end with /", cfg.Prefix)
	}
	if v := opts[OptionCallTimeout]; v != "" {
		d, err := ParseCallTimeout(v)
		if err != nil {
			return Config{}, err
		}
		cfg.CallTimeout = d
	}
	path := func(p string) string {
		if p == "" || filepath.IsAbs(p) {
			return p
		}
		return filepath.Join(dataDir, p)
	}
	caPath, certPath, keyPath := path(opts[OptionCACert]), path(opts[OptionCert]), path(opts[OptionKey])
	useTLS := schemes[0] == "https"
	if !useTLS {
		if caPath != "" || certPath != "" || keyPath != "" {
			return Config{}, errors.New("etcdstore: TLS files are set but the endpoints are http URLs: use https URLs")
		}
		return cfg, nil
	}
	cfg.TLS = &tls.Config{MinVersion: tls.VersionTLS12}
	if caPath != "" {
		pem, err := os.ReadFile(caPath)
		if err != nil {
			return Config{}, fmt.Errorf("etcdstore: the CA file: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return Config{}, fmt.Errorf("etcdstore: the CA file %s holds no PEM certificate", caPath)
		}
		cfg.TLS.RootCAs = pool
	}
	switch {
	case certPath == "" && keyPath == "":
	case certPath == "" || keyPath == "":
		return Config{}, fmt.Errorf("etcdstore: options %q and %q go together: a client certificate and its key", OptionCert, OptionKey)
	default:
		// As every secret file: the user's own, 0600 or 0400.
		keyPEM, err := secretfile.ReadFile(keyPath, maxKeyFileBytes)
		if err != nil {
			return Config{}, fmt.Errorf("etcdstore: the client key file: %w", err)
		}
		certPEM, err := os.ReadFile(certPath)
		if err != nil {
			clear(keyPEM)
			return Config{}, fmt.Errorf("etcdstore: the client certificate: %w", err)
		}
		pair, err := tls.X509KeyPair(certPEM, keyPEM)
		clear(keyPEM)
		if err != nil {
			// tls's errors name the problem, never the key's bytes.
			return Config{}, fmt.Errorf("etcdstore: the client certificate %s and key %s: %w", certPath, keyPath, err)
		}
		cfg.TLS.Certificates = []tls.Certificate{pair}
	}
	return cfg, nil
}

// maxKeyFileBytes bounds the client key file read.
const maxKeyFileBytes = 64 << 10

// ParseCallTimeout parses a call timeout (OptionCallTimeout), a Go
// duration between MinCallTimeout and MaxCallTimeout.
func ParseCallTimeout(v string) (time.Duration, error) {
	d, err := time.ParseDuration(v)
	if err != nil {
		return 0, fmt.Errorf("etcdstore: the call timeout %q is not a duration such as 10s", v)
	}
	if d < MinCallTimeout || d > MaxCallTimeout {
		return 0, fmt.Errorf("etcdstore: the call timeout %s is out of range: give %s to %s", d, MinCallTimeout, MaxCallTimeout)
	}
	return d, nil
}

// Dial returns a client of the etcd cfg names. It does not wait for etcd.
func Dial(cfg Config) (*clientv3.Client, error) {
	c, err := clientv3.New(clientv3.Config{
		Endpoints:   cfg.Endpoints,
		TLS:         cfg.TLS,
		DialTimeout: dialTimeout,
		Logger:      zap.NewNop(),
		// Keep-alives notice a dead member and move to another.
		DialKeepAliveTime:    10 * time.Second,
		DialKeepAliveTimeout: 5 * time.Second,
	})
	if err != nil {
		return nil, fmt.Errorf("etcdstore: %w", err)
	}
	return c, nil
}

// Open dials cfg's etcd and returns the store under its prefix, failing
// within a few seconds if etcd cannot be reached.
func Open(ctx context.Context, cfg Config, now func() time.Time) (*Store, error) {
	c, err := Dial(cfg)
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithTimeout(ctx, dialTimeout)
	defer cancel()
	s, err := New(ctx, c, Options{Prefix: cfg.Prefix, Now: now, CloseClient: true, CallTimeout: cfg.CallTimeout})
	if err != nil {
		c.Close()
		if errors.Is(err, context.DeadlineExceeded) && ctx.Err() != nil {
			hint := ""
			if cfg.TLS != nil {
				hint = ", and that its CA and the client certificate are the ones it trusts"
			}
			return nil, fmt.Errorf("etcdstore: etcd at %s did not answer within %v: check that it runs there%s", strings.Join(cfg.Endpoints, ","), dialTimeout, hint)
		}
		return nil, fmt.Errorf("%w (endpoints %s)", err, strings.Join(cfg.Endpoints, ","))
	}
	return s, nil
}

func (driver) Open(ctx context.Context, req store.OpenRequest) (store.Store, error) {
	cfg, err := ParseOptions(req.DataDir, req.Options)
	if err != nil {
		return nil, err
	}
	s, err := Open(ctx, cfg, req.Now)
	if err != nil {
		return nil, err
	}
	if !req.Create {
		ok, err := s.exists(ctx)
		if err != nil {
			s.Close()
			return nil, err
		}
		if !ok {
			s.Close()
			return nil, fmt.Errorf("%w (nothing under %q in etcd at %s)", store.ErrNoStore, cfg.Prefix, strings.Join(cfg.Endpoints, ","))
		}
	}
	return s, nil
}

func (driver) Exists(ctx context.Context, req store.OpenRequest) (bool, error) {
	cfg, err := ParseOptions(req.DataDir, req.Options)
	if err != nil {
		return false, err
	}
	s, err := Open(ctx, cfg, req.Now)
	if err != nil {
		return false, err
	}
	defer s.Close()
	return s.exists(ctx)
}

// exists reports whether anything is stored under the prefix.
func (s *Store) exists(ctx context.Context) (bool, error) {
	resp, err := s.c.Get(ctx, s.prefix, clientv3.WithPrefix(), clientv3.WithCountOnly())
	if err != nil {
		return false, wrap("look for a store", err)
	}
	return resp.Count > 0, nil
}

// Destroy implements store.Destroyer: it deletes every key under the
// store's prefix. While this Store holds an import's claim (Claim, until
// the import is whole), it deletes only if the claim still holds, so that
// an import whose claim lapsed never deletes another's, and then ends the
// claim. It has no call timeout: one delete of a whole store may take
// long; ctx bounds it.
func (s *Store) Destroy(ctx context.Context) error {
	end, err := s.begin(ctx)
	if err != nil {
		return err
	}
	defer end()
	s.claimMu.Lock()
	defer s.claimMu.Unlock()
	if s.claim == nil {
		_, err = s.c.Delete(ctx, s.prefix, clientv3.WithPrefix())
		return wrap("delete the store", err)
	}
	held, _ := s.claimed()
	resp, err := s.c.Txn(ctx).If(held).Then(clientv3.OpDelete(s.prefix, clientv3.WithPrefix())).Commit()
	if err != nil {
		// The claim is kept: Destroy may be called again.
		return wrap("delete the import", err)
	}
	s.release()
	if !resp.Succeeded {
		return fmt.Errorf("etcdstore: %w: this import's claim lapsed; nothing was deleted", store.ErrImportClaimed)
	}
	return nil
}
