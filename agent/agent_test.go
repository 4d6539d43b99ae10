package agent

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"io"
	"log/slog"
	"math/big"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/chancery-pki/chancery/api"
	_ "github.com/chancery-pki/chancery/backends/file" // registers the file backend
	"github.com/chancery-pki/chancery/ca"
	"github.com/chancery-pki/chancery/certdir"
	"github.com/chancery-pki/chancery/client"
	"github.com/chancery-pki/chancery/clock"
	"github.com/chancery-pki/chancery/cluster"
	"github.com/chancery-pki/chancery/issuer"
	"github.com/chancery-pki/chancery/server"
	"github.com/chancery-pki/chancery/signer"
	"github.com/chancery-pki/chancery/store"
)

// constReader reads the same byte forever.
type constReader byte

func (r constReader) Read(p []byte) (int, error) {
	for i := range p {
		p[i] = byte(r)
	}
	return len(p), nil
}

func certValid(notBefore time.Time, life time.Duration) *x509.Certificate {
	return &x509.Certificate{NotBefore: notBefore, NotAfter: notBefore.Add(life)}
}

// at returns the fraction of cert's lifetime at which t lies.
func at(cert *x509.Certificate, t time.Time) float64 {
	return float64(t.Sub(cert.NotBefore)) / float64(cert.NotAfter.Sub(cert.NotBefore))
}

func TestNextRenewal(t *testing.T) {
	start := time.Date(2025, 6, 1, 12, 0, 0, 0, time.UTC)
	for _, life := range []time.Duration{time.Hour, 5 * time.Hour, ca.DefaultCertExpiry + ca.CertBackdate, 20 * 365 * 24 * time.Hour} {
		cert := certValid(start, life)
		half := start.Add(life / 2)
		eighty := start.Add(life / 10 * 8)
		cases := []struct {
			name    string
			r       io.Reader
			wantMin time.Time
			wantMax time.Time
		}{
			// uniform() = 0: exactly half the lifetime.
			{"zeros", constReader(0), half, half},
			// uniform() = 1-2^-53: just under 80%, never past it (at some
			// lifetimes float64 rounding lands exactly on 80%).
			{"ones", constReader(0xff), eighty.Add(-time.Millisecond), eighty},
			// A failing reader falls back to the middle of the window.
			{"failing", bytes.NewReader(nil), start.Add(life / 100 * 65).Add(-time.Microsecond), start.Add(life / 100 * 65).Add(time.Microsecond)},
		}
		for _, tc := range cases {
			t.Run(life.String()+"/"+tc.name, func(t *testing.T) {
				got := NextRenewal(cert, tc.r)
				if got.Before(tc.wantMin) || got.After(tc.wantMax) {
					t.Errorf("NextRenewal = %s (%.12f of the lifetime), want in [%s, %s]", got, at(cert, got), tc.wantMin, tc.wantMax)
				}
			})
		}
	}
}

func TestNextRenewalProperty(t *testing.T) {
	start := time.Now()
	life := ca.DefaultCertExpiry + ca.CertBackdate
	cert := certValid(start, life)
	lo, hi := start.Add(life/2), start.Add(life/10*8)
	var min, max float64 = 1, 0
	for range 1000 {
		got := NextRenewal(cert, rand.Reader)
		if got.Before(lo) || got.After(hi) {
			t.Fatalf("NextRenewal = %s (%.6f of the lifetime), outside [50%%, 80%%]", got, at(cert, got))
		}
		f := at(cert, got)
		min, max = minF(min, f), maxF(max, f)
	}
	// 1000 uniform draws cover the window: the chance that none falls in
	// the lowest or highest 5% of it is about 2*0.95^1000, or 1e-22.
	if min > 0.515 || max < 0.785 {
		t.Errorf("1000 draws span only [%.3f, %.3f] of the lifetime", min, max)
	}
}

func minF(a, b float64) float64 {
	if a < b {
		return a
	}
	return b
}

