package etcdstore_test

import (
	"context"
	"errors"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/chancery-pki/chancery/audit"
	"github.com/chancery-pki/chancery/election"
	"github.com/chancery-pki/chancery/internal/etcddev"
	"github.com/chancery-pki/chancery/internal/faultproxy"
	"github.com/chancery-pki/chancery/store"
	"github.com/chancery-pki/chancery/store/etcdstore"
	"github.com/chancery-pki/chancery/store/storetest"
)

// TestNoQuorumFailsUnavailable: a three-member etcd that lost two members
// has no leader; the survivor answers a write with "etcdserver: request
// timed out" (gRPC Unavailable) after its own request timeout, before the
// store's call timeout. That error wraps ErrUnavailable and matches
// store.ErrUnavailable (so the API answers 503, not 500), is not
// ErrNoAnswer, names the endpoints and shows no user information of
// them.
func TestNoQuorumFailsUnavailable(t *testing.T) {
	c := etcddev.StartForTest(t, etcddev.Options{Members: 3, NoFsync: true})
	// An endpoint with user information, as a client made elsewhere could
	// hold (ParseOptions refuses it): the error must not show it.
	endpoints := append([]string(nil), c.Endpoints...)
	u, err := url.Parse(endpoints[2])
	if err != nil {
		t.Fatal(err)
	}
	u.User = url.UserPassword("operator", "s3cret-pw")
	endpoints[2] = u.String()
	st, err := etcdstore.Open(t.Context(), etcdstore.Config{Endpoints: endpoints, Prefix: prefix(), CallTimeout: 2 * time.Minute}, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	ctx := t.Context()
	if err := st.CreateCluster(ctx, storetest.Cluster()); err != nil {
		t.Fatal(err)
	}
	n, cert := storetest.Issuance("node-1", "0001", time.Now())
	if err := st.RecordIssuance(ctx, n, cert); err != nil {
		t.Fatal(err)
	}
	c.Kill(0)
	c.Kill(1)

	t.Run("writes", func(t *testing.T) {
		testUnavailableWrites(t, st, c.Endpoints[0])
	})
}

// testUnavailableWrites runs writes on st, whose etcd has no leader, at
// once.
func testUnavailableWrites(t *testing.T, st *etcdstore.Store, endpoint string) {
	for _, tc := range []struct {
		name string
		call func(ctx context.Context) error
	}{
		{"UpdateCluster", func(ctx context.Context) error {
			_, err := st.UpdateCluster(ctx, func(c *store.Cluster) error { c.CertExpiry += time.Hour; return nil })
			return err
		}},
		{"AppendAudit", func(ctx context.Context) error {
			_, err := st.AppendAudit(ctx, audit.Event{Action: audit.ActionManagerStarted, Actor: "m1"})
			return err
		}},
		{"RecordIssuance", func(ctx context.Context) error {
			n, cert := storetest.Issuance("node-2", "0002", time.Now())
			return st.RecordIssuance(ctx, n, cert)
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			err := tc.call(context.Background())
			if !errors.Is(err, store.ErrUnavailable) || !errors.Is(err, etcdstore.ErrUnavailable) {
				t.Fatalf("error %v, want one matching store.ErrUnavailable and etcdstore.ErrUnavailable", err)
			}
			if errors.Is(err, etcdstore.ErrNoAnswer) {
				t.Errorf("error %v came only at the call timeout", err)
			}
			msg := err.Error()
			if !strings.Contains(msg, "etcd is unavailable") || !strings.Contains(msg, endpoint) {
				t.Errorf("error %q does not say etcd is unavailable, with the endpoints", msg)
			}
			if strings.Contains(msg, "s3cret-pw") || strings.Contains(msg, "operator") {
				t.Errorf("error %q shows an endpoint's user information", msg)
			}
		})
	}
}

// TestBounded: a read that uses the store's client outside the store (the
// election's read of the leader) runs under the store's call timeout with
// its errors mapped as the store's: cut off, it fails with ErrNoAnswer
// (store.ErrUnavailable) long before its caller's deadline; restored, it
// reads; on a closed store it is refused.
func TestBounded(t *testing.T) {
	p := faultproxy.For(t, etcddev.Require(t).Endpoints[0])
	st, err := etcdstore.Open(t.Context(), etcdstore.Config{Endpoints: []string{p.URL()}, Prefix: prefix(), CallTimeout: time.Second}, nil)
	if err != nil {
		t.Fatal(err)
	}
	leader := func(ctx context.Context) (string, error) {
		var id string
		err := st.Bounded(ctx, func(ctx context.Context) (err error) {
			id, err = election.LeaderOf(ctx, st.Client(), st.Prefix()+election.StoreKey)
			return err
		})
		return id, err
	}
	p.Cut()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	_, err = leader(ctx)
	if ctx.Err() != nil {
		t.Fatalf("the read returned only after its caller's deadline: %v", err)
	}
	if !errors.Is(err, etcdstore.ErrNoAnswer) || !errors.Is(err, store.ErrUnavailable) {
		t.Fatalf("cut off: %v, want ErrNoAnswer", err)
	}
	p.Restore()
	p.Reset()
	if id, err := leader(ctx); err != nil || id != "" {
		t.Errorf("restored: %q, %v; want no leader and no error", id, err)
	}
	st.Close()
	if _, err := leader(ctx); err == nil {
		t.Error("a read on a closed store succeeded")
	}
}
