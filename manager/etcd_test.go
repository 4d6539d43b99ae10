package manager

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"

	"github.com/chancery-pki/chancery/agent"
	"github.com/chancery-pki/chancery/api"
	"github.com/chancery-pki/chancery/audit"
	"github.com/chancery-pki/chancery/ca"
	"github.com/chancery-pki/chancery/certdir"
	"github.com/chancery-pki/chancery/client"
	"github.com/chancery-pki/chancery/cluster"
	chelection "github.com/chancery-pki/chancery/election"
	"github.com/chancery-pki/chancery/internal/etcddev"
	"github.com/chancery-pki/chancery/internal/faultproxy"
	"github.com/chancery-pki/chancery/store"
	"github.com/chancery-pki/chancery/store/etcdstore"
)

func TestMain(m *testing.M) {
	code := m.Run()
	etcddev.StopShared()
	os.Exit(code)
}

// etcdDataDir makes a cluster whose store is the shared test etcd, under a
// prefix of its own, reached through a proxy the test can cut. It returns
// the data directory, the init result, the proxy and the prefix.
func etcdDataDir(t testing.TB) (string, *cluster.InitResult, *faultproxy.Proxy, string) {
	t.Helper()
	return etcdDataDirAt(t, etcddev.Require(t))
}

// etcdDataDirAt is etcdDataDir on the etcd ec.
func etcdDataDirAt(t testing.TB, ec *etcddev.Cluster) (string, *cluster.InitResult, *faultproxy.Proxy, string) {
	t.Helper()
	p := faultproxy.For(t, ec.Endpoints[0])
	b := make([]byte, 6)
	rand.Read(b)
	prefix := "/test-" + hex.EncodeToString(b) + "/"
	data := filepath.Join(t.TempDir(), "m")
	res, err := cluster.Init(context.Background(), cluster.InitRequest{
		DataDir: data, ListenAddr: "127.0.0.1:2378", AdvertiseAddr: "127.0.0.1:2378", Hostname: "m1",
		Store: store.Settings{Type: etcdstore.Name, Options: map[string]string{
			etcdstore.OptionEndpoints: p.URL(), etcdstore.OptionPrefix: prefix,
		}},
	})
	if err != nil {
		t.Fatal(err)
	}
	return data, res, p, prefix
}

// syncBuffer is a log the test reads while the manager writes it.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func joinOnce(ctx context.Context, c *client.Client, token string) error {
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	der, err := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{}, key)
	if err != nil {
		return err
	}
	csr := string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE REQUEST", Bytes: der}))
	_, err = c.Join(ctx, api.JoinRequest{Token: token, CSR: csr, Hostname: "node"})
	return err
}

