package manager

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/chancery-pki/chancery/audit"
	"github.com/chancery-pki/chancery/ca"
	"github.com/chancery-pki/chancery/cluster"
	"github.com/chancery-pki/chancery/issuer"
	"github.com/chancery-pki/chancery/rotation"
	"github.com/chancery-pki/chancery/signer"
	"github.com/chancery-pki/chancery/store"
)

// This file is the root rotation's reconciler. On every manager it keeps
// the Issuer in force and the API's trusted roots in line with the stored
// phase. On the leader, it also reads the stored rotation and what the API
// knows of the nodes, asks rotation.Step what to do, and does it (each
// transition one store transaction, in package cluster, fenced by the
// leader's key where the store is shared). After a crash, or on a new
// leader, it resumes from the stored phase.

// DefaultReconcileInterval is how often the reconciler looks at the
// rotation when nothing wakes it.
const DefaultReconcileInterval = time.Second

// maxReconcileBackoff bounds the wait after failed steps.
const maxReconcileBackoff = 30 * time.Second

// rotationAPI is what the reconciler needs of the API server.
type rotationAPI interface {
	RotationFacts(ctx context.Context, c store.Cluster) (rotation.Facts, error)
	RotationChanged() <-chan struct{}
	ReloadRoots(ctx context.Context) error
	SetLastRotation(outcome string)
}

// openRoot opens a root record's Signer; a variable for tests.
var openRoot = cluster.OpenRoot

// signers are the manager's open Signers: the current root's, and a
// rotation target's.
type signers struct {
	current   signer.Signer
	currentFP string
	target    signer.Signer
	targetPEM []byte
	// applied is the state the Issuer in force and the API's roots were
	// last set for.
	applied string
}

func closeSigner(s signer.Signer) {
	if c, ok := s.(io.Closer); ok {
		c.Close()
	}
}

// reconcile runs until ctx ends: at every interval, and when the API says
// the rotation changed.
func (l *duties) reconcile(ctx context.Context) error {
	interval := l.cfg.ReconcileInterval
	if interval <= 0 {
		interval = DefaultReconcileInterval
	}
	ctx = audit.WithActor(ctx, l.cfg.nodeID)
	wait := interval
	for {
		err := l.reconcileOnce(ctx)
		if errors.Is(err, cluster.ErrRotationMoved) {
			// An administration call changed the rotation meanwhile: look
			// again at once.
			err = l.reconcileOnce(ctx)
		}
		if err != nil && ctx.Err() == nil {
			// A backend that is down is asked again, less and less often.
			wait = min(2*wait, maxReconcileBackoff)
			l.cfg.Logger.Error("root rotation: a step failed; trying again", "err", err, "retry_in", wait)
		} else {
			wait = interval
		}
		select {
		case <-ctx.Done():
			return nil
		case <-l.cfg.api.RotationChanged():
		case <-l.wake:
		case <-l.cfg.Clock.After(wait):
		}
	}
}

// reconcileOnce brings the Issuer in line with the record, then, while
// this manager leads, makes at most the steps rotation.Step asks for, each
// followed by the same.
func (l *duties) reconcileOnce(ctx context.Context) error {
	for range 4 {
		c, err := l.cfg.store.Cluster(ctx)
		if err != nil {
			return err
		}
		if err := l.apply(ctx, c); err != nil {
			return err
		}
		lctx := l.leader()
		if lctx == nil {
			return nil
		}
		// The leader's writes: under its fence, and ended with its
		// leadership.
		ctx, cancel := context.WithCancel(ctx)
		defer cancel()
		defer context.AfterFunc(lctx, cancel)()
		if f, ok := store.FenceFrom(lctx); ok {
			ctx = store.WithFence(ctx, f)
		}
		if len(c.RetiredKeys) > 0 {
			// After apply, which closed the Signers of retired roots. A
			// failure is recorded with the key, and tried again later.
			if out, err := cluster.ForgetRetired(ctx, l.cfg.store, l.cfg.DataDir, l.cfg.Clock.Now()); err != nil {
				l.cfg.Logger.Error("root rotation: a retired root's key was not forgotten; trying again later", "err", err)
			} else {
				c = out
			}
		}
		if c.Rotation == nil {
			return nil
		}
		facts, err := l.cfg.api.RotationFacts(ctx, c)
		if err != nil {
			return err
		}
		action, prog := rotation.Step(c.Rotation, facts)
		now := l.cfg.Clock.Now()
		target := c.Rotation.Target.CertPEM
		switch action {
		case rotation.Wait:
			return nil
		case rotation.MakeAppendix:
			appendix, err := rotation.CrossSign(ctx, l.signers.current, l.signers.target, rotation.Options{
				Now: now, MinLifetime: c.CertExpiry, AllowBridge: c.Rotation.AllowBridge,
			})
			if err != nil {
				return fmt.Errorf("cross-signing the new root: %w", err)
			}
			_, err = cluster.RecordAppendix(ctx, l.cfg.store, target, appendix, rotation.ChoosePath(l.signers.current, l.signers.target), now)
			if err != nil {
				return err
			}
			l.cfg.Logger.Info("root rotation: reissuing under the new key", "new_root", fingerprintOf(target), "appendix", len(appendix))
		case rotation.SwitchTrust:
			if _, err := cluster.SwitchTrust(ctx, l.cfg.store, target, now, nil); err != nil {
				return err
			}
			l.cfg.Logger.Info("root rotation: every node holds a certificate from the new key; switching trust", "nodes", prog.Total)
		case rotation.Finish:
			if _, _, err := cluster.FinishRotation(ctx, l.cfg.store, target, now); err != nil {
				return err
			}
			l.cfg.api.SetLastRotation("done")
			l.cfg.Logger.Info("root rotation: done", "root", fingerprintOf(target), "nodes", prog.Total)
		}
	}
	return nil
}

