package server

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/chancery-pki/chancery/api"
	"github.com/chancery-pki/chancery/audit"
	"github.com/chancery-pki/chancery/ca"
	"github.com/chancery-pki/chancery/client"
)

// forwarder runs a Forwarder in front of e's manager for a joined manager
// whose certificate is mgr, and returns its address.
func (e *env) forwarder(t *testing.T, mgr *tls.Certificate) string {
	t.Helper()
	f, err := NewForwarder(ForwarderConfig{
		Leader:      func() string { return e.addr },
		Certificate: func() *tls.Certificate { return mgr },
		Roots:       func() *x509.CertPool { return e.roots },
		Logger:      e.srv.log,
	})
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); f.Serve(ctx, ln) }()
	t.Cleanup(func() { cancel(); <-done })
	return ln.Addr().String()
}

func (e *env) clientAt(t *testing.T, addr string, cert *tls.Certificate) *client.Client {
	var f func() *tls.Certificate
	if cert != nil {
		f = func() *tls.Certificate { return cert }
	}
	c := client.New(addr, e.roots, f)
	t.Cleanup(c.Close)
	return c
}

// TestForwarderAuthorizesTheCaller checks that a joined manager's
// forwarding API never lends its own identity: a caller without a
// certificate gets no administration and no certificate, a worker renews as
// itself, a forwarded call cannot be forwarded again, and a manager's
// administration through it is recorded against that manager.
func TestForwarderAuthorizesTheCaller(t *testing.T) {
	e := newEnv(t, envOptions{quiet: true})
	ctx := context.Background()
	c, err := e.st.Cluster(ctx)
	if err != nil {
		t.Fatal(err)
	}
	mgrCert, mgrOut := e.join(t, c.ManagerToken)
	workerCert, workerOut := e.join(t, c.WorkerToken)
	fwd := e.forwarder(t, mgrCert)

	t.Run("NoCertificateNoAdministration", func(t *testing.T) {
		before := e.state(t)
		_, err := e.clientAt(t, fwd, nil).JoinToken(ctx, ca.RoleManager, false)
		apiError(t, err, http.StatusUnauthorized, api.CodeUnauthorized)
		_, err = e.clientAt(t, fwd, nil).Renew(ctx, api.RenewRequest{CSR: csrPEM(t, newKey(t))})
		apiError(t, err, http.StatusUnauthorized, api.CodeUnauthorized)
		e.assertUnchanged(t, before)
	})
	t.Run("WorkerRenewsAsItself", func(t *testing.T) {
		out, err := e.clientAt(t, fwd, workerCert).Renew(ctx, api.RenewRequest{CSR: csrPEM(t, newKey(t))})
		if err != nil {
			t.Fatal(err)
		}
		if out.NodeID != workerOut.NodeID || out.Role != string(ca.RoleWorker) {
			t.Errorf("renewed through the forwarder as %s/%s, want the worker %s", out.NodeID, out.Role, workerOut.NodeID)
		}
		_, err = e.clientAt(t, fwd, workerCert).Nodes(ctx)
		apiError(t, err, http.StatusForbidden, api.CodeForbidden)
	})
	t.Run("NoChainedForwarding", func(t *testing.T) {
		// A second forwarder in front of the first: the first refuses.
		f2, err := NewForwarder(ForwarderConfig{
			Leader:      func() string { return fwd },
			Certificate: func() *tls.Certificate { return mgrCert },
			Roots:       func() *x509.CertPool { return e.roots },
			Logger:      e.srv.log,
		})
		if err != nil {
			t.Fatal(err)
		}
		ln, _ := net.Listen("tcp", "127.0.0.1:0")
		cctx, cancel := context.WithCancel(ctx)
		done := make(chan struct{})
		go func() { defer close(done); f2.Serve(cctx, ln) }()
		defer func() { cancel(); <-done }()
		out, err := e.clientAt(t, ln.Addr().String(), workerCert).Renew(ctx, api.RenewRequest{CSR: csrPEM(t, newKey(t))})
		if err == nil {
			t.Fatalf("a chained forward renewed node %s/%s", out.NodeID, out.Role)
		}
		apiError(t, err, http.StatusBadRequest, api.CodeBadRequest)
	})
	t.Run("ManagerAdministersAsItself", func(t *testing.T) {
		if _, err := e.clientAt(t, fwd, mgrCert).JoinToken(ctx, ca.RoleWorker, true); err != nil {
			t.Fatal(err)
		}
		recs, err := e.st.AuditRecords(ctx, 1, 0)
		if err != nil {
			t.Fatal(err)
		}
		last, err := audit.Unmarshal(recs[len(recs)-1].Data)
		if err != nil {
			t.Fatal(err)
		}
		if last.Action != audit.ActionTokenRotated || last.Actor != mgrOut.NodeID {
			t.Errorf("last audit entry %s by %s, want a token rotation by the forwarding manager %s", last.Action, last.Actor, mgrOut.NodeID)
		}
	})
	t.Run("JoinThroughForwarder", func(t *testing.T) {
		out, err := e.clientAt(t, fwd, nil).Join(ctx, api.JoinRequest{Token: c.ManagerToken, CSR: csrPEM(t, newKey(t)), Hostname: "n"})
		if err != nil {
			t.Fatal(err)
		}
		if out.LeaderAddr != c.AdvertiseAddr || out.NodeID == mgrOut.NodeID {
			t.Errorf("join through the forwarder: node %s, leader %q", out.NodeID, out.LeaderAddr)
		}
		_, err = e.clientAt(t, fwd, nil).Join(ctx, api.JoinRequest{Token: strings.Repeat("x", 85), CSR: csrPEM(t, newKey(t))})
		apiError(t, err, http.StatusUnauthorized, api.CodeInvalidToken)
	})
}

