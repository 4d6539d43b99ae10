package main

import (
	"bytes"
	"context"
	"crypto/x509"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/chancery-pki/chancery/admin"
	"github.com/chancery-pki/chancery/api"
	"github.com/chancery-pki/chancery/ca"
	"github.com/chancery-pki/chancery/certdir"
	"github.com/chancery-pki/chancery/cluster"
	"github.com/chancery-pki/chancery/store"
)

// managerProcess runs `chancery run` for a data directory as a real
// process, which the test can kill with SIGKILL.
type managerProcess struct {
	t       *testing.T
	bin     string
	dataDir string
	// args, when set, are the command line instead of 'run' (for example
	// a join, which becomes 'run' once joined).
	args []string
	cmd  *exec.Cmd
	done chan struct{}
	log  bytes.Buffer
	mu   sync.Mutex
}

// chanceryBinary is this test binary under the name chancery, which
// testscript's Main runs as the chancery command.
func chanceryBinary(t testing.TB) string {
	t.Helper()
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	bin := filepath.Join(t.TempDir(), "chancery")
	if err := os.Symlink(exe, bin); err != nil {
		t.Fatal(err)
	}
	return bin
}

func (p *managerProcess) start() {
	p.t.Helper()
	args := p.args
	if args == nil {
		args = []string{"run", "--data-dir", p.dataDir, "--dispatcher-heartbeat", "200ms", "--log-level", "warn"}
	}
	p.cmd = exec.Command(p.bin, args...)
	p.cmd.SysProcAttr = childAttr()
	p.cmd.Stdout = &lockedWriter{w: &p.log, mu: &p.mu}
	p.cmd.Stderr = p.cmd.Stdout
	if err := p.cmd.Start(); err != nil {
		p.t.Fatal(err)
	}
	p.done = make(chan struct{})
	go func(cmd *exec.Cmd, done chan struct{}) { cmd.Wait(); close(done) }(p.cmd, p.done)
	eventually(p.t, "the manager process serving", func() bool {
		select {
		case <-p.done:
			p.t.Fatalf("the manager process exited:\n%s", p.output())
		default:
		}
		c, closeFn, err := admin.Open(context.Background(), p.dataDir)
		if err != nil {
			return false
		}
		defer closeFn()
		_, err = c.CA(context.Background())
		return err == nil && socketUp(p.dataDir)
	})
}

// kill kills the manager with SIGKILL and waits until it is gone.
func (p *managerProcess) kill() {
	p.t.Helper()
	p.cmd.Process.Signal(syscall.SIGKILL)
	select {
	case <-p.done:
	case <-time.After(10 * time.Second):
		p.t.Fatal("the manager process survived SIGKILL")
	}
}

func (p *managerProcess) output() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.log.String()
}

type lockedWriter struct {
	w  *bytes.Buffer
	mu *sync.Mutex
}

func (l *lockedWriter) Write(b []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(b)
}

// socketUp reports whether a manager answers on the data directory's
// socket (and not the store directly).
func socketUp(dataDir string) bool {
	conn, err := net.DialTimeout("unix", filepath.Join(dataDir, api.SocketFile), time.Second)
	if err != nil {
		return false
	}
	conn.Close()
	return true
}

// phase reads the rotation's phase from the running manager: "" when none.
func phase(t *testing.T, dataDir string) (string, *api.CAStatus) {
	t.Helper()
	c, closeFn, err := admin.Open(context.Background(), dataDir)
	if err != nil {
		return "?", nil
	}
	defer closeFn()
	st, err := c.CA(context.Background())
	if err != nil {
		return "?", nil
	}
	if st.Rotation == nil {
		return "", st
	}
	return st.Rotation.Phase, st
}

