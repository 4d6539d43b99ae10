package server

import (
	"context"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"
	"unicode"

	"github.com/chancery-pki/chancery/api"
	"github.com/chancery-pki/chancery/audit"
	"github.com/chancery-pki/chancery/ca"
	"github.com/chancery-pki/chancery/cluster"
	"github.com/chancery-pki/chancery/hint"
	"github.com/chancery-pki/chancery/internal/ratelimit"
	"github.com/chancery-pki/chancery/issuer"
	"github.com/chancery-pki/chancery/signer"
	"github.com/chancery-pki/chancery/store"
)

// handleRoot serves the root bundle. The caller does not trust this
// connection: it checks the bundle against its join token's digest.
func (s *Server) handleRoot(w http.ResponseWriter, r *http.Request) {
	c, err := s.cfg.Store.Cluster(r.Context())
	if err != nil {
		s.internal(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, api.Root{RootCAPEM: string(cluster.TrustedPEM(c))})
}

// handleJoin admits a node with a join token: the token's role, a new node
// ID, and a certificate for the CSR's key.
//
// A refused join from an address that had too many (JoinRefusalBurst) is
// answered 429 with Retry-After instead, the reason left as it is; a good
// join from it is served, so that an attacker behind a node's address
// cannot keep it out.
func (s *Server) handleJoin(w http.ResponseWriter, r *http.Request) {
	var req api.JoinRequest
	if !s.decode(w, r, &req) {
		return
	}
	if err := checkHostname(req.Hostname); err != nil {
		s.fail(w, r, http.StatusBadRequest, api.CodeBadRequest, "bad_hostname", err.Error())
		return
	}
	c, err := s.cfg.Store.Cluster(r.Context())
	if err != nil {
		s.internal(w, r, err)
		return
	}
	role, err := ca.TokenRole(req.Token, c.WorkerToken, c.ManagerToken)
	if err != nil {
		msg := "A valid join token is necessary to join this cluster"
		if _, perr := ca.ParseJoinToken(req.Token); perr != nil {
			msg = perr.Error() + ": " + msg
		}
		s.fail(w, r, http.StatusUnauthorized, api.CodeInvalidToken, "invalid_token", msg)
		return
	}
	// After the token, so that no one without one learns node IDs.
	if err := s.checkNameNotID(r.Context(), req.Hostname, ""); errors.Is(err, errNameIsNodeID) {
		s.fail(w, r, http.StatusBadRequest, api.CodeBadRequest, "bad_hostname", err.Error()+"; choose another --hostname")
		return
	} else if err != nil {
		s.internal(w, r, err)
		return
	}
	nodeID, err := ca.NewID(s.cfg.Rand)
	if err != nil {
		s.internal(w, r, err)
		return
	}
	s.issue(w, r, "join", cluster.IssueRequest{NodeID: nodeID, Role: role, Hostname: req.Hostname, CSR: []byte(req.CSR)}, c)
}

// handleRenew issues a new certificate to the calling node, with the role
// the store holds now, not the one its current certificate says.
func (s *Server) handleRenew(w http.ResponseWriter, r *http.Request) {
	var req api.RenewRequest
	if !s.decode(w, r, &req) {
		return
	}
	p := peerOf(r)
	// One renewal at a time per node, so that its bucket is read and
	// written by one at a time.
	defer s.lockRenewal(p.node.ID)()
	c, err := s.cfg.Store.Cluster(r.Context())
	if err != nil {
		s.internal(w, r, err)
		return
	}
	ir := cluster.IssueRequest{NodeID: p.node.ID, Role: ca.Role(p.node.Role), CSR: []byte(req.CSR)}
	if !s.renewalWanted(p, s.clock.Now()) {
		limit := s.cfg.RenewalLimit
		ir.Limit = &limit
	}
	s.issue(w, r, "renew", ir, c)
}

// renewalWanted reports whether the manager wants p to renew, so that the
// renewal is not counted against the node's RenewalLimit: its role
// changed, the manager asked it to (a root rotation; once per ask), or it
// authenticated with its current certificate past half its lifetime, when
// its agent renews on schedule.
func (s *Server) renewalWanted(p peer, now time.Time) bool {
	if string(p.id.Role) != p.node.Role {
		return true
	}
	if s.renewals.spendAsk(p.node.ID, now) {
		return true
	}
	cert := p.cert
	if cert == nil || signer.SerialHex(cert.SerialNumber) != p.node.CertSerial {
		return false
	}
	half := cert.NotBefore.Add(cert.NotAfter.Sub(cert.NotBefore) / 2)
	return !now.Before(half)
}

// lockRenewal waits until no other renewal of nodeID is being served,
// and returns the function that lets the next one go.
func (s *Server) lockRenewal(nodeID string) func() {
	s.renewingMu.Lock()
	l := s.renewing[nodeID]
	if l == nil {
		l = &renewalLock{}
		s.renewing[nodeID] = l
	}
	l.refs++
	s.renewingMu.Unlock()
	l.mu.Lock()
	return func() {
		l.mu.Unlock()
		s.renewingMu.Lock()
		if l.refs--; l.refs == 0 {
			delete(s.renewing, nodeID)
		}
		s.renewingMu.Unlock()
	}
}

// renewalLock serializes one node's renewals; refs counts its holders and
// waiters, so that it is forgotten when none is left.
type renewalLock struct {
	mu   sync.Mutex
	refs int
}

func (s *Server) issue(w http.ResponseWriter, r *http.Request, kind string, req cluster.IssueRequest, c store.Cluster) {
	out, err := s.issueCert(r.Context(), kind, req, c, r.RemoteAddr)
	var limited *cluster.RenewalLimitError
	switch {
	case errors.As(err, &limited):
		s.throttle(w, r, "renewal_limited", limited.RetryAfter, limited.Error())
	case errors.Is(err, signer.ErrInvalidCSR), errors.Is(err, ca.ErrInvalidCSR):
		s.fail(w, r, http.StatusBadRequest, api.CodeInvalidCSR, "invalid_csr", err.Error())
	case errors.Is(err, signer.ErrInvalidRequest):
		s.fail(w, r, http.StatusBadRequest, api.CodeBadRequest, "invalid_request", err.Error())
	case errors.Is(err, cluster.ErrNodeRemoved):
		s.fail(w, r, http.StatusForbidden, api.CodeNodeRemoved, "node_removed", err.Error())
	case errors.Is(err, cluster.ErrRoleChanged):
		s.fail(w, r, http.StatusConflict, api.CodeConflict, "role_changed", err.Error())
	case errors.Is(err, issuer.ErrNoIssuer):
		// Why this manager does not issue now (it lost its store session):
		// another manager may.
		s.fail(w, r, http.StatusServiceUnavailable, api.CodeUnavailable, "no_issuer", err.Error())
	case errors.Is(err, store.ErrUnavailable):
		s.storeUnavailable(w, r, err)
	case err != nil:
		writeJSON(w, http.StatusInternalServerError, api.Error{Code: api.CodeSignerFailure, Message: "the CA failed to issue the certificate; see the manager's log"})
	default:
		writeJSON(w, http.StatusOK, out)
	}
}

// issueCert issues a node certificate, counts and logs it. Refusals of the
// request are returned for the caller to map; a signer failure is counted
// and logged here.
func (s *Server) issueCert(ctx context.Context, kind string, req cluster.IssueRequest, c store.Cluster, remote string) (*api.Certificate, error) {
	start := s.clock.Now()
	issued, err := s.cfg.Authority.IssueNodeCertificate(ctx, req)
	if err != nil {
		var limited *cluster.RenewalLimitError
		if callerLeft(ctx, err) {
			s.metrics.failures.WithLabelValues("caller_left").Inc()
			s.log.Debug("issuance abandoned: the caller went away", "kind", kind, "node_id", req.NodeID)
		} else if !errors.Is(err, signer.ErrInvalidRequest) && !errors.Is(err, ca.ErrInvalidCSR) && !errors.Is(err, issuer.ErrNoIssuer) &&
			!errors.Is(err, store.ErrUnavailable) && !errors.Is(err, cluster.ErrNodeRemoved) && !errors.Is(err, cluster.ErrRoleChanged) && !errors.As(err, &limited) {
			s.metrics.failures.WithLabelValues("signer").Inc()
			s.log.Error("issuance failed", "kind", kind, "node_id", req.NodeID, "err", err, hint.Attr(err))
		}
		return nil, err
	}
	s.metrics.signing.WithLabelValues(s.cfg.Backend).Observe(s.clock.Now().Sub(start).Seconds())
	s.metrics.issued.WithLabelValues(req.Role.Short(), kind).Inc()
	s.live.report(req.NodeID, s.clock.Now())
	s.log.Info("certificate issued", "kind", kind, "node_id", req.NodeID, "role", string(req.Role),
		"serial", issued.Node.CertSerial, "not_after", issued.Certificate.NotAfter, "remote", remote)
	return &api.Certificate{
		NodeID:         req.NodeID,
		Role:           string(req.Role),
		CertificatePEM: string(ca.EncodeCertificatesPEM(issued.Chain...)),
		RootCAPEM:      string(cluster.TrustedPEM(c)),
		LeaderAddr:     s.leaderAddr(c),
	}, nil
}

// handleStatus records a node's heartbeat and tells it its role and root.
func (s *Server) handleStatus(w http.ResponseWriter, r *http.Request) {
	var req api.StatusRequest
	if !s.decode(w, r, &req) {
		return
	}
	p := peerOf(r)
	s.rename(r.Context(), p.node, req.Hostname, r.RemoteAddr)
	c, err := s.cfg.Store.Cluster(r.Context())
	if err != nil {
		s.internal(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, s.status(p.node, c, req))
}

// checkHostname accepts empty or printable host names of at most 253 bytes.
func checkHostname(h string) error {
	if len(h) > 253 {
		return errors.New("the host name is longer than 253 bytes")
	}
	for _, r := range h {
		if !unicode.IsPrint(r) || unicode.IsSpace(r) {
			return fmt.Errorf("the host name has the character %q", r)
		}
	}
	return nil
}

// decode reads a JSON body into v, answering 413 or 400 on failure.
func (s *Server) decode(w http.ResponseWriter, r *http.Request, v any) bool {
	dec := json.NewDecoder(r.Body)
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		var tooLarge *http.MaxBytesError
		if errors.As(err, &tooLarge) {
			s.fail(w, r, http.StatusRequestEntityTooLarge, api.CodeTooLarge, "too_large",
				fmt.Sprintf("the request body is larger than %d bytes", api.MaxBodyBytes))
			return false
		}
		s.fail(w, r, http.StatusBadRequest, api.CodeBadRequest, "bad_json", "the request body is not valid JSON for this call: "+sanitize(err.Error()))
		return false
	}
	if dec.More() {
		s.fail(w, r, http.StatusBadRequest, api.CodeBadRequest, "bad_json", "the request body holds more than one JSON value")
		return false
	}
	return true
}

// sanitize keeps JSON decoder messages short; they name types and offsets,
// not values.
func sanitize(s string) string {
	if len(s) > 200 {
		s = s[:200]
	}
	return strings.ToValidUTF8(s, "?")
}

// authReasons are the refusals of authentication or authorization, which
// the audit log records.
var authReasons = map[string]bool{
	"invalid_token": true, "unauthenticated": true, "foreign_certificate": true, "unknown_node": true, "unissued_certificate": true,
	"node_removed": true, "not_manager": true, "forward_not_manager": true, "bad_forwarded_certificate": true,
}

// fail answers with an error body, counts the refusal, logs it without
// request contents, and records refused authentication or authorization in
// the audit log.
//
// The log lines and audit entries are limited per source and reason
// (audit.RefusalLimiter). A refused join over its address's throttle
// (JoinRefusalBurst) is answered 429 with Retry-After.
func (s *Server) fail(w http.ResponseWriter, r *http.Request, status int, code, reason, msg string) {
	s.metrics.failures.WithLabelValues(reason).Inc()
	now := s.clock.Now()
	source := s.source(r)
	if r.URL.Path == api.PathJoin && status >= http.StatusBadRequest && status < http.StatusInternalServerError &&
		!s.joinRefusals.Take(source, now, nil) {
		wait := max(s.joinRefusals.Delay(source, now), time.Second)
		w.Header().Set("Retry-After", strconv.FormatInt(int64((wait+time.Second-1)/time.Second), 10))
		status, code = http.StatusTooManyRequests, api.CodeTooManyRequests
		msg = "too many refused joins from this address; try again after Retry-After seconds: " + msg
	}
	s.logRefusal(r, now, source, reason, status)
	if authReasons[reason] {
		ev := audit.Event{Action: audit.ActionRefused, Actor: s.cfg.NodeID, Reason: reason, Remote: r.RemoteAddr,
			Details: map[string]string{"path": r.URL.Path}}
		if id, ok := r.Context().Value(callerKey{}).(string); ok {
			ev.NodeID = id
		}
		if _, forwarded := r.Header[ForwardedCertHeader]; forwarded && !s.cfg.Shared && r.TLS != nil && len(r.TLS.VerifiedChains) > 0 {
			ev.Details["forwarded_by"] = r.TLS.VerifiedChains[0][0].Subject.CommonName
			// Where the forwarding manager says the call came from; as
			// reported by it, not checked.
			if xff := r.Header.Get("X-Forwarded-For"); xff != "" {
				ev.Details["forwarded_for"] = xff
			}
		}
		if !s.refusals.Admit(now, source, &ev) {
			s.metrics.failures.WithLabelValues("audit_refusal_suppressed").Inc()
		} else if _, err := s.cfg.Store.AppendAudit(r.Context(), ev); err != nil {
			s.log.Error("failed to record a refusal in the audit log", "err", err)
		}
	}
	writeJSON(w, status, api.Error{Code: code, Message: msg})
}

// throttle answers 429 Too Many Requests with Retry-After: wait rounded up
// to whole seconds. It is logged as refusals are, not audited.
func (s *Server) throttle(w http.ResponseWriter, r *http.Request, reason string, wait time.Duration, msg string) {
	s.metrics.failures.WithLabelValues(reason).Inc()
	s.logRefusal(r, s.clock.Now(), s.source(r), reason, http.StatusTooManyRequests)
	w.Header().Set("Retry-After", strconv.FormatInt(int64((wait+time.Second-1)/time.Second), 10))
	writeJSON(w, http.StatusTooManyRequests, api.Error{Code: api.CodeTooManyRequests, Message: msg})
}

// logRefusal logs a refused request, within the log's limit per source and
// reason, with the count of those left out.
func (s *Server) logRefusal(r *http.Request, now time.Time, source, reason string, status int) {
	v := s.refusalLog.Allow(now, source, reason)
	if !v.OK {
		return
	}
	attrs := []any{"path", r.URL.Path, "reason", reason, "source", source, "remote", r.RemoteAddr, "status", status}
	if v.Suppressed > 0 {
		attrs = append(attrs, "suppressed_before", v.Suppressed)
	}
	if len(v.Elsewhere) > 0 {
		attrs = append(attrs, "suppressed_elsewhere", v.Elsewhere)
	}
	if v.Forgotten > 0 {
		attrs = append(attrs, "suppressed_forgotten", v.Forgotten)
	}
	s.log.Warn("request refused", attrs...)
}

// source names the caller of r for the limits on refusals: the node ID of
// an authenticated caller, else its address (ratelimit.Source). For a call
// that a manager of this cluster forwards, the address is the one the
// manager reports (X-Forwarded-For), not the manager's.
func (s *Server) source(r *http.Request) string {
	if id, ok := r.Context().Value(sourceKey{}).(string); ok {
		return id
	}
	if _, fwd := r.Header[ForwardedCertHeader]; fwd && r.TLS != nil && len(r.TLS.VerifiedChains) > 0 {
		if xff := r.Header.Get("X-Forwarded-For"); xff != "" && s.isManagerCert(r.Context(), r.TLS.VerifiedChains[0][0]) {
			addrs := strings.Split(xff, ",")
			return ratelimit.Source(strings.TrimSpace(addrs[len(addrs)-1]))
		}
	}
	return ratelimit.Source(r.RemoteAddr)
}

// isManagerCert reports whether leaf is a manager certificate this cluster
// issued, to a node that is still a manager.
func (s *Server) isManagerCert(ctx context.Context, leaf *x509.Certificate) bool {
	c, err := s.cfg.Store.Cluster(ctx)
	if err != nil {
		return false
	}
	id, err := ca.IdentityOf(leaf, c.ID)
	if err != nil || id.Role != ca.RoleManager {
		return false
	}
	issued, err := s.cfg.Store.IssuedCertificate(ctx, signer.SerialHex(leaf.SerialNumber))
	if err != nil || issued.NodeID != id.NodeID {
		return false
	}
	n, err := s.cfg.Store.Node(ctx, id.NodeID)
	return err == nil && n.State != store.StateRemoved && n.Role == string(ca.RoleManager)
}

func (s *Server) internal(w http.ResponseWriter, r *http.Request, err error) {
	if callerLeft(r.Context(), err) {
		// Not the manager's failure, and a crowd of callers giving up
		// (an overloaded manager) must not flood the log with errors.
		s.metrics.failures.WithLabelValues("caller_left").Inc()
		s.log.Debug("the caller went away before the answer", "path", r.URL.Path, "remote", r.RemoteAddr)
		writeJSON(w, http.StatusServiceUnavailable, api.Error{Code: api.CodeUnavailable, Message: "the request was canceled"})
		return
	}
	if errors.Is(err, store.ErrUnavailable) {
		s.storeUnavailable(w, r, err)
		return
	}
	s.metrics.failures.WithLabelValues("internal").Inc()
	s.log.Error("internal error", "path", r.URL.Path, "err", err, hint.Attr(err))
	writeJSON(w, http.StatusInternalServerError, api.Error{Code: api.CodeInternal, Message: "internal error; see the manager's log"})
}

// storeUnavailable answers a call that failed because the store did not
// answer in time (store.ErrUnavailable: a manager cut off from etcd) with
// 503: this manager cannot serve it now; the caller may try again, or
// another manager. It counts it in chancery_failures_total
// (store_unavailable), and logs the store's error, which names the call
// timeout and etcd's endpoints, at most every storeErrorLogInterval, with
// how many calls failed so since the last such line; the caller is told
// neither.
func (s *Server) storeUnavailable(w http.ResponseWriter, r *http.Request, err error) {
	s.storeErrs.Add(1)
	s.storeErrLog.Do(func() {
		s.log.Error("the store did not answer: calls fail until it does", "path", r.URL.Path, "err", err,
			"failed_calls", s.storeErrs.Swap(0))
	})
	s.fail(w, r, http.StatusServiceUnavailable, api.CodeUnavailable, "store_unavailable",
		"this manager's store did not answer in time; try again later or through another manager")
}

// storeErrorLogInterval is the least time between two log lines of the
// store's errors (storeUnavailable).
const storeErrorLogInterval = 10 * time.Second

// callerLeft reports whether err is only the request's context ending:
// the caller closed the connection or gave up.
func callerLeft(ctx context.Context, err error) bool {
	return ctx.Err() != nil && (errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded))
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(v)
}
