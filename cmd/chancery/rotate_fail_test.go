package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chancery-pki/chancery/agent"
	"github.com/chancery-pki/chancery/api"
	"github.com/chancery-pki/chancery/backends/file"
	"github.com/chancery-pki/chancery/ca"
	"github.com/chancery-pki/chancery/certdir"
	"github.com/chancery-pki/chancery/cluster"
	"github.com/chancery-pki/chancery/manager"
	"github.com/chancery-pki/chancery/signer"
)

// The failure paths of a root rotation, each with live nodes shaking hands
// all along: abort, a new target mid-rotation, a stopped node excluded,
// requests refused, and the manager restarting mid-rotation.

var workers = []string{"w1", "w2", "w3"}

// newKeyFile returns the one key file in after that is not in before.
func newKeyFile(t *testing.T, before, after []string) string {
	t.Helper()
	var added []string
	for _, f := range after {
		if !slices.Contains(before, f) {
			added = append(added, f)
		}
	}
	if len(added) != 1 {
		t.Fatalf("key files %v, then %v: want one more", before, after)
	}
	return added[0]
}

// waitConverged waits until n nodes hold a certificate from the new key.
func (r *rotLab) waitConverged(n int) {
	r.t.Helper()
	eventually(r.t, "nodes holding a certificate from the new key", func() bool {
		st := r.status()
		return st.Rotation != nil && st.Rotation.Phase == "reissue" && st.Rotation.Converged == n
	})
}

// waitTrust waits until every node in nodes trusts rootPEM and holds a
// certificate from its key.
func (r *rotLab) waitTrust(nodes []string, rootPEM []byte) {
	r.t.Helper()
	root, err := certdirRoots(string(rootPEM))
	if err != nil {
		r.t.Fatal(err)
	}
	for _, n := range nodes {
		eventually(r.t, n+" trusting the root and holding a certificate from its key", func() bool {
			return bytes.Equal(r.rootFile(n), rootPEM) && r.issuedBy(n, root)
		})
	}
}

// TestRotateAbort aborts a rotation held in reissue (w3 does not hear the
// manager ask it to renew) while every node shakes hands with every other:
// no handshake fails; the nodes that renewed under the new key renew back
// to the old one; the new key file is deleted; the record has no rotation;
// the join tokens are those of before, and a node still joins with them.
func TestRotateAbort(t *testing.T) {
	r := newRotLab(t, workers, []string{"w3"}, nil)
	oldRootPEM := r.rootFile("m1")
	oldRoot, _ := certdirRoots(string(oldRootPEM))
	before := r.state()
	tr := r.startTraffic()

	r.agents["w3"].slow.deafToRenew.Store(true)
	r.cli(false, "ca", "--rotate", "--detach", "-q", "--data-dir", r.dir("m1"))
	newKey := newKeyFile(t, before.KeyFiles, r.keyFiles())
	r.waitConverged(len(r.nodes) - 1)
	for _, n := range []string{"m1", "w1", "w2"} {
		// The store records the certificate before the node writes it.
		eventually(t, n+" holding a certificate from the new key", func() bool {
			chain, err := certdir.In(r.dir(n)).NodeChain()
			return err == nil && !bytes.Equal(chain[0].AuthorityKeyId, oldRoot.SubjectKeyId)
		})
	}
	if !r.issuedBy("w3", oldRoot) {
		t.Error("w3, deaf to the manager's request to renew, renewed")
	}

	_, errOut := r.cli(false, "ca", "--abort", "--data-dir", r.dir("m1"))
	if !strings.Contains(errOut, "Root rotation aborted") {
		t.Errorf("ca --abort printed %q", errOut)
	}
	st := r.status()
	if st.Rotation != nil || st.LastRotation != "aborted" || st.RootFingerprint != before.Root {
		t.Errorf("after the abort: rotation %+v, last %q, root %s (was %s)", st.Rotation, st.LastRotation, st.RootFingerprint, before.Root)
	}
	r.agents["w3"].slow.deafToRenew.Store(false)
	// Back under the old key, with the old root trusted all along.
	r.waitTrust(r.nodes, oldRootPEM)
	ok := tr.finish(t)
	t.Logf("%d handshakes", ok)

	after := r.state()
	if slices.Contains(after.KeyFiles, newKey) || !slices.Equal(after.KeyFiles, before.KeyFiles) {
		t.Errorf("key files %v after the abort, want %v (the new key %s deleted)", after.KeyFiles, before.KeyFiles, newKey)
	}
	if after.Root != before.Root || after.Phase != "" || after.WorkerToken != before.WorkerToken || after.ManagerToken != before.ManagerToken {
		t.Errorf("after the abort: %+v\nbefore: %+v", after, before)
	}
	if got, want := r.rotationEntries(), []string{"start", "reissue", "abort", "forget-key"}; !slices.Equal(got, want) {
		t.Errorf("root.rotation audit entries %v, want %v", got, want)
	}
	r.auditVerifies()
	r.cli(false, "join", "--no-run", "--token", strings.TrimSpace(before.WorkerToken), "--hostname", "w4", "--data-dir", r.dir("w4"), r.addr)
	if !r.issuedBy("w4", oldRoot) {
		t.Error("a node that joined after the abort holds a certificate from another key than the old root's")
	}
}

