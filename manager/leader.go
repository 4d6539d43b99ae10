package manager

import (
	"context"
	"errors"
	"fmt"
	"net"

	"golang.org/x/sync/errgroup"

	"github.com/chancery-pki/chancery/audit"
	"github.com/chancery-pki/chancery/cluster"
	"github.com/chancery-pki/chancery/extca"
	"github.com/chancery-pki/chancery/hint"
	"github.com/chancery-pki/chancery/issuer"
	"github.com/chancery-pki/chancery/store"
)

// This file is the work done once in a cluster, by its leader: the issuer
// in force (the root's Signer, opened from the cluster record), the audit
// checkpoints, and the external CA endpoint; the coming root rotation
// reconciler belongs here too. It runs under a context that ends when
// leadership ends.

// errLeadershipLost means this manager stopped leading while it ran.
var errLeadershipLost = errors.New("manager: this manager is no longer the leader")

// An election decides which manager does the work done once.
type election interface {
	// Campaign returns once this manager leads, with a context that ends
	// when its leadership ends (at the latest when ctx does).
	Campaign(ctx context.Context) (context.Context, error)
}

// electionFor returns the election of a store: with the embedded store,
// one manager holds the store and leads for as long as it runs; it must
// be the manager the cluster record names.
func electionFor(st store.Store, nodeID string) (election, error) {
	return soleManager{st: st, nodeID: nodeID}, nil
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

// leaderConfig is what the leader's duties need.
type leaderConfig struct {
	Config
	store   store.Store
	cluster store.Cluster
	nodeID  string
	issuers *issuer.Holder
	api     rotationAPI
}

// leader is a manager's work while it leads.
type leader struct {
	cfg     leaderConfig
	lctx    context.Context
	signers signers
	ext     *extca.Server
	eln     net.Listener
}

// startLeader opens the root's Signer and puts its Issuer in force. On
// error nothing is left open and no Issuer is in force; otherwise begin
// comes next.
func startLeader(lctx context.Context, cfg leaderConfig) (_ *leader, err error) {
	l := &leader{cfg: cfg, lctx: lctx}
	defer func() {
		if err != nil {
			l.release()
		}
	}()
	// The current root's Signer, then the Issuer the stored phase calls
	// for: a rotation in progress resumes where it stood.
	c := cfg.cluster
	sg, err := cluster.OpenSigner(lctx, cfg.DataDir, c, cfg.BackendOverrides, nil)
	if err != nil {
		return nil, err
	}
	l.signers.current, l.signers.currentFP = sg, fingerprintOf(c.CurrentRoot().CertPEM)
	if err := l.apply(lctx, c); err != nil {
		return nil, err
	}
	return l, nil
}

// begin signs the audit log's head, and makes the external CA endpoint
// ready when one is configured. On error, stop undoes startLeader.
func (l *leader) begin() (err error) {
	cfg, c, lctx := l.cfg, l.cfg.cluster, l.lctx
	l.checkpoint(lctx)
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
			ReservedClusters: []string{c.ID},
		}); err != nil {
			return err
		}
		if l.eln, err = net.Listen("tcp", e.ListenAddr); err != nil {
			return fmt.Errorf("manager: failed to listen on %s for the external CA endpoint: %w", e.ListenAddr, err)
		}
	}
	return nil
}

// run does the leader's work until ctx or leadership ends: checkpoints at
// every interval, and the external CA endpoint. It returns nil when either
// ends, after its goroutines have stopped.
func (l *leader) run(ctx context.Context) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	go func() {
		select {
		case <-l.lctx.Done():
			cancel()
		case <-ctx.Done():
		}
	}()
	g, gctx := errgroup.WithContext(ctx)
	g.Go(func() error {
		interval := l.cfg.CheckpointInterval
		if interval <= 0 {
			interval = DefaultCheckpointInterval
		}
		actx := audit.WithActor(gctx, l.cfg.nodeID)
		for {
			select {
			case <-gctx.Done():
				return nil
			case <-l.cfg.Clock.After(interval):
				l.checkpoint(actx)
			}
		}
	})
	g.Go(func() error { return l.reconcile(gctx) })
	g.Go(func() error { l.pruneLoop(gctx); return nil })
	if l.ext != nil {
		eln := l.eln
		l.eln = nil // Serve closes it.
		g.Go(func() error { return l.ext.Serve(gctx, eln) })
	}
	return g.Wait()
}

// stop ends the leader's duties after run has returned: no Issuer is in
// force any more, the audit log's head is signed a last time, and the
// Signer closes.
func (l *leader) stop() {
	l.checkpoint(audit.WithActor(context.Background(), l.cfg.nodeID))
	l.release()
}

// release takes the Issuer out of force and closes what the leader opened.
func (l *leader) release() {
	l.cfg.issuers.Store(nil)
	if l.eln != nil {
		l.eln.Close()
	}
	closeSigner(l.signers.current)
	closeSigner(l.signers.target)
	l.signers = signers{}
}

// checkpoint signs the audit log's head with the Issuer in force, logging a
// failure: the log stays verifiable up to the last checkpoint.
func (l *leader) checkpoint(ctx context.Context) {
	iss := l.cfg.issuers.Load()
	if iss == nil {
		return
	}
	if _, err := cluster.Checkpoint(ctx, l.cfg.store, iss, l.cfg.Clock.Now()); err != nil {
		l.cfg.Logger.Error("audit checkpoint failed", "err", err, hint.Attr(err))
	}
}

// pruneLoop prunes the records of certificates expired for longer than the
// cluster's retention, when leadership begins and at every PruneInterval,
// until ctx ends. A failure is logged; the next round tries again.
func (l *leader) pruneLoop(ctx context.Context) {
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
		select {
		case <-ctx.Done():
			return
		case <-l.cfg.Clock.After(interval):
		}
	}
}