// apply opens the Signers the record needs, puts the Issuer its phase calls
// for in force, and reloads the API's trusted roots, when the record
// changed since the last time.
func (l *duties) apply(ctx context.Context, c store.Cluster) error {
	s := &l.signers
	state := stateOf(c)
	if state == s.applied {
		return nil
	}
	// Signers that are replaced are closed only once the Issuer that uses
	// them is out of force.
	var retired []signer.Signer
	defer func() {
		for _, sg := range retired {
			closeSigner(sg)
		}
	}()
	cur := c.CurrentRoot()
	if fp := fingerprintOf(cur.CertPEM); fp != s.currentFP {
		// The rotation finished: the target is the current root now.
		if s.target != nil && bytes.Equal(s.targetPEM, cur.CertPEM) {
			retired = append(retired, s.current)
			s.current, s.currentFP, s.target, s.targetPEM = s.target, fp, nil, nil
		} else {
			sg, err := openRoot(ctx, l.cfg.DataDir, cur, l.cfg.BackendOverrides, nil)
			if err != nil {
				return err
			}
			retired = append(retired, s.current)
			s.current, s.currentFP = sg, fp
		}
	}
	r := c.Rotation
	if s.target != nil && (r == nil || !bytes.Equal(r.Target.CertPEM, s.targetPEM)) {
		retired = append(retired, s.target)
		s.target, s.targetPEM = nil, nil
	}
	if r != nil && s.target == nil {
		// A new root beside the current one opens with the same overrides
		// (its passphrase file); another backend's with none.
		var overrides map[string]string
		if r.Target.Backend.Type == c.Backend.Type {
			overrides = l.cfg.BackendOverrides
		}
		sg, err := openRoot(ctx, l.cfg.DataDir, r.Target, overrides, nil)
		if err != nil {
			return fmt.Errorf("opening the new root's signer: %w", err)
		}
		s.target, s.targetPEM = sg, r.Target.CertPEM
	}
	iss, err := l.issuerFor(c)
	if err != nil {
		return err
	}
	l.put(iss)
	if err := l.cfg.api.ReloadRoots(ctx); err != nil {
		return err
	}
	if l.ext != nil && s.applied != "" {
		// The external CA endpoint's own certificate follows the key in
		// force; a failure keeps the old one until its renewal.
		if err := l.ext.ReissueTLSCertificate(ctx); err != nil {
			l.cfg.Logger.Error("root rotation: the external CA endpoint's TLS certificate was not reissued", "err", err)
		}
	}
	s.applied = state
	return nil
}

// issuerFor is the Issuer c's phase calls for: the current root's key
// until the appendix exists, then the new key with the appendix attached,
// until the rotation is done.
func (l *duties) issuerFor(c store.Cluster) (*issuer.Issuer, error) {
	r := c.Rotation
	if r == nil || r.Phase == store.PhasePrepare {
		return issuer.New(l.signers.current, issuer.Options{Now: l.cfg.Clock.Now})
	}
	appendix, err := ca.ParseCertificatesPEM(r.AppendixPEM)
	if err != nil {
		return nil, fmt.Errorf("the stored appendix: %w", err)
	}
	if len(appendix) == 0 {
		return nil, errors.New("the stored rotation has no appendix past its prepare phase")
	}
	return issuer.New(l.signers.target, issuer.Options{Appendix: appendix, Now: l.cfg.Clock.Now})
}

// stateOf names what the Issuer and the roots depend on in c.
func stateOf(c store.Cluster) string {
	s := fingerprintOf(c.RootCAPEM)
	if r := c.Rotation; r != nil {
		s += "|" + string(r.Phase) + "|" + fingerprintOf(r.Target.CertPEM) + "|" + fmt.Sprint(len(r.AppendixPEM))
	}
	return s
}

func fingerprintOf(p []byte) string {
	certs, err := ca.ParseCertificatesPEM(p)
	if err != nil || len(certs) == 0 {
		return ""
	}
	return cluster.Fingerprint(certs[0])
}