// TestRotateSurvivesSIGKILL kills the manager process with SIGKILL in each
// phase of a root rotation, and starts it again: the rotation resumes from
// the stored phase and reaches done, no handshake between the nodes fails,
// every node ends with a valid certificate from the new key under the new
// root, and the audit log verifies. The kill in prepare is the crash right
// after its transaction: the rotation is recorded while the manager is
// down, as a manager killed at once would leave it.
func TestRotateSurvivesSIGKILL(t *testing.T) {
	if testing.Short() {
		t.Skip("starts and kills manager processes")
	}
	root, err := os.MkdirTemp("", "kil")
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
	ln.Close()
	l.cli(false, "init", "--no-run", "--hostname", "m1", "--data-dir", l.dir("m1"), "--listen-addr", l.addr, "--advertise-addr", l.addr)
	p := &managerProcess{t: t, bin: chanceryBinary(t), dataDir: l.dir("m1")}
	p.start()
	t.Cleanup(func() {
		if p.cmd.ProcessState == nil {
			p.kill()
		}
	})
	token, _ := l.cli(false, "join-token", "-q", "worker", "--data-dir", l.dir("m1"))
	nodes := []string{"m1", "w1", "w2", "w3"}
	for _, n := range nodes[1:] {
		l.cli(false, "join", "--no-run", "--token", strings.TrimSpace(token), "--hostname", n, "--data-dir", l.dir(n), l.addr)
		l.runNode(n)
	}
	var m mesh
	stop := m.run(t, l, nodes)

	// Prepare: the manager dies; the rotation is recorded as its prepare
	// transaction leaves it; the manager starts again and carries on.
	p.kill()
	st, err := cluster.OpenStore(l.dir("m1"))
	if err != nil {
		t.Fatal(err)
	}
	rec, err := cluster.StartRotation(ctx, st, cluster.RotateRequest{DataDir: l.dir("m1")})
	st.Close()
	if err != nil {
		t.Fatal(err)
	}
	if rec.Rotation == nil || rec.Rotation.Phase != store.PhasePrepare {
		t.Fatalf("the rotation is recorded as %+v", rec.Rotation)
	}
	target := rec.Rotation.Target.CertPEM
	p.start()

	// Reissue and switch-trust: killed as soon as seen.
	for _, want := range []string{string(store.PhaseReissue), string(store.PhaseSwitchTrust)} {
		eventually(t, "phase "+want, func() bool { ph, _ := phase(t, l.dir("m1")); return ph == want })
		if want == string(store.PhaseReissue) {
			// info and the metrics show the rotation (the phase may have
			// moved on since).
			info, _ := l.cli(false, "info", "--data-dir", l.dir("m1"))
			if !strings.Contains(info, "  Root Rotation: ") || !strings.Contains(info, "   New Root CA Fingerprint: "+cluster.Fingerprint(mustRoot(t, target))) {
				t.Errorf("info during the rotation:\n%s", info)
			}
			if metrics := scrape(t, l.dir("m1")); !strings.Contains(metrics, `chancery_root_rotation_nodes{state="total"} 4`) {
				t.Errorf("metrics during the rotation lack the rotation's nodes:\n%s", metrics)
			}
		}
		p.kill()
		st, err := cluster.OpenStore(l.dir("m1"))
		if err != nil {
			t.Fatal(err)
		}
		c, err := st.Cluster(ctx)
		st.Close()
		if err != nil {
			t.Fatal(err)
		}
		killedIn := "done"
		if c.Rotation != nil {
			killedIn = string(c.Rotation.Phase)
		}
		// The phase may have moved on between the look and the kill; the
		// kill then tests the next one.
		t.Logf("killed with SIGKILL in phase %s (aimed at %s)", killedIn, want)
		p.start()
	}
	eventually(t, "the rotation done", func() bool {
		ph, st := phase(t, l.dir("m1"))
		return ph == "" && st != nil && st.RootCAPEM == string(target)
	})
	for _, n := range nodes {
		eventually(t, n+" trusting the new root", func() bool {
			_, raw, err := certdir.In(l.dir(n)).Root()
			return err == nil && bytes.Equal(raw, target)
		})
	}
	stop()
	for _, f := range m.failed {
		t.Error(f)
	}
	newRoot, err := ca.ParseCertificatesPEM(target)
	if err != nil {
		t.Fatal(err)
	}
	for _, n := range nodes {
		chain, err := certdir.In(l.dir(n)).NodeChain()
		if err != nil {
			t.Fatal(err)
		}
		if err := ca.VerifyChain(chain, newRoot, time.Now()); err != nil {
			t.Errorf("%s's certificate does not verify under the new root: %v", n, err)
		}
		if !bytes.Equal(chain[0].AuthorityKeyId, newRoot[0].SubjectKeyId) {
			t.Errorf("%s holds a certificate from another key", n)
		}
	}
	out, _ := l.cli(false, "audit", "verify", "--data-dir", l.dir("m1"))
	if !strings.Contains(out, "audit log OK") {
		t.Errorf("audit verify:\n%s", out)
	}
	t.Logf("%d handshakes, %d failed", m.ok.Load(), len(m.failed))
}

func mustRoot(t *testing.T, p []byte) *x509.Certificate {
	t.Helper()
	certs, err := ca.ParseCertificatesPEM(p)
	if err != nil {
		t.Fatal(err)
	}
	return certs[0]
}

// scrape reads the manager's metrics from its administration socket.
func scrape(t *testing.T, dataDir string) string {
	t.Helper()
	hc := &http.Client{Transport: &http.Transport{DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
		return (&net.Dialer{}).DialContext(ctx, "unix", filepath.Join(dataDir, api.SocketFile))
	}}, Timeout: 5 * time.Second}
	resp, err := hc.Get("http://manager/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}
