package server

import (
	"context"
	"crypto/tls"
	"errors"
	"net/http"
	"testing"
	"time"

	"github.com/chancery-pki/chancery/api"
	"github.com/chancery-pki/chancery/ca"
	"github.com/chancery-pki/chancery/client"
	"github.com/chancery-pki/chancery/clock"
	"github.com/chancery-pki/chancery/cluster"
	"github.com/chancery-pki/chancery/store"
)

// renew renews with cert and returns the new certificate.
func (e *env) renew(t *testing.T, cert *tls.Certificate) (*tls.Certificate, error) {
	t.Helper()
	key := newKey(t)
	out, err := e.client(t, cert).Renew(context.Background(), api.RenewRequest{CSR: csrPEM(t, key)})
	if err != nil {
		return nil, err
	}
	chain, err := ca.ParseCertificatesPEM([]byte(out.CertificatePEM))
	if err != nil {
		t.Fatal(err)
	}
	return tlsCert(key, chain), nil
}

func (e *env) certCount(t *testing.T, nodeID string) int {
	t.Helper()
	certs, err := e.st.IssuedCertificates(context.Background(), nodeID)
	if err != nil {
		t.Fatal(err)
	}
	return len(certs)
}

// TestRenewalsBounded renews one worker over and over: past the bound its
// renewals are answered 429 with Retry-After and add no certificate record,
// also after a restart; the renewals the manager wants (a role change, the
// current certificate past half its life, an ask during a rotation) still
// go through.
func TestRenewalsBounded(t *testing.T) {
	clk := clock.NewFake(time.Now())
	e := newEnv(t, envOptions{clock: clk})
	ctx := context.Background()
	first, out := e.join(t, e.init.WorkerToken)
	node := out.NodeID

	cur := first
	for i := range cluster.DefaultRenewalBurst {
		next, err := e.renew(t, cur)
		if err != nil {
			t.Fatalf("renewal %d: %v", i+1, err)
		}
		cur = next
	}
	_, err := e.renew(t, cur)
	var aerr *client.APIError
	if !errors.As(err, &aerr) || aerr.Status != http.StatusTooManyRequests || aerr.Code != api.CodeTooManyRequests || aerr.RetryAfter <= 0 {
		t.Fatalf("renewal past the bound: %v (%+v), want 429 with Retry-After", err, aerr)
	}
	if got, want := e.certCount(t, node), 1+cluster.DefaultRenewalBurst; got != want {
		t.Errorf("the node has %d certificate records, want %d", got, want)
	}
	// The bucket lives in the node's record: a restarted manager (a new
	// Authority over the same store) refuses too.
	restarted := cluster.NewAuthority(e.st, e.issuers, nil)
	limit := cluster.DefaultRenewalLimit
	_, err = restarted.IssueNodeCertificate(ctx, cluster.IssueRequest{NodeID: node, Role: ca.RoleWorker, CSR: []byte(csrPEM(t, newKey(t))), Limit: &limit})
	var lerr *cluster.RenewalLimitError
	if !errors.As(err, &lerr) {
		t.Errorf("after a restart: %v, want a RenewalLimitError", err)
	}

	// Asked during a rotation: once per ask.
	e.srv.renewals.mu.Lock()
	e.srv.renewals.asked[node] = asked{at: clk.Now(), keyID: "asked"}
	e.srv.renewals.mu.Unlock()
	if cur, err = e.renew(t, cur); err != nil {
		t.Fatalf("a renewal the manager asked for: %v", err)
	}
	if _, err := e.renew(t, cur); err == nil {
		t.Error("a second renewal on one ask went through")
	}

	// The current certificate past half its life: the agent's schedule.
	clk.Advance(ca.DefaultCertExpiry/2 + time.Hour)
	if cur, err = e.renew(t, cur); err != nil {
		t.Fatalf("a renewal past half the certificate's life: %v", err)
	}
	// An older certificate past half its life does not count as the
	// schedule: only the current one does.
	if _, err := e.renew(t, first); err == nil {
		t.Error("a renewal with an older certificate went through")
	}

	// A role change.
	if _, err := e.client(t, e.manager).Promote(ctx, node); err != nil {
		t.Fatal(err)
	}
	clk.Set(time.Now())
	if _, err := e.renew(t, cur); err != nil {
		t.Fatalf("a renewal after a promotion: %v", err)
	}
	n, err := e.st.Node(ctx, node)
	if err != nil {
		t.Fatal(err)
	}
	if n.Role != string(ca.RoleManager) || n.State == store.StateRemoved {
		t.Errorf("node %+v", n)
	}
	if got, want := e.certCount(t, node), 1+cluster.DefaultRenewalBurst+3; got != want {
		t.Errorf("the node has %d certificate records, want %d", got, want)
	}
}
