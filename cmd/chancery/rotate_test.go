package main

import (
	"bytes"
	"context"
	"crypto"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/chancery-pki/chancery/ca"
	"github.com/chancery-pki/chancery/certdir"
)

// files reads what a node holds at this moment: its key and certificate
// chain (a pair that matches: a renewal replaces them one rename after the
// other, so a read that falls between is read again) and its roots.
func files(dataDir string) (*tls.Certificate, *x509.CertPool, error) {
	dir := certdir.In(dataDir)
	var lastErr error
	for range 100 {
		key, err := dir.NodeKey()
		if err != nil {
			return nil, nil, err
		}
		chain, err := dir.NodeChain()
		if err != nil {
			return nil, nil, err
		}
		if pub, ok := key.Public().(interface{ Equal(crypto.PublicKey) bool }); !ok || !pub.Equal(chain[0].PublicKey) {
			lastErr = fmt.Errorf("%s: the key and the certificate do not match", dataDir)
			time.Sleep(2 * time.Millisecond)
			continue
		}
		roots, _, err := dir.Root()
		if err != nil {
			return nil, nil, err
		}
		pool := x509.NewCertPool()
		for _, r := range roots {
			pool.AddCert(r)
		}
		c := &tls.Certificate{PrivateKey: key, Leaf: chain[0]}
		for _, x := range chain {
			c.Certificate = append(c.Certificate, x.Raw)
		}
		return c, pool, nil
	}
	return nil, nil, lastErr
}

// mesh makes every node shake hands with every other over mutual TLS, each
// side with the certificate, key and roots it holds at that moment, until
// stop; it counts the handshakes that succeed and keeps those that fail.
type mesh struct {
	ok     atomic.Int64
	mu     sync.Mutex
	failed []string
	// beforeDial, when set, is called with the dialing node's data
	// directory before each handshake it makes.
	beforeDial func(dataDir string)
}

func (m *mesh) fail(format string, args ...any) {
	m.mu.Lock()
	m.failed = append(m.failed, fmt.Sprintf(format, args...))
	m.mu.Unlock()
}

// serve answers handshakes as node dataDir until ln closes.
func (m *mesh) serve(ln net.Listener, dataDir string) {
	cfg := &tls.Config{
		MinVersion: tls.VersionTLS12,
		GetConfigForClient: func(*tls.ClientHelloInfo) (*tls.Config, error) {
			cert, roots, err := files(dataDir)
			if err != nil {
				return nil, err
			}
			return &tls.Config{MinVersion: tls.VersionTLS12, Certificates: []tls.Certificate{*cert},
				ClientCAs: roots, ClientAuth: tls.RequireAndVerifyClientCert}, nil
		},
	}
	for {
		conn, err := ln.Accept()
		if err != nil {
			return
		}
		go func() {
			defer conn.Close()
			tc := tls.Server(conn, cfg)
			tc.SetDeadline(time.Now().Add(5 * time.Second))
			if err := tc.Handshake(); err != nil {
				m.fail("%s accepting: %v", filepath.Base(dataDir), err)
				return
			}
			tc.Write([]byte{1})
		}()
	}
}

// dial shakes hands with the node at addr, whose node ID is peerID, as
// node dataDir.
func (m *mesh) dial(dataDir, addr, peerID string) {
	cert, roots, err := files(dataDir)
	if err != nil {
		m.fail("%s reading its files: %v", filepath.Base(dataDir), err)
		return
	}
	conn, err := tls.DialWithDialer(&net.Dialer{Timeout: 5 * time.Second}, "tcp", addr, &tls.Config{
		MinVersion: tls.VersionTLS12, RootCAs: roots, ServerName: peerID, Certificates: []tls.Certificate{*cert},
	})
	if err != nil {
		m.fail("%s dialing %s: %v", filepath.Base(dataDir), peerID, err)
		return
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(5 * time.Second))
	var b [1]byte
	if _, err := conn.Read(b[:]); err != nil {
		m.fail("%s reading from %s: %v", filepath.Base(dataDir), peerID, err)
		return
	}
	m.ok.Add(1)
}

// run starts the mesh between nodes: each serves handshakes on a loopback
// port, and dials every other every 10ms. The returned function stops it
// and waits.
func (m *mesh) run(t *testing.T, l *lab, nodes []string) (stop func()) {
	t.Helper()
	addrs, ids := map[string]string{}, map[string]string{}
	var lns []net.Listener
	for _, n := range nodes {
		nl, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		lns = append(lns, nl)
		addrs[n], ids[n] = nl.Addr().String(), nodeID(t, l.dir(n))
		go m.serve(nl, l.dir(n))
	}
	done := make(chan struct{})
	var traffic sync.WaitGroup
	for _, from := range nodes {
		traffic.Add(1)
		go func() {
			defer traffic.Done()
			for {
				select {
				case <-done:
					return
				case <-time.After(10 * time.Millisecond):
				}
				for _, to := range nodes {
					if to != from {
						if m.beforeDial != nil {
							m.beforeDial(l.dir(from))
						}
						m.dial(l.dir(from), addrs[to], ids[to])
					}
				}
			}
		}()
	}
	var once sync.Once
	stop = func() {
		once.Do(func() {
			close(done)
			traffic.Wait()
			for _, nl := range lns {
				nl.Close()
			}
		})
	}
	t.Cleanup(stop)
	return stop
}

