package manager

import (
	"context"
	"errors"
	"fmt"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	clientv3 "go.etcd.io/etcd/client/v3"
	"golang.org/x/sync/errgroup"

	"github.com/chancery-pki/chancery/audit"
	"github.com/chancery-pki/chancery/cluster"
	chelection "github.com/chancery-pki/chancery/election"
	"github.com/chancery-pki/chancery/extca"
	"github.com/chancery-pki/chancery/hint"
	"github.com/chancery-pki/chancery/issuer"
	"github.com/chancery-pki/chancery/store"
)

// This file is the CA work of a manager: the issuer in force (the root's
// Signer, opened from the cluster record), which every manager holds, and
// the work done once in a cluster, by its leader: the audit checkpoints,
// the root rotation's transitions and forgetting retired keys
// (reconcile.go). The leader's work runs under a context that ends when
// leadership ends, and that carries the leader's fence: a store that
// several managers share commits the leader's writes only while it leads.
// The external CA endpoint, which issues, is served by every manager.

// errLeadershipLost means this manager stopped leading while it ran, with
// a store that only it holds.
var errLeadershipLost = errors.New("manager: this manager is no longer the leader")

// An election decides which manager does the work done once.
type election interface {
	// Campaign returns once this manager leads, with a context that ends
	// when its leadership ends (at the latest when ctx does).
	Campaign(ctx context.Context) (context.Context, error)
}

// etcdBacked is what a store in etcd (store/etcdstore) offers the
// election and the watch: its client, the key prefix it keeps its keys
// under, and the cluster record's key.
type etcdBacked interface {
	Client() *clientv3.Client
	Prefix() string
	ClusterKey() string
}

// electionFor returns the election of a store, and what a shared one
// offers. With the embedded store, one manager holds the store and
// leads for as long as it runs; it must be the manager the cluster record
// names. With a store in etcd, every manager campaigns for the leader key
// under the store's prefix.
func electionFor(st store.Store, nodeID string, cfg Config) (election, etcdBacked, error) {
	if eb, ok := st.(etcdBacked); ok {
		el, err := chelection.New(chelection.Config{
			Client: eb.Client(), Prefix: eb.Prefix() + chelection.StoreKey, ID: nodeID, TTL: cfg.SessionTTL, Logger: cfg.Logger,
		})
		if err != nil {
			return nil, nil, err
		}
		return el, eb, nil
	}
	return soleManager{st: st, nodeID: nodeID}, nil, nil
}

// soleManager is the election of a store that one manager holds.
type soleManager struct {
	st     store.Store
	nodeID string
}

func (e soleManager) Campaign(ctx context.Context) (context.Context, error) {
	c, err := e.st.Cluster(ctx)
	if err != nil {
		return nil, err
	}
	if c.LeaderID != e.nodeID {
		return nil, fmt.Errorf("manager: this data directory's node %s is not the cluster's leader %s", e.nodeID, c.LeaderID)
	}
	return ctx, nil
}

// dutiesConfig is what a manager's CA work needs.
type dutiesConfig struct {
	Config
	store   store.Store
	cluster store.Cluster
	nodeID  string
	issuers *issuer.Holder
	api     rotationAPI
	// election decides when this manager leads; shared says the store is
	// shared with other managers, so that leadership may end and come back
	// while the manager runs.
	election election
	shared   bool
	// etcd, with a shared store, is where this manager keeps its session:
	// without it, it does not issue. clusterKey is the cluster record's
	// key there, which the manager watches.
	etcd       *clientv3.Client
	clusterKey string
	// prefix is the store's key prefix in etcd; advertise is this
	// manager's API address, kept there under its session (managers.go).
	prefix, advertise string
	metrics           *dutiesMetrics
}

// duties are a manager's CA work: the issuer, and the leader's work while
// it leads.
type duties struct {
	cfg     dutiesConfig
	signers signers
	ext     *extca.Server
	eln     net.Listener
	// leading holds the leader context while this manager leads.
	leading atomic.Pointer[context.Context]
	// wake tells the reconciler that leadership began.
	wake chan struct{}

	// sessMu guards the Issuer in force against the store session: while
	// sessErr is set, none is.
	sessMu  sync.Mutex
	sessErr error
	lastIss *issuer.Issuer
}

