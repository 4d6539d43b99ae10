package cluster

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/x509"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
	"time"

	"github.com/chancery-pki/chancery/audit"
	"github.com/chancery-pki/chancery/backends"
	"github.com/chancery-pki/chancery/ca"
	"github.com/chancery-pki/chancery/hint"
	"github.com/chancery-pki/chancery/rotation"
	"github.com/chancery-pki/chancery/signer"
	"github.com/chancery-pki/chancery/store"
)

// This file holds the root rotation's changes of the cluster record, each
// one store transaction with its audit entry: starting (the new root made
// in its backend, phase prepare), aborting, and the transitions the
// leader's reconciler makes (rotation.Step says which).

var (
	// ErrRotationInProgress means a rotation is in a phase that refuses
	// what was asked, such as a new rotation after the switch of trust.
	ErrRotationInProgress = errors.New("cluster: a root rotation is in progress")
	// ErrNoRotation means no root rotation is in progress.
	ErrNoRotation = errors.New("cluster: no root rotation is in progress")
	// ErrRotationMoved means the rotation changed (another phase or
	// target) since the caller read it; nothing was written.
	ErrRotationMoved = errors.New("cluster: the root rotation changed meanwhile")
)

// TrustedPEM is the root bundle nodes are given now, and that the join
// tokens pin: during the switch of trust, the new root; otherwise the
// current root bundle.
func TrustedPEM(c store.Cluster) []byte {
	if r := c.Rotation; r != nil && r.Phase == store.PhaseSwitchTrust {
		return r.Target.CertPEM
	}
	return c.RootCAPEM
}

// ClientRoots are the roots a manager accepts client certificates under:
// the current roots, and during a rotation the new root too.
func ClientRoots(c store.Cluster) ([]*x509.Certificate, error) {
	roots, err := Roots(c)
	if err != nil {
		return nil, err
	}
	if r := c.Rotation; r != nil {
		target, err := ca.ParseCertificatesPEM(r.Target.CertPEM)
		if err != nil {
			return nil, fmt.Errorf("the stored new root is unreadable: %w", err)
		}
		roots = append(roots, target...)
	}
	return roots, nil
}

// RotateRequest starts a root rotation.
type RotateRequest struct {
	// DataDir is the manager's data directory, where a new key file goes.
	DataDir string
	// Backend names the new root's backend; empty means the current one,
	// which then chooses where the new key goes (backends.NextRooter).
	Backend string
	// Settings are the new root's backend settings.
	Settings backends.Settings
	// KeyAlgorithm and CommonName are a new root's key algorithm and
	// common name; empty means the backend's default and ca.DefaultRootCN.
	KeyAlgorithm, CommonName string
	// ImportCertPEM, when set, is the new root's certificate: for an
	// external CA, the root it must issue under.
	ImportCertPEM []byte
	// Overrides replace stored settings of the current backend, as the
	// manager was given them at start (a passphrase file): a new root beside
	// the current one is made with them.
	Overrides backends.Settings
	// AllowBridge allows a one-time bridge key where the pair of backends
	// needs one (rotation.PathBridge); without it such a pair is refused.
	AllowBridge bool
	// DeleteOldKey is the operator's consent to delete, from an HSM or
	// Vault, the keys this rotation retires that chancery made
	// (store.Rotation.DeleteOldKey).
	DeleteOldKey bool
	// Current returns the current root's Signer, to choose the cross-sign
	// path before anything changes, and what releases it; nil means
	// OpenSigner, closed after.
	Current func(ctx context.Context, c store.Cluster) (signer.Signer, func(), error)
	// Now and Rand default to time.Now and crypto/rand.
	Now  func() time.Time
	Rand io.Reader
}

