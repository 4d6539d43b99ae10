package cluster

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/chancery-pki/chancery/audit"
	"github.com/chancery-pki/chancery/backends/file"
	"github.com/chancery-pki/chancery/ca"
	"github.com/chancery-pki/chancery/rotation"
	"github.com/chancery-pki/chancery/signer"
	"github.com/chancery-pki/chancery/store"
	"github.com/chancery-pki/chancery/store/storetest"
)

// TestRotationTransitions walks a rotation's record through its phases
// with the functions the reconciler calls, and checks that each refuses a
// rotation that moved, and what each changes.
func TestRotationTransitions(t *testing.T) {
	ctx := context.Background()
	dataDir, st, auth := newCluster(t)
	before := clusterRecord(t, st)
	now := time.Now()
	c, err := StartRotation(ctx, st, RotateRequest{DataDir: dataDir, Now: func() time.Time { return now }})
	if err != nil {
		t.Fatal(err)
	}
	r := c.Rotation
	if r == nil || r.Phase != store.PhasePrepare || r.Target.Backend.Type != file.Name {
		t.Fatalf("StartRotation recorded %+v", r)
	}
	keyFile := filepath.Join(dataDir, r.Target.Backend.Settings[file.SettingKeyPath])
	if _, err := os.Stat(keyFile); err != nil {
		t.Fatalf("the new key file: %v", err)
	}
	if got := TrustedPEM(c); string(got) != string(before.RootCAPEM) {
		t.Error("nodes are given the new root before the switch of trust")
	}
	target := r.Target.CertPEM
	other := []byte("-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n")

	// Each transition refuses a rotation in another phase, or for another
	// target, and changes nothing.
	if _, err := SwitchTrust(ctx, st, target, now, nil); !errors.Is(err, ErrRotationMoved) {
		t.Errorf("SwitchTrust in prepare: %v, want ErrRotationMoved", err)
	}
	if _, _, err := FinishRotation(ctx, st, target, now); !errors.Is(err, ErrRotationMoved) {
		t.Errorf("FinishRotation in prepare: %v, want ErrRotationMoved", err)
	}
	old := auth.Signer()
	next, err := OpenRoot(ctx, dataDir, r.Target, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	appendix, err := rotation.CrossSign(ctx, old, next, rotation.Options{Now: now})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := RecordAppendix(ctx, st, other, appendix, rotation.PathPublicKey, now); !errors.Is(err, ErrRotationMoved) {
		t.Errorf("RecordAppendix for another target: %v, want ErrRotationMoved", err)
	}
	if c, err = RecordAppendix(ctx, st, target, appendix, rotation.PathPublicKey, now); err != nil {
		t.Fatal(err)
	}
	if c.Rotation.Phase != store.PhaseReissue || c.Rotation.Path != store.CrossSignPublicKey || len(c.Rotation.AppendixPEM) == 0 {
		t.Fatalf("after RecordAppendix: %+v", c.Rotation)
	}
	if _, err := AbortRotation(ctx, st, dataDir); err != nil {
		t.Fatalf("abort in reissue: %v", err)
	}
	if _, err := os.Stat(keyFile); !os.IsNotExist(err) {
		t.Errorf("the aborted rotation's key file is still there (%v)", err)
	}
	// Start again, and go the whole way.
	c, err = StartRotation(ctx, st, RotateRequest{DataDir: dataDir, Now: func() time.Time { return now.Add(time.Second) }})
	if err != nil {
		t.Fatal(err)
	}
	target = c.Rotation.Target.CertPEM
	if next, err = OpenRoot(ctx, dataDir, c.Rotation.Target, nil, nil); err != nil {
		t.Fatal(err)
	}
	if appendix, err = rotation.CrossSign(ctx, old, next, rotation.Options{Now: now}); err != nil {
		t.Fatal(err)
	}
	if _, err := RecordAppendix(ctx, st, target, appendix, rotation.PathPublicKey, now); err != nil {
		t.Fatal(err)
	}
	if c, err = SwitchTrust(ctx, st, target, now, nil); err != nil {
		t.Fatal(err)
	}
	if c.WorkerToken == before.WorkerToken || c.ManagerToken == before.ManagerToken {
		t.Error("the join tokens did not change at the switch of trust")
	}
	for _, tok := range []string{c.WorkerToken, c.ManagerToken} {
		jt, err := ca.ParseJoinToken(tok)
		if err != nil || jt.CheckRoot(target) != nil {
			t.Errorf("a new token does not pin the new root (%v)", err)
		}
	}
	if string(TrustedPEM(c)) != string(target) {
		t.Error("nodes are not given the new root at the switch of trust")
	}
	if _, err := AbortRotation(ctx, st, dataDir); !errors.Is(err, ErrRotationInProgress) {
		t.Errorf("abort after the switch: %v, want ErrRotationInProgress", err)
	}
	if _, err := StartRotation(ctx, st, RotateRequest{DataDir: dataDir}); !errors.Is(err, ErrRotationInProgress) {
		t.Errorf("a rotation during the switch: %v, want ErrRotationInProgress", err)
	}
	c, prev, err := FinishRotation(ctx, st, target, now.Add(time.Minute))
	if err != nil {
		t.Fatal(err)
	}
	if c.Rotation != nil || string(c.RootCAPEM) != string(target) || len(c.RootHistory) != 1 ||
		string(c.RootHistory[0].CertPEM) != string(prev.CertPEM) || !c.RootSince.Equal(now.Add(time.Minute)) {
		t.Errorf("after FinishRotation: rotation %v, history %d roots, since %s", c.Rotation, len(c.RootHistory), c.RootSince)
	}
	if string(prev.CertPEM) != string(ca.EncodeCertificatesPEM(old.Chain()[0])) {
		t.Error("FinishRotation returned another root than the old one")
	}
	if _, err := AbortRotation(ctx, st, dataDir); !errors.Is(err, ErrNoRotation) {
		t.Errorf("abort with no rotation: %v, want ErrNoRotation", err)
	}
}

// TestStartRotationRetargetSameSecond replaces a rotation's target within
// the same second: the second new key file gets another name than the
// first, which is deleted.
func TestStartRotationRetargetSameSecond(t *testing.T) {
	ctx := context.Background()
	dataDir, st, _ := newCluster(t)
	req := RotateRequest{DataDir: dataDir, Now: fixedNow}
	first, err := StartRotation(ctx, st, req)
	if err != nil {
		t.Fatal(err)
	}
	second, err := StartRotation(ctx, st, req)
	if err != nil {
		t.Fatalf("a new target within the same second: %v", err)
	}
	k1 := filepath.Join(dataDir, first.Rotation.Target.Backend.Settings[file.SettingKeyPath])
	k2 := filepath.Join(dataDir, second.Rotation.Target.Backend.Settings[file.SettingKeyPath])
	if k1 == k2 {
		t.Fatalf("both targets' keys are at %s", k1)
	}
	if _, err := os.Stat(k1); !os.IsNotExist(err) {
		t.Errorf("the first target's key file is still there (%v)", err)
	}
	if _, err := os.Stat(k2); err != nil {
		t.Errorf("the second target's key file: %v", err)
	}
}

// TestStartRotationEncryptedKey: beside a root key encrypted with a
// passphrase the manager was given at start (not recorded), the new key is
// encrypted with it; with no passphrase known, the rotation is refused and
// no key is made.
func TestStartRotationEncryptedKey(t *testing.T) {
	ctx := context.Background()
	t.Setenv(file.PassphraseEnv, "")
	os.Unsetenv(file.PassphraseEnv)
	pass := filepath.Join(t.TempDir(), "pass")
	if err := os.WriteFile(pass, []byte("correct horse battery staple"), 0o600); err != nil {
		t.Fatal(err)
	}
	dataDir := filepath.Join(t.TempDir(), "data")
	req := initRequest(dataDir)
	req.BackendSettings = map[string]string{file.SettingPassphraseFile: pass}
	mustInit(t, req)
	st := openStore(t, dataDir)
	if _, err := st.UpdateCluster(ctx, func(c *store.Cluster) error {
		delete(c.Backend.Settings, file.SettingPassphraseFile)
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	overrides := map[string]string{file.SettingPassphraseFile: pass}
	current := func(ctx context.Context, c store.Cluster) (signer.Signer, func(), error) {
		sg, err := OpenSigner(ctx, dataDir, c, overrides, nil)
		return sg, func() {}, err
	}
	entries, _ := os.ReadDir(filepath.Join(dataDir, "ca"))
	if _, err := StartRotation(ctx, st, RotateRequest{DataDir: dataDir, Current: current}); err == nil {
		t.Fatal("a rotation beside an encrypted key, with no passphrase known, was started")
	}
	if after, _ := os.ReadDir(filepath.Join(dataDir, "ca")); len(after) != len(entries) {
		t.Errorf("the refused rotation left %d files in ca/, want %d", len(after), len(entries))
	}
	c, err := StartRotation(ctx, st, RotateRequest{DataDir: dataDir, Current: current, Overrides: overrides})
	if err != nil {
		t.Fatal(err)
	}
	raw, err := os.ReadFile(filepath.Join(dataDir, c.Rotation.Target.Backend.Settings[file.SettingKeyPath]))
	if err != nil || !strings.Contains(string(raw), "ENCRYPTED PRIVATE KEY") {
		t.Errorf("the new key file is not encrypted (%v)", err)
	}
}

// TestExcludeNodes: stragglers excluded from a rotation are removed from
// the cluster, a manager as well as a worker (a dead manager would
// otherwise block the rotation until it came back), each with a
// node.removed and a root.rotation exclude entry; excluding them again,
// or an unknown node, changes nothing more; the manager that leads is
// refused, and nothing is excluded then.
func TestExcludeNodes(t *testing.T) {
	ctx := context.Background()
	dataDir, st, _ := newCluster(t)
	c := clusterRecord(t, st)
	now := time.Now()
	for _, n := range []struct{ id, serial, role string }{{"worker-1", "0a01", string(ca.RoleWorker)}, {"manager-2", "0a02", string(ca.RoleManager)}} {
		node, cert := storetest.Issuance(n.id, n.serial, now)
		node.Role, cert.Role = n.role, n.role
		if err := st.RecordIssuance(ctx, node, cert); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := ExcludeNodes(ctx, st, []string{"worker-1"}, c.LeaderID); !errors.Is(err, ErrNoRotation) {
		t.Fatalf("ExcludeNodes with no rotation: %v, want ErrNoRotation", err)
	}
	if _, err := StartRotation(ctx, st, RotateRequest{DataDir: dataDir}); err != nil {
		t.Fatal(err)
	}
	head := func() audit.Head {
		h, err := st.AuditHead(ctx)
		if err != nil {
			t.Fatal(err)
		}
		return h
	}

	before := head()
	if _, err := ExcludeNodes(ctx, st, []string{"worker-1", c.LeaderID}, c.LeaderID); !errors.Is(err, ErrIsLeader) {
		t.Fatalf("excluding the leader: %v, want ErrIsLeader", err)
	}
	if after := head(); after != before {
		t.Errorf("a refused exclusion wrote to the audit log: %+v, was %+v", after, before)
	}

	got, err := ExcludeNodes(ctx, st, []string{"worker-1", "manager-2", "never-joined"}, c.LeaderID)
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{"worker-1", "manager-2", "never-joined"}; !slices.Equal(got.Rotation.ExcludedNodes, want) {
		t.Errorf("excluded %v, want %v", got.Rotation.ExcludedNodes, want)
	}
	for _, id := range []string{"worker-1", "manager-2"} {
		n, err := st.Node(ctx, id)
		if err != nil || n.State != store.StateRemoved {
			t.Errorf("%s after its exclusion: %+v, %v; want it removed", id, n, err)
		}
	}
	recs, err := st.AuditRecords(ctx, before.Seq+1, 0)
	if err != nil {
		t.Fatal(err)
	}
	var entries []string
	for _, r := range recs {
		e, err := audit.Unmarshal(r.Data)
		if err != nil {
			t.Fatal(err)
		}
		entries = append(entries, string(e.Action)+" "+e.Details["step"]+" "+e.NodeID+" "+e.Role)
	}
	want := []string{
		"node.removed  worker-1 swarm-worker", "root.rotation exclude worker-1 ",
		"node.removed  manager-2 swarm-manager", "root.rotation exclude manager-2 ",
		"root.rotation exclude never-joined ",
	}
	if !slices.Equal(entries, want) {
		t.Errorf("audit entries:\n%s\nwant\n%s", strings.Join(entries, "\n"), strings.Join(want, "\n"))
	}

	again := head()
	if _, err := ExcludeNodes(ctx, st, []string{"worker-1", "manager-2"}, c.LeaderID); err != nil {
		t.Fatal(err)
	}
	if after := head(); after != again {
		t.Errorf("excluding excluded nodes again wrote to the audit log")
	}
}
