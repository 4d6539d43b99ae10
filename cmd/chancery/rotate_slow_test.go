package main

import (
	"context"
	"crypto/x509"
	"net"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/chancery-pki/chancery/agent"
	"github.com/chancery-pki/chancery/api"
	"github.com/chancery-pki/chancery/certdir"
	"github.com/chancery-pki/chancery/client"
)

// slowWriter is a node's connection to its manager that hands the agent a
// renewed certificate only some time after the manager issued it, as a
// node does whose disk is slow, or that is busy: the manager has recorded
// the certificate, the node does not use it yet.
type slowWriter struct {
	agent.Manager
	delay time.Duration
}

func (s *slowWriter) Renew(ctx context.Context, req api.RenewRequest) (*api.Certificate, error) {
	c, err := s.Manager.Renew(ctx, req)
	if err == nil {
		time.Sleep(s.delay)
	}
	return c, err
}

// runSlowNode runs a joined node's agent whose renewals reach its files
// delay after the manager issued them.
func (l *lab) runSlowNode(node string, delay time.Duration) {
	l.t.Helper()
	st, err := agent.ReadState(l.dir(node))
	if err != nil {
		l.t.Fatal(err)
	}
	roots, _, err := certdir.In(l.dir(node)).Root()
	if err != nil {
		l.t.Fatal(err)
	}
	chain, err := certdir.In(l.dir(node)).NodeChain()
	if err != nil {
		l.t.Fatal(err)
	}
	pool := x509.NewCertPool()
	for _, r := range roots {
		pool.AddCert(r)
	}
	sw := &slowWriter{delay: delay}
	ag, err := agent.New(agent.Config{DataDir: l.dir(node), Hostname: node, Logger: quietLogger(), Manager: sw})
	if err != nil {
		l.t.Fatal(err)
	}
	sw.Manager = client.NewForCluster(st.Managers[0], pool, ag.Certificate, chain[0].Subject.Organization[0])
	l.wg.Add(1)
	go func() {
		defer l.wg.Done()
		ag.Run(l.ctx)
	}()
}

// TestRotateWaitsForNodesToUseTheirCertificate rotates the root while one
// node takes a second to start using each certificate the manager issues
// it: the trust switch must wait until that node presents its certificate
// from the new key, or the nodes that already trust only the new root
// refuse the old certificate it still presents.
func TestRotateWaitsForNodesToUseTheirCertificate(t *testing.T) {
	root, err := os.MkdirTemp("", "rsw")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(root) })
	ctx, cancel := context.WithCancel(context.Background())
	l := &lab{t: t, root: root, ctx: ctx}
	t.Cleanup(func() { cancel(); l.wg.Wait() })
	defer func(d time.Duration) { caPollInterval = d }(caPollInterval)
	caPollInterval = 100 * time.Millisecond
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	l.addr = ln.Addr().String()
	l.cli(false, "init", "--no-run", "--hostname", "m1", "--data-dir", l.dir("m1"), "--listen-addr", l.addr, "--advertise-addr", l.addr)
	l.runMatrixLeader("m1", ln)
	token, _ := l.cli(false, "join-token", "-q", "worker", "--data-dir", l.dir("m1"))
	nodes := []string{"m1", "w1", "slow"}
	for _, n := range nodes[1:] {
		l.cli(false, "join", "--no-run", "--token", strings.TrimSpace(token), "--hostname", n, "--data-dir", l.dir(n), l.addr)
	}
	l.runNode("w1")
	l.runSlowNode("slow", 1500*time.Millisecond)
	m, stop := startMesh(t, l, nodes)
	defer stop()
	time.Sleep(200 * time.Millisecond)

	_, progress := l.cli(false, "ca", "--rotate", "--data-dir", l.dir("m1"))
	time.Sleep(200 * time.Millisecond)
	stop()
	for _, f := range m.failed {
		t.Error(f)
	}
	t.Logf("%d handshakes, %d failed; progress:\n%s", m.ok.Load(), len(m.failed), progress)
}