// StartRotation makes the new root in its backend and records the
// rotation in phase prepare, for the leader's reconciler to carry on. A
// rotation to the current root is an abort (AbortRotation); a rotation
// during the switch of trust is refused with ErrRotationInProgress; a
// rotation before the switch replaces its target and starts again. A new
// root with the current root's key, or one that expires within a year, is
// refused; on any error nothing is changed and a key made for it is
// deleted.
func StartRotation(ctx context.Context, st store.Store, req RotateRequest) (store.Cluster, error) {
	if req.Now == nil {
		req.Now = timeNow
	}
	if req.Rand == nil {
		req.Rand = rand.Reader
	}
	c, err := st.Cluster(ctx)
	if err != nil {
		return c, err
	}
	if r := c.Rotation; r != nil && !rotation.CanAbort(r.Phase) {
		return c, fmt.Errorf("%w: it has switched trust to the new root %s; let it finish (chancery ca shows its progress), then rotate again",
			ErrRotationInProgress, FingerprintPEM(r.Target.CertPEM))
	}
	// With no backend flags, the new root goes beside the current one, where
	// the current backend chooses (backends.NextRooter).
	name, settings := req.Backend, req.Settings
	if name == "" && len(settings) == 0 {
		name = c.Backend.Type
		b, err := backends.Get(name)
		if err != nil {
			return c, err
		}
		nr, ok := b.(backends.NextRooter)
		if !ok {
			return c, fmt.Errorf("cluster: the %s backend cannot choose where a new root goes by itself: give the new root's backend flags, as for init", name)
		}
		var nonce [3]byte
		if _, err := io.ReadFull(req.Rand, nonce[:]); err != nil {
			return c, fmt.Errorf("cluster: failed to draw the new root's name: %w", err)
		}
		id := req.Now().UTC().Format("20060102T150405Z") + "-" + hex.EncodeToString(nonce[:])
		current := backends.Settings(c.Backend.Settings).Clone()
		for k, v := range req.Overrides {
			current[k] = v
		}
		if settings, err = nr.NextRootSettings(current, id); err != nil {
			return c, err
		}
	} else if name == "" {
		name = c.Backend.Type
	}
	b, err := backends.Get(name)
	if err != nil {
		return c, err
	}
	sg, made, err := b.CreateRoot(ctx, backends.CreateRootRequest{
		DataDir: req.DataDir, Settings: settings, CommonName: req.CommonName, KeyAlgorithm: req.KeyAlgorithm,
		ImportCertPEM: req.ImportCertPEM, Now: req.Now(), Rand: req.Rand,
	})
	if err != nil {
		return c, err
	}
	if cl, ok := sg.(io.Closer); ok {
		defer cl.Close()
	}
	undo := func() {
		if d, ok := b.(backends.RootDeleter); ok {
			d.DeleteRoot(context.Background(), req.DataDir, made)
		}
	}
	chain := sg.Chain()
	newRoot := chain[len(chain)-1]
	if len(chain) > 1 {
		// The cross-signed certificate vouches for the key that signs
		// leaves; with an intermediate between them, nodes that trust the
		// old root could not verify what the new root's CA issues.
		undo()
		return c, hint.With(fmt.Errorf("cluster: the new root's CA signs with an intermediate (%q), and a rotation needs the new root's own key to sign", chain[0].Subject),
			"rotate to an external CA that signs with its root, or to a root in a backend that holds its key (file, pkcs11, vault)")
	}
	current, err := Roots(c)
	if err != nil {
		undo()
		return c, err
	}
	if err := ca.CheckRootCA(newRoot, nil, req.Now()); err != nil {
		undo()
		return c, fmt.Errorf("the new root: %w", err)
	}
	for _, cur := range current {
		if signer.SamePublicKey(cur.PublicKey, newRoot.PublicKey) {
			undo()
			if bytes.Equal(cur.Raw, newRoot.Raw) {
				return AbortRotation(ctx, st, req.DataDir)
			}
			return c, fmt.Errorf("%w: the new root %s has the current root's key; make a new key, or rotate to the current root to abort a rotation",
				rotation.ErrSameRoot, Fingerprint(newRoot))
		}
	}
	openCurrent := req.Current
	if openCurrent == nil {
		openCurrent = func(ctx context.Context, c store.Cluster) (signer.Signer, func(), error) {
			sg, err := OpenSigner(ctx, req.DataDir, c, nil, nil)
			if err != nil {
				return nil, nil, err
			}
			return sg, func() { closeIfCloser(sg) }, nil
		}
	}
	cur, release, err := openCurrent(ctx, c)
	if err != nil {
		undo()
		return c, fmt.Errorf("the current root's signer, to choose how to cross-sign: %w", err)
	}
	path := rotation.ChoosePath(cur, sg)
	canCross := rotation.CheckCanCrossSign(cur)
	release()
	if canCross != nil {
		undo()
		return c, fmt.Errorf("the current root's backend (%s) cannot cross-sign the new root: %w", c.Backend.Type, canCross)
	}
	if path == rotation.PathBridge && !req.AllowBridge {
		undo()
		return c, fmt.Errorf("%w: the current root's backend (%s) signs CA certificates only from a CSR, and the %s backend cannot make one for the new root's key; "+
			"allow a one-time bridge key, or put the new root in a backend that holds its key (file, pkcs11, vault)", rotation.ErrNeedsBridge, c.Backend.Type, name)
	}
	target := store.Root{CertPEM: ca.EncodeCertificatesPEM(newRoot), Backend: store.BackendConfig{Type: name, Settings: made}}
	if len(chain) > 1 {
		target.IntermediatesPEM = ca.EncodeCertificatesPEM(chain[:len(chain)-1]...)
	}
	out, err := st.UpdateCluster(ctx, func(cur *store.Cluster) error {
		if r := cur.Rotation; r != nil {
			if !rotation.CanAbort(r.Phase) {
				return fmt.Errorf("%w: it has switched trust meanwhile", ErrRotationInProgress)
			}
			retire(cur, r.Target, store.RetiredReplaced, r.DeleteOldKey || req.DeleteOldKey)
		}
		now := req.Now()
		cur.Rotation = &store.Rotation{Phase: store.PhasePrepare, Target: target, AllowBridge: req.AllowBridge,
			DeleteOldKey: req.DeleteOldKey, StartedAt: now, UpdatedAt: now}
		return nil
	}, rotationEvent(ctx, c, "start", target, nil, "", "", deleteOldKeyDetail(req.DeleteOldKey)))
	if err != nil {
		undo()
		return out, err
	}
	return forgetNow(ctx, st, req.DataDir, out, req.Now())
}

