package main

import (
	"bytes"
	"context"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/chancery-pki/chancery/agent"
	"github.com/chancery-pki/chancery/audit"
	"github.com/chancery-pki/chancery/ca"
	"github.com/chancery-pki/chancery/certdir"
	"github.com/chancery-pki/chancery/cluster"
	"github.com/chancery-pki/chancery/internal/etcddev"
	"github.com/chancery-pki/chancery/softhsm"
	"github.com/chancery-pki/chancery/store"
)

// TestLeaderKilledMidRotationOnEtcd: three manager processes (the real
// binary) on one etcd, the root in a PKCS#11 token (SoftHSM2) that every
// manager reaches, three workers joined through different managers. A root
// rotation is started on the leader with `chancery ca --rotate`; in its
// reissue phase the leader is killed with SIGKILL, and stays down. Another
// manager takes over the lead and the rotation's transitions, and the
// workers fail over to the survivors. The managers run with a short
// --straggler-grace: the killed manager, silent past it, is the only
// straggler, and `chancery ca --force` on the new leader excludes it; the
// two survivors then finish the rotation without it. All the while every
// node shakes hands with every other over mutual TLS from the files it
// holds (the killed manager's too, until it is excluded, since an excluded
// node must join again): not one handshake may fail. At the end every
// node but the killed manager holds a certificate from the new key and
// trusts the new root, the rotation's later steps were made by another
// manager, and `audit verify` passes.
func TestLeaderKilledMidRotationOnEtcd(t *testing.T) {
	if testing.Short() {
		t.Skip("starts and kills manager processes")
	}
	e := etcddev.StartForTest(t, etcddev.Options{NoFsync: true})
	tok := softhsm.NewToken(t)
	root, err := os.MkdirTemp("", "lk")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(root) })
	ctx, cancel := context.WithCancel(context.Background())
	l := &lab{t: t, root: root, ctx: ctx}
	t.Cleanup(func() { cancel(); l.wg.Wait() })
	etcdFlags := []string{"--store", "etcd", "--etcd-endpoints", strings.Join(e.Endpoints, ","), "--etcd-prefix", "/lk/"}
	managers := []string{"m1", "m2", "m3"}
	addrs := map[string]string{}
	for _, m := range managers {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		addrs[m] = ln.Addr().String()
		ln.Close()
	}
	bin := chanceryBinary(t)
	procs := map[string]*managerProcess{}
	// Short, so that the killed manager is soon a straggler; long enough
	// for a worker's failover to a survivor (at once: the killed manager's
	// port refuses) not to make it one.
	const grace = 5 * time.Second
	startManager := func(m string) {
		p := &managerProcess{t: t, bin: bin, dataDir: l.dir(m), args: []string{"run", "--data-dir", l.dir(m),
			"--dispatcher-heartbeat", "200ms", "--log-level", "warn", "--straggler-grace", grace.String()}}
		p.start()
		procs[m] = p
		t.Cleanup(func() {
			if p.cmd.ProcessState == nil {
				p.kill()
			}
		})
	}
	l.cli(false, append([]string{"init", "--no-run", "--hostname", "m1", "--data-dir", l.dir("m1"), "--cert-expiry", "1h",
		"--listen-addr", addrs["m1"], "--advertise-addr", addrs["m1"], "--pkcs11-uri", tok.URI("root-lk")}, etcdFlags...)...)
	startManager("m1")
	tokenFile := func(role string) string {
		out, _ := l.cli(false, "join-token", "-q", role, "--data-dir", l.dir("m1"))
		f := filepath.Join(root, role+".token")
		if err := os.WriteFile(f, []byte(out), 0o600); err != nil {
			t.Fatal(err)
		}
		return f
	}
	managerToken, workerToken := tokenFile("manager"), tokenFile("worker")
	for _, m := range managers[1:] {
		l.cli(false, append([]string{"join", "--no-run", "--token-file", managerToken, "--hostname", m, "--data-dir", l.dir(m),
			"--listen-addr", addrs[m], "--advertise-addr", "127.0.0.1", addrs["m1"]}, etcdFlags...)...)
		startManager(m)
	}
	workers := []string{"w1", "w2", "w3"}
	for i, w := range workers {
		l.cli(false, "join", "--no-run", "--token-file", workerToken, "--hostname", w, "--data-dir", l.dir(w), addrs[managers[i]])
		l.runNode(w)
	}
	for _, w := range workers {
		eventually(t, w+" to know the three managers", func() bool {
			s, err := agent.ReadState(l.dir(w))
			return err == nil && len(s.Managers) == 3
		})
	}
	leader := leaderOf(t, l, "m2")
	survivor := managers[0]
	if survivor == leader {
		survivor = managers[1]
	}
	t.Logf("the leader is %s", leader)

	nodes := append(append([]string{}, managers...), workers...)
	var m mesh
	stop := m.run(t, l, nodes)
	rotateAt := time.Now()

	l.cli(false, "ca", "--rotate", "--detach", "--data-dir", l.dir(leader))
	// Killed as soon as the reissue phase is seen (or the switch of trust,
	// should a loaded machine miss the first): mid-rotation either way.
	eventually(t, "the reissue phase", func() bool {
		ph, _ := phase(t, l.dir(survivor))
		return ph == string(store.PhaseReissue) || ph == string(store.PhaseSwitchTrust)
	})
	killedAt := time.Now()
	procs[leader].kill()
	ph, _ := phase(t, l.dir(survivor))
	t.Logf("the leader %s killed with SIGKILL in phase %q", leader, ph)
	if ph == "" {
		t.Fatal("the rotation was over when the leader was killed")
	}

	newLeader := ""
	// Within the session TTL (10 s) of the killed leader, give or take.
	eventuallyFor(t, 30*time.Second, "another manager to lead", func() bool {
		newLeader = leaderOfOrEmpty(l, survivor)
		return newLeader != "" && newLeader != leader
	})
	t.Logf("%s leads %s after the kill", newLeader, time.Since(killedAt).Round(time.Millisecond))
	for _, w := range workers {
		eventually(t, w+" to call a surviving manager", func() bool {
			s, err := agent.ReadState(l.dir(w))
			return err == nil && len(s.Managers) > 0 && s.Managers[0] != addrs[leader]
		})
	}
	// The killed manager blocks the rotation (it holds no certificate from
	// the new key, or does not trust the new root): once silent past the
	// grace it is a straggler, the only one, and the operator excludes it.
	// It leaves the mesh first: excluded, it must join again, and the
	// others will soon trust only the new root.
	killedID := nodeID(t, l.dir(leader))
	eventuallyFor(t, 30*time.Second, "the killed manager to be the only straggler", func() bool {
		_, st := phase(t, l.dir(newLeader))
		return st != nil && st.Rotation != nil && slices.Equal(st.Rotation.Stragglers, []string{killedID})
	})
	t.Logf("the killed manager is the only straggler %s after the kill", time.Since(killedAt).Round(time.Millisecond))
	stop()
	remaining := slices.DeleteFunc(slices.Clone(nodes), func(n string) bool { return n == leader })
	stop = m.run(t, l, remaining)
	_, errOut := l.cli(false, "ca", "--force", "--data-dir", l.dir(newLeader))
	t.Logf("ca --force on %s: %s", newLeader, strings.TrimSpace(errOut))
	var target []byte
	eventuallyFor(t, 30*time.Second, "the rotation done", func() bool {
		ph, st := phase(t, l.dir(survivor))
		if ph == "" && st != nil {
			target = []byte(st.RootCAPEM)
			return true
		}
		return false
	})
	t.Logf("the rotation done %s after it started, %s after the kill", time.Since(rotateAt).Round(time.Millisecond), time.Since(killedAt).Round(time.Millisecond))
	for _, n := range remaining {
		eventually(t, n+" trusting the new root", func() bool {
			_, raw, err := certdir.In(l.dir(n)).Root()
			return err == nil && bytes.Equal(raw, target)
		})
	}
	stop()
	for _, f := range m.failed {
		t.Error(f)
	}
	t.Logf("%d handshakes, %d failed", m.ok.Load(), len(m.failed))
	newRoot, err := ca.ParseCertificatesPEM(target)
	if err != nil {
		t.Fatal(err)
	}
	for _, n := range remaining {
		chain, err := certdir.In(l.dir(n)).NodeChain()
		if err != nil {
			t.Fatal(err)
		}
		if err := ca.VerifyChain(chain, newRoot, time.Now()); err != nil || !bytes.Equal(chain[0].AuthorityKeyId, newRoot[0].SubjectKeyId) {
			t.Errorf("%s holds no certificate from the new key (%v)", n, err)
		}
	}

	// The killed leader made none of the rotation's later transitions.
	st, err := cluster.OpenStore(l.dir(survivor))
	if err != nil {
		t.Fatal(err)
	}
	recs, err := st.AuditRecords(ctx, 1, 0)
	st.Close()
	if err != nil {
		t.Fatal(err)
	}
	steps, excluded := map[string]string{}, []string{}
	for _, r := range recs {
		e, err := audit.Unmarshal(r.Data)
		if err != nil {
			t.Fatal(err)
		}
		if e.Action == audit.ActionRootRotation {
			steps[e.Details["step"]] = e.Actor
			if e.Details["step"] == "exclude" {
				excluded = append(excluded, e.NodeID)
			}
		}
	}
	if !slices.Equal(excluded, []string{killedID}) {
		t.Errorf("the rotation excluded %v; want the killed manager %s alone", excluded, killedID)
	}
	t.Logf("the rotation's steps and who made them: %v (the killed leader: %s)", steps, killedID)
	for _, step := range []string{"switch-trust", "done"} {
		if a, ok := steps[step]; !ok || a == killedID {
			t.Errorf("the rotation's %s step was made by %q; want a manager other than the killed leader %s", step, a, killedID)
		}
	}
	out, _ := l.cli(false, "audit", "verify", "--data-dir", l.dir(survivor))
	if !strings.Contains(out, "audit log OK") {
		t.Errorf("audit verify:\n%s", out)
	}
}

// leaderOf names the leader as node ls on the manager of dataDir node says
// it, waiting until one leads.
func leaderOf(t *testing.T, l *lab, node string) string {
	t.Helper()
	var out string
	eventually(t, "a leader", func() bool { out = leaderOfOrEmpty(l, node); return out != "" })
	return out
}

// leaderOfOrEmpty is leaderOf without waiting: "" when none leads, or the
// manager does not answer.
func leaderOfOrEmpty(l *lab, node string) string {
	var out, errb bytes.Buffer
	if runWith([]string{"node", "ls", "--format", "{{.Hostname}} {{.ManagerStatus}}", "--data-dir", l.dir(node)}, &out, &errb) != 0 {
		return ""
	}
	for _, line := range strings.Split(out.String(), "\n") {
		if name, ok := strings.CutSuffix(line, " Leader"); ok {
			return name
		}
	}
	return ""
}

// eventuallyFor is eventually with a deadline of d.
func eventuallyFor(t *testing.T, d time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", d, what)
		}
		time.Sleep(50 * time.Millisecond)
	}
}
