package server

import (
	"bytes"
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net/http"
	"slices"
	"sync"
	"time"

	"golang.org/x/time/rate"

	"github.com/chancery-pki/chancery/api"
	"github.com/chancery-pki/chancery/audit"
	"github.com/chancery-pki/chancery/backends"
	"github.com/chancery-pki/chancery/backends/file"
	"github.com/chancery-pki/chancery/ca"
	"github.com/chancery-pki/chancery/cluster"
	"github.com/chancery-pki/chancery/rotation"
	"github.com/chancery-pki/chancery/signer"
	"github.com/chancery-pki/chancery/store"
)

// This file is the API's side of a root rotation: nodes are asked to renew
// in batches at a bounded rate and report the root they trust, the leader's
// reconciler reads those facts (RotationFacts), and the administration
// routes start, follow and abort a rotation.

// DefaultRenewRate is how many nodes per second are asked to renew during
// a root rotation: 10,000 nodes are asked within 34 seconds, leaving the
// switch of trust (two heartbeats) inside a minute where the manager keeps
// up (BenchmarkRotateFleet).
const DefaultRenewRate = 300

// DefaultStragglerGrace is how long a node may stay silent before it is a
// straggler, which blocks a rotation until it reports again or is
// excluded.
const DefaultStragglerGrace = time.Minute

// renewAskAgain is how long after asking a node to renew under a key it
// is asked again if it still holds a certificate from another key.
const renewAskAgain = 2 * time.Minute

// renewals decides which nodes are asked to renew.
type renewals struct {
	limit *rate.Limiter
	mu    sync.Mutex
	asked map[string]asked
}

// asked is when a node was last asked to renew, and under which key;
// spent once the renewal it asked for was served.
type asked struct {
	at    time.Time
	keyID string
	spent bool
}

func newRenewals(perSecond float64) *renewals {
	burst := int(perSecond)
	if burst < 1 {
		burst = 1
	}
	return &renewals{limit: rate.NewLimiter(rate.Limit(perSecond), burst), asked: map[string]asked{}}
}

// spendAsk reports whether nodeID was asked to renew within renewAskAgain
// and has not renewed since, and marks the ask spent.
func (r *renewals) spendAsk(nodeID string, now time.Time) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	a, ok := r.asked[nodeID]
	if !ok || a.spent || now.Sub(a.at) >= renewAskAgain {
		return false
	}
	a.spent = true
	r.asked[nodeID] = a
	return true
}

// renewNow reports whether n should renew now: its certificate is not
// from the key that signs now (during a rotation, or after an abort), it
// was not asked recently to renew under that key (a node asked under a
// key that no longer signs, as after an abort or a new target, is asked
// again at once), and the rate allows one more.
func (s *Server) renewNow(n store.Node, c store.Cluster, now time.Time) bool {
	if s.cfg.Authority == nil {
		return false
	}
	iss := s.cfg.Authority.Issuers().Load()
	if iss == nil {
		return false
	}
	signing := hex.EncodeToString(iss.CA().SubjectKeyId)
	// During a rotation, a node that says it presents another certificate
	// than the one the store records (lost on its way, or not written
	// before a crash) renews again.
	fromSigning := n.CertIssuerKeyID == signing && (c.Rotation == nil || s.live.presents(n.ID, n.CertSerial))
	if fromSigning || (n.CertIssuerKeyID == "" && c.Rotation == nil) {
		return false
	}
	r := s.renewals
	r.mu.Lock()
	defer r.mu.Unlock()
	if a, ok := r.asked[n.ID]; ok && a.keyID == signing && now.Sub(a.at) < renewAskAgain {
		return false
	}
	if !r.limit.AllowN(now, 1) {
		return false
	}
	r.asked[n.ID] = asked{at: now, keyID: signing}
	return true
}

// status is the answer to a node's heartbeat, from any transport.
func (s *Server) status(n store.Node, c store.Cluster, req api.StatusRequest) *api.Status {
	now := s.clock.Now()
	s.live.reportTrust(n.ID, now, req.TrustedRoot, req.CertSerial)
	st := &api.Status{Role: n.Role, RootCAPEM: string(cluster.TrustedPEM(c)), HeartbeatPeriod: s.cfg.HeartbeatPeriod,
		LeaderAddr: s.leaderAddr(c), Managers: []string{c.AdvertiseAddr}, RenewNow: s.renewNow(n, c, now)}
	if s.cfg.Managers != nil {
		st.Managers = s.cfg.Managers()
	}
	if len(st.Managers) > api.MaxManagers {
		st.Managers = st.Managers[:api.MaxManagers]
	}
	return st
}

