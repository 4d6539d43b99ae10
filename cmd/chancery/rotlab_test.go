package main

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/chancery-pki/chancery/admin"
	"github.com/chancery-pki/chancery/agent"
	"github.com/chancery-pki/chancery/api"
	"github.com/chancery-pki/chancery/audit"
	"github.com/chancery-pki/chancery/ca"
	"github.com/chancery-pki/chancery/certdir"
	"github.com/chancery-pki/chancery/client"
	"github.com/chancery-pki/chancery/manager"
)

// This file holds what the tests of a root rotation's failure paths share:
// a cluster whose manager can be stopped and run again and whose workers
// can be stopped one by one or slowed down (rotLab), and mutual-TLS
// traffic between its live nodes (traffic).

// rotLab is a cluster of a manager, m1, and workers, each run in process.
type rotLab struct {
	*lab
	// mcfg is the manager's configuration, but for its listener.
	mcfg    manager.Config
	stopMgr func()
	// nodes are m1 and the workers, in order.
	nodes  []string
	agents map[string]*runningAgent
}

// runningAgent is a worker's agent that runs until stopped.
type runningAgent struct {
	cancel context.CancelFunc
	done   <-chan error
	slow   *slowNode
}

// newRotLab initializes a cluster on m1 and runs its manager, configured
// by tune, then joins and runs the workers; those in slow run behind a
// slowNode, which passes everything through until told otherwise.
func newRotLab(t *testing.T, workers []string, slow []string, tune func(*manager.Config)) *rotLab {
	t.Helper()
	root, err := os.MkdirTemp("", "rf") // short: the manager's socket path must fit
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(root) })
	ctx, cancel := context.WithCancel(context.Background())
	r := &rotLab{lab: &lab{t: t, root: root, ctx: ctx}, agents: map[string]*runningAgent{}}
	t.Cleanup(func() { cancel(); r.wg.Wait() })
	r.mcfg = manager.Config{DataDir: r.dir("m1"), Logger: quietLogger(), HeartbeatPeriod: 100 * time.Millisecond,
		CheckpointInterval: time.Hour, ReconcileInterval: 100 * time.Millisecond}
	if tune != nil {
		tune(&r.mcfg)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	r.addr = ln.Addr().String()
	r.cli(false, "init", "--no-run", "--hostname", "m1", "--data-dir", r.dir("m1"), "--listen-addr", r.addr, "--advertise-addr", r.addr)
	r.startManager(ln)
	token := strings.TrimSpace(r.token("worker"))
	r.nodes = append([]string{"m1"}, workers...)
	for _, w := range workers {
		r.cli(false, "join", "--no-run", "--token", token, "--hostname", w, "--data-dir", r.dir(w), r.addr)
		r.startNode(w, slices.Contains(slow, w))
	}
	return r
}

// startManager runs m1's manager on ln until stopManager or the end of the
// test, and waits until it serves.
func (r *rotLab) startManager(ln net.Listener) {
	r.t.Helper()
	ctx, cancel := context.WithCancel(r.ctx)
	cfg := r.mcfg
	ready, done := make(chan struct{}), make(chan error, 1)
	cfg.Listener, cfg.Ready = ln, func(string) { close(ready) }
	r.wg.Add(1)
	go func() {
		defer r.wg.Done()
		done <- manager.Run(ctx, cfg)
	}()
	select {
	case <-ready:
	case err := <-done:
		cancel()
		r.t.Fatalf("m1's manager did not start: %v", err)
	}
	r.stopMgr = func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				r.t.Errorf("m1's manager: %v", err)
			}
		case <-time.After(15 * time.Second):
			r.t.Fatal("m1's manager did not stop")
		}
	}
}

// restartManager stops m1's manager and runs it again on the same
// address, as after a crash: the nodes keep running meanwhile.
func (r *rotLab) restartManager() {
	r.t.Helper()
	r.stopMgr()
	ln, err := net.Listen("tcp", r.addr)
	if err != nil {
		r.t.Fatal(err)
	}
	r.startManager(ln)
}

