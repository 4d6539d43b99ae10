// Package client calls the manager's API (package api): the root fetch and
// join that a new node makes, the renewals and heartbeats of a member, and
// the administration calls of the CLI, over HTTPS or the manager's unix
// socket.
package client

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/chancery-pki/chancery/api"
	"github.com/chancery-pki/chancery/audit"
	"github.com/chancery-pki/chancery/ca"
)

// ServerName is the name a node checks the manager's certificate against:
// every manager certificate carries it as a DNS name.
const ServerName = string(ca.RoleManager)

// MaxResponseBytes bounds every answer read from a manager.
const MaxResponseBytes = 1 << 20

// DefaultTimeout bounds each call.
const DefaultTimeout = 30 * time.Second

// APIError is an error answer from the manager.
type APIError struct {
	Status  int
	Code    string
	Message string
	// RetryAfter is the manager's Retry-After, with a 429 or a 503: how
	// long to wait before trying again. Zero when it sent none.
	RetryAfter time.Duration
	// Candidates, with api.CodeAmbiguousName, are the IDs of the nodes an
	// ambiguous node name matches.
	Candidates []string
}

func (e *APIError) Error() string { return e.Message }

// Client calls one manager.
type Client struct {
	base string
	hc   *http.Client
	// roots are the roots new connections verify the manager under; nil
	// for a client that does not verify it (FetchRoot) or does not use TLS.
	roots atomic.Pointer[x509.CertPool]
}

// New returns a client of the manager at addr (HOST:PORT) that trusts the
// roots (refusing a certificate the external CA endpoint issued: see
// CheckIssuer) and, when cert is not nil, authenticates with the certificate it
// returns at each handshake (so that a renewed certificate is used at
// once). With roots nil the manager is not authenticated: use that only for
// FetchRoot, whose answer the caller checks against a join token's digest.
func New(addr string, roots *x509.CertPool, cert func() *tls.Certificate) *Client {
	cfg := &tls.Config{MinVersion: tls.VersionTLS12, ServerName: ServerName, RootCAs: roots}
	if roots == nil {
		cfg.InsecureSkipVerify = true // the answer is pinned by the token's digest
	} else {
		cfg.VerifyConnection = CheckIssuer
	}
	if cert != nil {
		cfg.GetClientCertificate = func(*tls.CertificateRequestInfo) (*tls.Certificate, error) {
			if c := cert(); c != nil {
				return c, nil
			}
			return &tls.Certificate{}, nil
		}
	}
	tr := &http.Transport{
		TLSClientConfig:     cfg,
		ForceAttemptHTTP2:   true,
		MaxIdleConnsPerHost: 64,
		TLSHandshakeTimeout: handshakeTimeout,
	}
	c := &Client{base: "https://" + addr, hc: &http.Client{Transport: tr, Timeout: DefaultTimeout}}
	if roots != nil {
		// Each new connection verifies the manager under the roots in
		// force when it is made (SetRoots), from TLSClientConfig.
		c.roots.Store(roots)
		tr.DialTLSContext = func(ctx context.Context, network, addr string) (net.Conn, error) {
			return c.dialTLS(ctx, tr.TLSClientConfig, network, addr)
		}
	}
	return c
}

// handshakeTimeout bounds a connection's dial and TLS handshake.
const handshakeTimeout = 10 * time.Second

// SetRoots makes roots the ones that the manager's certificate is verified
// under on every connection made from now on. Connections already made
// stay: they were authenticated when they were made, and a node that takes
// a new root during a rotation (all of them, within one heartbeat) does
// not make the manager do a TLS handshake each again. It does nothing to
// a client made without roots.
func (c *Client) SetRoots(roots *x509.CertPool) {
	if roots != nil && c.roots.Load() != nil {
		c.roots.Store(roots)
	}
}

