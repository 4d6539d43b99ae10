package main

import (
	"bytes"
	"context"
	"crypto/x509"
	"encoding/hex"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chancery-pki/chancery/api"
	"github.com/chancery-pki/chancery/backends"
	"github.com/chancery-pki/chancery/backends/pkcs11"
	"github.com/chancery-pki/chancery/ca"
	"github.com/chancery-pki/chancery/certdir"
	"github.com/chancery-pki/chancery/client"
	"github.com/chancery-pki/chancery/conformance"
	"github.com/chancery-pki/chancery/internal/cfssldev"
	"github.com/chancery-pki/chancery/internal/stepcadev"
	"github.com/chancery-pki/chancery/internal/vaultdev"
	"github.com/chancery-pki/chancery/manager"
	"github.com/chancery-pki/chancery/softhsm"
	"github.com/chancery-pki/chancery/store"
)

// This file is the rotation matrix: a cluster of live nodes rotates its
// root from every backend to every backend, each with its real peer
// (SoftHSM2, a Vault dev server, cfssl serve, step-ca), while every node
// shakes hands with every other.

// matrixPeers are the real peers the matrix's pairs share: one SoftHSM2
// token (each cluster's keys have labels of their own), the process's
// Vault dev server (each cluster a mount of its own), two cfssl serves
// with CAs of their own (two, so that one external CA can rotate to
// another), and two step-cas that sign with their roots and issue CA
// certificates, with a third that signs with an intermediate (which no
// cluster can rotate into).
type matrixPeers struct {
	token                         *softhsm.Token
	cfsslA, cfsslB                *cfssldev.Server
	stepcaA, stepcaB, stepcaInter *stepcadev.Server
	// dir holds the Vault root token's file, vaultTokenFile, once a pair
	// asks for Vault.
	dir, vaultTokenFile string
}

// startMatrixPeers starts the peers that are installed; a pair whose peer
// is missing is skipped, or fails under CI=true, when it asks for it.
func startMatrixPeers(t *testing.T) *matrixPeers {
	p := &matrixPeers{dir: t.TempDir()}
	if _, err := softhsm.Module(); err == nil {
		p.token = softhsm.NewToken(t)
	}
	if _, err := exec.LookPath("cfssl"); err == nil {
		p.cfsslA = cfssldev.Start(t, cfssldev.Options{})
		p.cfsslB = cfssldev.Start(t, cfssldev.Options{})
	}
	if _, err := stepcadev.Find(); err == nil {
		p.stepcaA = stepcadev.Start(t, stepcadev.Options{RootSigns: true, CrossSign: true})
		p.stepcaB = stepcadev.Start(t, stepcadev.Options{RootSigns: true, CrossSign: true})
		p.stepcaInter = stepcadev.Start(t, stepcadev.Options{CrossSign: true})
	}
	return p
}

// stepca returns the flags that reach a step-ca: the first, the second or
// the one with an intermediate. It skips (fails under CI) without step-ca.
func (p *matrixPeers) stepca(t *testing.T, which string) []string {
	t.Helper()
	stepcadev.Need(t)
	s := map[string]*stepcadev.Server{"a": p.stepcaA, "b": p.stepcaB, "inter": p.stepcaInter}[which]
	return []string{"--stepca-url", s.URL, "--stepca-root-fingerprint", s.Fingerprint,
		"--stepca-provisioner", stepcadev.Provisioner, "--stepca-password-file", s.PasswordFile}
}

// externalCAs are the rigs whose root is an external CA's: they sign only
// CSRs, cannot make one for their own key, nor a new root by themselves.
var externalCAs = map[string]bool{"cfssl": true, "stepca": true}

// hsm returns the shared token, or skips (fails under CI) without SoftHSM2.
func (p *matrixPeers) hsm(t *testing.T) *softhsm.Token {
	t.Helper()
	softhsm.Require(t)
	return p.token
}

// externalCA returns the --external-ca value of a cfssl serve, or skips
// (fails under CI) without cfssl.
func (p *matrixPeers) externalCA(t *testing.T, second bool) string {
	t.Helper()
	cfssldev.Need(t)
	s := p.cfsslA
	if second {
		s = p.cfsslB
	}
	return "protocol=cfssl,url=" + s.SignURL + ",cacert=" + s.BundleFile
}

