package agent

import (
	"bytes"
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"sync/atomic"
	"time"

	"github.com/chancery-pki/chancery/api"
	"github.com/chancery-pki/chancery/ca"
	"github.com/chancery-pki/chancery/certdir"
	"github.com/chancery-pki/chancery/client"
	"github.com/chancery-pki/chancery/clock"
	"github.com/chancery-pki/chancery/signer"
)

// Manager is what the agent needs from its manager. *client.Client is one,
// over the network; a manager's own agent uses the manager in-process.
type Manager interface {
	Renew(ctx context.Context, req api.RenewRequest) (*api.Certificate, error)
	Status(ctx context.Context, req api.StatusRequest) (*api.Status, error)
}

// ErrExpired means the node's certificate has expired: no manager will
// accept it, and the node must join again.
var ErrExpired = errors.New("agent: this node's certificate has expired")

// ErrRemoved means a manager removed this node from the cluster: its
// certificate is refused, and it must join again with a token.
var ErrRemoved = errors.New("agent: this node was removed from the cluster; it must join again with a join token")

// removed reports whether err is a manager's refusal of a removed node.
func removed(err error) bool {
	var e *client.APIError
	return errors.As(err, &e) && e.Code == api.CodeNodeRemoved
}

// throttled reports whether err is a manager's 429, and how long it asks
// to wait: its Retry-After, at least MinBackoff.
func throttled(err error) (time.Duration, bool) {
	var e *client.APIError
	if !errors.As(err, &e) || e.Status != http.StatusTooManyRequests {
		return 0, false
	}
	return max(e.RetryAfter, MinBackoff), true
}

// Backoff bounds for failed renewals.
const (
	MinBackoff = time.Second
	MaxBackoff = 5 * time.Minute
)

// Config configures an Agent.
type Config struct {
	// DataDir holds the node's certificates and state.
	DataDir string
	// Manager is the manager to talk to; nil means a client of the first
	// manager in D/node.json, authenticated with the node certificate.
	Manager Manager
	// Clock and Rand (for the renewal point and backoff jitter) default to
	// the wall clock and crypto/rand.
	Clock clock.Clock
	Rand  io.Reader
	// Logger defaults to slog.Default().
	Logger *slog.Logger
	// Hostname is reported with each heartbeat.
	Hostname string
	// HeartbeatPeriod is how often the node reports until the manager says
	// otherwise; default 5s.
	HeartbeatPeriod time.Duration
	// OnCertificate, when set, is called with each new certificate, such as
	// a manager swapping its server certificate.
	OnCertificate func(*tls.Certificate)
	// OnRoots, when set, is called after the node took a new root bundle
	// from its manager (the switch of trust of a root rotation), once the
	// root file is written.
	OnRoots func()
}

// Agent keeps one node's certificate fresh.
type Agent struct {
	cfg   Config
	dir   certdir.Dir
	log   *slog.Logger
	cert  atomic.Pointer[tls.Certificate]
	leaf  *x509.Certificate
	roots []byte
	// renewals counts successful renewals, for tests.
	renewals atomic.Int64
	mgr      Manager
	// addr is the manager's address when the agent made its own client;
	// calling holds it too (a string), for Manager.
	addr    string
	calling atomic.Value
	// leader is the leader's address (a string), for a forwarding manager.
	leader atomic.Value
}

