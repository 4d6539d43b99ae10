package server

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"sort"
	"strconv"
	"sync"

	"github.com/chancery-pki/chancery/api"
	"github.com/chancery-pki/chancery/backends"
	"github.com/chancery-pki/chancery/ca"
	"github.com/chancery-pki/chancery/cluster"
	"github.com/chancery-pki/chancery/hint"
	"github.com/chancery-pki/chancery/internal/nodefilter"
	"github.com/chancery-pki/chancery/signer"
	"github.com/chancery-pki/chancery/store"
)

// adminRoutes mounts the administration API, each route wrapped by guard.
func (s *Server) adminRoutes(mux *http.ServeMux, guard func(http.Handler) http.Handler) {
	h := func(pattern string, f http.HandlerFunc) { mux.Handle(pattern, guard(f)) }
	h("GET "+api.PathAdminInfo, s.handleInfo)
	h("GET "+api.PathAdminNodes, s.handleNodes)
	h("GET "+api.PathAdminNode+"{id}", s.handleNode)
	h("DELETE "+api.PathAdminNode+"{id}", s.handleRemove)
	h("POST "+api.PathAdminPromote+"{id}", s.handleSetRole(ca.RoleManager))
	h("POST "+api.PathAdminDemote+"{id}", s.handleSetRole(ca.RoleWorker))
	h("GET "+api.PathAdminJoinToken+"{role}", s.handleJoinToken)
	h("POST "+api.PathAdminJoinToken+"{role}", s.handleJoinToken)
	h("POST "+api.PathAdminUpdate, s.handleUpdate)
	h("GET "+api.PathAdminAudit, s.handleAudit)
	h("GET "+api.PathAdminRoots, s.handleRoots)
	h("GET "+api.PathAdminCA, s.handleCA)
	h("POST "+api.PathAdminCARotate, s.handleRotate)
	h("POST "+api.PathAdminCAAbort, s.handleAbort)
}

// handleRoots lists the roots the cluster has had: certificates, backend
// names and time ranges, never backend settings.
func (s *Server) handleRoots(w http.ResponseWriter, r *http.Request) {
	c, ok := s.clusterRecord(w, r)
	if !ok {
		return
	}
	out := api.Roots{Roots: []api.RootRecord{}}
	for _, root := range c.Roots() {
		out.Roots = append(out.Roots, api.RootRecord{
			CertificatePEM: string(root.CertPEM), Backend: root.Backend.Type,
			ActiveFrom: root.ActiveFrom, ActiveUntil: root.ActiveUntil,
		})
	}
	writeJSON(w, http.StatusOK, out)
}

func (s *Server) handleAudit(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	from, limit := uint64(1), api.MaxAuditPage
	if v := q.Get("from"); v != "" {
		n, err := strconv.ParseUint(v, 10, 64)
		if err != nil {
			s.fail(w, r, http.StatusBadRequest, api.CodeBadRequest, "bad_request", "from must be a sequence number")
			return
		}
		from = n
	}
	if v := q.Get("limit"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > api.MaxAuditPage {
			s.fail(w, r, http.StatusBadRequest, api.CodeBadRequest, "bad_request", fmt.Sprintf("limit must be 1-%d", api.MaxAuditPage))
			return
		}
		limit = n
	}
	// One record more than the page, to know whether there are more.
	recs, err := s.cfg.Store.AuditRecords(r.Context(), from, limit+1)
	if err != nil {
		s.internal(w, r, err)
		return
	}
	page := api.AuditPage{Records: []api.AuditRecord{}}
	size := 0
	for i, rec := range recs {
		if i == limit || size+len(rec.Data) > api.MaxAuditPageBytes && i > 0 {
			page.More = true
			break
		}
		size += len(rec.Data)
		page.Records = append(page.Records, api.AuditRecord{Key: rec.Key, Data: rec.Data})
		page.Next = rec.Key + 1
	}
	writeJSON(w, http.StatusOK, page)
}

