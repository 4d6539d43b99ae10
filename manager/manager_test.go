package manager

import (
	"context"
	"errors"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chancery-pki/chancery/audit"
	"github.com/chancery-pki/chancery/backends/file"
	"github.com/chancery-pki/chancery/clock"
	"github.com/chancery-pki/chancery/cluster"
	"github.com/chancery-pki/chancery/issuer"
	"github.com/chancery-pki/chancery/rotation"
	"github.com/chancery-pki/chancery/store"
)

// newDataDir makes a cluster in a short fresh directory (so that the
// manager's socket path fits), with its root key encrypted under
// passphrase when it is not empty.
func newDataDir(t testing.TB, passphrase string) string {
	t.Helper()
	dir, err := os.MkdirTemp("", "mgr")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	data := filepath.Join(dir, "m")
	settings := map[string]string{}
	if passphrase != "" {
		pf := filepath.Join(dir, "pass")
		if err := os.WriteFile(pf, []byte(passphrase), 0o600); err != nil {
			t.Fatal(err)
		}
		settings[file.SettingPassphraseFile] = pf
	}
	if _, err := cluster.Init(context.Background(), cluster.InitRequest{
		DataDir: data, ListenAddr: "127.0.0.1:2378", AdvertiseAddr: "127.0.0.1:2378", Hostname: "m1", BackendSettings: settings,
	}); err != nil {
		t.Fatal(err)
	}
	if passphrase != "" {
		// Forget where the passphrase is: the manager must be given it.
		st, err := cluster.OpenStore(data)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := st.UpdateCluster(context.Background(), func(c *store.Cluster) error {
			delete(c.Backend.Settings, file.SettingPassphraseFile)
			return nil
		}); err != nil {
			t.Fatal(err)
		}
		st.Close()
	}
	return data
}

func quiet() *slog.Logger { return slog.New(slog.DiscardHandler) }

// auditActions lists the actions of the data directory's audit log.
func auditActions(t *testing.T, data string) []audit.Action {
	t.Helper()
	st, err := cluster.OpenStore(data)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	recs, err := st.AuditRecords(context.Background(), 1, 0)
	if err != nil {
		t.Fatal(err)
	}
	var out []audit.Action
	for _, r := range recs {
		e, err := audit.Unmarshal(r.Data)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, e.Action)
	}
	return out
}

// TestRunStopsCleanly runs a manager and stops it: Run returns nil after
// every part has stopped, the audit log ends with the shutdown checkpoint,
// and the store and the socket are released (a second manager can start).
func TestRunStopsCleanly(t *testing.T) {
	data := newDataDir(t, "")
	for round := 0; round < 2; round++ {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithCancel(context.Background())
		done, ready := make(chan error, 1), make(chan struct{})
		go func() {
			done <- Run(ctx, Config{DataDir: data, Listener: ln, Logger: quiet(), CheckpointInterval: time.Hour,
				Ready: func(string) { close(ready) }})
		}()
		select {
		case <-ready:
		case err := <-done:
			t.Fatalf("round %d: Run: %v", round, err)
		}
		cancel()
		if err := <-done; err != nil {
			t.Fatalf("round %d: Run after cancel: %v", round, err)
		}
		acts := auditActions(t, data)
		if last := acts[len(acts)-1]; last != audit.ActionCheckpoint {
			t.Errorf("round %d: the audit log ends with %s, want the shutdown checkpoint", round, last)
		}
		if _, err := net.Dial("tcp", ln.Addr().String()); err == nil {
			t.Errorf("round %d: the API still listens after Run returned", round)
		}
	}
}

// TestRunStopsCleanlyWhileCancelling stops managers whose context has many
// other children, so that cancelling it takes a while: the leader's duties
// see the end of the context before the manager's own parts do, and that
// is a stop, not a lost leadership (Run once returned errLeadershipLost,
// now and then, when a backend's client had contexts of its own under it).
func TestRunStopsCleanlyWhileCancelling(t *testing.T) {
	data := newDataDir(t, "")
	for round := range 10 {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithCancel(context.Background())
		var others []context.CancelFunc
		for range 20000 {
			_, c := context.WithCancel(ctx)
			others = append(others, c)
		}
		done, ready := make(chan error, 1), make(chan struct{})
		go func() {
			done <- Run(ctx, Config{DataDir: data, Listener: ln, Logger: quiet(), CheckpointInterval: time.Hour,
				Ready: func(string) { close(ready) }})
		}()
		select {
		case <-ready:
		case err := <-done:
			t.Fatalf("round %d: Run: %v", round, err)
		}
		cancel()
		if err := <-done; err != nil {
			t.Fatalf("round %d: Run after cancel: %v", round, err)
		}
		for _, c := range others {
			c()
		}
	}
}