// A spoofed header from a caller that is not a manager is refused.
func TestForwardedHeaderFromWorker(t *testing.T) {
	e := newEnv(t, envOptions{quiet: true})
	ctx := context.Background()
	c, _ := e.st.Cluster(ctx)
	workerCert, _ := e.join(t, c.WorkerToken)
	for _, value := range []string{ForwardedNone, "", "!!!"} {
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, "https://"+e.addr+api.PathAdminNodes, nil)
		req.Header[ForwardedCertHeader] = []string{value}
		hc := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{
			MinVersion: tls.VersionTLS12, RootCAs: e.roots, ServerName: client.ServerName,
			Certificates: []tls.Certificate{*workerCert},
		}}}
		resp, err := hc.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusForbidden {
			t.Errorf("worker with a forwarded header %q: status %d, want 403", value, resp.StatusCode)
		}
	}
}

// A certificate that chains to the cluster's root and names a member node,
// but that this cluster did not issue to it (as the external CA endpoint or
// a cross-signed intermediate could mint), is not that node's identity.
func TestUnissuedCertificateRefused(t *testing.T) {
	e := newEnv(t, envOptions{quiet: true})
	ctx := context.Background()
	c, _ := e.st.Cluster(ctx)
	key := newKey(t)
	req, err := ca.NodeCertificateRequest(ca.NodeRequest{ClusterID: c.ID, NodeID: c.LeaderID, Role: ca.RoleManager,
		CSR: csrDER(t, key), Now: time.Now()}, e.sg.Chain()[0])
	if err != nil {
		t.Fatal(err)
	}
	forged, err := e.sg.Sign(ctx, req)
	if err != nil {
		t.Fatal(err)
	}
	before := e.state(t)
	_, err = e.client(t, tlsCert(key, []*x509.Certificate{forged})).JoinToken(ctx, ca.RoleManager, false)
	apiError(t, err, http.StatusForbidden, api.CodeForbidden)
	_, err = e.client(t, tlsCert(key, []*x509.Certificate{forged})).Renew(ctx, api.RenewRequest{CSR: csrPEM(t, newKey(t))})
	apiError(t, err, http.StatusForbidden, api.CodeForbidden)
	e.assertUnchanged(t, before)
}