// AbortRotation ends the rotation in progress before the switch of trust:
// the current key signs again, and nodes renew back to it in batches; what
// the new key issued stays valid through the appendix until replaced. A
// new root's key is retired in the same update, and forgotten
// (ForgetRetired) before AbortRotation returns. After the switch it is
// refused with ErrRotationInProgress.
func AbortRotation(ctx context.Context, st store.Store, dataDir string) (store.Cluster, error) {
	c, err := st.Cluster(ctx)
	if err != nil {
		return c, err
	}
	if c.Rotation == nil {
		return c, ErrNoRotation
	}
	out, err := st.UpdateCluster(ctx, func(cur *store.Cluster) error {
		r := cur.Rotation
		switch {
		case r == nil:
			return ErrNoRotation
		case !rotation.CanAbort(r.Phase):
			return fmt.Errorf("%w: it has switched trust to the new root %s, so it can no longer be aborted: let it finish, then rotate again (to a new root, or back to a root of your choice)",
				ErrRotationInProgress, FingerprintPEM(r.Target.CertPEM))
		}
		retire(cur, r.Target, store.RetiredAborted, r.DeleteOldKey)
		cur.Rotation = nil
		return nil
	}, rotationEvent(ctx, c, "abort", c.Rotation.Target, nil, "", "", nil))
	if err != nil {
		return out, err
	}
	return forgetNow(ctx, st, dataDir, out, timeNow())
}