// vault returns the shared Vault dev server and the flags that reach a
// fresh mount of engine on it with its root token, removed when t ends.
func (p *matrixPeers) vault(t *testing.T, engine string) (*vaultdev.Server, string, []string) {
	t.Helper()
	srv := vaultdev.Require(t)
	if p.vaultTokenFile == "" {
		f := filepath.Join(p.dir, "vault-token")
		if err := os.WriteFile(f, []byte(srv.RootToken), 0o600); err != nil {
			t.Fatal(err)
		}
		p.vaultTokenFile = f
	}
	mount := engine + "-" + vaultdev.RandomHex(4)
	if _, err := srv.Root.Logical().Write("sys/mounts/"+mount, map[string]any{"type": engine}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { srv.Root.Logical().Delete("sys/mounts/" + mount) })
	return srv, mount, []string{"--vault-addr", srv.Addr, "--vault-engine", engine, "--vault-mount", mount, "--vault-token-file", p.vaultTokenFile}
}

// matrixRig is one backend of the matrix.
type matrixRig struct {
	name string
	// init returns the init flags of a cluster whose root is in this
	// backend, and a check, run once the root rotated away and its key was
	// forgotten, of what became of the old root's key (old are the details
	// `chancery info` gave of it; deleteAsked says whether the rotation was
	// asked for with --delete-old-key): a key file chancery made is
	// deleted; an HSM key, a Vault issuer or key is deleted only if asked;
	// an external CA is left alone.
	init func(t *testing.T, p *matrixPeers, l *lab) (flags []string, afterwards func(t *testing.T, old map[string]string, deleteAsked bool))
	// to returns the ca --rotate flags that put a new root in this backend,
	// from a cluster whose root is in from: none from the same backend
	// where it makes the new root by itself (backends.NextRooter).
	to func(t *testing.T, p *matrixPeers, from string) []string
	// beside says where this backend makes a new root by itself, beside
	// the current one: the detail of `chancery info` (the backend's
	// Describe) that names the root, what it must look like, and the
	// details that stay the same. Nil for a backend that cannot.
	beside *matrixBeside
	// expect is what the node certificates this backend issues say of
	// their validity and names (see conformance.NodeExpectation), for a
	// certificate issued between from and until.
	expect func(from, until time.Time) conformance.NodeExpectation
}

// matrixBeside is where a backend makes a new root beside the current one.
type matrixBeside struct {
	detail string
	want   *regexp.Regexp
	same   []string
}

// localValidity is the validity chancery's own issuer gives a node
// certificate issued between from and until (ca.DefaultCertExpiry,
// backdated by ca.CertBackdate).
func localValidity(from, until time.Time) conformance.NodeExpectation {
	mid := from.Add(until.Sub(from) / 2)
	return conformance.NodeExpectation{NotBefore: mid.Add(-ca.CertBackdate), NotAfter: mid.Add(ca.DefaultCertExpiry),
		ValidityTolerance: until.Sub(from)/2 + 2*time.Second}
}