func maxF(a, b float64) float64 {
	if a > b {
		return a
	}
	return b
}

// fixture is a cluster whose manager runs in-process on a fake clock, and a
// worker node whose data directory holds its first certificate.
type fixture struct {
	clk     *clock.Fake
	st      store.Store
	auth    *cluster.Authority
	srv     *server.Server
	init    *cluster.InitResult
	rootPEM []byte
	nodeDir string
	nodeID  string
}

func newFixture(t *testing.T, expiry, heartbeat time.Duration) *fixture {
	t.Helper()
	ctx := context.Background()
	clk := clock.NewFake(time.Now().Truncate(time.Second))
	dataDir := filepath.Join(t.TempDir(), "manager")
	res, err := cluster.Init(ctx, cluster.InitRequest{
		DataDir: dataDir, ListenAddr: "127.0.0.1:2378", Hostname: "manager-1",
		CertExpiry: expiry, Now: clk.Now,
	})
	if err != nil {
		t.Fatal(err)
	}
	st, err := cluster.OpenStore(dataDir)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	c, err := st.Cluster(ctx)
	if err != nil {
		t.Fatal(err)
	}
	sg, err := cluster.OpenSigner(ctx, dataDir, c, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	issuers, err := issuer.Hold(sg, issuer.Options{})
	if err != nil {
		t.Fatal(err)
	}
	auth := cluster.NewAuthority(st, issuers, clk.Now)
	srv, err := server.New(server.Config{
		DataDir: dataDir, Store: st, Authority: auth, NodeID: res.NodeID, Clock: clk,
		Logger: slog.New(slog.DiscardHandler), HeartbeatPeriod: heartbeat, Backend: c.Backend.Type,
	})
	if err != nil {
		t.Fatal(err)
	}
	f := &fixture{clk: clk, st: st, auth: auth, srv: srv, init: res, rootPEM: c.RootCAPEM,
		nodeDir: filepath.Join(t.TempDir(), "node")}

	// The worker's first certificate, written as a join writes it.
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	csr, err := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{}, key)
	if err != nil {
		t.Fatal(err)
	}
	if f.nodeID, err = ca.NewID(nil); err != nil {
		t.Fatal(err)
	}
	issued, err := auth.IssueNodeCertificate(ctx, cluster.IssueRequest{NodeID: f.nodeID, Role: ca.RoleWorker, Hostname: "worker-1", CSR: csr})
	if err != nil {
		t.Fatal(err)
	}
	dir := certdir.In(f.nodeDir)
	if err := dir.WriteRoot(c.RootCAPEM); err != nil {
		t.Fatal(err)
	}
	if err := dir.WriteNode(key, issued.Chain); err != nil {
		t.Fatal(err)
	}
	if err := WriteState(f.nodeDir, State{Managers: []string{"127.0.0.1:2378"}, Hostname: "worker-1"}); err != nil {
		t.Fatal(err)
	}
	return f
}

// agent returns the worker's agent, talking to m (the in-process manager
// when nil) on clk (the fixture's fake clock when nil).
func (f *fixture) agent(t *testing.T, m Manager, clk clock.Clock, heartbeat time.Duration) *Agent {
	t.Helper()
	if m == nil {
		m = f.srv.Self(f.nodeID)
	}
	if clk == nil {
		clk = f.clk
	}
	a, err := New(Config{
		DataDir: f.nodeDir, Manager: m, Clock: clk, Logger: slog.New(slog.DiscardHandler),
		Hostname: "worker-1", HeartbeatPeriod: heartbeat,
	})
	if err != nil {
		t.Fatal(err)
	}
	return a
}

// run runs a until the test ends, and checks that it stopped cleanly.
func run(t *testing.T, a *Agent) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- a.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("Run: %v", err)
			}
		case <-time.After(10 * time.Second):
			t.Errorf("Run did not return after its context was cancelled")
		}
	})
}

// waitFor polls cond in real time.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); !cond(); {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(2 * time.Millisecond)
	}
}