// dialTLS connects to addr and makes a TLS handshake with base, under the
// roots in force.
func (c *Client) dialTLS(ctx context.Context, base *tls.Config, network, addr string) (net.Conn, error) {
	cfg := base.Clone()
	cfg.RootCAs = c.roots.Load()
	cfg.NextProtos = []string{"h2", "http/1.1"}
	ctx, cancel := context.WithTimeout(ctx, handshakeTimeout)
	defer cancel()
	d := tls.Dialer{NetDialer: &net.Dialer{KeepAlive: 30 * time.Second}, Config: cfg}
	return d.DialContext(ctx, network, addr)
}

// NewForCluster is New for a member of a known cluster: it also requires
// the manager's certificate to be a manager's of that cluster (O=clusterID,
// OU=swarm-manager), not merely one that chains to the root, which the
// root may also have signed for other clusters (as an external CA).
func NewForCluster(addr string, roots *x509.CertPool, cert func() *tls.Certificate, clusterID string) *Client {
	c := New(addr, roots, cert)
	tr := c.hc.Transport.(*http.Transport)
	tr.TLSClientConfig.VerifyConnection = func(cs tls.ConnectionState) error {
		return CheckManager(cs, clusterID)
	}
	return c
}

// CheckIssuer checks that a verified TLS peer's certificate was issued by
// the cluster's own issuer: it refuses one that chains to the root through
// the external CA endpoint's intermediate (ca.IsExternalCA), which the
// endpoint uses for other clusters' (swarms') nodes, so that a swarm manager
// cannot pose as a manager to a node that joins with a token.
func CheckIssuer(cs tls.ConnectionState) error {
	if len(cs.PeerCertificates) == 0 {
		return errors.New("client: the manager presented no certificate")
	}
	if err := ca.CheckNotExternal(cs.VerifiedChains); err != nil {
		return fmt.Errorf("client: the server's certificate (%s) is not a manager's: %w", cs.PeerCertificates[0].Subject, err)
	}
	return nil
}

// CheckManager checks that a verified TLS peer is a manager of clusterID,
// issued by the cluster's own issuer (CheckIssuer).
func CheckManager(cs tls.ConnectionState, clusterID string) error {
	if err := CheckIssuer(cs); err != nil {
		return err
	}
	s := cs.PeerCertificates[0].Subject
	if len(s.Organization) != 1 || s.Organization[0] != clusterID ||
		len(s.OrganizationalUnit) != 1 || s.OrganizationalUnit[0] != string(ca.RoleManager) {
		return fmt.Errorf("client: the server's certificate (%s) is not a manager's of cluster %s", s, clusterID)
	}
	return nil
}

// NewSocket returns a client of the administration API on the manager's
// unix socket at path.
func NewSocket(path string) *Client {
	tr := &http.Transport{DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
		var d net.Dialer
		return d.DialContext(ctx, "unix", path)
	}}
	return &Client{base: "http://chancery", hc: &http.Client{Transport: tr, Timeout: DefaultTimeout}}
}

// NewHandler returns a client that calls h in-process, as the CLI calls the
// administration API over a data directory when no manager is running.
func NewHandler(h http.Handler) *Client {
	return &Client{base: "http://local", hc: &http.Client{Transport: handlerTransport{h}, Timeout: DefaultTimeout}}
}

type handlerTransport struct{ h http.Handler }

func (t handlerTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	rec := httptest.NewRecorder()
	t.h.ServeHTTP(rec, r)
	return rec.Result(), nil
}

// Close releases idle connections.
func (c *Client) Close() { c.hc.CloseIdleConnections() }

func (c *Client) do(ctx context.Context, method, path string, in, out any) error {
	data, err := c.call(ctx, method, path, in)
	if err != nil || out == nil || data == nil {
		return err
	}
	if err := json.Unmarshal(data, out); err != nil {
		return fmt.Errorf("client: the manager's answer is not valid JSON: %w", err)
	}
	return nil
}