// TestRunRefusesBeforeServing: a manager whose root key cannot be opened
// returns the error at once, having served nothing and recorded no start.
func TestRunRefusesBeforeServing(t *testing.T) {
	data := newDataDir(t, "correct horse battery staple")
	before := len(auditActions(t, data))
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Setenv(file.PassphraseEnv, "") // restored after the test
	os.Unsetenv(file.PassphraseEnv)
	err = Run(context.Background(), Config{DataDir: data, Listener: ln, Logger: quiet()})
	if !errors.Is(err, file.ErrPassphraseNeeded) {
		t.Fatalf("Run = %v, want ErrPassphraseNeeded", err)
	}
	if _, err := net.Dial("tcp", ln.Addr().String()); err == nil {
		t.Error("the API listener is still open")
	}
	if after := auditActions(t, data); len(after) != before {
		t.Errorf("the audit log grew from %d to %d entries (%v)", before, len(after), after[before:])
	}
}

// TestRunStopsWhenAPartStops: the metrics listener cannot start (its
// address is taken), so the whole manager stops with its error, after the
// other parts have stopped.
func TestRunStopsWhenAPartStops(t *testing.T) {
	data := newDataDir(t, "")
	taken, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer taken.Close()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() {
		done <- Run(context.Background(), Config{DataDir: data, Listener: ln, Logger: quiet(), MetricsAddr: taken.Addr().String()})
	}()
	select {
	case err := <-done:
		if err == nil || !strings.Contains(err.Error(), "metrics") {
			t.Fatalf("Run = %v, want the metrics listener's error", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("the manager did not stop when its metrics listener failed")
	}
	if _, err := net.Dial("tcp", ln.Addr().String()); err == nil {
		t.Error("the API still listens")
	}
}

// TestLeaderDutiesEndWithLeadership: when leadership of a store only this
// manager holds ends while the manager runs, its CA work stops with
// errLeadershipLost and, once stopped, no Issuer is in force.
func TestLeaderDutiesEndWithLeadership(t *testing.T) {
	data := newDataDir(t, "")
	st, err := cluster.OpenStore(data)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	c, err := st.Cluster(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	issuers := &issuer.Holder{}
	lctx, lose := context.WithCancel(context.Background())
	l, err := startDuties(context.Background(), dutiesConfig{
		Config: Config{DataDir: data, Logger: quiet(), Clock: clock.Real{}, CheckpointInterval: time.Hour},
		store:  st, cluster: c, nodeID: c.LeaderID, issuers: issuers, api: noRotationAPI{},
		election: fixedElection{lctx},
	})
	if err != nil {
		t.Fatal(err)
	}
	if issuers.Load() == nil {
		t.Fatal("no Issuer in force while leading")
	}
	if err := l.begin(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- l.run(context.Background()) }()
	lose()
	select {
	case err := <-done:
		if !errors.Is(err, errLeadershipLost) {
			t.Fatalf("run = %v; want errLeadershipLost", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the leader's duties went on after leadership ended")
	}
	l.stop()
	if _, err := issuers.Current(); !errors.Is(err, issuer.ErrNoIssuer) {
		t.Errorf("an Issuer is still in force after leadership ended: %v", err)
	}
}

// fixedElection makes this manager the leader for as long as ctx lasts.
type fixedElection struct{ ctx context.Context }

func (e fixedElection) Campaign(context.Context) (context.Context, error) { return e.ctx, nil }

// noRotationAPI is an API server that knows no node.
type noRotationAPI struct{}

func (noRotationAPI) RotationFacts(context.Context, store.Cluster) (rotation.Facts, error) {
	return rotation.Facts{}, nil
}
func (noRotationAPI) RotationChanged() <-chan struct{}  { return nil }
func (noRotationAPI) ReloadRoots(context.Context) error { return nil }
func (noRotationAPI) SetLastRotation(string)            {}