func (f *fixture) keyFile(t *testing.T) []byte {
	t.Helper()
	data, err := os.ReadFile(certdir.In(f.nodeDir).Path(certdir.NodeKeyFile))
	if err != nil {
		t.Fatal(err)
	}
	return data
}

func TestAutomaticRenewal(t *testing.T) {
	const (
		expiry = 4 * time.Hour
		step   = time.Minute
	)
	f := newFixture(t, expiry, step)
	a := f.agent(t, nil, nil, step)
	run(t, a)

	cur := a.Leaf()
	life := cur.NotAfter.Sub(cur.NotBefore) // expiry plus the backdating
	end := f.clk.Now().Add(3 * life)
	key := f.keyFile(t)
	var renewals []time.Time
	for f.clk.Now().Before(end) {
		// The agent waits again only once it has done everything that was
		// due: any renewal at the current fake time has happened.
		if !f.clk.BlockUntil(1, 10*time.Second) {
			t.Fatalf("the agent is not waiting at %s", f.clk.Now())
		}
		if n := a.Renewals(); n > int64(len(renewals)) {
			if n != int64(len(renewals))+1 {
				t.Fatalf("%d renewals at once", n-int64(len(renewals)))
			}
			now := f.clk.Now()
			renewals = append(renewals, now)
			// The renewal point is drawn in [50%, 80%) and the clock moves
			// in steps, so the renewal comes at most one step after it.
			lo := cur.NotBefore.Add(life / 2)
			hi := cur.NotBefore.Add(life / 10 * 8).Add(step)
			if now.Before(lo) || now.After(hi) {
				t.Errorf("renewal %d at %.3f of the certificate's lifetime (%s to %s)", n, at(cur, now), cur.NotBefore, cur.NotAfter)
			}
			next := a.Leaf()
			if next.SerialNumber.Cmp(cur.SerialNumber) == 0 {
				t.Errorf("renewal %d kept the serial", n)
			}
			if want := now.Add(expiry); !next.NotAfter.Equal(want) {
				t.Errorf("renewal %d: not after %s, want %s", n, next.NotAfter, want)
			}
			// The files on disk were replaced, with a new key.
			onDisk, err := certdir.In(f.nodeDir).NodeChain()
			if err != nil {
				t.Fatal(err)
			}
			if !onDisk[0].Equal(next) {
				t.Errorf("renewal %d: the certificate on disk is not the new one", n)
			}
			if k := f.keyFile(t); bytes.Equal(k, key) {
				t.Errorf("renewal %d: the key on disk did not change", n)
			} else {
				key = k
			}
			cur = next
		}
		f.clk.Advance(step)
	}
	t.Logf("%d renewals over %s: %v", len(renewals), 3*life, renewals)
	if len(renewals) < 3 {
		t.Errorf("%d renewals over three lifetimes, want at least 3", len(renewals))
	}
	// The store records every certificate the node got.
	certs, err := f.st.IssuedCertificates(context.Background(), f.nodeID)
	if err != nil {
		t.Fatal(err)
	}
	if len(certs) != len(renewals)+1 {
		t.Errorf("the store has %d certificates for the node, want %d", len(certs), len(renewals)+1)
	}
}

// stepClock is a fake clock that remembers the last wait asked of it, so
// that a test can move time exactly to the agent's next deadline.
type stepClock struct {
	*clock.Fake
	mu   sync.Mutex
	last time.Duration
}

func (c *stepClock) After(d time.Duration) <-chan time.Time {
	c.mu.Lock()
	c.last = d
	c.mu.Unlock()
	return c.Fake.After(d)
}

func (c *stepClock) lastWait() time.Duration {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.last
}

// flakyManager fails the first fails renewals, then passes calls to the
// real manager. It records the (fake) time of each renewal attempt.
type flakyManager struct {
	Manager
	clk   clock.Clock
	fails int

	mu    sync.Mutex
	calls []time.Time
}