// call sends in (when not nil) as JSON and returns the body of a
// successful answer, nil for 204 No Content, or the error of a failed one.
func (c *Client) call(ctx context.Context, method, path string, in any) ([]byte, error) {
	var body io.Reader
	if in != nil {
		b, err := json.Marshal(in)
		if err != nil {
			return nil, fmt.Errorf("client: %w", err)
		}
		body = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, c.base+path, body)
	if err != nil {
		return nil, fmt.Errorf("client: %w", err)
	}
	if in != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := c.hc.Do(req)
	if err != nil {
		return nil, explainTransport(err)
	}
	defer resp.Body.Close()
	data, err := readBody(resp)
	if err != nil {
		return nil, fmt.Errorf("client: failed to read the manager's answer: %w", err)
	}
	if len(data) > MaxResponseBytes {
		return nil, fmt.Errorf("client: the manager's answer is larger than %d bytes", MaxResponseBytes)
	}
	if resp.StatusCode >= 300 {
		var e api.Error
		if json.Unmarshal(data, &e) != nil || e.Message == "" {
			e.Message = fmt.Sprintf("the manager answered %s", resp.Status)
		}
		return nil, &APIError{Status: resp.StatusCode, Code: e.Code, Message: e.Message, RetryAfter: retryAfter(resp.Header.Get("Retry-After")), Candidates: e.Candidates}
	}
	if resp.StatusCode == http.StatusNoContent {
		return nil, nil
	}
	return data, nil
}

// readBody reads at most MaxResponseBytes+1 bytes of resp's body, into a
// buffer of its Content-Length when the manager sent one.
func readBody(resp *http.Response) ([]byte, error) {
	body := io.LimitReader(resp.Body, MaxResponseBytes+1)
	if n := resp.ContentLength; n > 0 && n <= MaxResponseBytes {
		buf := make([]byte, n)
		if _, err := io.ReadFull(body, buf); err != nil {
			// Shorter than its length: cut short.
			return nil, err
		}
		// The transport ends the body at its length; whatever else
		// comes is read as it comes.
		rest, err := io.ReadAll(body)
		return append(buf, rest...), err
	}
	return io.ReadAll(body)
}

// MaxRetryAfter caps the Retry-After a client believes.
const MaxRetryAfter = time.Hour

// retryAfter reads a Retry-After header in seconds (the only form the
// manager sends), capped at MaxRetryAfter; zero when absent or unreadable.
func retryAfter(h string) time.Duration {
	n, err := strconv.ParseInt(strings.TrimSpace(h), 10, 64)
	if err != nil || n <= 0 {
		return 0
	}
	if n > int64(MaxRetryAfter/time.Second) {
		return MaxRetryAfter
	}
	return time.Duration(n) * time.Second
}

// explainTransport turns TLS failures into messages that say what to check.
func explainTransport(err error) error {
	var uerr *url.Error
	if errors.As(err, &uerr) {
		err = uerr.Err
	}
	var verr *tls.CertificateVerificationError
	switch {
	case errors.As(err, &verr):
		return fmt.Errorf("client: the manager's certificate does not chain to this node's root CA: %w", err)
	case errors.Is(err, context.DeadlineExceeded):
		return fmt.Errorf("client: the manager did not answer in time: %w", err)
	}
	// Over TCP, crypto/tls reports an alert from the manager as a
	// *net.OpError "remote error" around an unexported alert type, not as
	// tls.AlertError (which only QUIC returns): match both.
	var alert tls.AlertError
	var op *net.OpError
	if errors.As(err, &alert) ||
		errors.As(err, &op) && op.Op == "remote error" && strings.Contains(op.Err.Error(), "certificate") {
		return fmt.Errorf("client: the manager refused this node's certificate during the TLS handshake (expired, or from another cluster's CA?): %w", err)
	}
	return fmt.Errorf("client: %w", err)
}