// RecordAppendix moves a rotation from prepare to reissue with its
// appendix: from now on the new key signs, and every certificate carries
// the appendix. target is the new root the appendix was made for; if the
// rotation moved meanwhile, nothing is written (ErrRotationMoved).
func RecordAppendix(ctx context.Context, st store.Store, target []byte, appendix []*x509.Certificate, path rotation.Path, now time.Time) (store.Cluster, error) {
	c, err := st.Cluster(ctx)
	if err != nil {
		return c, err
	}
	p := pathName(path)
	return transition(ctx, st, c, target, store.PhasePrepare, "reissue", appendix, p, func(cur *store.Cluster) error {
		cur.Rotation.Phase = store.PhaseReissue
		cur.Rotation.AppendixPEM = ca.EncodeCertificatesPEM(appendix...)
		cur.Rotation.Path = p
		cur.Rotation.UpdatedAt = now
		return nil
	})
}

// SwitchTrust moves a rotation from reissue to switch-trust: nodes are
// given the new root, and both join tokens change to pin it (the old ones
// are refused from now on).
func SwitchTrust(ctx context.Context, st store.Store, target []byte, now time.Time, r io.Reader) (store.Cluster, error) {
	if r == nil {
		r = rand.Reader
	}
	c, err := st.Cluster(ctx)
	if err != nil {
		return c, err
	}
	worker, err := ca.GenerateJoinToken(target, r)
	if err != nil {
		return c, err
	}
	manager, err := ca.GenerateJoinToken(target, r)
	if err != nil {
		return c, err
	}
	return transition(ctx, st, c, target, store.PhaseReissue, "switch-trust", nil, "", func(cur *store.Cluster) error {
		cur.Rotation.Phase = store.PhaseSwitchTrust
		cur.Rotation.UpdatedAt = now
		cur.WorkerToken, cur.ManagerToken = worker, manager
		return nil
	})
}

// FinishRotation ends a rotation in switch-trust: the new root becomes
// the current one (its certificate, intermediates and backend), the old
// one moves to the history, current until now, and the appendix is no
// longer attached. It returns the old root, whose key is retired in the
// same update for the leader to forget (ForgetRetired).
func FinishRotation(ctx context.Context, st store.Store, target []byte, now time.Time) (store.Cluster, store.Root, error) {
	c, err := st.Cluster(ctx)
	if err != nil {
		return c, store.Root{}, err
	}
	old := c.CurrentRoot()
	out, err := transition(ctx, st, c, target, store.PhaseSwitchTrust, "done", nil, "", func(cur *store.Cluster) error {
		prev := cur.CurrentRoot()
		prev.ActiveUntil = now
		t := cur.Rotation.Target
		cur.RootHistory = append(cur.RootHistory, prev)
		cur.RootCAPEM = t.CertPEM
		cur.IntermediatesPEM = t.IntermediatesPEM
		cur.Backend = t.Backend
		cur.RootSince = now
		retire(cur, prev, store.RetiredDone, cur.Rotation.DeleteOldKey)
		cur.Rotation = nil
		old = prev
		return nil
	})
	return out, old, err
}