func (m *flakyManager) Renew(ctx context.Context, req api.RenewRequest) (*api.Certificate, error) {
	m.mu.Lock()
	m.calls = append(m.calls, m.clk.Now())
	n := len(m.calls)
	m.mu.Unlock()
	if n <= m.fails {
		return nil, errors.New("injected failure")
	}
	return m.Manager.Renew(ctx, req)
}

func (m *flakyManager) attempts() []time.Time {
	m.mu.Lock()
	defer m.mu.Unlock()
	return slices.Clone(m.calls)
}

func TestRenewalBackoff(t *testing.T) {
	// 1s, 2s, ... 256s, then the 5m cap twice.
	const fails = 11
	f := newFixture(t, 4*time.Hour, time.Hour)
	clk := &stepClock{Fake: f.clk}
	m := &flakyManager{Manager: f.srv.Self(f.nodeID), clk: clk, fails: fails}
	a := f.agent(t, m, clk, time.Hour)
	first := a.Leaf()
	run(t, a)

	for a.Renewals() == 0 {
		if !clk.BlockUntil(1, 10*time.Second) {
			t.Fatalf("the agent is not waiting at %s after %d attempts", clk.Now(), len(m.attempts()))
		}
		if a.Renewals() > 0 {
			break
		}
		clk.Advance(clk.lastWait())
	}
	calls := m.attempts()
	if len(calls) != fails+1 {
		t.Fatalf("%d renewal attempts, want %d", len(calls), fails+1)
	}
	if f := at(first, calls[0]); f < 0.5 || f >= 0.8 {
		t.Errorf("the first attempt at %.3f of the lifetime", f)
	}
	for i := 1; i < len(calls); i++ {
		want := min(MinBackoff<<(i-1), MaxBackoff)
		got := calls[i].Sub(calls[i-1])
		// At most 20% jitter, always downwards.
		if got > want || got < want-want/5 {
			t.Errorf("retry %d after %s, want %s less at most 20%%", i, got, want)
		}
	}
	if a.Leaf().SerialNumber.Cmp(first.SerialNumber) == 0 {
		t.Error("the certificate did not change")
	}
	// After a success the next renewal is scheduled normally again.
	next := NextRenewal(a.Leaf(), constReader(0))
	if !next.After(clk.Now().Add(time.Hour)) {
		t.Errorf("next renewal %s too soon after %s", next, clk.Now())
	}
}

func TestNextBackoff(t *testing.T) {
	var d time.Duration
	for i := range 20 {
		d = nextBackoff(d)
		want := min(MinBackoff<<i, MaxBackoff)
		if d != want {
			t.Fatalf("backoff %d = %s, want %s", i, d, want)
		}
	}
	for _, tc := range []struct {
		name string
		r    io.Reader
		want time.Duration
	}{
		{"none", constReader(0), 10 * time.Second},
		{"most", constReader(0xff), 8*time.Second + 1},
	} {
		if got := jitter(10*time.Second, tc.r); got != tc.want {
			t.Errorf("jitter %s: %s, want %s", tc.name, got, tc.want)
		}
	}
}