// TestCutOffManagerStopsIssuing: a manager on etcd leads and issues; cut
// off from etcd, it stops leading and issuing within its session TTL, and
// says why: to callers (503, unavailable, with the reason), in its log and
// in its metrics; another candidate then wins, and the cut-off manager's
// fence no longer holds. Once reconnected, it issues again.
func TestCutOffManagerStopsIssuing(t *testing.T) {
	data, res, proxy, prefix := etcdDataDir(t)
	const ttl = 2 * time.Second
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	logs := &syncBuffer{}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	mln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	maddr := mln.Addr().String()
	mln.Close()
	metricsOf := func() (leader, session float64) {
		return scrape(t, maddr, "chancery_manager_leader"), scrape(t, maddr, "chancery_manager_store_session")
	}
	done, ready := make(chan error, 1), make(chan struct{})
	go func() {
		done <- Run(ctx, Config{DataDir: data, Listener: ln, Logger: slog.New(slog.NewTextHandler(logs, nil)), MetricsAddr: maddr,
			CheckpointInterval: time.Hour, SessionTTL: ttl, Ready: func(string) { close(ready) }})
	}()
	select {
	case <-ready:
	case err := <-done:
		t.Fatalf("Run: %v", err)
	}
	roots, _, err := certdir.In(data).Root()
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	for _, r := range roots {
		pool.AddCert(r)
	}
	c := client.New(ln.Addr().String(), pool, nil)
	defer c.Close()
	waitFor(t, "the manager to lead", func() bool { l, s := metricsOf(); return l == 1 && s == 1 })
	if err := joinOnce(ctx, c, res.WorkerToken); err != nil {
		t.Fatalf("join before the cut: %v", err)
	}
	// The manager's leader key, the fence of its writes.
	rivalClient := etcdClient(t)
	lk, err := rivalClient.Get(ctx, prefix+"leader/", clientv3.WithFirstCreate()...)
	if err != nil || len(lk.Kvs) != 1 {
		t.Fatalf("no leader key (%v)", err)
	}
	fence := store.Fence{Key: string(lk.Kvs[0].Key), Revision: lk.Kvs[0].CreateRevision}

	// A rival candidate, on etcd directly.
	rival, err := chelection.New(chelection.Config{Client: rivalClient, Prefix: prefix + "leader/", ID: "rival", TTL: ttl, Logger: quiet()})
	if err != nil {
		t.Fatal(err)
	}
	rivalWon := make(chan time.Time, 1)
	go func() {
		if _, err := rival.Campaign(ctx); err == nil {
			rivalWon <- time.Now()
		}
	}()

	cut := time.Now()
	proxy.Cut()
	// The metrics endpoint reads the store too, and waits on it while
	// cut off: the log says it at once, the counters after.
	waitFor(t, "the manager to stop leading and issuing", func() bool {
		l := logs.String()
		return strings.Contains(l, "stopped issuing") && strings.Contains(l, "this manager stopped leading")
	})
	// When the manager stopped, as its log lines say (not when this test
	// polled them, which a loaded machine may delay).
	stopped := loggedAt(t, logs.String(), "stopped issuing")
	if at := loggedAt(t, logs.String(), "this manager stopped leading"); at.After(stopped) {
		stopped = at
	}
	if d := stopped.Sub(cut); d > ttl {
		t.Errorf("the manager stopped leading and issuing %s after the cut; the TTL is %s", d, ttl)
	}
	jctx, jcancel := context.WithTimeout(ctx, 5*time.Second)
	err = joinOnce(jctx, c, res.WorkerToken)
	jcancel()
	var apiErr *client.APIError
	if !errors.As(err, &apiErr) || apiErr.Code != api.CodeUnavailable || !strings.Contains(apiErr.Message, "lost its session with the store") {
		t.Errorf("join while cut off = %v; want unavailable, saying the session was lost", err)
	}
	select {
	case won := <-rivalWon:
		if !won.After(stopped) {
			t.Errorf("the rival won at %s, before the manager stopped leading at %s", won, stopped)
		}
	case <-time.After(3 * ttl):
		t.Fatal("the rival did not win")
	}
	// A write under the old leader's fence is refused.
	rs, err := etcdstore.New(ctx, rivalClient, etcdstore.Options{Prefix: prefix})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := rs.UpdateCluster(store.WithFence(ctx, fence), func(*store.Cluster) error { return nil }); !errors.Is(err, store.ErrFenced) {
		t.Errorf("a write under the old leader's fence = %v; want ErrFenced", err)
	}

	proxy.Restore()
	waitFor(t, "the manager to issue again", func() bool { _, s := metricsOf(); return s == 1 })
	for _, m := range []string{"chancery_manager_store_session_lost_total", "chancery_manager_leadership_lost_total"} {
		if v := scrape(t, maddr, m); v < 1 {
			t.Errorf("%s = %v; want 1 at least", m, v)
		}
	}
	if err := joinOnce(ctx, c, res.WorkerToken); err != nil {
		t.Errorf("join after reconnecting: %v", err)
	}
	cancel()
	if err := <-done; err != nil {
		t.Errorf("Run: %v", err)
	}
}