var matrixRigs = []matrixRig{
	{
		name: "file",
		init: func(t *testing.T, _ *matrixPeers, l *lab) ([]string, func(*testing.T, map[string]string, bool)) {
			return nil, func(t *testing.T, old map[string]string, _ bool) {
				if _, err := os.Stat(old["key"]); old["key"] == "" || !os.IsNotExist(err) {
					t.Errorf("the old root's key file is still there (%v)", err)
				}
			}
		},
		to: func(t *testing.T, _ *matrixPeers, from string) []string {
			if from == "file" {
				return nil
			}
			return []string{"--backend", "file"}
		},
		beside: &matrixBeside{detail: "key", want: regexp.MustCompile(`/ca/root-ca-\d{8}T\d{6}Z-[0-9a-f]{6}\.key$`)},
		expect: localValidity,
	},
	{
		name: "pkcs11",
		init: func(t *testing.T, p *matrixPeers, l *lab) ([]string, func(*testing.T, map[string]string, bool)) {
			tok := p.hsm(t)
			uri := tok.URI("root-" + filepath.Base(l.root))
			return []string{"--pkcs11-uri", uri}, func(t *testing.T, _ map[string]string, deleteAsked bool) {
				_, err := pkcs11.Inspect(context.Background(), backends.Settings{pkcs11.SettingURI: uri})
				switch {
				case deleteAsked && err == nil:
					t.Error("the old root's key is still in the token, after --delete-old-key")
				case !deleteAsked && err != nil:
					t.Errorf("the old root's key is no longer in the token, without --delete-old-key: %v", err)
				}
			}
		},
		to: func(t *testing.T, p *matrixPeers, from string) []string {
			tok := p.hsm(t)
			if from == "pkcs11" {
				return nil
			}
			return []string{"--pkcs11-uri", tok.URI("next-" + vaultdev.RandomHex(4))}
		},
		beside: &matrixBeside{detail: "object", want: regexp.MustCompile(`^root-mx\d+-\d{8}T\d{6}Z-[0-9a-f]{6}$`), same: []string{"token", "token serial", "module"}},
		expect: localValidity,
	},
	{
		name: "vault-pki",
		init: func(t *testing.T, p *matrixPeers, _ *lab) ([]string, func(*testing.T, map[string]string, bool)) {
			srv, mount, flags := p.vault(t, "pki")
			return flags, func(t *testing.T, old map[string]string, deleteAsked bool) {
				sec, err := srv.Root.Logical().Read(mount + "/issuer/" + old["issuer"])
				switch {
				case deleteAsked && sec != nil:
					t.Errorf("the old root's issuer %q is still in the mount, after --delete-old-key", old["issuer"])
				case !deleteAsked && (err != nil || sec == nil):
					t.Errorf("the old root's issuer %q is no longer in the mount, without --delete-old-key (%v)", old["issuer"], err)
				}
			}
		},
		to: func(t *testing.T, p *matrixPeers, from string) []string {
			if from == "vault-pki" {
				return nil
			}
			_, _, flags := p.vault(t, "pki")
			return flags
		},
		beside: &matrixBeside{detail: "issuer", want: regexp.MustCompile(`^[0-9a-f-]{36}$`), same: []string{"address", "engine", "mount"}},
		expect: func(from, until time.Time) conformance.NodeExpectation {
			e := localValidity(from, until)
			// Vault sets NotBefore from its clock, in whole seconds, and
			// sorts the DNS names.
			e.NotBeforeTolerance, e.DNSNamesSorted = 3*time.Second, true
			return e
		},
	},
	{
		name: "vault-transit",
		init: func(t *testing.T, p *matrixPeers, _ *lab) ([]string, func(*testing.T, map[string]string, bool)) {
			srv, mount, flags := p.vault(t, "transit")
			return flags, func(t *testing.T, old map[string]string, deleteAsked bool) {
				sec, err := srv.Root.Logical().Read(mount + "/keys/" + old["key"])
				switch {
				case deleteAsked && sec != nil:
					t.Errorf("the old root's transit key %q is still in the mount, after --delete-old-key", old["key"])
				case !deleteAsked && (err != nil || sec == nil):
					t.Errorf("the old root's transit key %q is no longer in the mount, without --delete-old-key (%v)", old["key"], err)
				}
			}
		},
		to: func(t *testing.T, p *matrixPeers, from string) []string {
			if from == "vault-transit" {
				return nil
			}
			_, _, flags := p.vault(t, "transit")
			return flags
		},
		beside: &matrixBeside{detail: "key", want: regexp.MustCompile(`^chancery-root-\d{8}T\d{6}Z-[0-9a-f]{6}$`), same: []string{"address", "engine", "mount"}},
		expect: localValidity,
	},
	{
		name: "cfssl",
		init: func(t *testing.T, p *matrixPeers, _ *lab) ([]string, func(*testing.T, map[string]string, bool)) {
			return []string{"--external-ca", p.externalCA(t, false)}, func(*testing.T, map[string]string, bool) {}
		},
		// From cfssl, the second external CA: the first is the current
		// root. Refused without --allow-bridge (see matrixRefusals).
		to: func(t *testing.T, p *matrixPeers, from string) []string {
			return []string{"--external-ca", p.externalCA(t, from == "cfssl")}
		},
		// cfssl serve's default profile: 2160h from the backdated NotBefore,
		// rounded to the minute.
		expect: func(from, until time.Time) conformance.NodeExpectation {
			mid := from.Add(until.Sub(from) / 2)
			nb := mid.Add(-cfssldev.Backdate)
			return conformance.NodeExpectation{NotBefore: nb, NotAfter: nb.Add(cfssldev.NodeExpiry), ValidityTolerance: until.Sub(from)/2 + 2*time.Minute}
		},
	},
	{
		name: "stepca",
		init: func(t *testing.T, p *matrixPeers, _ *lab) ([]string, func(*testing.T, map[string]string, bool)) {
			return p.stepca(t, "a"), func(*testing.T, map[string]string, bool) {}
		},
		// From stepca, the second step-ca: the first is the current root.
		// Refused without --allow-bridge (see matrixRefusals).
		to: func(t *testing.T, p *matrixPeers, from string) []string {
			if from == "stepca" {
				return p.stepca(t, "b")
			}
			return p.stepca(t, "a")
		},
		// step-ca takes the validity from the sign request.
		expect: localValidity,
	},
}

