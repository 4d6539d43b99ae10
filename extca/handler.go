package extca

import (
	"bytes"
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"encoding/json"
	"errors"
	"log/slog"
	"net/http"
	"slices"
	"time"

	"github.com/chancery-pki/chancery/audit"
	"github.com/chancery-pki/chancery/ca"
	"github.com/chancery-pki/chancery/internal/cfsslwire"
	"github.com/chancery-pki/chancery/internal/ratelimit"
)

// This file is the HTTP side: the three endpoints, authentication, the
// body cap, the replay defence around /authsign, and the record of every
// answer.

// The endpoint's paths, as CFSSL serves them.
const (
	PathSign     = "/api/v1/cfssl/sign"
	PathAuthSign = "/api/v1/cfssl/authsign"
	PathInfo     = "/api/v1/cfssl/info"
)

// Usages the info endpoint reports, in CFSSL's words.
var (
	nodeUsages = []string{"digital signature", "key encipherment", "server auth", "client auth"}
	caUsages   = []string{"cert sign", "crl sign"}
)

// Handler returns the endpoint's HTTP handler. It expects TLS (see
// TLSConfig): /sign authenticates its clients by their verified
// certificate.
func (s *Server) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.Handle(PathSign, s.post(s.handleSign))
	mux.Handle(PathAuthSign, s.post(s.handleAuthSign))
	mux.Handle(PathInfo, s.post(s.handleInfo))
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		writeRefusal(w, &Refusal{Status: http.StatusNotFound, Code: http.StatusNotFound, Reason: reasonNotFound,
			Message: "no such endpoint: this CA serves POST " + PathSign + ", " + PathAuthSign + " and " + PathInfo})
	})
	return mux
}

// post admits POST requests whose body fits the cap, and passes the body.
func (s *Server) post(h func(w http.ResponseWriter, r *http.Request, body []byte)) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.TLS == nil {
			writeRefusal(w, badRequest(reasonMalformed, "this CA answers over TLS only: use an https:// URL"))
			return
		}
		if r.Method != http.MethodPost {
			writeRefusal(w, &Refusal{Status: http.StatusMethodNotAllowed, Code: http.StatusMethodNotAllowed, Reason: reasonMethod,
				Message: "method " + quote(r.Method) + " is not allowed: use POST"})
			return
		}
		body, err := readBody(w, r, s.cfg.MaxBodyBytes)
		if err != nil {
			var tooLarge *http.MaxBytesError
			if errors.As(err, &tooLarge) {
				s.refuse(w, r, Client{}, &Refusal{Status: http.StatusRequestEntityTooLarge, Code: http.StatusRequestEntityTooLarge, Reason: reasonTooLarge,
					Message: "the request body is larger than " + itoa(s.cfg.MaxBodyBytes) + " bytes"})
				return
			}
			s.refuse(w, r, Client{}, badRequest(reasonMalformed, "failed to read the request body: %s", oneLine(err.Error())))
			return
		}
		h(w, r, body)
	})
}

// readBody reads r's body, at most max bytes.
func readBody(w http.ResponseWriter, r *http.Request, max int64) ([]byte, error) {
	size := int64(bytes.MinRead)
	if r.ContentLength > 0 && r.ContentLength <= max {
		size = r.ContentLength + 1 // +1: no second read to see EOF
	}
	buf := bytes.NewBuffer(make([]byte, 0, size))
	_, err := buf.ReadFrom(http.MaxBytesReader(w, r.Body, max))
	return buf.Bytes(), err
}

// handleSign serves /sign: the client is its verified certificate.
func (s *Server) handleSign(w http.ResponseWriter, r *http.Request, body []byte) {
	if r.TLS == nil || len(r.TLS.VerifiedChains) == 0 || len(r.TLS.VerifiedChains[0]) == 0 {
		msg := "authentication required: /sign needs a client certificate that chains to this CA's client CAs (for a swarm, a manager's node certificate); or use /authsign with an auth key"
		if s.tls.Load().ClientCAs == nil {
			msg = "authentication required: this CA accepts no client certificates; use /authsign with an auth key"
		}
		s.refuse(w, r, Client{}, badRequest(reasonNoClientCert, "%s", msg))
		return
	}
	s.sign(w, r, Client{Cert: r.TLS.VerifiedChains[0][0]}, body, nil)
}