func (s *Server) handleInfo(w http.ResponseWriter, r *http.Request) {
	info, err := cluster.ReadInfo(r.Context(), s.cfg.Store)
	if err != nil {
		s.internal(w, r, err)
		return
	}
	c, ok := s.clusterRecord(w, r)
	if !ok {
		return
	}
	out := api.Info{
		ClusterID: info.ClusterID, LeaderID: s.leaderID(r.Context(), c), Managers: info.Managers, Nodes: info.Nodes,
		CertExpiry: info.CertExpiry, CertRecordRetention: info.CertRecordRetention, Backend: info.Backend, AdvertiseAddr: info.AdvertiseAddr,
		RootSubject: info.RootSubject, RootFingerprint: info.RootFingerprint, RootNotAfter: info.RootNotAfter,
	}
	if s.cfg.Authority != nil {
		if d, ok := s.cfg.Authority.Signer().(signer.Describer); ok {
			out.BackendDetails = d.Describe().Details
		}
	}
	if out.BackendDetails == nil {
		for _, k := range sortedKeys(c.Backend.Settings) {
			out.BackendDetails = append(out.BackendDetails, [2]string{k, c.Backend.Settings[k]})
		}
		// With no manager running, a backend that can read its key's
		// attributes without signing shows them.
		if b, err := backends.Get(c.Backend.Type); err == nil {
			if in, ok := b.(backends.Inspector); ok {
				details, err := in.Inspect(r.Context(), s.cfg.DataDir, c.Backend.Settings)
				if err != nil {
					msg := err.Error()
					for _, h := range hint.All(err) {
						msg += "; " + h
					}
					details = [][2]string{{"key attributes", "unavailable (" + msg + ")"}}
				}
				out.BackendDetails = append(out.BackendDetails, details...)
			}
		}
	}
	writeJSON(w, http.StatusOK, out)
}

// leaderID names the manager that leads now: the election's answer when
// the server has one (Config.Leader), else the cluster record's.
func (s *Server) leaderID(ctx context.Context, c store.Cluster) string {
	if s.cfg.Leader == nil {
		return c.LeaderID
	}
	id, err := s.cfg.Leader(ctx)
	if err != nil {
		s.log.Warn("reading the leader from the election failed", "err", err)
		return ""
	}
	return id
}

// elected is the election's answer (Config.Leader) for the refusals that
// protect the leader, or nil, which means the cluster record's LeaderID.
func (s *Server) elected() cluster.LeaderFunc {
	if s.cfg.Leader == nil {
		return nil
	}
	return s.cfg.Leader
}

func (s *Server) apiNode(n store.Node, leader string) api.Node {
	now := s.clock.Now()
	out := api.Node{
		ID: n.ID, Hostname: n.Hostname, Role: n.Role, Availability: "Active",
		CertSerial: n.CertSerial, CertNotAfter: n.CertNotAfter, LastSeen: s.live.lastSeen(n.ID), CreatedAt: n.CreatedAt,
	}
	ready := s.live.ready(n.ID, now)
	switch {
	case n.State == store.StateRemoved:
		out.Status = "Removed"
	case ready:
		out.Status = "Ready"
	default:
		out.Status = "Down"
	}
	if n.Role == string(ca.RoleManager) {
		switch {
		case n.ID == leader:
			out.ManagerStatus = "Leader"
		case ready:
			out.ManagerStatus = "Reachable"
		default:
			out.ManagerStatus = "Unreachable"
		}
	}
	return out
}