// startDuties opens the root's Signer and puts its Issuer in force. On
// error nothing is left open and no Issuer is in force; otherwise begin
// comes next.
func startDuties(ctx context.Context, cfg dutiesConfig) (_ *duties, err error) {
	if cfg.metrics == nil {
		cfg.metrics = newDutiesMetrics(nil)
	}
	if cfg.election == nil {
		cfg.election = soleManager{st: cfg.store, nodeID: cfg.nodeID}
	}
	l := &duties{cfg: cfg, wake: make(chan struct{}, 1)}
	defer func() {
		if err != nil {
			l.release()
		}
	}()
	// The current root's Signer, then the Issuer the stored phase calls
	// for: a rotation in progress resumes where it stood.
	c := cfg.cluster
	sg, err := cluster.OpenSigner(ctx, cfg.DataDir, c, cfg.BackendOverrides, nil)
	if err != nil {
		return nil, err
	}
	l.signers.current, l.signers.currentFP = sg, fingerprintOf(c.CurrentRoot().CertPEM)
	if err := l.apply(ctx, c); err != nil {
		return nil, err
	}
	return l, nil
}

// begin makes the external CA endpoint ready when one is configured. On
// error, stop undoes startDuties.
func (l *duties) begin() (err error) {
	cfg, c, lctx := l.cfg, l.cfg.cluster, audit.WithActor(context.Background(), l.cfg.nodeID)
	if e := cfg.ExternalCA; e != nil {
		ips, names := e.IPAddresses, e.DNSNames
		if host, _, err := net.SplitHostPort(c.AdvertiseAddr); err == nil {
			if ip := net.ParseIP(host); ip != nil {
				ips = append(ips, ip)
			} else if host != "" {
				names = append(names, host)
			}
		}
		if l.ext, err = extca.New(lctx, extca.Config{
			Issuers: cfg.issuers, Policy: e.Policy, ClientCAs: e.ClientCAs, DNSNames: names, IPAddresses: ips,
			CertExpiry: e.CertExpiry, Audit: cfg.store, Actor: cfg.nodeID, Clock: cfg.Clock, Logger: cfg.Logger,
			ClusterID: c.ID, ReservedClusters: []string{c.ID},
		}); err != nil {
			return err
		}
		if l.eln, err = net.Listen("tcp", e.ListenAddr); err != nil {
			return fmt.Errorf("manager: failed to listen on %s for the external CA endpoint: %w", e.ListenAddr, err)
		}
	}
	return nil
}

// run does the manager's CA work until ctx ends: it keeps the Issuer in
// line with the stored record, serves the external CA endpoint, keeps the
// store session of a shared store, and campaigns to lead, doing the
// leader's work while it does. With a store only it holds, leadership
// ending while ctx goes on is errLeadershipLost; with a shared store, the
// manager campaigns again. It returns after its goroutines have stopped.
func (l *duties) run(ctx context.Context) error {
	g, gctx := errgroup.WithContext(ctx)
	if l.cfg.etcd != nil {
		g.Go(func() error { return l.keepSession(gctx) })
		g.Go(func() error { l.watchCluster(gctx); return nil })
	}
	g.Go(func() error { return l.lead(gctx) })
	g.Go(func() error { return l.reconcile(gctx) })
	if l.ext != nil {
		eln := l.eln
		l.eln = nil // Serve closes it.
		g.Go(func() error { return l.ext.Serve(gctx, eln) })
	}
	return g.Wait()
}

// lead campaigns, and does the leader's work for each term won, until ctx
// ends.
func (l *duties) lead(ctx context.Context) error {
	for {
		lctx, err := l.cfg.election.Campaign(ctx)
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			return err
		}
		l.term(ctx, lctx)
		if ctx.Err() != nil {
			return nil
		}
		if !l.cfg.shared {
			return errLeadershipLost
		}
	}
}

// term does the leader's work while lctx lasts: it signs the audit log's
// head at once and at every interval, and wakes the reconciler, which
// makes the rotation's transitions while this manager leads.
func (l *duties) term(ctx, lctx context.Context) {
	l.leading.Store(&lctx)
	l.cfg.metrics.leader.Set(1)
	select {
	case l.wake <- struct{}{}:
	default:
	}
	actx := audit.WithActor(lctx, l.cfg.nodeID)
	pruned := make(chan struct{})
	go func() {
		defer close(pruned)
		l.pruneLoop(lctx)
	}()
	defer func() { <-pruned }()
	interval := l.cfg.CheckpointInterval
	if interval <= 0 {
		interval = DefaultCheckpointInterval
	}
	l.checkpoint(actx)
loop:
	for {
		select {
		case <-lctx.Done():
			break loop
		case <-l.cfg.Clock.After(interval):
			l.checkpoint(actx)
		}
	}
	l.leading.Store(nil)
	l.cfg.metrics.leader.Set(0)
	if ctx.Err() == nil {
		l.cfg.metrics.lost.Inc()
		l.cfg.Logger.Error("this manager stopped leading: the rotation's transitions and checkpoints stop here",
			"err", chelection.Cause(lctx))
	}
}