// matrixRefusal is a rotation a pair refuses before anything changes.
type matrixRefusal struct {
	flags []string
	// err matches the error ca --rotate prints.
	err *regexp.Regexp
}

// matrixRefusals are the rotations from one backend to another that are
// refused up front, with their documented errors, and the extra flags the
// pair then rotates with.
func matrixRefusals(t *testing.T, p *matrixPeers, from, to string) ([]matrixRefusal, []string) {
	var refusals []matrixRefusal
	if to == "stepca" {
		// A step-ca that signs with an intermediate cannot be a new root.
		refusals = append(refusals, matrixRefusal{p.stepca(t, "inter"), regexp.MustCompile(`the new root.s CA signs with an intermediate \("CN=stepcadev Intermediate CA"\), and a rotation needs the new root.s own key to sign`)})
	}
	if !externalCAs[from] || !externalCAs[to] {
		return refusals, nil
	}
	next := []string{"--external-ca", p.externalCA(t, from == "cfssl")}
	if to == "stepca" {
		next = p.stepca(t, map[bool]string{true: "b", false: "a"}[from == "stepca"])
	}
	if from == to {
		// An external CA cannot make a root: no new root without flags.
		refusals = append(refusals, matrixRefusal{nil, regexp.MustCompile(`the ` + from + ` backend cannot choose where a new root goes by itself: give the new root's backend flags`)})
	}
	// From one external CA to another, only through a bridge key.
	refusals = append(refusals, matrixRefusal{next, regexp.MustCompile(`needs a bridge key, which was not allowed: .*allow a one-time bridge key`)})
	return refusals, []string{"--allow-bridge"}
}

// runMatrixLeader runs node's manager on ln, with short heartbeat and
// reconcile periods, until the test ends, and waits until it serves. The
// reconcile period is three heartbeats, so that the reissue phase lasts
// long enough for the mesh to see nodes that hold a certificate from the
// new key while trusting the old root only.
func (l *lab) runMatrixLeader(node string, ln net.Listener) {
	l.t.Helper()
	ready, done := make(chan struct{}), make(chan error, 1)
	l.wg.Add(1)
	go func() {
		defer l.wg.Done()
		done <- manager.Run(l.ctx, manager.Config{DataDir: l.dir(node), Listener: ln, Logger: quietLogger(),
			HeartbeatPeriod: 100 * time.Millisecond, ReconcileInterval: 300 * time.Millisecond, CheckpointInterval: time.Hour,
			Ready: func(string) { close(ready) }})
	}()
	select {
	case <-ready:
		l.wg.Add(1)
		go func() {
			defer l.wg.Done()
			if err := <-done; err != nil {
				l.t.Errorf("%s's manager: %v", node, err)
			}
		}()
	case err := <-done:
		l.t.Fatalf("%s's manager did not start: %v", node, err)
	}
}

// meshState is what a node held when it dialled: the key its certificate
// is from (its authority key ID) and the root it trusts (the subject key
// ID of the first root of its bundle), in hex.
type meshState struct{ certFrom, trusts string }

// matrixMesh is a mesh that also counts the states the dialling nodes were
// in, so that a pair can tell that handshakes crossed every step of the
// rotation.
type matrixMesh struct {
	*mesh
	mu   sync.Mutex
	seen map[meshState]int
}

func (m *matrixMesh) note(dataDir string) {
	chain, err := certdir.In(dataDir).NodeChain()
	if err != nil {
		return
	}
	roots, _, err := certdir.In(dataDir).Root()
	if err != nil || len(roots) == 0 {
		return
	}
	m.mu.Lock()
	m.seen[meshState{hex.EncodeToString(chain[0].AuthorityKeyId), hex.EncodeToString(roots[0].SubjectKeyId)}]++
	m.mu.Unlock()
}

// saw returns how many dials were made in state s.
func (m *matrixMesh) saw(s meshState) int {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.seen[s]
}