func (s *Server) handleNodes(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	limit := api.DefaultNodePage
	if v := q.Get("limit"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > api.MaxNodePage {
			s.fail(w, r, http.StatusBadRequest, api.CodeBadRequest, "bad_request", fmt.Sprintf("limit must be 1-%d", api.MaxNodePage))
			return
		}
		limit = n
	}
	filter, err := nodefilter.Parse(q["filter"])
	if err != nil {
		s.fail(w, r, http.StatusBadRequest, api.CodeBadRequest, "bad_filter", err.Error())
		return
	}
	c, ok := s.clusterRecord(w, r)
	if !ok {
		return
	}
	leader := s.leaderID(r.Context(), c)
	page, err := s.cfg.Store.ListNodes(r.Context(), store.ListOptions{After: q.Get("after"), Limit: limit})
	if errors.Is(err, store.ErrInvalidCursor) || errors.Is(err, store.ErrInvalidListOptions) {
		s.fail(w, r, http.StatusBadRequest, api.CodeBadRequest, "bad_cursor", "the after cursor is not one a node listing returned; start again without it")
		return
	} else if err != nil {
		s.internal(w, r, err)
		return
	}
	out := api.NodePage{Nodes: make([]api.Node, 0, len(page.Nodes)), Next: page.Next}
	for _, n := range page.Nodes {
		if n.State == store.StateRemoved {
			continue
		}
		if an := s.apiNode(n, leader); filter.Match(an) {
			out.Nodes = append(out.Nodes, an)
		}
	}
	w.Header().Set("Content-Type", "application/json")
	buf := pageBuffers.Get().(*[]byte)
	*buf = appendNodePage((*buf)[:0], out, q.Get("brief") == "true")
	// With its length the page is not chunked, and the client reads it
	// into a buffer of its size.
	w.Header().Set("Content-Length", strconv.Itoa(len(*buf)))
	w.Write(*buf)
	pageBuffers.Put(buf)
}

// pageBuffers hold the bytes of node pages: a page of MaxNodePage nodes
// is some 600 KB, which a listing of 100,000 nodes made and cleared fifty
// times.
var pageBuffers = sync.Pool{New: func() any { b := make([]byte, 0, 64<<10); return &b }}

func (s *Server) handleNode(w http.ResponseWriter, r *http.Request) {
	c, ok := s.clusterRecord(w, r)
	if !ok {
		return
	}
	n, err := cluster.FindNode(r.Context(), s.cfg.Store, r.PathValue("id"))
	if err != nil {
		s.adminError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, s.apiNode(n, s.leaderID(r.Context(), c)))
}

func (s *Server) handleSetRole(role ca.Role) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		n, err := cluster.SetRole(r.Context(), s.cfg.Store, r.PathValue("id"), role, s.elected())
		if err != nil {
			s.adminError(w, r, err)
			return
		}
		s.log.Info("node role changed", "node_id", n.ID, "role", n.Role)
		c, ok := s.clusterRecord(w, r)
		if !ok {
			return
		}
		writeJSON(w, http.StatusOK, s.apiNode(n, s.leaderID(r.Context(), c)))
	}
}

func (s *Server) handleRemove(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	n, err := cluster.FindNode(r.Context(), s.cfg.Store, id)
	if err != nil {
		s.adminError(w, r, err)
		return
	}
	down := !s.live.ready(n.ID, s.clock.Now())
	n, err = cluster.RemoveNode(r.Context(), s.cfg.Store, n.ID, r.URL.Query().Get("force") == "true", down, s.elected())
	if err != nil {
		s.adminError(w, r, err)
		return
	}
	s.log.Info("node removed", "node_id", n.ID)
	writeJSON(w, http.StatusOK, api.Node{ID: n.ID, Hostname: n.Hostname, Role: n.Role, Status: "Removed"})
}

// handleLeave marks the calling node as having left the cluster: its
// certificate is refused from then on.
func (s *Server) handleLeave(w http.ResponseWriter, r *http.Request) {
	var req api.LeaveRequest
	if !s.decode(w, r, &req) {
		return
	}
	p := peerOf(r)
	n, err := cluster.LeaveNode(r.Context(), s.cfg.Store, p.node.ID, req.Force, s.elected())
	if err != nil {
		s.adminError(w, r, err)
		return
	}
	s.log.Info("node left", "node_id", n.ID, "role", n.Role, "forced", req.Force)
	writeJSON(w, http.StatusOK, api.Node{ID: n.ID, Hostname: n.Hostname, Role: n.Role, Status: "Removed"})
}