// startNode runs a joined worker's agent, behind a slowNode if slow.
func (r *rotLab) startNode(node string, slow bool) {
	r.t.Helper()
	ctx, cancel := context.WithCancel(r.ctx)
	// The agent beats at its own period until the manager's first answer
	// gives the manager's: the same from the start, so that a live node is
	// never silent for longer than a short straggler grace.
	cfg := agent.Config{DataDir: r.dir(node), Hostname: node, Logger: quietLogger(), HeartbeatPeriod: r.mcfg.HeartbeatPeriod}
	ra := &runningAgent{cancel: cancel}
	var ag *agent.Agent
	if slow {
		ra.slow = &slowNode{dir: r.dir(node), stop: cancel, cert: func() *tls.Certificate { return ag.Certificate() }}
		cfg.Manager = ra.slow
	}
	ag, err := agent.New(cfg)
	if err != nil {
		cancel()
		r.t.Fatal(err)
	}
	done := make(chan error, 1)
	ra.done = done
	r.wg.Add(1)
	go func() {
		defer r.wg.Done()
		done <- ag.Run(ctx)
	}()
	r.agents[node] = ra
}

// token returns a join token, as `join-token -q` prints it.
func (r *rotLab) token(role string) string {
	r.t.Helper()
	out, _ := r.cli(false, "join-token", "-q", role, "--data-dir", r.dir("m1"))
	return out
}

// status returns the manager's answer to `chancery ca`: the root, and the
// rotation in progress.
func (r *rotLab) status() *api.CAStatus {
	r.t.Helper()
	c, done, err := admin.Open(r.ctx, r.dir("m1"))
	if err != nil {
		r.t.Fatal(err)
	}
	defer done()
	st, err := c.CA(r.ctx)
	if err != nil {
		r.t.Fatal(err)
	}
	return st
}

// waitPhase waits until the rotation in progress is in phase ("" for
// none), and returns the status.
func (r *rotLab) waitPhase(phase string) *api.CAStatus {
	r.t.Helper()
	var st *api.CAStatus
	eventually(r.t, "the rotation's phase "+phase, func() bool {
		st = r.status()
		if phase == "" {
			return st.Rotation == nil
		}
		return st.Rotation != nil && st.Rotation.Phase == phase
	})
	return st
}

// rootFile reads the root a node trusts.
func (r *rotLab) rootFile(node string) []byte {
	r.t.Helper()
	_, raw, err := certdir.In(r.dir(node)).Root()
	if err != nil {
		r.t.Fatal(err)
	}
	return raw
}

// issuedBy reports whether node's certificate was issued by root's key.
func (r *rotLab) issuedBy(node string, root *x509.Certificate) bool {
	chain, err := certdir.In(r.dir(node)).NodeChain()
	return err == nil && bytes.Equal(chain[0].AuthorityKeyId, root.SubjectKeyId)
}

// keyFiles lists the key files in m1's ca directory.
func (r *rotLab) keyFiles() []string {
	r.t.Helper()
	m, err := filepath.Glob(filepath.Join(r.dir("m1"), "ca", "*.key"))
	if err != nil {
		r.t.Fatal(err)
	}
	for i := range m {
		m[i] = filepath.Base(m[i])
	}
	return m
}

// clusterState is what a refused request must leave as it was.
type clusterState struct {
	Root, Phase, Target, WorkerToken, ManagerToken string
	KeyFiles                                       []string
	// Audit holds the audit log's entries but for checkpoints and
	// refusals.
	Audit []string
}

func (r *rotLab) state() clusterState {
	r.t.Helper()
	st := r.status()
	s := clusterState{Root: st.RootFingerprint, WorkerToken: r.token("worker"), ManagerToken: r.token("manager"), KeyFiles: r.keyFiles()}
	if st.Rotation != nil {
		s.Phase, s.Target = st.Rotation.Phase, st.Rotation.TargetFingerprint
	}
	export, _ := r.cli(false, "audit", "export", "--data-dir", r.dir("m1"))
	for _, line := range strings.Split(strings.TrimSpace(export), "\n") {
		e, err := audit.Unmarshal([]byte(line))
		if err != nil {
			r.t.Fatalf("audit export line %q: %v", line, err)
		}
		if e.Action != audit.ActionCheckpoint && e.Action != audit.ActionRefused {
			s.Audit = append(s.Audit, line)
		}
	}
	return s
}