// ExcludeNodes excludes nodes from the rotation in progress, so that they
// no longer block it, and removes them from the cluster, as a forced node
// rm of a node that is down: they must join again. A manager is removed
// too (node rm would refuse it): a dead manager would otherwise block the
// rotation until it came back. leader, the manager that leads now (the
// cluster record's LeaderID with the embedded store, the elected one with
// a store in etcd), is refused with ErrIsLeader. Nodes already excluded,
// or unknown, are left alone.
func ExcludeNodes(ctx context.Context, st store.Store, ids []string, leader string) (store.Cluster, error) {
	c, err := st.Cluster(ctx)
	if err != nil {
		return c, err
	}
	if c.Rotation == nil {
		return c, ErrNoRotation
	}
	if slices.Contains(ids, leader) && !slices.Contains(c.Rotation.ExcludedNodes, leader) {
		return c, ErrIsLeader
	}
	for _, id := range ids {
		if slices.Contains(c.Rotation.ExcludedNodes, id) {
			continue
		}
		n, err := st.Node(ctx, id)
		switch {
		case errors.Is(err, store.ErrNotFound):
		case err != nil:
			return c, err
		case n.State != store.StateRemoved:
			if _, err := st.UpdateNode(ctx, id, func(n *store.Node) error {
				n.State = store.StateRemoved
				return nil
			}, audit.Event{Action: audit.ActionRemoved, Actor: audit.ActorFrom(ctx), NodeID: id, Role: n.Role,
				Details: map[string]string{"forced": "true"}}); err != nil && !errors.Is(err, store.ErrNotFound) {
				return c, err
			}
		}
		if c, err = st.UpdateCluster(ctx, func(cur *store.Cluster) error {
			if cur.Rotation == nil {
				return ErrNoRotation
			}
			if !slices.Contains(cur.Rotation.ExcludedNodes, id) {
				cur.Rotation.ExcludedNodes = append(cur.Rotation.ExcludedNodes, id)
			}
			return nil
		}, rotationEvent(ctx, c, "exclude", c.Rotation.Target, nil, "", id, nil)); err != nil {
			return c, err
		}
	}
	return c, nil
}

// transition changes a rotation in phase from, for target, with change,
// in one store transaction with its audit entry; ErrRotationMoved if the
// rotation is no longer there.
func transition(ctx context.Context, st store.Store, c store.Cluster, target []byte, from store.RotationPhase, step string,
	appendix []*x509.Certificate, path string, change func(*store.Cluster) error) (store.Cluster, error) {
	if c.Rotation == nil {
		return c, ErrNoRotation
	}
	out, err := st.UpdateCluster(ctx, func(cur *store.Cluster) error {
		r := cur.Rotation
		if r == nil || r.Phase != from || !bytes.Equal(r.Target.CertPEM, target) {
			return ErrRotationMoved
		}
		return change(cur)
	}, rotationEvent(ctx, c, step, c.Rotation.Target, appendix, path, "", nil))
	return out, err
}

// rotationEvent is the root.rotation audit entry of a step: both roots'
// fingerprints, the cross-sign path and the appendix's serials.
func rotationEvent(ctx context.Context, c store.Cluster, step string, target store.Root, appendix []*x509.Certificate, path, nodeID string, extra map[string]string) audit.Event {
	d := map[string]string{
		"step":                 step,
		"old_root_fingerprint": FingerprintPEM(c.RootCAPEM),
		"new_root_fingerprint": FingerprintPEM(target.CertPEM),
		"new_root_backend":     target.Backend.Type,
		"current_root_backend": c.Backend.Type,
	}
	if path != "" {
		d["path"] = path
	}
	if len(appendix) > 0 {
		var serials []string
		for _, a := range appendix {
			serials = append(serials, hex.EncodeToString(a.SerialNumber.Bytes()))
		}
		d["appendix_serials"] = strings.Join(serials, ",")
	}
	for k, v := range extra {
		d[k] = v
	}
	return audit.Event{Action: audit.ActionRootRotation, Actor: audit.ActorFrom(ctx), NodeID: nodeID, Backend: target.Backend.Type, Details: d}
}

func closeIfCloser(s signer.Signer) {
	if c, ok := s.(io.Closer); ok {
		c.Close()
	}
}

// pathName is the stored name of a cross-sign path.
func pathName(p rotation.Path) string {
	switch p {
	case rotation.PathPublicKey:
		return store.CrossSignPublicKey
	case rotation.PathCSR:
		return store.CrossSignCSR
	case rotation.PathBridge:
		return store.CrossSignBridge
	}
	return ""
}

// FingerprintPEM is the fingerprint of the first certificate in a PEM
// bundle, or "" when there is none.
func FingerprintPEM(p []byte) string {
	certs, err := ca.ParseCertificatesPEM(p)
	if err != nil || len(certs) == 0 {
		return ""
	}
	return Fingerprint(certs[0])
}
