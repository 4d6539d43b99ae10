package etcdstore_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/chancery-pki/chancery/audit"
	"github.com/chancery-pki/chancery/internal/etcddev"
	"github.com/chancery-pki/chancery/internal/faultproxy"
	"github.com/chancery-pki/chancery/store"
	"github.com/chancery-pki/chancery/store/etcdstore"
	"github.com/chancery-pki/chancery/store/storetest"
)

// TestCutOffCallsFail: a store cut off from etcd (a partition: silence,
// not an error) fails each of its calls with an error that wraps
// ErrNoAnswer and store.ErrUnavailable and says the call timeout and the
// endpoints, long before its caller's own deadline; calls made at once,
// the changes among them waiting for each other, all fail so. A caller
// whose own deadline comes first gets its deadline's error. Once the
// partition heals, the same calls succeed.
func TestCutOffCallsFail(t *testing.T) {
	c := etcddev.Require(t)
	p := faultproxy.For(t, c.Endpoints[0])
	const callTimeout = time.Second
	st, err := etcdstore.Open(t.Context(), etcdstore.Config{Endpoints: []string{p.URL()}, Prefix: prefix(), CallTimeout: callTimeout}, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	if st.CallTimeout() != callTimeout {
		t.Fatalf("CallTimeout() = %s, want %s", st.CallTimeout(), callTimeout)
	}
	ctx := t.Context()
	if err := st.CreateCluster(ctx, storetest.Cluster()); err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	n, cert := storetest.Issuance("node-1", "0001", now)
	if err := st.RecordIssuance(ctx, n, cert); err != nil {
		t.Fatal(err)
	}

	var serial atomic.Int64
	serial.Store(0x100)
	calls := []struct {
		name string
		call func(ctx context.Context) error
	}{
		{"CreateCluster", func(ctx context.Context) error {
			err := st.CreateCluster(ctx, storetest.Cluster())
			if errors.Is(err, store.ErrExists) {
				return nil // after the partition: it was created before
			}
			return err
		}},
		{"Cluster", func(ctx context.Context) error { _, err := st.Cluster(ctx); return err }},
		{"UpdateCluster", func(ctx context.Context) error {
			_, err := st.UpdateCluster(ctx, func(c *store.Cluster) error { c.CertExpiry += time.Hour; return nil })
			return err
		}},
		{"Node", func(ctx context.Context) error { _, err := st.Node(ctx, "node-1"); return err }},
		{"UpdateNode", func(ctx context.Context) error {
			_, err := st.UpdateNode(ctx, "node-1", func(n *store.Node) error { n.Hostname = "h1"; return nil })
			return err
		}},
		{"RecordIssuance", func(ctx context.Context) error {
			n, cert := storetest.Issuance("node-2", fmt.Sprintf("%04x", serial.Add(1)), now)
			return st.RecordIssuance(ctx, n, cert)
		}},
		{"IssuedCertificate", func(ctx context.Context) error { _, err := st.IssuedCertificate(ctx, "0001"); return err }},
		{"ListNodes", func(ctx context.Context) error { _, err := st.ListNodes(ctx, store.ListOptions{}); return err }},
		{"Nodes", func(ctx context.Context) error { _, err := st.Nodes(ctx); return err }},
		{"ListIssuedCertificates", func(ctx context.Context) error {
			_, err := st.ListIssuedCertificates(ctx, "node-1", store.ListOptions{})
			return err
		}},
		{"IssuedCertificates", func(ctx context.Context) error { _, err := st.IssuedCertificates(ctx, ""); return err }},
		{"AppendAudit", func(ctx context.Context) error {
			_, err := st.AppendAudit(ctx, audit.Event{Action: audit.ActionManagerStarted, Actor: "m1"})
			return err
		}},
		{"AuditHead", func(ctx context.Context) error { _, err := st.AuditHead(ctx); return err }},
		{"AuditRecords", func(ctx context.Context) error { _, err := st.AuditRecords(ctx, 0, 0); return err }},
		{"PutSeen", func(ctx context.Context) error {
			return st.PutSeen(ctx, []store.Seen{{NodeID: "node-1", At: now}})
		}},
		{"PruneSeen", func(ctx context.Context) error { _, err := st.PruneSeen(ctx); return err }},
		{"PruneIssuedCertificates", func(ctx context.Context) error {
			_, err := st.PruneIssuedCertificates(ctx, store.PruneRequest{ExpiredBefore: now.Add(-time.Hour), Event: audit.Event{Action: audit.ActionPruned, Actor: "m1"}})
			return err
		}},
		{"Empty", func(ctx context.Context) error { _, err := st.Empty(ctx); return err }},
	}

	p.Cut()
	t.Run("cut", func(t *testing.T) {
		for _, tc := range calls {
			t.Run(tc.name, func(t *testing.T) {
				t.Parallel()
				// The caller would wait far longer than the call timeout.
				cctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
				defer cancel()
				err := tc.call(cctx)
				if cctx.Err() != nil {
					t.Fatalf("the call returned only after its caller's deadline: %v", err)
				}
				if !errors.Is(err, etcdstore.ErrNoAnswer) || !errors.Is(err, store.ErrUnavailable) {
					t.Fatalf("err = %v; want one that matches ErrNoAnswer and store.ErrUnavailable", err)
				}
				t.Log(err)
				if msg := err.Error(); !strings.Contains(msg, callTimeout.String()) || !strings.Contains(msg, p.Addr()) {
					t.Errorf("err = %q; want it to say the call timeout (%s) and the endpoint (%s)", msg, callTimeout, p.Addr())
				}
			})
		}
	})
	t.Run("the caller's deadline first", func(t *testing.T) {
		cctx, cancel := context.WithTimeout(context.Background(), callTimeout/5)
		defer cancel()
		_, err := st.Cluster(cctx)
		if !errors.Is(err, context.DeadlineExceeded) || errors.Is(err, etcdstore.ErrNoAnswer) {
			t.Fatalf("err = %v; want the caller's deadline's, not ErrNoAnswer", err)
		}
	})
	p.Restore()
	t.Run("restored", func(t *testing.T) {
		for _, tc := range calls {
			cctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			err := tc.call(cctx)
			cancel()
			if err != nil {
				t.Errorf("%s after the partition: %v", tc.name, err)
			}
		}
	})
}

// TestCallTimeoutOption: a negative call timeout is refused; zero means
// the default.
func TestCallTimeoutOption(t *testing.T) {
	c := etcddev.Require(t)
	client, err := etcdstore.Dial(etcdstore.Config{Endpoints: c.Endpoints})
	if err != nil {
		t.Fatal(err)
	}
	defer client.Close()
	if _, err := etcdstore.New(t.Context(), client, etcdstore.Options{Prefix: prefix(), CallTimeout: -time.Second}); err == nil || !strings.Contains(err.Error(), "negative call timeout") {
		t.Errorf("New with a negative call timeout: %v", err)
	}
	st, err := etcdstore.New(t.Context(), client, etcdstore.Options{Prefix: prefix()})
	if err != nil {
		t.Fatal(err)
	}
	if st.CallTimeout() != etcdstore.DefaultCallTimeout {
		t.Errorf("CallTimeout() = %s, want the default %s", st.CallTimeout(), etcdstore.DefaultCallTimeout)
	}
}