// TestRotateSwitchTrustRefusals holds a rotation in switch-trust (w3 does
// not hear of the new root): abort is refused with an error that says to
// rotate again once it is done, so is a new rotation, and neither changes
// anything; once w3 hears of the new root, the rotation finishes, with no
// failed handshake.
func TestRotateSwitchTrustRefusals(t *testing.T) {
	r := newRotLab(t, workers, []string{"w3"}, nil)
	tr := r.startTraffic()
	r.agents["w3"].slow.deafToRoot.Store(true)
	r.cli(false, "ca", "--rotate", "--detach", "-q", "--data-dir", r.dir("m1"))
	st := r.waitPhase("switch-trust")
	eventually(t, "every node but w3 trusting the new root", func() bool {
		st = r.status()
		return st.Rotation.TrustingNew == len(r.nodes)-1
	})
	before := r.state()

	for _, c := range []struct {
		name string
		args []string
		want []string
	}{
		{"abort", []string{"ca", "--abort"}, []string{"switched trust", "can no longer be aborted", "rotate again"}},
		{"rotate", []string{"ca", "--rotate", "--detach"}, []string{"switched trust", "let it finish", "rotate again"}},
		{"rotate to another backend", []string{"ca", "--rotate", "--external-ca", "protocol=cfssl,url=https://127.0.0.1:1/api/v1/cfssl/sign"},
			[]string{"switched trust", "rotate again"}},
	} {
		t.Run(c.name, func(t *testing.T) {
			_, errOut := r.cli(true, append(c.args, "--data-dir", r.dir("m1"))...)
			for _, w := range c.want {
				if !strings.Contains(errOut, w) {
					t.Errorf("%s: %q lacks %q", strings.Join(c.args, " "), errOut, w)
				}
			}
			if after := r.state(); !equalState(after, before) {
				t.Errorf("%s changed the cluster:\n%+v\nwas\n%+v", strings.Join(c.args, " "), after, before)
			}
		})
	}

	r.agents["w3"].slow.deafToRoot.Store(false)
	r.waitPhase("")
	newRootPEM := []byte(r.status().RootCAPEM)
	r.waitTrust(r.nodes, newRootPEM)
	tr.finish(t)
	if got := r.status().RootFingerprint; got != st.Rotation.TargetFingerprint {
		t.Errorf("the root is %s, want the target %s", got, st.Rotation.TargetFingerprint)
	}
	r.auditVerifies()
}

func equalState(a, b clusterState) bool {
	return a.Root == b.Root && a.Phase == b.Phase && a.Target == b.Target && a.WorkerToken == b.WorkerToken &&
		a.ManagerToken == b.ManagerToken && slices.Equal(a.KeyFiles, b.KeyFiles) && slices.Equal(a.Audit, b.Audit)
}