// nodeID is the node ID of a data directory's certificate.
func nodeID(t *testing.T, dataDir string) string {
	t.Helper()
	chain, err := certdir.In(dataDir).NodeChain()
	if err != nil {
		t.Fatal(err)
	}
	return chain[0].Subject.CommonName
}

// TestRotateUnderTraffic rotates the root of a cluster of a manager, a
// joined manager and three workers, to a new key in the file backend, with `chancery ca
// --rotate`, while every node keeps shaking hands with every other from
// the files it holds: not one handshake may fail. At the end every node
// trusts the new root and holds a certificate from its key, the join
// tokens have changed, the old key file is gone, and the audit log
// verifies across the rotation.
func TestRotateUnderTraffic(t *testing.T) {
	root, err := os.MkdirTemp("", "rot")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(root) })
	ctx, cancel := context.WithCancel(context.Background())
	l := &lab{t: t, root: root, ctx: ctx}
	t.Cleanup(func() { cancel(); l.wg.Wait() })
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	l.addr = ln.Addr().String()
	l.cli(false, "init", "--no-run", "--hostname", "m1", "--data-dir", l.dir("m1"), "--listen-addr", l.addr, "--advertise-addr", l.addr)
	l.runLeader("m1", ln)
	oldRootPEM, _ := l.cli(false, "ca", "--data-dir", l.dir("m1"))
	workerToken, _ := l.cli(false, "join-token", "-q", "worker", "--data-dir", l.dir("m1"))
	workerToken = strings.TrimSpace(workerToken)
	nodes := []string{"m1", "m2", "w1", "w2", "w3"}
	managerToken, _ := l.cli(false, "join-token", "-q", "manager", "--data-dir", l.dir("m1"))
	l.cli(false, "join", "--no-run", "--token", strings.TrimSpace(managerToken), "--hostname", "m2", "--data-dir", l.dir("m2"), l.addr)
	l.runFollower("m2")
	for _, n := range nodes[2:] {
		l.cli(false, "join", "--no-run", "--token", workerToken, "--hostname", n, "--data-dir", l.dir(n), l.addr)
		l.runNode(n)
	}

	// Every node serves handshakes; every node dials every other, again and
	// again, until the rotation is done.
	var m mesh
	stopTraffic := m.run(t, l, nodes)
	time.Sleep(200 * time.Millisecond)
	before := m.ok.Load()

	oldKey := filepath.Join(l.dir("m1"), "ca", "root-ca.key")
	if _, err := os.Stat(oldKey); err != nil {
		t.Fatal(err)
	}
	_, progress := l.cli(false, "ca", "--rotate", "--data-dir", l.dir("m1"))
	stopTraffic()
	if !strings.Contains(progress, "Root rotation done") {
		t.Errorf("ca --rotate printed:\n%s", progress)
	}
	for _, f := range m.failed {
		t.Error(f)
	}
	if n := m.ok.Load(); n-before < int64(len(nodes)*(len(nodes)-1)) {
		t.Errorf("only %d handshakes during the rotation", n-before)
	}
	t.Logf("%d handshakes, %d failed; progress:\n%s", m.ok.Load(), len(m.failed), progress)

	newRootPEM, _ := l.cli(false, "ca", "--data-dir", l.dir("m1"))
	if newRootPEM == oldRootPEM {
		t.Fatal("the root did not change")
	}
	newRoots, err := certdirRoots(newRootPEM)
	if err != nil {
		t.Fatal(err)
	}
	for _, n := range nodes {
		eventually(t, n+" trusting the new root", func() bool {
			_, raw, err := certdir.In(l.dir(n)).Root()
			return err == nil && bytes.Equal(raw, []byte(newRootPEM))
		})
		chain, err := certdir.In(l.dir(n)).NodeChain()
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(chain[0].AuthorityKeyId, newRoots.SubjectKeyId) {
			t.Errorf("%s holds a certificate from another key than the new root's", n)
		}
	}
	// The joined manager administers through the leader, trusting the new
	// root.
	if ls, _ := l.cli(false, "node", "ls", "--data-dir", l.dir("m2")); strings.Count(ls, "\n") != len(nodes)+1 {
		t.Errorf("node ls on the joined manager:\n%s", ls)
	}
	if newToken, _ := l.cli(false, "join-token", "-q", "worker", "--data-dir", l.dir("m1")); strings.TrimSpace(newToken) == workerToken {
		t.Error("the worker join token did not change")
	}
	_, errOut := l.cli(true, "join", "--no-run", "--token", workerToken, "--hostname", "late", "--data-dir", l.dir("late"), l.addr)
	if !regexp.MustCompile(`(?i)token|digest|root`).MatchString(errOut) {
		t.Errorf("a join with the old token failed with %q", errOut)
	}
	if _, err := os.Stat(oldKey); !os.IsNotExist(err) {
		t.Errorf("the old root's key file is still there (%v)", err)
	}
	out, _ := l.cli(false, "audit", "verify", "--data-dir", l.dir("m1"))
	if !strings.Contains(out, "audit log OK") {
		t.Errorf("audit verify:\n%s", out)
	}
}

// certdirRoots parses the first certificate of a PEM bundle.
func certdirRoots(p string) (*x509.Certificate, error) {
	roots, err := ca.ParseCertificatesPEM([]byte(p))
	if err != nil {
		return nil, err
	}
	return roots[0], nil
}