// watchCluster wakes the reconciler whenever another manager changes the
// cluster record (a root rotation's step, a new root, the join tokens,
// the certificate lifetime), so that every manager's Issuer and trusted
// roots follow within moments rather than at the next interval. Tokens
// and the lifetime are read from the store at each call anyway.
//
// Each watch starts from a read of the record: when a watch ends (etcd
// without a leader; a watch that resumed after a dropped connection from
// a revision etcd has compacted meanwhile, whose changes are gone from
// etcd's history), the record is read again, the reconciler is woken if it
// changed meanwhile, and the next watch starts from that read.
func (l *duties) watchCluster(ctx context.Context) {
	var seen int64 // the record's ModRevision last seen
	wake := func() {
		select {
		case l.wake <- struct{}{}:
		default:
		}
	}
	for ctx.Err() == nil {
		if resp, err := l.cfg.etcd.Get(ctx, l.cfg.clusterKey); err == nil {
			mod := int64(-1) // deleted
			if len(resp.Kvs) > 0 {
				mod = resp.Kvs[0].ModRevision
			}
			if mod != seen {
				seen = mod
				wake()
			}
			wch := l.cfg.etcd.Watch(clientv3.WithRequireLeader(ctx), l.cfg.clusterKey, clientv3.WithRev(resp.Header.Revision+1))
			compacted := false
			for wr := range wch {
				if wr.Canceled {
					compacted = wr.CompactRevision != 0
					break
				}
				for _, ev := range wr.Events {
					seen = ev.Kv.ModRevision
					if ev.Type == clientv3.EventTypeDelete {
						seen = -1
					}
				}
				if len(wr.Events) > 0 {
					wake()
				}
			}
			if compacted {
				// Read the record and watch again at once: what changed
				// meanwhile is read, not replayed.
				l.cfg.Logger.Info("the watch of the cluster record was compacted; reading the record and watching again")
				continue
			}
		}
		select {
		case <-ctx.Done():
		case <-time.After(time.Second):
		}
	}
}

// leader returns the leader context while this manager leads, else nil.
func (l *duties) leader() context.Context {
	if p := l.leading.Load(); p != nil && (*p).Err() == nil {
		return *p
	}
	return nil
}

// keepSession holds this manager's session with a shared store (an etcd
// lease of the session TTL) until ctx ends. While it holds none, no Issuer
// is in force: a manager cut off from etcd stops issuing within the TTL,
// and says why to callers (the Issuer holder's error), in its log and in
// chancery_manager_store_session.
func (l *duties) keepSession(ctx context.Context) error {
	for {
		lease, err := chelection.Grant(ctx, l.cfg.etcd, l.cfg.SessionTTL, l.cfg.Logger)
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			l.withdraw(fmt.Errorf("this manager has no session with the store (etcd): %w", err))
			select {
			case <-ctx.Done():
				return nil
			case <-time.After(time.Second):
			}
			continue
		}
		if err := register(ctx, l.cfg.etcd, l.cfg.prefix, l.cfg.nodeID, l.cfg.advertise, lease.ID()); err != nil && ctx.Err() == nil {
			l.cfg.Logger.Warn("recording this manager's address in the store failed; nodes are not told of it", "err", err)
		}
		l.regain()
		<-lease.Context().Done()
		if ctx.Err() != nil {
			lease.Close()
			return nil
		}
		l.cfg.metrics.sessionLost.Inc()
		err = fmt.Errorf("this manager lost its session with the store (etcd); another manager may issue: %w", lease.Err())
		l.withdraw(err)
		l.cfg.Logger.Error("stopped issuing", "err", err)
		lease.Close()
	}
}

// withdraw takes the Issuer away for why.
func (l *duties) withdraw(why error) {
	l.sessMu.Lock()
	defer l.sessMu.Unlock()
	if l.sessErr == nil {
		l.cfg.metrics.session.Set(0)
	}
	l.sessErr = why
	l.cfg.issuers.Withdraw(why)
}

// regain puts the Issuer back in force once the session holds again.
func (l *duties) regain() {
	l.sessMu.Lock()
	defer l.sessMu.Unlock()
	if l.sessErr != nil {
		l.cfg.Logger.Info("store session regained: issuing again")
	}
	l.sessErr = nil
	l.cfg.metrics.session.Set(1)
	if l.lastIss != nil {
		l.cfg.issuers.Store(l.lastIss)
	}
}