// TestRotateRetarget rotates again, to another new root, while the first
// rotation is held in reissue: the target is replaced, the first target's
// key file is deleted, the rotation starts over (the nodes renew again,
// under the second key) and finishes on the second root, with no failed
// handshake.
func TestRotateRetarget(t *testing.T) {
	r := newRotLab(t, workers, []string{"w3"}, nil)
	oldKeys := r.keyFiles()
	tr := r.startTraffic()

	r.agents["w3"].slow.deafToRenew.Store(true)
	r.cli(false, "ca", "--rotate", "--detach", "-q", "--data-dir", r.dir("m1"))
	first := r.status().Rotation.TargetFingerprint
	firstKey := newKeyFile(t, oldKeys, r.keyFiles())
	r.waitConverged(len(r.nodes) - 1)

	r.cli(false, "ca", "--rotate", "--detach", "-q", "--data-dir", r.dir("m1"))
	st := r.status()
	if st.Rotation == nil || st.Rotation.TargetFingerprint == first {
		t.Fatalf("the second rotation did not replace the target: %+v", st.Rotation)
	}
	second := st.Rotation.TargetFingerprint
	keys := r.keyFiles()
	if slices.Contains(keys, firstKey) {
		t.Errorf("the first target's key file %s is still there: %v", firstKey, keys)
	}
	secondKey := newKeyFile(t, oldKeys, keys)
	// It starts over: the nodes that had renewed under the first key renew
	// again, under the second.
	r.waitConverged(len(r.nodes) - 1)
	r.agents["w3"].slow.deafToRenew.Store(false)
	r.waitPhase("")
	st = r.status()
	if st.RootFingerprint != second {
		t.Errorf("the rotation finished on %s, want the second target %s", st.RootFingerprint, second)
	}
	r.waitTrust(r.nodes, []byte(st.RootCAPEM))
	ok := tr.finish(t)
	t.Logf("%d handshakes", ok)
	if keys := r.keyFiles(); !slices.Equal(keys, []string{secondKey}) {
		t.Errorf("key files %v, want the second target's alone, %s", keys, secondKey)
	}
	if got, want := r.rotationEntries(), []string{"start", "reissue", "start", "forget-key", "reissue", "switch-trust", "done", "forget-key"}; !slices.Equal(got, want) {
		t.Errorf("root.rotation audit entries %v, want %v", got, want)
	}
	r.auditVerifies()
}

// TestRotateToCurrentRootAborts rotates, mid-rotation, to the current
// root (here given by an external CA that reports it): as in docker, that
// aborts the rotation: the new key file is deleted, and the nodes renew
// back to the old key, with no failed handshake.
func TestRotateToCurrentRootAborts(t *testing.T) {
	r := newRotLab(t, workers, []string{"w3"}, nil)
	oldRootPEM := r.rootFile("m1")
	oldRoot, _ := certdirRoots(string(oldRootPEM))
	before := r.state()
	tr := r.startTraffic()

	r.agents["w3"].slow.deafToRenew.Store(true)
	r.cli(false, "ca", "--rotate", "--detach", "-q", "--data-dir", r.dir("m1"))
	r.waitConverged(len(r.nodes) - 1)

	_, errOut := r.cli(false, "ca", "--rotate", "--external-ca", fakeExternalCA(t, oldRoot), "--data-dir", r.dir("m1"))
	if !strings.Contains(errOut, "aborted") {
		t.Errorf("ca --rotate to the current root printed %q", errOut)
	}
	st := r.status()
	if st.Rotation != nil || st.LastRotation != "aborted" || st.RootFingerprint != before.Root {
		t.Errorf("after the rotation to the current root: rotation %+v, last %q, root %s (was %s)", st.Rotation, st.LastRotation, st.RootFingerprint, before.Root)
	}
	r.agents["w3"].slow.deafToRenew.Store(false)
	r.waitTrust(r.nodes, oldRootPEM)
	tr.finish(t)
	after := r.state()
	if !slices.Equal(after.KeyFiles, before.KeyFiles) || after.WorkerToken != before.WorkerToken || after.ManagerToken != before.ManagerToken {
		t.Errorf("after the rotation to the current root: %+v\nbefore: %+v", after, before)
	}
	if got, want := r.rotationEntries(), []string{"start", "reissue", "abort", "forget-key"}; !slices.Equal(got, want) {
		t.Errorf("root.rotation audit entries %v, want %v", got, want)
	}
}