// New loads the node's key, certificate and root from DataDir. An expired
// certificate is ErrExpired, with what to do about it.
func New(cfg Config) (*Agent, error) {
	if cfg.Clock == nil {
		cfg.Clock = clock.Real{}
	}
	if cfg.Rand == nil {
		cfg.Rand = rand.Reader
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.HeartbeatPeriod <= 0 {
		cfg.HeartbeatPeriod = 5 * time.Second
	}
	a := &Agent{cfg: cfg, dir: certdir.In(cfg.DataDir), log: cfg.Logger}
	key, chain, err := a.dir.LoadNode()
	if err != nil {
		return nil, err
	}
	_, rootPEM, err := a.dir.Root()
	if err != nil {
		return nil, err
	}
	a.roots = rootPEM
	if now := cfg.Clock.Now(); now.After(chain[0].NotAfter) {
		return nil, fmt.Errorf("%w at %s: no manager accepts it; remove %s and join again with 'chancery join --token-file FILE MANAGER'",
			ErrExpired, chain[0].NotAfter.UTC().Format(time.RFC3339), a.dir)
	}
	a.setCert(key, chain)
	a.mgr = cfg.Manager
	if a.mgr == nil {
		st, err := ReadState(cfg.DataDir)
		if err != nil {
			return nil, err
		}
		roots, err := ca.ParseCertificatesPEM(rootPEM)
		if err != nil {
			return nil, err
		}
		a.addr = st.Managers[0]
		a.calling.Store(a.addr)
		a.mgr = client.NewForCluster(a.addr, pool(roots), a.Certificate, a.clusterID())
	}
	if st, err := ReadState(cfg.DataDir); err == nil {
		a.leader.Store(st.Managers[0])
	}
	return a, nil
}

// Certificate returns the node's current certificate.
func (a *Agent) Certificate() *tls.Certificate { return a.cert.Load() }

// Leaf returns the node's current certificate, parsed.
func (a *Agent) Leaf() *x509.Certificate { return a.cert.Load().Leaf }

// Renewals returns how many renewals have succeeded.
func (a *Agent) Renewals() int64 { return a.renewals.Load() }

func (a *Agent) setCert(key crypto.Signer, chain []*x509.Certificate) {
	c := &tls.Certificate{PrivateKey: key, Leaf: chain[0]}
	for _, x := range chain {
		c.Certificate = append(c.Certificate, x.Raw)
	}
	a.cert.Store(c)
	if a.cfg.OnCertificate != nil {
		a.cfg.OnCertificate(c)
	}
}

// NextRenewal returns when a certificate should be renewed: at a uniformly
// random point between 50% and 80% of its lifetime (NotBefore to NotAfter),
// drawn from r.
func NextRenewal(cert *x509.Certificate, r io.Reader) time.Time {
	life := cert.NotAfter.Sub(cert.NotBefore)
	frac := 0.5 + 0.3*uniform(r)
	return cert.NotBefore.Add(time.Duration(float64(life) * frac))
}

// uniform draws a float in [0, 1) from r; on a read failure it returns 0.5.
func uniform(r io.Reader) float64 {
	var b [8]byte
	if _, err := io.ReadFull(r, b[:]); err != nil {
		return 0.5
	}
	return float64(binary.BigEndian.Uint64(b[:])>>11) / (1 << 53)
}

// Run keeps the certificate fresh and reports to the manager until ctx is
// done. Failures are retried with exponential backoff; Run returns only
// when ctx is done, or with ErrExpired once the certificate has expired
// without a successful renewal.
func (a *Agent) Run(ctx context.Context) error {
	clk := a.cfg.Clock
	renewAt := NextRenewal(a.Leaf(), a.cfg.Rand)
	beatAt := clk.Now()
	period := a.cfg.HeartbeatPeriod
	backoff := time.Duration(0)
	a.log.Info("node agent running", "node_id", a.Leaf().Subject.CommonName, "renew_at", renewAt.UTC())
	for {
		now := clk.Now()
		if now.After(a.Leaf().NotAfter) {
			return fmt.Errorf("%w at %s: no manager accepts it; remove %s and join again with 'chancery join --token-file FILE MANAGER'",
				ErrExpired, a.Leaf().NotAfter.UTC().Format(time.RFC3339), a.dir)
		}
		next := renewAt
		if beatAt.Before(next) {
			next = beatAt
		}
		if wait := next.Sub(now); wait > 0 {
			select {
			case <-ctx.Done():
				return nil
			case <-clk.After(wait):
			}
			continue
		}
		if ctx.Err() != nil {
			return nil
		}
		if !now.Before(renewAt) {
			if err := a.renew(ctx); err != nil {
				if removed(err) {
					return ErrRemoved
				}
				if wait, ok := throttled(err); ok {
					// The manager bounds renewals: wait as it says, without
					// a backoff, so that a renewal it asks for (a rotation,
					// a role change) still goes at once.
					renewAt = now.Add(wait)
					a.log.Warn("renewal refused for now; retrying when the manager says", "err", err, "retry_in", wait)
					continue
				}
				backoff = nextBackoff(backoff)
				wait := jitter(backoff, a.cfg.Rand)
				renewAt = now.Add(wait)
				a.log.Warn("renewal failed; retrying", "err", err, "retry_in", wait)
				continue
			}
			backoff = 0
			renewAt = NextRenewal(a.Leaf(), a.cfg.Rand)
			// Report at once: a root rotation counts the node as holding
			// its new certificate only once it says it presents it.
			beatAt = now
			a.log.Info("certificate renewed", "serial", signer.SerialHex(a.Leaf().SerialNumber), "not_after", a.Leaf().NotAfter.UTC(), "next_renewal", renewAt.UTC())
			continue
		}
		beatAt = now.Add(period)
		var st *api.Status
		err := a.call(ctx, func(m Manager) (err error) {
			st, err = m.Status(ctx, api.StatusRequest{Hostname: a.cfg.Hostname, TrustedRoot: a.trustedRoot(),
				CertSerial: signer.SerialHex(a.Leaf().SerialNumber)})
			return err
		})
		if err != nil {
			if removed(err) {
				return ErrRemoved
			}
			a.log.Warn("heartbeat failed", "err", err)
			continue
		}
		if st.HeartbeatPeriod > 0 && st.HeartbeatPeriod != period {
			// The next beat was scheduled with the old period: the
			// manager's applies from this beat on, not one beat later.
			period = st.HeartbeatPeriod
			beatAt = now.Add(period)
		}
		if st.RootCAPEM != "" && !bytes.Equal([]byte(st.RootCAPEM), a.roots) {
			if err := a.takeRoot([]byte(st.RootCAPEM)); err != nil {
				a.log.Error("failed to take the manager's new root CA", "err", err)
			} else {
				// Report at once, as after a renewal: a root rotation
				// counts the node as trusting the new root once it says so.
				beatAt = now
			}
		}
		if st.LeaderAddr != "" && st.LeaderAddr != a.Leader() {
			a.followLeader(st.LeaderAddr)
		}
		a.keepManagers(st.Managers)
		// A role change renews at once, unless renewals are failing: then
		// the backoff decides. So does a manager's request, during a root
		// rotation.
		if role := a.Leaf().Subject.OrganizationalUnit; len(role) == 1 && st.Role != "" && st.Role != role[0] && backoff == 0 {
			a.log.Info("role changed; renewing now", "from", role[0], "to", st.Role)
			renewAt = now
		} else if st.RenewNow && backoff == 0 {
			a.log.Info("the manager asks for a renewal now (root rotation)")
			renewAt = now
		}
	}
}

// trustedRoot is the fingerprint of the root the node trusts: the first
// certificate of its root bundle.
func (a *Agent) trustedRoot() string {
	roots, err := ca.ParseCertificatesPEM(a.roots)
	if err != nil || len(roots) == 0 {
		return ""
	}
	sum := sha256.Sum256(roots[0].Raw)
	return "sha256:" + hex.EncodeToString(sum[:])
}

// clusterID is the cluster the node's certificate names.
func (a *Agent) clusterID() string {
	if o := a.Leaf().Subject.Organization; len(o) == 1 {
		return o[0]
	}
	return ""
}

// Leader returns the address of the leader, as the manager last announced
// it (at first, the manager the node joined through).
func (a *Agent) Leader() string {
	s, _ := a.leader.Load().(string)
	return s
}

// followLeader records the leader's address in the state file, first, and
// calls it from now on.
func (a *Agent) followLeader(addr string) {
	a.leader.Store(addr)
	if st, err := ReadState(a.cfg.DataDir); err == nil {
		st.Managers = withFirst(addr, st.Managers)
		if err := WriteState(a.cfg.DataDir, st); err != nil {
			a.log.Warn("failed to record the leader's address", "err", err)
		}
	}
	if a.addr != "" {
		a.addr = addr
		a.calling.Store(addr)
		a.newClient()
	}
	a.log.Info("following the leader", "addr", addr)
}

// withFirst returns list with addr first and no duplicates.
func withFirst(addr string, list []string) []string {
	out := []string{addr}
	for _, m := range list {
		if m != addr {
			out = append(out, m)
		}
	}
	return out
}

// newClient replaces the agent's own client of the leader, with the
// current roots, and releases the old one's connections.
func (a *Agent) newClient() {
	roots, err := ca.ParseCertificatesPEM(a.roots)
	if err != nil {
		return
	}
	if old, ok := a.mgr.(interface{ Close() }); ok {
		old.Close()
	}
	a.mgr = client.NewForCluster(a.addr, pool(roots), a.Certificate, a.clusterID())
}

// setRoots makes the agent's client of its manager verify the manager
// under the current roots on its next connections, keeping the one it has
// (authenticated when it was made): after a root rotation's switch of
// trust, every node would otherwise make a new TLS handshake at once.
func (a *Agent) setRoots() {
	c, ok := a.mgr.(interface{ SetRoots(*x509.CertPool) })
	if !ok {
		a.newClient()
		return
	}
	roots, err := ca.ParseCertificatesPEM(a.roots)
	if err != nil {
		return
	}
	c.SetRoots(pool(roots))
}

// nextBackoff doubles the un-jittered backoff prev, from MinBackoff up to
// MaxBackoff. The jitter is applied to each wait, not carried into the next
// backoff, so that it does not compound.
func nextBackoff(prev time.Duration) time.Duration {
	d := 2 * prev
	if d < MinBackoff {
		d = MinBackoff
	}
	if d > MaxBackoff {
		d = MaxBackoff
	}
	return d
}

// jitter takes up to 20% off d, so that nodes that failed together do not
// retry together.
func jitter(d time.Duration, r io.Reader) time.Duration {
	return d - time.Duration(0.2*uniform(r)*float64(d))
}

// renew gets a certificate for a new key and writes it.
func (a *Agent) renew(ctx context.Context) error {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return fmt.Errorf("agent: failed to generate a key: %w", err)
	}
	csr, err := newCSR(key)
	if err != nil {
		return err
	}
	var resp *api.Certificate
	err = a.call(ctx, func(m Manager) (err error) {
		resp, err = m.Renew(ctx, api.RenewRequest{CSR: string(csr)})
		return err
	})
	if err != nil {
		return err
	}
	roots, err := ca.ParseCertificatesPEM(a.roots)
	if err != nil {
		return err
	}
	chain, id, err := checkIssued(resp, roots, key, a.cfg.Clock.Now())
	if err != nil {
		return err
	}
	if id.NodeID != a.Leaf().Subject.CommonName {
		return fmt.Errorf("agent: the manager renewed the certificate of node %s, not this node's", id.NodeID)
	}
	if err := a.dir.WriteNode(key, chain); err != nil {
		return err
	}
	a.setCert(key, chain)
	a.renewals.Add(1)
	return nil
}

// takeRoot trusts the root bundle the manager announced. It came over a
// connection authenticated by the current root.
func (a *Agent) takeRoot(rootPEM []byte) error {
	if _, err := ca.ParseCertificatesPEM(rootPEM); err != nil {
		return err
	}
	if err := a.dir.WriteRoot(rootPEM); err != nil {
		return err
	}
	a.roots = rootPEM
	if a.addr != "" {
		a.setRoots()
	}
	if a.cfg.OnRoots != nil {
		a.cfg.OnRoots()
	}
	a.log.Info("took the manager's root CA bundle")
	return nil
}