func TestRoleChangeRenewsAtOnce(t *testing.T) {
	f := newFixture(t, 4*time.Hour, time.Minute)
	if _, err := cluster.SetRole(context.Background(), f.st, f.nodeID, ca.RoleManager, nil); err != nil {
		t.Fatal(err)
	}
	a := f.agent(t, nil, nil, time.Minute)
	start := f.clk.Now()
	run(t, a)
	// The first heartbeat says manager: the agent renews without waiting.
	waitFor(t, "the renewal", func() bool { return a.Renewals() == 1 })
	if !f.clk.Now().Equal(start) {
		t.Errorf("the clock moved")
	}
	leaf := a.Leaf()
	if ou := leaf.Subject.OrganizationalUnit; len(ou) != 1 || ou[0] != string(ca.RoleManager) {
		t.Errorf("OU %v after promotion", ou)
	}
	if !slices.Contains(leaf.DNSNames, ca.CADNSName) {
		t.Errorf("DNS names %v lack %s", leaf.DNSNames, ca.CADNSName)
	}
	// And only once: the next heartbeats agree with the certificate.
	for range 5 {
		if !f.clk.BlockUntil(1, 10*time.Second) {
			t.Fatal("the agent is not waiting")
		}
		f.clk.Advance(time.Minute)
	}
	if !f.clk.BlockUntil(1, 10*time.Second) {
		t.Fatal("the agent is not waiting")
	}
	if n := a.Renewals(); n != 1 {
		t.Errorf("%d renewals, want 1", n)
	}

	// Demoted: back to a worker certificate, at once.
	if _, err := cluster.SetRole(context.Background(), f.st, f.nodeID, ca.RoleWorker, nil); err != nil {
		t.Fatal(err)
	}
	f.clk.Advance(time.Minute)
	waitFor(t, "the second renewal", func() bool { return a.Renewals() == 2 })
	if ou := a.Leaf().Subject.OrganizationalUnit; len(ou) != 1 || ou[0] != string(ca.RoleWorker) {
		t.Errorf("OU %v after demotion", ou)
	}
}

// TestHeartbeatPeriodFromManager checks that the heartbeat period the
// manager announces applies from its first answer: an agent started with a
// period of an hour beats again a minute later when the manager says a
// minute (it once waited the hour first, and so heard of a rotation's
// renewal request an hour late).
func TestHeartbeatPeriodFromManager(t *testing.T) {
	f := newFixture(t, 4*time.Hour, time.Minute)
	clk := &stepClock{Fake: f.clk}
	a := f.agent(t, nil, clk, time.Hour)
	run(t, a)
	for i := range 3 {
		if !clk.BlockUntil(1, 10*time.Second) {
			t.Fatal("the agent is not waiting")
		}
		if w := clk.lastWait(); w != time.Minute {
			t.Fatalf("after heartbeat %d the agent waits %s, want the manager's period, 1m", i+1, w)
		}
		clk.Advance(time.Minute)
	}
}

// serialManager records the certificate serial each heartbeat reports.
type serialManager struct {
	Manager
	mu      sync.Mutex
	serials []string
}

func (m *serialManager) Status(ctx context.Context, req api.StatusRequest) (*api.Status, error) {
	m.mu.Lock()
	m.serials = append(m.serials, req.CertSerial)
	m.mu.Unlock()
	return m.Manager.Status(ctx, req)
}

func (m *serialManager) reported() []string {
	m.mu.Lock()
	defer m.mu.Unlock()
	return slices.Clone(m.serials)
}

// TestReportsTheNewCertificateAtOnce: heartbeats say which certificate the
// node presents, and the first after a renewal comes at once, not a period
// later, since a root rotation waits for it.
func TestReportsTheNewCertificateAtOnce(t *testing.T) {
	f := newFixture(t, 4*time.Hour, time.Hour)
	if _, err := cluster.SetRole(context.Background(), f.st, f.nodeID, ca.RoleManager, nil); err != nil {
		t.Fatal(err)
	}
	m := &serialManager{Manager: f.srv.Self(f.nodeID)}
	a := f.agent(t, m, nil, time.Hour)
	first := signer.SerialHex(a.Leaf().SerialNumber)
	start := f.clk.Now()
	run(t, a)
	// The first heartbeat says manager: the agent renews, then reports.
	waitFor(t, "a heartbeat after the renewal", func() bool { return len(m.reported()) == 2 })
	if !f.clk.Now().Equal(start) {
		t.Errorf("the clock moved")
	}
	if got, want := m.reported(), []string{first, signer.SerialHex(a.Leaf().SerialNumber)}; !slices.Equal(got, want) {
		t.Errorf("heartbeats reported serials %v, want %v (the first certificate, then the renewed one)", got, want)
	}
}

// newRootManager announces another root bundle in its heartbeats.
type newRootManager struct {
	Manager
	root string
}