// TestRotateExcludesStoppedNode stops w3 right after it renewed under the
// new key and said so in a heartbeat: once silent for longer than the grace it is a straggler, which
// the progress and `chancery ca` show, and which blocks the rotation until
// `ca --rotate --force` excludes it; it is then removed (its agent, run
// again, is refused) and the rotation finishes, with no failed handshake
// between the live nodes. `ca --force` with no rotation in progress is
// refused, and starts none.
func TestRotateExcludesStoppedNode(t *testing.T) {
	const grace = 2 * time.Second
	r := newRotLab(t, workers, []string{"w3"}, func(c *manager.Config) { c.StragglerGrace = grace })
	w3 := nodeID(t, r.dir("w3"))
	tr := r.startTraffic()

	r.agents["w3"].slow.stopAfterRenew.Store(true)
	var progress syncBuffer
	followed := make(chan int, 1)
	go func() {
		var out bytes.Buffer
		followed <- runWith([]string{"ca", "--rotate", "--data-dir", r.dir("m1")}, &out, &progress)
	}()
	if err := stopped(t, "w3", r.agents["w3"].done); err != nil {
		t.Fatalf("w3's agent: %v", err)
	}
	tr.drop("w3")
	stoppedAt := time.Now()

	var st *api.CAStatus
	eventually(t, "w3 listed as a straggler", func() bool {
		st = r.status()
		return st.Rotation != nil && slices.Equal(st.Rotation.Stragglers, []string{w3})
	})
	if silent := time.Since(stoppedAt); silent < grace/2 {
		t.Errorf("w3 was a straggler %s after it stopped, before the grace (%s)", silent, grace)
	}
	if st.Rotation.Phase != "switch-trust" || st.Rotation.TrustingNew != len(r.nodes)-1 || st.Rotation.Total != len(r.nodes) {
		t.Errorf("the rotation with a straggler: %+v", st.Rotation)
	}
	// It blocks the rotation: a few reconciler rounds later, nothing moved.
	time.Sleep(500 * time.Millisecond)
	if st2 := r.status(); st2.Rotation == nil || st2.Rotation.Phase != "switch-trust" {
		t.Fatalf("the rotation went on without w3: %+v", st2.Rotation)
	}
	// The progress of the `ca --rotate` that started the rotation shows it.
	stragglerLine := "stragglers (silent, blocking; --force excludes them): " + w3
	eventually(t, "the progress showing the straggler", func() bool { return strings.Contains(progress.String(), stragglerLine) })
	out, errOut := r.cli(false, "ca", "--data-dir", r.dir("m1"))
	if out != st.RootCAPEM || !strings.Contains(errOut, "stragglers") || !strings.Contains(errOut, w3) {
		t.Errorf("chancery ca during the rotation: stdout %q, stderr %q; want the root, and the straggler %s on stderr", out, errOut, w3)
	}

	_, errOut = r.cli(false, "ca", "--rotate", "--force", "--data-dir", r.dir("m1"))
	if !strings.Contains(errOut, "Root rotation done") {
		t.Errorf("ca --rotate --force printed %q", errOut)
	}
	select {
	case code := <-followed:
		if code != 0 {
			t.Errorf("ca --rotate exited %d:\n%s", code, progress.String())
		}
	case <-time.After(15 * time.Second):
		t.Fatal("ca --rotate did not finish")
	}
	if !strings.Contains(progress.String(), "Root rotation done") {
		t.Errorf("the progress:\n%s", progress.String())
	}
	st = r.status()
	live := []string{"m1", "w1", "w2"}
	r.waitTrust(live, []byte(st.RootCAPEM))
	ok := tr.finish(t)
	t.Logf("%d handshakes; progress:\n%s", ok, progress.String())

	// w3 was removed: run again, its agent is refused and stops.
	ls, _ := r.cli(false, "node", "ls", "-q", "--data-dir", r.dir("m1"))
	if strings.Contains(ls, w3) {
		t.Errorf("the excluded node is still listed:\n%s", ls)
	}
	r.startNode("w3", false)
	if err := stopped(t, "w3", r.agents["w3"].done); !errors.Is(err, agent.ErrRemoved) {
		t.Errorf("w3's agent, run again after it was excluded: %v, want agent.ErrRemoved", err)
	}
	if got := r.rotationEntries(); !slices.Contains(got, "exclude") || !slices.Equal(got[len(got)-2:], []string{"done", "forget-key"}) {
		t.Errorf("root.rotation audit entries %v, want an exclusion, then done", got)
	}
	r.auditVerifies()

	// With no rotation in progress, --force has no straggler to exclude:
	// refused, it starts no rotation.
	before := r.state()
	_, errOut = r.cli(true, "ca", "--force", "--data-dir", r.dir("m1"))
	if !strings.Contains(errOut, "no root rotation is in progress") {
		t.Errorf("ca --force with no rotation: %q", errOut)
	}
	if after := r.state(); !equalState(after, before) {
		t.Errorf("ca --force with no rotation changed the cluster:\n%+v\nwas\n%+v", after, before)
	}
}