// rotationEntries returns the steps of the audit log's root.rotation
// entries, in order.
func (r *rotLab) rotationEntries() []string {
	r.t.Helper()
	// The leader forgets a retired root's key just after the step that
	// retired it: wait for its forget-key entry.
	eventually(r.t, "the retired keys forgotten", func() bool { return len(r.status().RetiredKeys) == 0 })
	export, _ := r.cli(false, "audit", "export", "--data-dir", r.dir("m1"))
	var steps []string
	for _, line := range strings.Split(strings.TrimSpace(export), "\n") {
		e, err := audit.Unmarshal([]byte(line))
		if err != nil {
			r.t.Fatalf("audit export line %q: %v", line, err)
		}
		if e.Action == audit.ActionRootRotation {
			steps = append(steps, e.Details["step"])
		}
	}
	return steps
}

// auditVerifies runs `audit verify`.
func (r *rotLab) auditVerifies() {
	r.t.Helper()
	out, _ := r.cli(false, "audit", "verify", "--data-dir", r.dir("m1"))
	if !strings.Contains(out, "audit log OK") {
		r.t.Errorf("audit verify:\n%s", out)
	}
}

// slowNode stands between a worker's agent and its manager, to hold a
// rotation where a test wants it: a node slow to renew (it does not hear
// the manager ask it to), slow to take the new root (it does not hear of
// it, and keeps reporting the old one), or one that stops right after it
// renewed and said so in a heartbeat. It talks to the manager with the
// node's certificate and the roots the node holds, as the agent's own
// client does.
type slowNode struct {
	dir  string
	cert func() *tls.Certificate
	stop context.CancelFunc
	// deafToRenew keeps the manager's requests to renew from the agent,
	// which hears them once it is false again (owed); deafToRoot keeps the
	// root the manager gives from it; stopAfterRenew stops the agent once
	// it renewed and told the manager, in a heartbeat, that it presents
	// the new certificate (renewed is set in between).
	deafToRenew, deafToRoot, stopAfterRenew, renewed, owed atomic.Bool

	mu      sync.Mutex
	rootPEM []byte
	c       *client.Client
}