// leaderAddr is the address a node is told to call: the cluster record's
// advertise address, where joined managers forward to the leader; none
// with a shared store, where every manager serves.
func (s *Server) leaderAddr(c store.Cluster) string {
	if s.cfg.Shared {
		return ""
	}
	return c.AdvertiseAddr
}

// RotationFacts are what this manager knows of every member during the
// rotation of c: whether each holds a certificate from the new key (the
// store records one, and the node said in a heartbeat since that it
// presents it), trusts the new root, or has been silent longer than the
// straggler grace.
func (s *Server) RotationFacts(ctx context.Context, c store.Cluster) (rotation.Facts, error) {
	var f rotation.Facts
	if c.Rotation == nil {
		return f, nil
	}
	// The new key is the one that signs leaves: the new root's, or its
	// first intermediate's when an external CA signs with one.
	chain, err := cluster.RootChain(c.Rotation.Target)
	if err != nil {
		return f, err
	}
	newKeyID := hex.EncodeToString(chain[0].SubjectKeyId)
	newFP := cluster.Fingerprint(chain[len(chain)-1])
	nodes, err := s.cfg.Store.Nodes(ctx)
	if err != nil {
		return f, err
	}
	now := s.clock.Now()
	for _, n := range nodes {
		if n.State == store.StateRemoved {
			continue
		}
		seen, trusted := s.live.trust(n.ID)
		since := seen
		if since.Before(s.started) {
			// Silence before this manager started is not the node's.
			since = s.started
		}
		f.Nodes = append(f.Nodes, rotation.NodeFacts{
			ID:        n.ID,
			Converged: newKeyID != "" && n.CertIssuerKeyID == newKeyID && s.live.presents(n.ID, n.CertSerial),
			TrustsNew: trusted == newFP,
			Straggler: n.ID != s.cfg.NodeID && now.Sub(since) > s.cfg.StragglerGrace,
		})
	}
	return f, nil
}

// currentSigner is the Signer of the current root, for StartRotation to
// choose the cross-sign path: the one in force when no rotation is, else
// one opened for the purpose.
func (s *Server) currentSigner(ctx context.Context, c store.Cluster) (signer.Signer, func(), error) {
	if iss := s.cfg.Authority.Issuers().Load(); iss != nil && c.Rotation == nil && bytes.Equal(ca.EncodeCertificatesPEM(iss.Root()), c.CurrentRoot().CertPEM) {
		return iss.Signer(), func() {}, nil
	}
	sg, err := cluster.OpenSigner(ctx, s.cfg.DataDir, c, s.cfg.BackendOverrides, nil)
	if err != nil {
		return nil, nil, err
	}
	return sg, func() {
		if c, ok := sg.(io.Closer); ok {
			c.Close()
		}
	}, nil
}

// rotationProgress is the phase and progress of c's rotation, for the
// metrics.
func (s *Server) rotationProgress(ctx context.Context, c store.Cluster) (store.RotationPhase, rotation.Progress, bool) {
	if c.Rotation == nil {
		return "", rotation.Progress{}, false
	}
	f, err := s.RotationFacts(ctx, c)
	if err != nil {
		return "", rotation.Progress{}, false
	}
	return c.Rotation.Phase, rotation.Count(c.Rotation, f), true
}