// TestRotateBadInput asks for rotations that must be refused, each with a
// clear error, with and without a rotation in progress, and nothing
// changed: not the record, the join tokens, the key files, nor the audit
// log (but for refusals).
func TestRotateBadInput(t *testing.T) {
	r := newRotLab(t, []string{"w1"}, nil, nil)
	currentPEM := r.rootFile("m1")
	current, _ := certdirRoots(string(currentPEM))
	currentKey, err := file.LoadKey(filepath.Join(r.dir("m1"), "ca", "root-ca.key"), nil)
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	// A new root certificate for the current key.
	sameKey, err := signer.SelfSign(rand.Reader, currentKey, ca.NewRootTemplate("swarm-ca", now))
	if err != nil {
		t.Fatal(err)
	}
	// A root that expires within a year.
	shortKey, err := file.GenerateKey(file.P256, rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := ca.NewRootTemplate("swarm-ca", now)
	tmpl.NotAfter = now.Add(180 * 24 * time.Hour)
	short, err := signer.SelfSign(rand.Reader, shortKey, tmpl)
	if err != nil {
		t.Fatal(err)
	}
	// An external CA whose root is another than the one --ca-cert names.
	otherKey, err := file.GenerateKey(file.P256, rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	other, err := signer.SelfSign(rand.Reader, otherKey, ca.NewRootTemplate("swarm-ca", now))
	if err != nil {
		t.Fatal(err)
	}
	caCert := filepath.Join(t.TempDir(), "ca.pem")
	if err := os.WriteFile(caCert, currentPEM, 0o600); err != nil {
		t.Fatal(err)
	}
	// An external CA that nobody serves.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	down := ln.Addr().String()
	ln.Close()

	cases := []struct {
		name string
		args []string
		// want are in the error; idle is the error with no rotation in
		// progress when it differs.
		want, idle []string
	}{
		{name: "the current root's key", args: []string{"--external-ca", fakeExternalCA(t, sameKey)},
			want: []string{"has the current root's key", "make a new key"}},
		{name: "a root that expires within a year", args: []string{"--external-ca", fakeExternalCA(t, short)},
			want: []string{"less than a year from now"}},
		{name: "an external CA whose root is not --ca-cert", args: []string{"--external-ca", fakeExternalCA(t, other), "--ca-cert", caCert},
			want: []string{"issues under the root", cluster.Fingerprint(other), "not under"}},
		{name: "an external CA that is down", args: []string{"--external-ca", "protocol=cfssl,url=https://" + down + "/api/v1/cfssl/sign"},
			want: []string{down, "connection refused"}},
		{name: "a PKCS#11 module that is missing", args: []string{"--pkcs11-uri",
			"pkcs11:token=chancery-no-such-token;object=root?module-path=" + filepath.Join(t.TempDir(), "no-such-module.so") + "&pin-value=1234"},
			want: []string{"PKCS#11"}},
		{name: "the current root with no rotation in progress", args: []string{"--external-ca", fakeExternalCA(t, current)},
			want: nil, idle: []string{"no root rotation is in progress"}},
	}
	check := func(t *testing.T, args, want []string) {
		t.Helper()
		before := r.state()
		_, errOut := r.cli(true, append([]string{"ca", "--rotate", "--detach", "--data-dir", r.dir("m1")}, args...)...)
		t.Logf("refused: %s", strings.TrimSpace(errOut))
		for _, w := range want {
			if !strings.Contains(errOut, w) {
				t.Errorf("the error %q lacks %q", errOut, w)
			}
		}
		if after := r.state(); !equalState(after, before) {
			t.Errorf("a refused rotation changed the cluster:\n%+v\nwas\n%+v", after, before)
		}
	}
	for _, c := range cases {
		t.Run("idle/"+c.name, func(t *testing.T) {
			want := c.want
			if c.idle != nil {
				want = c.idle
			}
			check(t, c.args, want)
		})
	}
	// The same, during a rotation (held in reissue: w1 does not run).
	r.agents["w1"].cancel()
	stopped(t, "w1", r.agents["w1"].done)
	r.cli(false, "ca", "--rotate", "--detach", "-q", "--data-dir", r.dir("m1"))
	r.waitConverged(1)
	for _, c := range cases {
		if c.want == nil {
			continue
		}
		t.Run("rotating/"+c.name, func(t *testing.T) { check(t, c.args, c.want) })
	}
	if st := r.status(); st.Rotation == nil || st.Rotation.Phase != "reissue" {
		t.Errorf("the rotation in progress after the refusals: %+v", st.Rotation)
	}
	r.auditVerifies()
}

// TestRotateManagerRestart rotates three times, stopping the manager and
// running it again once in each phase it can be held in: prepare (the
// rotation recorded while the manager is down, as if it crashed right
// after), reissue and switch-trust. Each time the rotation resumes from
// the stored phase and finishes, while the nodes keep running and shaking
// hands, not one handshake failing.
func TestRotateManagerRestart(t *testing.T) {
	r := newRotLab(t, workers, []string{"w3"}, nil)
	tr := r.startTraffic()
	w3 := r.agents["w3"].slow
	var wantSteps []string
	for _, c := range []struct {
		phase string
		hold  func(bool)
	}{
		{"prepare", nil},
		{"reissue", w3.deafToRenew.Store},
		{"switch-trust", w3.deafToRoot.Store},
	} {
		if c.phase == "prepare" {
			r.stopMgr()
			st, err := cluster.OpenStore(r.dir("m1"))
			if err != nil {
				t.Fatal(err)
			}
			_, err = cluster.StartRotation(context.Background(), st, cluster.RotateRequest{DataDir: r.dir("m1")})
			st.Close()
			if err != nil {
				t.Fatal(err)
			}
			ln, err := net.Listen("tcp", r.addr)
			if err != nil {
				t.Fatal(err)
			}
			r.startManager(ln)
		} else {
			c.hold(true)
			r.cli(false, "ca", "--rotate", "--detach", "-q", "--data-dir", r.dir("m1"))
			held := r.waitPhase(c.phase)
			if c.phase == "reissue" {
				r.waitConverged(len(r.nodes) - 1)
			}
			r.restartManager()
			if st := r.status(); st.Rotation == nil || st.Rotation.Phase != c.phase || st.Rotation.TargetFingerprint != held.Rotation.TargetFingerprint {
				t.Errorf("after the restart in %s: %+v, want %+v", c.phase, st.Rotation, held.Rotation)
			}
			c.hold(false)
		}
		st := r.waitPhase("")
		r.waitTrust(r.nodes, []byte(st.RootCAPEM))
		wantSteps = append(wantSteps, "start", "reissue", "switch-trust", "done", "forget-key")
		if got := r.rotationEntries(); !slices.Equal(got, wantSteps) {
			t.Errorf("after the restart in %s: root.rotation audit entries %v, want %v", c.phase, got, wantSteps)
		}
		if keys := r.keyFiles(); len(keys) != 1 {
			t.Errorf("after the restart in %s: key files %v, want the new root's alone", c.phase, keys)
		}
	}
	ok := tr.finish(t)
	t.Logf("%d handshakes", ok)
	r.auditVerifies()
}

// syncBuffer is a bytes.Buffer that one goroutine writes while another
// reads it.
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