// put puts iss in force, unless the store session is lost.
func (l *duties) put(iss *issuer.Issuer) {
	l.sessMu.Lock()
	defer l.sessMu.Unlock()
	l.lastIss = iss
	if l.sessErr != nil {
		return
	}
	l.cfg.issuers.Store(iss)
}

// stop ends the CA work after run has returned: with a store only this
// manager holds, the audit log's head is signed a last time (with a shared
// one, the next leader signs it); then no Issuer is in force any more, and
// the Signers close.
func (l *duties) stop() {
	if !l.cfg.shared {
		l.checkpoint(audit.WithActor(context.Background(), l.cfg.nodeID))
	}
	l.release()
}

// release takes the Issuer out of force and closes what was opened.
func (l *duties) release() {
	l.sessMu.Lock()
	l.lastIss = nil
	l.cfg.issuers.Store(nil)
	l.sessMu.Unlock()
	if l.eln != nil {
		l.eln.Close()
	}
	closeSigner(l.signers.current)
	closeSigner(l.signers.target)
	l.signers = signers{}
}

// checkpoint signs the audit log's head with the Issuer in force, logging a
// failure: the log stays verifiable up to the last checkpoint. Under a
// leader's context the write is fenced.
func (l *duties) checkpoint(ctx context.Context) {
	iss := l.cfg.issuers.Load()
	if iss == nil {
		return
	}
	if _, err := cluster.Checkpoint(ctx, l.cfg.store, iss, l.cfg.Clock.Now()); err != nil {
		if errors.Is(err, store.ErrFenced) || ctx.Err() != nil {
			l.cfg.Logger.Warn("audit checkpoint not written: this manager no longer leads", "err", err)
			return
		}
		l.cfg.Logger.Error("audit checkpoint failed", "err", err, hint.Attr(err))
	}
}

// pruneLoop prunes the records of certificates expired for longer than the
// cluster's retention, when leadership begins and at every PruneInterval,
// until ctx (a leader's) ends. A failure is logged; the next round tries again.
func (l *duties) pruneLoop(ctx context.Context) {
	interval := l.cfg.PruneInterval
	if interval <= 0 {
		interval = DefaultPruneInterval
	}
	actx := audit.WithActor(ctx, l.cfg.nodeID)
	for {
		n, err := cluster.PruneCertificates(actx, l.cfg.store, l.cfg.Clock.Now())
		switch {
		case err != nil && ctx.Err() == nil:
			l.cfg.Logger.Error("pruning expired certificates' records failed", "err", err, "pruned", n)
		case n > 0:
			l.cfg.Logger.Info("pruned expired certificates' records", "pruned", n)
		}
		if sp, ok := l.cfg.store.(store.SeenPruner); ok {
			// Heartbeat records of removed nodes, written by a flush that
			// came after the removal.
			n, err := sp.PruneSeen(ctx)
			switch {
			case err != nil && ctx.Err() == nil:
				l.cfg.Logger.Error("pruning removed nodes' heartbeat records failed", "err", err, "pruned", n)
			case n > 0:
				l.cfg.Logger.Info("pruned removed nodes' heartbeat records", "pruned", n)
			}
		}
		select {
		case <-ctx.Done():
			return
		case <-l.cfg.Clock.After(interval):
		}
	}
}

// dutiesMetrics say whether this manager leads and holds its store
// session.
type dutiesMetrics struct {
	leader, session   prometheus.Gauge
	lost, sessionLost prometheus.Counter
}

func newDutiesMetrics(reg prometheus.Registerer) *dutiesMetrics {
	m := &dutiesMetrics{
		leader: prometheus.NewGauge(prometheus.GaugeOpts{Name: "chancery_manager_leader",
			Help: "1 while this manager leads (signs audit checkpoints, makes a root rotation's transitions), else 0."}),
		session: prometheus.NewGauge(prometheus.GaugeOpts{Name: "chancery_manager_store_session",
			Help: "1 while this manager holds its session with the cluster's store (always with the embedded store); without it, it does not issue."}),
		lost: prometheus.NewCounter(prometheus.CounterOpts{Name: "chancery_manager_leadership_lost_total",
			Help: "Times this manager stopped leading while it ran (its etcd lease was lost, or the leader key went)."}),
		sessionLost: prometheus.NewCounter(prometheus.CounterOpts{Name: "chancery_manager_store_session_lost_total",
			Help: "Times this manager lost its session with the cluster's store (etcd), and stopped issuing until it had one again."}),
	}
	m.session.Set(1)
	if reg != nil {
		reg.MustRegister(m.leader, m.session, m.lost, m.sessionLost)
	}
	return m
}