// caStatus answers PathAdminCA from the record and this manager's facts.
func (s *Server) caStatus(ctx context.Context, c store.Cluster) (api.CAStatus, error) {
	out := api.CAStatus{RootCAPEM: string(cluster.TrustedPEM(c))}
	if roots, err := ca.ParseCertificatesPEM(cluster.TrustedPEM(c)); err == nil && len(roots) > 0 {
		out.RootFingerprint = cluster.Fingerprint(roots[0])
	}
	s.lastRotationMu.Lock()
	out.LastRotation = s.lastRotation
	s.lastRotationMu.Unlock()
	for _, k := range c.RetiredKeys {
		out.RetiredKeys = append(out.RetiredKeys, api.RetiredKey{Fingerprint: cluster.FingerprintPEM(k.Root.CertPEM), Backend: k.Root.Backend.Type,
			Reason: k.Reason, Attempts: k.Attempts, LastError: k.LastError})
	}
	r := c.Rotation
	if r == nil {
		return out, nil
	}
	f, err := s.RotationFacts(ctx, c)
	if err != nil {
		return out, err
	}
	p := rotation.Count(r, f)
	target, _ := ca.ParseCertificatesPEM(r.Target.CertPEM)
	rs := &api.RotationStatus{
		Phase: string(r.Phase), Path: r.Path, Total: p.Total, Converged: p.Converged, TrustingNew: p.TrustingNew,
		Stragglers: p.Stragglers, Excluded: slices.Clone(r.ExcludedNodes), StartedAt: r.StartedAt, DeleteOldKey: r.DeleteOldKey,
	}
	if len(target) > 0 {
		rs.TargetFingerprint = cluster.Fingerprint(target[0])
	}
	out.Rotation = rs
	return out, nil
}

// SetLastRotation records how the last rotation ended ("done" or
// "aborted"), for `chancery ca` to report.
func (s *Server) SetLastRotation(outcome string) {
	s.lastRotationMu.Lock()
	s.lastRotation = outcome
	s.lastRotationMu.Unlock()
}