// handleAuthSign serves /authsign: the client is the auth key whose
// token verifies; a token is spent by the certificate it gets (see
// replay.go).
func (s *Server) handleAuthSign(w http.ResponseWriter, r *http.Request, body []byte) {
	var ar cfsslwire.AuthRequest
	if err := json.Unmarshal(body, &ar); err != nil {
		rf := jsonRefusal(err)
		rf.Message = "malformed authsign request: want {\"token\": base64, \"request\": base64 of the sign request's JSON}: " + rf.Message
		s.refuse(w, r, Client{}, rf)
		return
	}
	if len(ar.Request) == 0 {
		s.refuse(w, r, Client{}, badRequest(reasonMalformed, "malformed authsign request: request is missing or empty"))
		return
	}
	client, rf := s.verifyToken(&ar)
	if rf != nil {
		s.refuse(w, r, client, rf)
		return
	}
	// CFSSL's clients (the cfssl CLI, chancery's backend) always send the
	// time of the request, in Unix seconds.
	now := s.cfg.Clock.Now()
	if ar.Timestamp == 0 {
		s.refuse(w, r, client, badRequest(reasonStaleTimestamp,
			"authsign request has no timestamp: send the request's time in Unix seconds, as CFSSL's clients do"))
		return
	}
	if ts := time.Unix(ar.Timestamp, 0); ts.Before(now.Add(-s.cfg.ReplayWindow)) || ts.After(now.Add(s.cfg.ReplayWindow)) {
		s.refuse(w, r, client, badRequest(reasonStaleTimestamp,
			"authsign timestamp %s is more than %s from this CA's clock (%s): send a fresh request, and check the client's clock",
			ts.UTC().Format(time.RFC3339), s.cfg.ReplayWindow, now.UTC().Format(time.RFC3339)))
		return
	}
	// The cache and the audit log know a token by its SHA-256, never by
	// itself.
	token := sha256.Sum256(ar.Token)
	if rf := s.replay.reserve(token, now); rf != nil {
		s.refuse(w, r, client, rf)
		return
	}
	if s.sign(w, r, client, ar.Request, &token) {
		s.replay.spend(token, now)
	} else {
		s.replay.release(token)
	}
}

// verifyToken finds the auth key under which ar's token verifies. Every
// key is tried, each comparison in constant time.
func (s *Server) verifyToken(ar *cfsslwire.AuthRequest) (Client, *Refusal) {
	invalid := badRequest(reasonInvalidToken, "invalid token: it verifies under none of this CA's auth keys (the token is base64 of HMAC-SHA-256(key, request))")
	if len(s.keys) == 0 {
		return Client{}, badRequest(reasonInvalidToken, "this CA has no auth keys: use /sign with a client certificate")
	}
	if len(ar.Token) != sha256.Size {
		return Client{}, invalid
	}
	name := ""
	for _, k := range s.keys {
		if k.key.Verify(ar.Request, ar.Token) && name == "" {
			name = k.name
		}
	}
	if name == "" {
		return Client{}, invalid
	}
	return Client{AuthKey: name}, nil
}

// sign serves a sign request of client and reports whether a certificate
// was issued. token is the SHA-256 of an authsign request's token, which
// the certificate's audit entry records; nil for /sign.
func (s *Server) sign(w http.ResponseWriter, r *http.Request, client Client, body []byte, token *[sha256.Size]byte) bool {
	rule, rf := s.cfg.Policy.ruleFor(client)
	if rf != nil {
		s.refuse(w, r, client, rf)
		return false
	}
	req, rf := parseSignRequest(body)
	if rf == nil {
		rf = rule.authorize(client, req)
	}
	if rf == nil && req.profile != ProfileCA && slices.Contains(s.cfg.ReservedClusters, req.clusterID) {
		rf = policyRefusal("subject O %s is this CA's own cluster: its node certificates come only from its own API, never from this endpoint", quote(req.clusterID))
	}
	if rf != nil {
		s.refuse(w, r, client, rf)
		return false
	}
	iss, rf := s.issue(r.Context(), req, s.cfg.Clock.Now())
	if rf != nil {
		s.refuse(w, r, client, rf)
		return false
	}
	if err := s.recordIssued(r, client, req, iss.cert, token); err != nil {
		s.log.Error("a certificate was issued but not recorded in the audit log; it was withheld", "err", err, "serial", serialHex(iss.cert))
		writeRefusal(w, internal("the certificate could not be recorded in the CA's audit log, so it was withheld: see the CA's log; try again later"))
		return false
	}
	if err := writeCertificate(w, iss.chain); err != nil {
		s.log.Warn("failed to send a certificate", "err", err, "remote", r.RemoteAddr)
	}
	if s.log.Enabled(r.Context(), slog.LevelInfo) {
		s.log.Info("certificate issued", "client", client.String(), "profile", profileName(req.profile),
			"subject", iss.cert.Subject.String(), "serial", serialHex(iss.cert), "remote", r.RemoteAddr)
	}
	return true
}