// etcdClient is a client of the shared test etcd, not through a proxy.
func etcdClient(t *testing.T) *clientv3.Client {
	t.Helper()
	c, err := clientv3.New(clientv3.Config{Endpoints: etcddev.Require(t).Endpoints, DialTimeout: 5 * time.Second, Logger: zap.NewNop()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// scrape returns the value of an unlabelled metric on a manager's metrics
// address, or -1.
func scrape(t *testing.T, addr, name string) float64 {
	t.Helper()
	resp, err := http.Get("http://" + addr + "/metrics")
	if err != nil {
		return -1
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	for _, line := range strings.Split(string(body), "\n") {
		if v, ok := strings.CutPrefix(line, name+" "); ok {
			f, err := strconv.ParseFloat(v, 64)
			if err == nil {
				return f
			}
		}
	}
	return -1
}

// loggedAt is the time of the first line of a text log that contains msg.
func loggedAt(t *testing.T, logs, msg string) time.Time {
	t.Helper()
	for _, line := range strings.Split(logs, "\n") {
		if !strings.Contains(line, msg) {
			continue
		}
		f, _, _ := strings.Cut(line, " ")
		if v, ok := strings.CutPrefix(f, "time="); ok {
			if at, err := time.Parse(time.RFC3339Nano, v); err == nil {
				return at
			}
		}
		t.Fatalf("log line without a time: %s", line)
	}
	t.Fatalf("no log line says %q", msg)
	return time.Time{}
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// runManager runs a manager on data until the test ends, and returns its
// API and metrics addresses and a function that stops it.
func runManager(t testing.TB, data string, cfg Config) (addr, metrics string, stop func()) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	mln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	metrics = mln.Addr().String()
	mln.Close()
	ctx, cancel := context.WithCancel(context.Background())
	cfg.DataDir, cfg.Listener, cfg.MetricsAddr = data, ln, metrics
	if cfg.Logger == nil {
		cfg.Logger = quiet()
	}
	ready, done := make(chan struct{}), make(chan error, 1)
	cfg.Ready = func(string) { close(ready) }
	go func() { done <- Run(ctx, cfg) }()
	select {
	case <-ready:
	case err := <-done:
		cancel()
		t.Fatalf("Run: %v", err)
	}
	var once sync.Once
	stop = func() {
		once.Do(func() {
			cancel()
			if err := <-done; err != nil {
				t.Errorf("Run: %v", err)
			}
		})
	}
	t.Cleanup(stop)
	return ln.Addr().String(), metrics, stop
}

// group is managers on one etcd.
type group struct {
	res   *cluster.InitResult
	data  []string
	addrs []string
	mets  []string
	stops []func()
	pool  *x509.CertPool
	roots []*x509.Certificate
}

// managersOn runs a manager whose store is on etcd at endpoints (the
// shared test etcd when nil), and n-1 more that joined it with the manager
// token and reach the same store; their root key is the first one's file.
func managersOn(t testing.TB, n int, ttl time.Duration, data1 string, res *cluster.InitResult) *group {
	t.Helper()
	return managersOnWith(t, n, ttl, data1, res, Config{})
}

// managersOnWith is managersOn with more of each manager's Config.
func managersOnWith(t testing.TB, n int, ttl time.Duration, data1 string, res *cluster.InitResult, more Config) *group {
	t.Helper()
	g := &group{res: res}
	add := func(data string, cfg Config) {
		cfg.HeartbeatPeriod, cfg.PruneInterval = more.HeartbeatPeriod, more.PruneInterval
		addr, met, stop := runManager(t, data, cfg)
		g.data, g.addrs, g.mets, g.stops = append(g.data, data), append(g.addrs, addr), append(g.mets, met), append(g.stops, stop)
	}
	add(data1, Config{SessionTTL: ttl, CheckpointInterval: time.Hour})
	settings, err := store.ReadSettings(data1)
	if err != nil {
		t.Fatal(err)
	}
	st, err := cluster.OpenStore(data1)
	if err != nil {
		t.Fatal(err)
	}
	c, err := st.Cluster(context.Background())
	st.Close()
	if err != nil {
		t.Fatal(err)
	}
	keyPath := c.Backend.Settings["key_path"]
	if !filepath.IsAbs(keyPath) {
		keyPath = filepath.Join(data1, keyPath)
	}
	for i := 2; i <= n; i++ {
		data := filepath.Join(filepath.Dir(data1), "m"+strconv.Itoa(i))
		if _, err := agent.Join(context.Background(), agent.JoinRequest{DataDir: data, Addr: g.addrs[0], Token: res.ManagerToken, Hostname: "m" + strconv.Itoa(i)}); err != nil {
			t.Fatal(err)
		}
		if err := store.WriteSettings(data, settings); err != nil {
			t.Fatal(err)
		}
		add(data, Config{SessionTTL: ttl, CheckpointInterval: time.Hour, BackendOverrides: map[string]string{"key_path": keyPath}})
	}
	if g.roots, _, err = certdir.In(data1).Root(); err != nil {
		t.Fatal(err)
	}
	g.pool = x509.NewCertPool()
	for _, r := range g.roots {
		g.pool.AddCert(r)
	}
	return g
}

// twoManagers is managersOn the shared test etcd with two managers.
func twoManagers(t *testing.T, ttl time.Duration) *group {
	data1, res, _, _ := etcdDataDir(t)
	return managersOn(t, 2, ttl, data1, res)
}

// TestManagersShareTheStore: two managers on one etcd both serve joins,
// one leads; when it stops, the other leads and goes on serving.
func TestManagersShareTheStore(t *testing.T) {
	// Long enough for a loaded machine (the race detector, 40 joins at
	// once) to renew in time.
	p := twoManagers(t, 5*time.Second)
	res, data2, addr1, addr2, met1, met2, stop1, pool, roots := p.res, p.data[1], p.addrs[0], p.addrs[1], p.mets[0], p.mets[1], p.stops[0], p.pool, p.roots
	clients := []*client.Client{client.New(addr1, pool, nil), client.New(addr2, pool, nil)}
	joinAll := func(n int, cs []*client.Client) {
		t.Helper()
		var wg sync.WaitGroup
		errs := make(chan error, n)
		for i := range n {
			wg.Add(1)
			go func() {
				defer wg.Done()
				errs <- joinOnce(context.Background(), cs[i%len(cs)], res.WorkerToken)
			}()
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			if err != nil {
				t.Errorf("join: %v", err)
			}
		}
	}
	joinAll(40, clients)
	leaders := func() float64 {
		return max(scrape(t, met1, "chancery_manager_leader"), 0) + max(scrape(t, met2, "chancery_manager_leader"), 0)
	}
	waitFor(t, "one leader", func() bool { return leaders() == 1 })
	if scrape(t, met1, "chancery_manager_leader") != 1 {
		t.Fatal("the first manager does not lead")
	}
	stop1()
	waitFor(t, "the second manager to lead", func() bool { return scrape(t, met2, "chancery_manager_leader") == 1 })
	joinAll(10, clients[1:])

	st, err := cluster.OpenStore(data2)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	nodes, err := st.Nodes(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if len(nodes) != 2+50 {
		t.Errorf("%d nodes; want 52", len(nodes))
	}
	serials := map[string]bool{}
	certs, err := st.IssuedCertificates(context.Background(), "")
	if err != nil {
		t.Fatal(err)
	}
	for _, ic := range certs {
		if serials[ic.Serial] {
			t.Errorf("serial %s issued twice", ic.Serial)
		}
		serials[ic.Serial] = true
	}
	recs, err := st.AuditRecords(context.Background(), 1, 0)
	if err != nil {
		t.Fatal(err)
	}
	if rep := audit.Verify(recs, []audit.Root{{Cert: roots[0]}}); !rep.OK() || rep.Checkpoints < 2 {
		t.Errorf("the audit log does not verify, or lacks each leader's checkpoint: %s", rep)
	}
}

// within polls f until it returns nil, for at most d, and returns its last
// error.
func within(d time.Duration, f func() error) error {
	deadline := time.Now().Add(d)
	for {
		err := f()
		if err == nil || time.Now().After(deadline) {
			return err
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// TestChangesReachEveryManager: a token rotation, a new certificate
// lifetime and a node removal made through one manager take effect on
// the other within a second, without a restart.
func TestChangesReachEveryManager(t *testing.T) {
	p := twoManagers(t, 5*time.Second)
	ctx := context.Background()
	admin := client.NewSocket(filepath.Join(p.data[0], api.SocketFile))
	defer admin.Close()
	c2 := client.New(p.addrs[1], p.pool, nil)
	defer c2.Close()

	t.Run("TokenRotation", func(t *testing.T) {
		tok, err := admin.JoinToken(ctx, ca.RoleWorker, true)
		if err != nil {
			t.Fatal(err)
		}
		if err := within(time.Second, func() error {
			if err := joinOnce(ctx, c2, p.res.WorkerToken); err == nil {
				return errors.New("the old token still joins")
			}
			return joinOnce(ctx, c2, tok.Token)
		}); err != nil {
			t.Errorf("a second after the rotation: %v", err)
		}
	})
	t.Run("CertExpiry", func(t *testing.T) {
		tok, err := admin.JoinToken(ctx, ca.RoleWorker, false)
		if err != nil {
			t.Fatal(err)
		}
		const expiry = 3 * time.Hour
		if err := admin.Update(ctx, api.Update{CertExpiry: expiry}); err != nil {
			t.Fatal(err)
		}
		if err := within(time.Second, func() error {
			out, _, err := joinCert(ctx, c2, tok.Token)
			if err != nil {
				return err
			}
			// NotBefore is backdated; NotAfter is the lifetime from now.
			if d := time.Until(out.NotAfter); d > expiry || d < expiry-5*time.Minute {
				return errors.New("issued for " + d.String() + " from now")
			}
			return nil
		}); err != nil {
			t.Errorf("a second after the change: %v", err)
		}
	})
	t.Run("NodeRemoval", func(t *testing.T) {
		tok, err := admin.JoinToken(ctx, ca.RoleWorker, false)
		if err != nil {
			t.Fatal(err)
		}
		leaf, cert, err := joinCert(ctx, c2, tok.Token)
		if err != nil {
			t.Fatal(err)
		}
		asNode := client.New(p.addrs[1], p.pool, func() *tls.Certificate { return cert })
		defer asNode.Close()
		if _, err := admin.Remove(ctx, leaf.Subject.CommonName, true); err != nil {
			t.Fatal(err)
		}
		if err := within(time.Second, func() error {
			_, err := asNode.Status(ctx, api.StatusRequest{})
			var apiErr *client.APIError
			if errors.As(err, &apiErr) && apiErr.Code == api.CodeNodeRemoved {
				return nil
			}
			return errors.New("the removed node is still served")
		}); err != nil {
			t.Errorf("a second after the removal: %v", err)
		}
	})
}

// joinCert joins with token through c and returns the certificate and a
// TLS certificate to present it.
func joinCert(ctx context.Context, c *client.Client, token string) (*x509.Certificate, *tls.Certificate, error) {
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	der, err := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{}, key)
	if err != nil {
		return nil, nil, err
	}
	csr := string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE REQUEST", Bytes: der}))
	out, err := c.Join(ctx, api.JoinRequest{Token: token, CSR: csr, Hostname: "node"})
	if err != nil {
		return nil, nil, err
	}
	chain, err := ca.ParseCertificatesPEM([]byte(out.CertificatePEM))
	if err != nil {
		return nil, nil, err
	}
	tc := &tls.Certificate{PrivateKey: key, Leaf: chain[0]}
	for _, x := range chain {
		tc.Certificate = append(tc.Certificate, x.Raw)
	}
	return chain[0], tc, nil
}

// TestLivenessIsShared: a node that reports to one manager only is Ready
// on both; once it stops, both say Down, at the same time give or take the
// time a heartbeat takes to go through the store. MANAGER STATUS says
// Leader and Reachable, and once the leader stops, the other leads and the
// stopped one is Unreachable.
func TestLivenessIsShared(t *testing.T) {
	data1, res, _, _ := etcdDataDir(t)
	const period = 300 * time.Millisecond
	g := managersOnWith(t, 2, 5*time.Second, data1, res, Config{HeartbeatPeriod: period})
	ctx := context.Background()
	c2 := client.New(g.addrs[1], g.pool, nil)
	defer c2.Close()
	leaf, cert, err := joinCert(ctx, c2, res.WorkerToken)
	if err != nil {
		t.Fatal(err)
	}
	id := leaf.Subject.CommonName
	asNode := client.New(g.addrs[1], g.pool, func() *tls.Certificate { return cert })
	defer asNode.Close()
	admins := []*client.Client{client.NewSocket(filepath.Join(g.data[0], api.SocketFile)), client.NewSocket(filepath.Join(g.data[1], api.SocketFile))}
	status := func(i int) string {
		n, err := admins[i].Node(ctx, id)
		if err != nil {
			return err.Error()
		}
		return n.Status
	}
	// Heartbeats to the second manager only.
	for range 10 {
		if _, err := asNode.Status(ctx, api.StatusRequest{}); err != nil {
			t.Fatal(err)
		}
		// A heartbeat goes through the store within a flush (200 ms).
		time.Sleep(period)
		if s0, s1 := status(0), status(1); s0 != "Ready" || s1 != "Ready" {
			t.Fatalf("while the node reports to the second manager: %s on the first, %s on the second", s0, s1)
		}
	}
	// Silent: both say Down, within moments of each other.
	var down [2]time.Time
	waitFor(t, "both managers to say Down", func() bool {
		for i := range down {
			if down[i].IsZero() && status(i) == "Down" {
				down[i] = time.Now()
			}
		}
		return !down[0].IsZero() && !down[1].IsZero()
	})
	if d := down[0].Sub(down[1]).Abs(); d > period {
		t.Errorf("the managers said Down %s apart", d)
	}

	// MANAGER STATUS follows the election and the shared liveness.
	managerStatus := func(admin *client.Client, i int) string {
		nodes, err := admin.Nodes(ctx)
		if err != nil {
			return err.Error()
		}
		self, err := certdir.In(g.data[i]).NodeChain()
		if err != nil {
			return err.Error()
		}
		for _, n := range nodes {
			if n.ID == self[0].Subject.CommonName {
				return n.ManagerStatus
			}
		}
		return "missing"
	}
	waitFor(t, "Leader and Reachable", func() bool {
		return managerStatus(admins[1], 0) == "Leader" && managerStatus(admins[1], 1) == "Reachable"
	})
	g.stops[0]()
	waitFor(t, "the second manager to lead and the first to be Unreachable", func() bool {
		return managerStatus(admins[1], 1) == "Leader" && managerStatus(admins[1], 0) == "Unreachable"
	})
}

// TestFileRootRotationNeedsOneManager: with two managers on one etcd and
// the root in the file backend, a rotation to a new key file (which only
// the manager asked would hold) is refused with the reason, and nothing
// changes; once the other manager is demoted, the same request starts the
// rotation.
func TestFileRootRotationNeedsOneManager(t *testing.T) {
	p := twoManagers(t, 5*time.Second)
	ctx := context.Background()
	admin := client.NewSocket(filepath.Join(p.data[0], api.SocketFile))
	defer admin.Close()
	_, err := admin.RotateCA(ctx, api.RotateRequest{})
	var apiErr *client.APIError
	if !errors.As(err, &apiErr) || apiErr.Code != api.CodeConflict || !strings.Contains(apiErr.Message, "other managers") {
		t.Fatalf("a rotation to a new key file with two managers: %v", err)
	}
	st, err := admin.CA(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if st.Rotation != nil {
		t.Fatalf("the refused rotation was recorded: %+v", st.Rotation)
	}
	chain, err := certdir.In(p.data[1]).NodeChain()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := admin.Demote(ctx, chain[0].Subject.CommonName); err != nil {
		t.Fatal(err)
	}
	out, err := admin.RotateCA(ctx, api.RotateRequest{})
	if err != nil {
		t.Fatalf("a rotation with one manager left: %v", err)
	}
	if out.Rotation == nil {
		t.Error("the rotation did not start")
	}
}

// TestAdvertiseAddrForms: a manager on etcd takes its advertise address in
// the forms init's --advertise-addr takes (a bare IP or an interface with
// the listener's port, or HOST:PORT), keeps the resolved address in etcd
// for the status answers, and refuses an address no node can reach.
func TestAdvertiseAddrForms(t *testing.T) {
	data, _, _, prefix := etcdDataDir(t)
	chain, err := certdir.In(data).NodeChain()
	if err != nil {
		t.Fatal(err)
	}
	key := prefix + managersPrefix + chain[0].Subject.CommonName
	ec := etcdClient(t)
	lo := ""
	if ifis, err := net.Interfaces(); err == nil {
		for _, ifi := range ifis {
			if ifi.Flags&net.FlagLoopback != 0 {
				lo = ifi.Name
			}
		}
	}
	for _, tc := range []struct {
		name, advertise string
		want            func(port string) string
		err             string
	}{
		{"BareIP", "127.0.0.1", func(port string) string { return "127.0.0.1:" + port }, ""},
		{"HostPort", "192.0.2.7:4000", func(string) string { return "192.0.2.7:4000" }, ""},
		{"Interface", lo, func(port string) string { return "127.0.0.1:" + port }, ""},
		{"Unspecified", "0.0.0.0", nil, "no address another node can reach"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if tc.advertise == "" {
				t.Skip("no loopback interface")
			}
			cfg := Config{AdvertiseAddr: tc.advertise, CheckpointInterval: time.Hour, SessionTTL: 2 * time.Second}
			if tc.err != "" {
				ln, err := net.Listen("tcp", "127.0.0.1:0")
				if err != nil {
					t.Fatal(err)
				}
				cfg.DataDir, cfg.Listener, cfg.Logger = data, ln, quiet()
				if err := Run(context.Background(), cfg); err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("Run: %v, want %q", err, tc.err)
				}
				return
			}
			addr, _, stop := runManager(t, data, cfg)
			defer stop()
			_, port, _ := net.SplitHostPort(addr)
			want := tc.want(port)
			waitFor(t, "the advertised address in etcd", func() bool {
				resp, err := ec.Get(context.Background(), key)
				return err == nil && len(resp.Kvs) == 1 && string(resp.Kvs[0].Value) == want
			})
		})
	}
}