func (s *Server) handleCA(w http.ResponseWriter, r *http.Request) {
	c, ok := s.clusterRecord(w, r)
	if !ok {
		return
	}
	out, err := s.caStatus(r.Context(), c)
	if err != nil {
		s.internal(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, out)
}

func (s *Server) handleRotate(w http.ResponseWriter, r *http.Request) {
	var req api.RotateRequest
	if !s.decode(w, r, &req) {
		return
	}
	if s.cfg.Authority == nil {
		s.fail(w, r, http.StatusServiceUnavailable, api.CodeConflict, "no_manager",
			"no manager is running in this data directory: start it with 'chancery run', then rotate")
		return
	}
	ctx := audit.WithActor(r.Context(), callerOf(r, s.cfg.NodeID))
	c, ok := s.clusterRecord(w, r)
	if !ok {
		return
	}
	var certPEM []byte
	if req.CertPEM != "" {
		certPEM = []byte(req.CertPEM)
		if _, err := ca.ParseCertificatesPEM(certPEM); err != nil {
			s.fail(w, r, http.StatusBadRequest, api.CodeBadRequest, "bad_request", "cert_pem: "+err.Error())
			return
		}
	}
	if req.ExcludeOnly && c.Rotation == nil {
		s.rotationError(w, r, cluster.ErrNoRotation)
		return
	}
	onlyExclude := req.ExcludeOnly || (req.Backend == "" && len(req.Settings) == 0 && certPEM == nil && req.ExcludeStragglers && c.Rotation != nil)
	if !onlyExclude {
		if err := s.checkKeyReachable(ctx, c, req.Backend); err != nil {
			s.log.Warn("root rotation refused", "err", err)
			s.fail(w, r, http.StatusConflict, api.CodeConflict, "rotation_key_not_shared", err.Error())
			return
		}
		rotating := c.Rotation != nil
		var err error
		c, err = cluster.StartRotation(ctx, s.cfg.Store, cluster.RotateRequest{
			DataDir: s.cfg.DataDir, Backend: req.Backend, Settings: backends.Settings(req.Settings),
			KeyAlgorithm: req.KeyAlgorithm, CommonName: req.CommonName, AllowBridge: req.AllowBridge, ImportCertPEM: certPEM,
			DeleteOldKey: req.DeleteOldKey, Overrides: s.cfg.BackendOverrides, Current: s.currentSigner, Now: s.clock.Now, Rand: s.cfg.Rand,
		})
		if err != nil {
			s.rotationError(w, r, err)
			return
		}
		if rotating && c.Rotation == nil {
			// A rotation to the current root aborted the one in progress.
			s.SetLastRotation("aborted")
		}
		s.wakeReconciler()
	}
	if (req.ExcludeStragglers || req.ExcludeOnly) && c.Rotation != nil {
		f, err := s.RotationFacts(ctx, c)
		if err != nil {
			s.internal(w, r, err)
			return
		}
		leader := c.LeaderID
		if s.cfg.Leader != nil {
			// With a shared store, the elected one.
			if leader, err = s.cfg.Leader(ctx); err != nil {
				s.internal(w, r, err)
				return
			}
		}
		if c, err = cluster.ExcludeNodes(ctx, s.cfg.Store, rotation.Count(c.Rotation, f).Stragglers, leader); err != nil {
			s.rotationError(w, r, err)
			return
		}
		s.wakeReconciler()
	}
	out, err := s.caStatus(ctx, c)
	if err != nil {
		s.internal(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, out)
}

func (s *Server) handleAbort(w http.ResponseWriter, r *http.Request) {
	ctx := audit.WithActor(r.Context(), callerOf(r, s.cfg.NodeID))
	c, err := cluster.AbortRotation(ctx, s.cfg.Store, s.cfg.DataDir)
	if err != nil {
		s.rotationError(w, r, err)
		return
	}
	s.SetLastRotation("aborted")
	s.wakeReconciler()
	out, err := s.caStatus(ctx, c)
	if err != nil {
		s.internal(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, out)
}

// checkKeyReachable refuses, with a store that several managers share, a
// new root whose key would be a file in this manager's data directory
// while another manager is in the cluster: that manager could not open it,
// and a rotation needs every manager to sign with the new key (and the one
// that leads next to finish it). It pages through the nodes, once per
// rotation asked for.
func (s *Server) checkKeyReachable(ctx context.Context, c store.Cluster, backend string) error {
	if backend == "" {
		backend = c.Backend.Type
	}
	if !s.cfg.Shared || backend != file.Name {
		return nil
	}
	opts := store.ListOptions{}
	for {
		page, err := s.cfg.Store.ListNodes(ctx, opts)
		if err != nil {
			return err
		}
		for _, n := range page.Nodes {
			if n.ID != s.cfg.NodeID && n.Role == string(ca.RoleManager) && n.State != store.StateRemoved {
				return fmt.Errorf("the new root's key would be a file in this manager's data directory, which the cluster's other managers (%s, ...) cannot open: "+
					"rotate into a backend every manager reaches (--pkcs11-uri, --vault-*, --external-ca, --stepca-*), or demote the other managers first", n.ID)
			}
		}
		if page.Next == "" {
			return nil
		}
		opts.After = page.Next
	}
}

// rotationError answers a refused rotation request: bad input and a phase
// that refuses it are the caller's; anything else is logged.
func (s *Server) rotationError(w http.ResponseWriter, r *http.Request, err error) {
	switch {
	case errors.Is(err, cluster.ErrRotationInProgress), errors.Is(err, cluster.ErrRotationMoved):
		s.fail(w, r, http.StatusConflict, api.CodeConflict, "rotation_conflict", err.Error())
	case errors.Is(err, cluster.ErrNoRotation):
		s.fail(w, r, http.StatusConflict, api.CodeConflict, "no_rotation", err.Error())
	case errors.Is(err, store.ErrUnavailable):
		s.storeUnavailable(w, r, err)
	default:
		// A new root refused (its key, its validity), a backend that is
		// down or refuses: the operator's to fix, with the backend's words.
		s.log.Warn("root rotation refused", "err", err)
		s.fail(w, r, http.StatusBadRequest, api.CodeBadRequest, "rotation_refused", err.Error())
	}
}

// wakeReconciler tells the leader's reconciler that the rotation changed.
func (s *Server) wakeReconciler() {
	select {
	case s.rotationChanged <- struct{}{}:
	default:
	}
}

// RotationChanged is signalled (without blocking, coalesced) when an
// administration call changed the rotation.
func (s *Server) RotationChanged() <-chan struct{} { return s.rotationChanged }

// callerOf is the node ID of the caller of an administration route, for
// the audit log: the manager's own ID for the local socket.
func callerOf(r *http.Request, self string) string {
	if id, ok := r.Context().Value(callerKey{}).(string); ok && id != "" {
		return id
	}
	return self
}