func (s *slowNode) client() (*client.Client, error) {
	roots, raw, err := certdir.In(s.dir).Root()
	if err != nil {
		return nil, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.c != nil && bytes.Equal(raw, s.rootPEM) {
		return s.c, nil
	}
	st, err := agent.ReadState(s.dir)
	if err != nil {
		return nil, err
	}
	pool := x509.NewCertPool()
	for _, r := range roots {
		pool.AddCert(r)
	}
	if s.c != nil {
		s.c.Close()
	}
	s.c = client.NewForCluster(st.Managers[0], pool, s.cert, strings.Join(s.cert().Leaf.Subject.Organization, ""))
	s.rootPEM = raw
	return s.c, nil
}

func (s *slowNode) Status(ctx context.Context, req api.StatusRequest) (*api.Status, error) {
	c, err := s.client()
	if err != nil {
		return nil, err
	}
	st, err := c.Status(ctx, req)
	if err != nil {
		return nil, err
	}
	if s.renewed.Load() && s.stopAfterRenew.Load() {
		s.stop()
	}
	switch {
	case s.deafToRenew.Load():
		if st.RenewNow {
			s.owed.Store(true)
		}
		st.RenewNow = false
	case s.owed.Swap(false):
		st.RenewNow = true
	}
	if s.deafToRoot.Load() {
		st.RootCAPEM = ""
	}
	return st, nil
}

func (s *slowNode) Renew(ctx context.Context, req api.RenewRequest) (*api.Certificate, error) {
	c, err := s.client()
	if err != nil {
		return nil, err
	}
	out, err := c.Renew(ctx, req)
	if err == nil && s.stopAfterRenew.Load() {
		s.renewed.Store(true)
	}
	return out, err
}

// traffic makes every live node shake hands with every other over mutual
// TLS, as TestRotateUnderTraffic does, each side with the files it holds
// at that moment, until finish; drop takes a node out of it first.
type traffic struct {
	m mesh
	// mu is held for reading by a round of dials, for writing by drop.
	mu    sync.RWMutex
	live  map[string]bool
	addrs map[string]string
	ids   map[string]string
	lns   map[string]net.Listener
	stop  chan struct{}
	wg    sync.WaitGroup
}

// startTraffic starts the traffic between r's nodes, and waits until every
// pair has shaken hands at least once.
func (r *rotLab) startTraffic() *traffic {
	r.t.Helper()
	tr := &traffic{live: map[string]bool{}, addrs: map[string]string{}, ids: map[string]string{},
		lns: map[string]net.Listener{}, stop: make(chan struct{})}
	for _, n := range r.nodes {
		nl, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			r.t.Fatal(err)
		}
		tr.live[n], tr.lns[n], tr.addrs[n], tr.ids[n] = true, nl, nl.Addr().String(), nodeID(r.t, r.dir(n))
		go tr.m.serve(nl, r.dir(n))
	}
	for _, from := range r.nodes {
		tr.wg.Add(1)
		go func() {
			defer tr.wg.Done()
			for {
				select {
				case <-tr.stop:
					return
				case <-time.After(10 * time.Millisecond):
				}
				tr.mu.RLock()
				if !tr.live[from] {
					tr.mu.RUnlock()
					return
				}
				for _, to := range r.nodes {
					if to != from && tr.live[to] {
						tr.m.dial(r.dir(from), tr.addrs[to], tr.ids[to])
					}
				}
				tr.mu.RUnlock()
			}
		}()
	}
	n := len(r.nodes)
	eventually(r.t, "traffic between every node", func() bool { return tr.m.ok.Load() >= int64(n*(n-1)) })
	return tr
}

// drop takes node out of the traffic: no handshake with it is under way
// when drop returns, and none is made from then on.
func (tr *traffic) drop(node string) {
	tr.mu.Lock()
	tr.live[node] = false
	tr.mu.Unlock()
	tr.lns[node].Close()
}

// finish stops the traffic, fails the test for every handshake that
// failed, and returns how many succeeded.
func (tr *traffic) finish(t *testing.T) int64 {
	t.Helper()
	close(tr.stop)
	tr.wg.Wait()
	for _, ln := range tr.lns {
		ln.Close()
	}
	tr.m.mu.Lock()
	defer tr.m.mu.Unlock()
	for _, f := range tr.m.failed {
		t.Error("failed handshake: " + f)
	}
	return tr.m.ok.Load()
}

// fakeExternalCA serves, over TLS, a CFSSL info endpoint that reports root
// as the CA's certificate, and returns the --external-ca value that names
// it. It signs nothing: a rotation to it is refused or aborted before the
// new root would sign.
func fakeExternalCA(t *testing.T, root *x509.Certificate) string {
	t.Helper()
	srv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		if req.URL.Path != "/api/v1/cfssl/info" {
			http.NotFound(w, req)
			return
		}
		json.NewEncoder(w).Encode(map[string]any{
			"success": true, "errors": []any{}, "messages": []any{},
			"result": map[string]any{"certificate": string(ca.EncodeCertificatesPEM(root))},
		})
	}))
	t.Cleanup(srv.Close)
	bundle := filepath.Join(t.TempDir(), "external-ca-tls.pem")
	if err := os.WriteFile(bundle, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: srv.Certificate().Raw}), 0o600); err != nil {
		t.Fatal(err)
	}
	return "protocol=cfssl,url=" + srv.URL + "/api/v1/cfssl/sign,cacert=" + bundle
}