// FetchRoot returns the manager's root bundle. The connection is not
// authenticated: check the answer against the join token's digest.
func (c *Client) FetchRoot(ctx context.Context) ([]byte, error) {
	var out api.Root
	if err := c.do(ctx, http.MethodGet, api.PathRoot, nil, &out); err != nil {
		return nil, err
	}
	return []byte(out.RootCAPEM), nil
}

// Join asks to join with a token.
func (c *Client) Join(ctx context.Context, req api.JoinRequest) (*api.Certificate, error) {
	var out api.Certificate
	if err := c.do(ctx, http.MethodPost, api.PathJoin, req, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// Renew asks for a new certificate for the calling node.
func (c *Client) Renew(ctx context.Context, req api.RenewRequest) (*api.Certificate, error) {
	var out api.Certificate
	if err := c.do(ctx, http.MethodPost, api.PathRenew, req, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// Status sends a heartbeat.
func (c *Client) Status(ctx context.Context, req api.StatusRequest) (*api.Status, error) {
	var out api.Status
	if err := c.do(ctx, http.MethodPost, api.PathStatus, req, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// Leave tells the manager that the calling node leaves the cluster: its
// certificate is refused from then on.
func (c *Client) Leave(ctx context.Context, force bool) (*api.Node, error) {
	var out api.Node
	if err := c.do(ctx, http.MethodPost, api.PathLeave, api.LeaveRequest{Force: force}, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// Info returns the cluster's information.
func (c *Client) Info(ctx context.Context) (*api.Info, error) {
	var out api.Info
	if err := c.do(ctx, http.MethodGet, api.PathAdminInfo, nil, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// Nodes lists every node that is not removed, reading every page.
func (c *Client) Nodes(ctx context.Context) ([]api.Node, error) {
	var out []api.Node
	err := c.EachNodePage(ctx, api.NodeQuery{Limit: api.MaxNodePage}, func(p *api.NodePage) error {
		out = append(out, p.Nodes...)
		return nil
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// NodePage returns one page of the node listing.
func (c *Client) NodePage(ctx context.Context, nq api.NodeQuery) (*api.NodePage, error) {
	q := url.Values{}
	if nq.After != "" {
		q.Set("after", nq.After)
	}
	if nq.Limit > 0 {
		q.Set("limit", strconv.Itoa(nq.Limit))
	}
	for _, f := range nq.Filters {
		q.Add("filter", f)
	}
	if nq.Brief {
		q.Set("brief", "true")
	}
	path := api.PathAdminNodes
	if len(q) > 0 {
		path += "?" + q.Encode()
	}
	data, err := c.call(ctx, http.MethodGet, path, nil)
	if err != nil {
		return nil, err
	}
	out, err := decodeNodePage(data)
	if err != nil {
		return nil, fmt.Errorf("client: the manager's answer is not valid JSON: %w", err)
	}
	return out, nil
}

// EachNodePage calls fn with each page of the node listing q asks for
// (q.After is ignored), in order, fetching the next page while fn handles
// the current one, until the last page or the first error.
func (c *Client) EachNodePage(ctx context.Context, q api.NodeQuery, fn func(*api.NodePage) error) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	type result struct {
		page *api.NodePage
		err  error
	}
	pages := make(chan result, 1)
	go func() {
		defer close(pages)
		q.After = ""
		for {
			p, err := c.NodePage(ctx, q)
			select {
			case pages <- result{p, err}:
			case <-ctx.Done():
				return
			}
			if err != nil || p.Next == "" {
				return
			}
			q.After = p.Next
		}
	}()
	for r := range pages {
		if r.err != nil {
			return r.err
		}
		if err := fn(r.page); err != nil {
			return err
		}
	}
	return nil
}

// Node inspects one node, by ID, unique ID prefix or host name.
func (c *Client) Node(ctx context.Context, id string) (*api.Node, error) {
	var out api.Node
	if err := c.do(ctx, http.MethodGet, api.PathAdminNode+url.PathEscape(id), nil, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// Promote makes a node a manager.
func (c *Client) Promote(ctx context.Context, id string) (*api.Node, error) {
	var out api.Node
	if err := c.do(ctx, http.MethodPost, api.PathAdminPromote+url.PathEscape(id), nil, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// Demote makes a node a worker.
func (c *Client) Demote(ctx context.Context, id string) (*api.Node, error) {
	var out api.Node
	if err := c.do(ctx, http.MethodPost, api.PathAdminDemote+url.PathEscape(id), nil, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// Remove removes a node from the cluster.
func (c *Client) Remove(ctx context.Context, id string, force bool) (*api.Node, error) {
	var out api.Node
	path := api.PathAdminNode + url.PathEscape(id)
	if force {
		path += "?force=true"
	}
	if err := c.do(ctx, http.MethodDelete, path, nil, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// JoinToken returns, or with rotate replaces and returns, a role's token.
func (c *Client) JoinToken(ctx context.Context, role ca.Role, rotate bool) (*api.JoinToken, error) {
	var out api.JoinToken
	method, path := http.MethodGet, api.PathAdminJoinToken+role.Short()
	if rotate {
		method, path = http.MethodPost, path+"?rotate=true"
	}
	if err := c.do(ctx, method, path, nil, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// Update changes cluster settings.
func (c *Client) Update(ctx context.Context, u api.Update) error {
	return c.do(ctx, http.MethodPost, api.PathAdminUpdate, u, nil)
}

// Audit returns a page of the audit log's stored records from sequence
// number from on.
func (c *Client) Audit(ctx context.Context, from uint64, limit int) (*api.AuditPage, error) {
	var out api.AuditPage
	path := fmt.Sprintf("%s?from=%d&limit=%d", api.PathAdminAudit, from, limit)
	if err := c.do(ctx, http.MethodGet, path, nil, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// Roots returns the roots the cluster has had, oldest first, the current
// root last.
func (c *Client) Roots(ctx context.Context) ([]api.RootRecord, error) {
	var out api.Roots
	if err := c.do(ctx, http.MethodGet, api.PathAdminRoots, nil, &out); err != nil {
		return nil, err
	}
	return out.Roots, nil
}

// AuditRecords reads the whole audit log from sequence number from on,
// page by page.
func (c *Client) AuditRecords(ctx context.Context, from uint64) ([]audit.Record, error) {
	var recs []audit.Record
	for {
		page, err := c.Audit(ctx, from, api.MaxAuditPage)
		if err != nil {
			return nil, err
		}
		for _, r := range page.Records {
			recs = append(recs, audit.Record{Key: r.Key, Data: r.Data})
		}
		if !page.More {
			return recs, nil
		}
		if page.Next <= from {
			return nil, fmt.Errorf("client: the manager's audit paging does not advance (from %d, next %d)", from, page.Next)
		}
		from = page.Next
	}
}

// CA returns the root nodes trust and the root rotation in progress.
func (c *Client) CA(ctx context.Context) (*api.CAStatus, error) {
	var out api.CAStatus
	if err := c.do(ctx, http.MethodGet, api.PathAdminCA, nil, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// RotateCA starts a root rotation, replaces its target, or excludes its
// stragglers (see api.RotateRequest).
func (c *Client) RotateCA(ctx context.Context, req api.RotateRequest) (*api.CAStatus, error) {
	var out api.CAStatus
	if err := c.do(ctx, http.MethodPost, api.PathAdminCARotate, req, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// AbortRotation aborts the root rotation in progress, before the switch
// of trust.
func (c *Client) AbortRotation(ctx context.Context) (*api.CAStatus, error) {
	var out api.CAStatus
	if err := c.do(ctx, http.MethodPost, api.PathAdminCAAbort, struct{}{}, &out); err != nil {
		return nil, err
	}
	return &out, nil
}