// startMesh has every node serve handshakes and dial every other, again
// and again, each with the files it holds at that moment, until the
// returned stop is called.
func startMesh(t *testing.T, l *lab, nodes []string) (*matrixMesh, func()) {
	t.Helper()
	m := &matrixMesh{mesh: &mesh{}, seen: map[meshState]int{}}
	m.mesh.beforeDial = m.note
	return m, m.mesh.run(t, l, nodes)
}

// clusterView is what the matrix compares before and after a rotation.
type clusterView struct {
	rootPEM, workerToken, managerToken string
	rotation                           *api.RotationStatus
	roots                              []api.RootRecord
	info                               *api.Info
	// audit is the audit log's export; rotationEntries counts its
	// root.rotation entries.
	audit           string
	rotationEntries int
}

func viewCluster(t *testing.T, l *lab, c *client.Client) clusterView {
	t.Helper()
	ctx := context.Background()
	var v clusterView
	st, err := c.CA(ctx)
	if err != nil {
		t.Fatal(err)
	}
	v.rootPEM, v.rotation = st.RootCAPEM, st.Rotation
	for _, role := range []ca.Role{ca.RoleWorker, ca.RoleManager} {
		tok, err := c.JoinToken(ctx, role, false)
		if err != nil {
			t.Fatal(err)
		}
		if role == ca.RoleWorker {
			v.workerToken = tok.Token
		} else {
			v.managerToken = tok.Token
		}
	}
	if v.roots, err = c.Roots(ctx); err != nil {
		t.Fatal(err)
	}
	if v.info, err = c.Info(ctx); err != nil {
		t.Fatal(err)
	}
	v.audit, _ = l.cli(false, "audit", "export", "--data-dir", l.dir("m1"))
	v.rotationEntries = strings.Count(v.audit, `"root.rotation"`)
	return v
}

// backendDetails are the details `chancery info` shows of the root's
// backend.
func backendDetails(info *api.Info) map[string]string {
	d := map[string]string{}
	for _, kv := range info.BackendDetails {
		d[kv[0]] = kv[1]
	}
	return d
}

// TestRotationMatrix rotates the root of a cluster of three live nodes (a
// manager and two workers, agents over the real API) from every backend to
// every backend, each with its real peer, with `chancery ca --rotate`,
// while every node shakes hands with every other over mutual TLS from the
// files it holds: not one handshake may fail. Without backend flags the
// new root is made beside the current one (a new key file, token object,
// Vault issuer or transit key); otherwise where the flags say. A pair that
// cannot rotate (from one external CA to another without a bridge key, an
// external CA without flags, or into a step-ca that signs with an
// intermediate) is refused up front with its documented error and nothing
// changed. After each rotation every node trusts the new
// root and holds a certificate from its key that passes the conformance
// checks, both join tokens changed, the old root is in the history, its key
// was forgotten or left alone as its backend does, and the audit log
// verifies.
func TestRotationMatrix(t *testing.T) {
	if testing.Short() {
		t.Skip("the rotation matrix runs every pair of backends with live nodes")
	}
	defer func(d time.Duration) { caPollInterval = d }(caPollInterval)
	caPollInterval = 100 * time.Millisecond
	peers := startMatrixPeers(t)
	start := time.Now()
	for _, from := range matrixRigs {
		for j, to := range matrixRigs {
			t.Run(from.name+"_to_"+to.name, func(t *testing.T) {
				began := time.Now()
				// Half the pairs ask for the old key's deletion.
				rotateMatrixPair(t, peers, from, to, j%2 == 1)
				t.Logf("%s to %s: %s", from.name, to.name, time.Since(began).Round(10*time.Millisecond))
			})
		}
	}
	t.Logf("the matrix took %s", time.Since(start).Round(100*time.Millisecond))
}