func (m *newRootManager) Status(ctx context.Context, req api.StatusRequest) (*api.Status, error) {
	st, err := m.Manager.Status(ctx, req)
	if err != nil {
		return nil, err
	}
	st.RootCAPEM = m.root
	return st, nil
}

func TestNewRoot(t *testing.T) {
	f := newFixture(t, 4*time.Hour, time.Minute)
	// A bundle of a new root and the current one, as during a rotation.
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := ca.NewRootTemplate("swarm-ca", f.clk.Now())
	tmpl.SerialNumber = big.NewInt(7)
	tmpl.Subject = pkix.Name{CommonName: "swarm-ca"}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
	if err != nil {
		t.Fatal(err)
	}
	newRoot, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	old, err := ca.ParseCertificatesPEM(f.rootPEM)
	if err != nil {
		t.Fatal(err)
	}
	bundle := ca.EncodeCertificatesPEM(newRoot, old[0])
	m := &newRootManager{Manager: f.srv.Self(f.nodeID), root: string(bundle)}
	a := f.agent(t, m, nil, time.Minute)
	run(t, a)
	path := certdir.In(f.nodeDir).Path(certdir.RootCAFile)
	waitFor(t, "the new root on disk", func() bool {
		data, err := os.ReadFile(path)
		return err == nil && bytes.Equal(data, bundle)
	})
	if fi, err := os.Stat(path); err != nil || fi.Mode().Perm() != 0o644 {
		t.Errorf("%s: %v %v", path, fi.Mode(), err)
	}
	// An invalid bundle is not taken.
	m2 := &newRootManager{Manager: f.srv.Self(f.nodeID), root: "not a certificate"}
	a2 := f.agent(t, m2, nil, time.Minute)
	if !f.clk.BlockUntil(1, 10*time.Second) {
		t.Fatal("the first agent is not waiting")
	}
	run(t, a2)
	if !f.clk.BlockUntil(2, 10*time.Second) {
		t.Fatal("the second agent is not waiting")
	}
	if data, err := os.ReadFile(path); err != nil || !bytes.Equal(data, bundle) {
		t.Errorf("an invalid root bundle replaced the root file: %q %v", data, err)
	}
}

// throttlingManager answers the first renewal as a manager over its bound
// does (429 with Retry-After), then passes calls to the real manager.
type throttlingManager struct {
	flakyManager
	retryAfter time.Duration
}

func (m *throttlingManager) Renew(ctx context.Context, req api.RenewRequest) (*api.Certificate, error) {
	m.mu.Lock()
	m.calls = append(m.calls, m.clk.Now())
	n := len(m.calls)
	m.mu.Unlock()
	if n == 1 {
		return nil, &client.APIError{Status: http.StatusTooManyRequests, Code: api.CodeTooManyRequests,
			Message: "renewed too often", RetryAfter: m.retryAfter}
	}
	return m.Manager.Renew(ctx, req)
}

// A 429 is retried after the manager's Retry-After, not the backoff's
// first second.
func TestRenewalHonoursRetryAfter(t *testing.T) {
	f := newFixture(t, 4*time.Hour, time.Hour)
	clk := &stepClock{Fake: f.clk}
	m := &throttlingManager{flakyManager: flakyManager{Manager: f.srv.Self(f.nodeID), clk: clk}, retryAfter: 7 * time.Minute}
	a := f.agent(t, m, clk, time.Hour)
	run(t, a)
	for a.Renewals() == 0 {
		if !clk.BlockUntil(1, 10*time.Second) {
			t.Fatalf("the agent is not waiting at %s after %d attempts", clk.Now(), len(m.attempts()))
		}
		if a.Renewals() > 0 {
			break
		}
		clk.Advance(clk.lastWait())
	}
	calls := m.attempts()
	if len(calls) != 2 {
		t.Fatalf("%d renewal attempts, want 2", len(calls))
	}
	if got := calls[1].Sub(calls[0]); got != m.retryAfter {
		t.Errorf("retried after %s, want the manager's Retry-After, %s", got, m.retryAfter)
	}
}