// handleInfo serves /info: the certificate this CA signs with, and the
// profile's usages and expiry. It needs no authentication: it tells only
// what is public.
func (s *Server) handleInfo(w http.ResponseWriter, r *http.Request, body []byte) {
	var ir cfsslwire.InfoRequest
	if len(bytes.TrimSpace(body)) > 0 {
		if err := json.Unmarshal(body, &ir); err != nil {
			rf := jsonRefusal(err)
			rf.Message = "malformed info request: " + rf.Message
			writeRefusal(w, rf)
			return
		}
	}
	iss, err := s.issuer(r.Context())
	if err != nil {
		s.log.Warn("external CA endpoint: no issuer", "err", err)
		writeRefusal(w, unavailable())
		return
	}
	res := cfsslwire.InfoResult{Certificate: string(ca.EncodeCertificatesPEM(iss.CA()))}
	switch ir.Profile {
	case ProfileDefault:
		res.Usages, res.Expiry = nodeUsages, s.cfg.CertExpiry.String()
	case ProfileCA:
		res.Usages, res.Expiry = caUsages, s.cfg.CAExpiry.String()
	default:
		writeRefusal(w, withCode(CodeUnknownProfile, reasonUnknownProfile,
			"unknown profile %s: this CA has the default profile (\"\") and %q", quote(ir.Profile), ProfileCA))
		return
	}
	if err := writeSuccess(w, res); err != nil {
		s.log.Warn("failed to send the info answer", "err", err, "remote", r.RemoteAddr)
	}
}

// refuse answers rf, logs it and records it in the audit log, both
// limited per source (the client once authenticated, else its address) and
// reason (audit.RefusalLimiter).
func (s *Server) refuse(w http.ResponseWriter, r *http.Request, client Client, rf *Refusal) {
	now := s.cfg.Clock.Now()
	source := ratelimit.Source(r.RemoteAddr)
	if client.AuthKey != "" || client.Cert != nil {
		source = client.String()
	}
	if v := s.refusalLog.Allow(now, source, rf.Reason); v.OK {
		attrs := []any{"path", r.URL.Path, "reason", rf.Reason, "status", rf.Status,
			"client", client.String(), "remote", r.RemoteAddr, "message", rf.Message}
		if v.Suppressed > 0 {
			attrs = append(attrs, "suppressed_before", v.Suppressed)
		}
		if len(v.Elsewhere) > 0 {
			attrs = append(attrs, "suppressed_elsewhere", v.Elsewhere)
		}
		if v.Forgotten > 0 {
			attrs = append(attrs, "suppressed_forgotten", v.Forgotten)
		}
		s.log.Warn("external CA request refused", attrs...)
	}
	if s.cfg.Audit != nil {
		ev := s.event(audit.ActionRefused, r.RemoteAddr, &client)
		ev.Reason = rf.Reason
		ev.Details["path"] = r.URL.Path
		ev.Details["message"] = rf.Message
		if !s.refusals.Admit(now, source, &ev) {
			s.log.Debug("refusal left out of the audit log (rate limit)")
		} else if _, err := s.cfg.Audit.AppendAudit(r.Context(), ev); err != nil {
			s.log.Error("failed to record a refusal in the audit log", "err", err)
		}
	}
	writeRefusal(w, rf)
}

// recordIssued records an issued certificate in the audit log.
func (s *Server) recordIssued(r *http.Request, client Client, req *signRequest, cert *x509.Certificate, token *[sha256.Size]byte) error {
	if s.cfg.Audit == nil {
		return nil
	}
	ev := s.event(audit.ActionIssued, r.RemoteAddr, &client)
	ev.Serial = serialHex(cert)
	ev.NotAfter = cert.NotAfter
	ev.IssuerKeyID = hex.EncodeToString(cert.AuthorityKeyId)
	ev.Details["profile"] = profileName(req.profile)
	if token != nil {
		// What recoverReplays reads back at start: the token is spent.
		ev.Details[DetailAuthSignToken] = hex.EncodeToString(token[:])
	}
	if req.profile == ProfileCA {
		ev.Details["subject"] = cert.Subject.String()
	} else {
		ev.NodeID, ev.Role = req.nodeID, string(req.role)
		ev.Details["cluster_id"] = req.clusterID
	}
	_, err := s.cfg.Audit.AppendAudit(r.Context(), ev)
	return err
}

// event is an audit event of this endpoint.
func (s *Server) event(action audit.Action, remote string, client *Client) audit.Event {
	ev := audit.Event{Action: action, Actor: s.cfg.Actor, Remote: remote, Details: map[string]string{"via": "external-ca"}}
	if iss := s.loadedIssuer(); iss != nil {
		ev.Backend = iss.Backend()
	}
	if client != nil {
		ev.Details["client"] = client.String()
	}
	return ev
}

func profileName(p string) string {
	if p == ProfileDefault {
		return "default"
	}
	return p
}