func rotateMatrixPair(t *testing.T, peers *matrixPeers, from, to matrixRig, deleteOldKey bool) {
	root, err := os.MkdirTemp("", "mx") // short: the manager's socket path must fit
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(root) })
	ctx, cancel := context.WithCancel(context.Background())
	l := &lab{t: t, root: root, ctx: ctx}
	t.Cleanup(func() { cancel(); l.wg.Wait() })

	initFlags, oldKeyCheck := from.init(t, peers, l)
	rotateFlags := to.to(t, peers, from.name)
	refusals, bridge := matrixRefusals(t, peers, from.name, to.name)

	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	l.addr = ln.Addr().String()
	l.cli(false, append([]string{"init", "--no-run", "--hostname", "m1", "--data-dir", l.dir("m1"),
		"--listen-addr", l.addr, "--advertise-addr", l.addr}, initFlags...)...)
	l.runMatrixLeader("m1", ln)
	c, done, err := (&app{dataDir: l.dir("m1"), stdout: io.Discard, stderr: io.Discard}).admin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(done)
	before := viewCluster(t, l, c)
	oldRoot, err := certdirRoots(before.rootPEM)
	if err != nil {
		t.Fatal(err)
	}
	nodes := []string{"m1", "w1", "w2"}
	roles := map[string]ca.Role{"m1": ca.RoleManager, "w1": ca.RoleWorker, "w2": ca.RoleWorker}
	for _, n := range nodes[1:] {
		l.cli(false, "join", "--no-run", "--token", before.workerToken, "--hostname", n, "--data-dir", l.dir(n), l.addr)
		l.runNode(n)
	}
	ids := map[string]string{}
	for _, n := range nodes {
		ids[n] = nodeID(t, l.dir(n))
	}
	m, stopMesh := startMesh(t, l, nodes)
	defer stopMesh()
	time.Sleep(100 * time.Millisecond)

	// Refusals first: each changes nothing.
	for _, r := range refusals {
		_, errOut := l.cli(true, append([]string{"ca", "--rotate", "--data-dir", l.dir("m1")}, r.flags...)...)
		if !r.err.MatchString(errOut) {
			t.Errorf("ca --rotate %s: %q, want an error matching %q", strings.Join(r.flags, " "), errOut, r.err)
		}
		after := viewCluster(t, l, c)
		if after.rotation != nil || after.rootPEM != before.rootPEM || after.workerToken != before.workerToken ||
			after.managerToken != before.managerToken || len(after.roots) != len(before.roots) || after.rotationEntries != before.rotationEntries {
			t.Fatalf("a refused rotation changed the cluster: rotation %+v, root changed %v, tokens changed %v/%v, roots %d -> %d, rotation entries %d -> %d",
				after.rotation, after.rootPEM != before.rootPEM, after.workerToken != before.workerToken, after.managerToken != before.managerToken,
				len(before.roots), len(after.roots), before.rotationEntries, after.rotationEntries)
		}
	}

	okBefore := m.ok.Load()
	rotateStart := time.Now()
	args := append(append([]string{"ca", "--rotate", "--data-dir", l.dir("m1")}, rotateFlags...), bridge...)
	if deleteOldKey {
		args = append(args, "--delete-old-key")
	}
	_, progress := l.cli(false, args...)
	// Every node trusts the new root before traffic stops.
	var newRoot *x509.Certificate
	after := viewCluster(t, l, c)
	if roots, err := ca.ParseCertificatesPEM([]byte(after.rootPEM)); err != nil || len(roots) == 0 {
		t.Fatalf("the root after the rotation: %v", err)
	} else {
		newRoot = roots[0]
	}
	for _, n := range nodes {
		eventually(t, n+" trusting the new root", func() bool {
			_, raw, err := certdir.In(l.dir(n)).Root()
			return err == nil && bytes.Equal(raw, []byte(after.rootPEM))
		})
	}
	time.Sleep(100 * time.Millisecond)
	stopMesh()
	rotateEnd := time.Now()

	if !strings.Contains(progress, "Root rotation done") {
		t.Errorf("ca --rotate printed:\n%s", progress)
	}
	for _, f := range m.failed {
		t.Error(f)
	}
	if n := m.ok.Load() - okBefore; n < int64(len(nodes)*(len(nodes)-1)) {
		t.Errorf("only %d handshakes during the rotation", n)
	}
	t.Logf("%d handshakes during the rotation, %d failed", m.ok.Load()-okBefore, len(m.failed))
	// Nodes dialled before the rotation, while holding a certificate from
	// the new key and trusting only the old root (the appendix at work),
	// and after.
	oldKey, newKey := hex.EncodeToString(oldRoot.SubjectKeyId), hex.EncodeToString(newRoot.SubjectKeyId)
	var counts []string
	for _, s := range []meshState{{oldKey, oldKey}, {newKey, oldKey}, {newKey, newKey}} {
		n := m.saw(s)
		if n == 0 {
			t.Errorf("no node dialled holding a certificate from key %s and trusting root %s", s.certFrom, s.trusts)
		}
		counts = append(counts, fmt.Sprint(n))
	}
	t.Logf("dials with a certificate from the old key trusting the old root, the new key the old root, the new key the new root: %s", strings.Join(counts, ", "))

	if after.rootPEM == before.rootPEM {
		t.Fatal("the root did not change")
	}
	if after.rotation != nil {
		t.Errorf("a rotation is still recorded: %+v", after.rotation)
	}
	if after.workerToken == before.workerToken || after.managerToken == before.managerToken {
		t.Error("the join tokens did not both change")
	}
	wantBackend := strings.TrimSuffix(strings.TrimSuffix(to.name, "-pki"), "-transit")
	if after.info.Backend != wantBackend {
		t.Errorf("the cluster's backend is %q, want %q", after.info.Backend, wantBackend)
	}
	if len(after.roots) != 2 || after.roots[0].ActiveUntil.IsZero() || !after.roots[1].ActiveUntil.IsZero() ||
		after.roots[0].CertificatePEM != before.rootPEM || after.roots[1].CertificatePEM != after.rootPEM {
		t.Errorf("the roots the cluster has had: %+v, want the old one retired and the new one current", after.roots)
	}
	// The cross-sign path the two backends' capabilities call for: an
	// external CA signs only a CSR, and from one external CA to another
	// only a bridge key connects them.
	path := store.CrossSignPublicKey
	switch {
	case externalCAs[from.name] && externalCAs[to.name]:
		path = store.CrossSignBridge
	case externalCAs[from.name]:
		path = store.CrossSignCSR
	}
	if after.rotationEntries <= before.rotationEntries || !strings.Contains(after.audit, `"path":"`+path+`"`) {
		t.Errorf("the audit log does not record the rotation by the %s path", path)
	}
	if b := to.beside; b != nil && from.name == to.name {
		// Made by the backend itself, beside the current root.
		was, is := backendDetails(before.info), backendDetails(after.info)
		if !b.want.MatchString(is[b.detail]) || is[b.detail] == was[b.detail] {
			t.Errorf("the new root's %s is %q (the old root's %q), want a new one matching %s", b.detail, is[b.detail], was[b.detail], b.want)
		}
		for _, k := range b.same {
			if is[k] != was[k] {
				t.Errorf("the new root's %s is %q, want the old root's, %q", k, is[k], was[k])
			}
		}
	}

	// Every node holds a certificate from the new key, as the contract
	// says, that verifies under the new root.
	exp := to.expect(rotateStart, rotateEnd)
	for _, n := range nodes {
		chain, err := certdir.In(l.dir(n)).NodeChain()
		if err != nil {
			t.Fatal(err)
		}
		key, err := certdir.In(l.dir(n)).NodeKey()
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(chain[0].AuthorityKeyId, newRoot.SubjectKeyId) {
			t.Errorf("%s holds a certificate from key %s, not the new root's %s", n,
				hex.EncodeToString(chain[0].AuthorityKeyId), hex.EncodeToString(newRoot.SubjectKeyId))
			continue
		}
		e := exp
		e.ClusterID, e.NodeID, e.Role, e.PublicKey = after.info.ClusterID, ids[n], roles[n], key.Public()
		t.Run("Conformance_"+n, func(t *testing.T) {
			conformance.CheckNodeCertificate(t, chain[0], []*x509.Certificate{newRoot}, e)
		})
	}
	// The leader forgets the old root's key once the rotation is done, and
	// says in the audit log what became of it.
	eventually(t, "the old root's key forgotten", func() bool {
		st, err := c.CA(ctx)
		return err == nil && len(st.RetiredKeys) == 0
	})
	exported, _ := l.cli(false, "audit", "export", "--data-dir", l.dir("m1"))
	outcome := "kept"
	if from.name == "file" || (deleteOldKey && !externalCAs[from.name]) {
		outcome = "deleted"
	}
	if !regexp.MustCompile(`"step":"forget-key"`).MatchString(exported) || !strings.Contains(exported, `"outcome":"`+outcome+`"`) {
		t.Errorf("the audit log does not say the old root's key was %s", outcome)
	}
	oldKeyCheck(t, backendDetails(before.info), deleteOldKey)
	out, _ := l.cli(false, "audit", "verify", "--data-dir", l.dir("m1"))
	if !strings.Contains(out, "audit log OK") {
		t.Errorf("audit verify:\n%s", out)
	}
}