func (s *Server) handleJoinToken(w http.ResponseWriter, r *http.Request) {
	role, err := ca.ParseRole(r.PathValue("role"))
	if err != nil {
		s.fail(w, r, http.StatusBadRequest, api.CodeBadRequest, "bad_role", err.Error())
		return
	}
	var token string
	if r.Method == http.MethodPost {
		if r.URL.Query().Get("rotate") != "true" {
			s.fail(w, r, http.StatusBadRequest, api.CodeBadRequest, "bad_request", "POST needs ?rotate=true")
			return
		}
		token, err = cluster.RotateJoinToken(r.Context(), s.cfg.Store, role, s.cfg.Rand)
		if err == nil {
			s.log.Info("join token rotated", "role", role.Short())
		}
	} else {
		token, err = cluster.JoinToken(r.Context(), s.cfg.Store, role)
	}
	if err != nil {
		s.internal(w, r, err)
		return
	}
	c, ok := s.clusterRecord(w, r)
	if !ok {
		return
	}
	writeJSON(w, http.StatusOK, api.JoinToken{Role: string(role), Token: token, AdvertiseAddr: c.AdvertiseAddr})
}

func (s *Server) handleUpdate(w http.ResponseWriter, r *http.Request) {
	var u api.Update
	if !s.decode(w, r, &u) {
		return
	}
	if u.CertExpiry != 0 {
		if err := cluster.SetCertExpiry(r.Context(), s.cfg.Store, u.CertExpiry); errors.Is(err, cluster.ErrInvalidCertExpiry) {
			s.fail(w, r, http.StatusBadRequest, api.CodeBadRequest, "bad_update", err.Error())
			return
		} else if err != nil {
			s.internal(w, r, err)
			return
		}
		s.log.Info("cert-expiry changed", "cert_expiry", u.CertExpiry.String())
	}
	if u.CertRecordRetention != nil {
		d := *u.CertRecordRetention
		if err := cluster.SetCertRecordRetention(r.Context(), s.cfg.Store, d); errors.Is(err, cluster.ErrInvalidRetention) {
			s.fail(w, r, http.StatusBadRequest, api.CodeBadRequest, "bad_update", err.Error())
			return
		} else if err != nil {
			s.internal(w, r, err)
			return
		}
		s.log.Info("cert-record-retention changed", "cert_record_retention", d.String())
	}
	w.WriteHeader(http.StatusNoContent)
}

// adminError maps the cluster package's refusals to HTTP answers, whose
// message is the refusal's Reason.
func (s *Server) adminError(w http.ResponseWriter, r *http.Request, err error) {
	var refusal *cluster.RefusalError
	if !errors.As(err, &refusal) {
		s.internal(w, r, err)
		return
	}
	msg := refusal.Reason
	switch {
	case errors.Is(err, cluster.ErrNodeNotFound):
		s.fail(w, r, http.StatusNotFound, api.CodeNotFound, "no_such_node", msg)
	case errors.Is(err, cluster.ErrIsLeader), errors.Is(err, cluster.ErrNodeIsManager),
		errors.Is(err, cluster.ErrNodeNotDown), errors.Is(err, cluster.ErrNodeRemoved),
		errors.Is(err, cluster.ErrSoleManager), errors.Is(err, cluster.ErrManagerLeave), errors.Is(err, cluster.ErrLastManager):
		s.fail(w, r, http.StatusConflict, api.CodeConflict, "conflict", msg)
	case errors.Is(err, cluster.ErrAmbiguousNode):
		// As fail answers, with the candidates besides.
		s.metrics.failures.WithLabelValues("ambiguous_name").Inc()
		s.logRefusal(r, s.clock.Now(), s.source(r), "ambiguous_name", http.StatusConflict)
		writeJSON(w, http.StatusConflict, api.Error{Code: api.CodeAmbiguousName, Message: msg, Candidates: refusal.Candidates})
	default:
		s.internal(w, r, err)
	}
}

func sortedKeys(m map[string]string) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

// clusterRecord reads the cluster record, or answers an internal error.
func (s *Server) clusterRecord(w http.ResponseWriter, r *http.Request) (store.Cluster, bool) {
	c, err := s.cfg.Store.Cluster(r.Context())
	if err != nil {
		s.internal(w, r, err)
		return c, false
	}
	return c, true
}
