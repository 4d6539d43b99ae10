// Package storetest is the conformance suite for store.Store
// implementations: every store runs Run from its tests, and a store is
// correct when Run passes.
package storetest

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chancery-pki/chancery/audit"
	"github.com/chancery-pki/chancery/store"
)

// Run runs the conformance suite against the stores open returns. Each call
// of open must return a new, empty store; Run closes it when the subtest
// ends.
func Run(t *testing.T, open func(t *testing.T) store.Store) {
	tests := []struct {
		name string
		fn   func(t *testing.T, s store.Store)
	}{
		{"Cluster", testCluster},
		{"UpdateCluster", testUpdateCluster},
		{"Nodes", testNodes},
		{"IssuedCertificates", testIssuedCertificates},
		{"RecordIssuanceRefuses", testRecordIssuanceRefuses},
		{"ConcurrentRecordIssuance", testConcurrentRecordIssuance},
		{"ConcurrentDuplicates", testConcurrentDuplicates},
		{"ListNodes", testListNodes},
		{"ListNodesConcurrentJoins", testListNodesConcurrentJoins},
		{"ListIssuedCertificates", testListIssuedCertificates},
		{"ListBadOptions", testListBadOptions},
		{"Prune", testPrune},
		{"CanceledContext", testCanceledContext},
		{"Audit", testAudit},
		{"AuditConcurrent", testAuditConcurrent},
		{"RootRecord", testRootRecord},
		{"RootRecordBackCompat", testRootRecordBackCompat},
		{"ValidateCluster", testValidateCluster},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := open(t)
			t.Cleanup(func() { s.Close() })
			tt.fn(t, s)
		})
	}
}

var t0 = time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC)

func testCluster(t *testing.T, s store.Store) {
	ctx := t.Context()
	if _, err := s.Cluster(ctx); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("Cluster on an empty store: got %v, want ErrNotFound", err)
	}
	if _, err := s.UpdateCluster(ctx, func(*store.Cluster) error { return nil }); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("UpdateCluster on an empty store: got %v, want ErrNotFound", err)
	}
	want := Cluster()
	if err := s.CreateCluster(ctx, want); err != nil {
		t.Fatalf("CreateCluster: %v", err)
	}
	want.Version = 1
	got, err := s.Cluster(ctx)
	if err != nil {
		t.Fatalf("Cluster: %v", err)
	}
	if !equal(got, want) {
		t.Errorf("Cluster:\n got %+v\nwant %+v", got, want)
	}

	again := Cluster()
	again.ID = "another"
	err = s.CreateCluster(ctx, again)
	if !errors.Is(err, store.ErrExists) {
		t.Fatalf("second CreateCluster: got %v, want ErrExists", err)
	}
	checkNoSecret(t, err)
	if got, _ := s.Cluster(ctx); got.ID != want.ID {
		t.Errorf("second CreateCluster replaced the cluster: ID %q", got.ID)
	}
}

func testUpdateCluster(t *testing.T, s store.Store) {
	ctx := t.Context()
	if err := s.CreateCluster(ctx, Cluster()); err != nil {
		t.Fatalf("CreateCluster: %v", err)
	}
	before, _ := s.Cluster(ctx)

	boom := errors.New("boom")
	tests := []struct {
		name    string
		fn      func(*store.Cluster) error
		wantErr error // nil: any error
	}{
		{"fn error", func(c *store.Cluster) error { c.WorkerToken = "changed"; c.CertExpiry = time.Hour; return boom }, boom},
		{"ID change", func(c *store.Cluster) error { c.ID = "other"; c.ManagerToken = "changed"; return nil }, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := s.UpdateCluster(ctx, tt.fn)
			if err == nil || (tt.wantErr != nil && !errors.Is(err, tt.wantErr)) {
				t.Fatalf("UpdateCluster: got (%+v, %v), want error %v", got, err, tt.wantErr)
			}
			checkNoSecret(t, err)
			if after, _ := s.Cluster(ctx); !equal(after, before) {
				t.Errorf("a failed UpdateCluster changed the cluster:\n got %+v\nwant %+v", after, before)
			}
		})
	}

	for i := range 3 {
		got, err := s.UpdateCluster(ctx, func(c *store.Cluster) error {
			c.CertExpiry += time.Hour
			c.Version = 100 // the store owns Version
			return nil
		})
		if err != nil {
			t.Fatalf("UpdateCluster: %v", err)
		}
		if want := before.Version + uint64(i) + 1; got.Version != want {
			t.Errorf("update %d: Version %d, want %d", i, got.Version, want)
		}
		if read, _ := s.Cluster(ctx); !equal(read, got) {
			t.Errorf("update %d: read back %+v, UpdateCluster returned %+v", i, read, got)
		}
	}
	if got, _ := s.Cluster(ctx); got.CertExpiry != before.CertExpiry+3*time.Hour {
		t.Errorf("CertExpiry %v after three updates, want %v", got.CertExpiry, before.CertExpiry+3*time.Hour)
	}
}

func testNodes(t *testing.T, s store.Store) {
	ctx := t.Context()
	if nodes, err := s.Nodes(ctx); err != nil || len(nodes) != 0 {
		t.Fatalf("Nodes on an empty store: (%v, %v), want none", nodes, err)
	}
	if _, err := s.Node(ctx, "nope"); !errors.Is(err, store.ErrNotFound) || !strings.Contains(err.Error(), "nope") {
		t.Errorf("Node(missing): got %v, want ErrNotFound naming the node", err)
	} else if n := strings.Count(err.Error(), "store: "); n != 1 {
		t.Errorf("Node(missing): %q says \"store: \" %d times, want once", err, n)
	}
	if _, err := s.UpdateNode(ctx, "nope", func(*store.Node) error { return nil }); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("UpdateNode(missing): got %v, want ErrNotFound", err)
	}

	ids := []string{"node-c", "node-a", "node-b"}
	for i, id := range ids {
		n, c := Issuance(id, fmt.Sprintf("%02x", i+1), t0)
		if err := s.RecordIssuance(ctx, n, c); err != nil {
			t.Fatalf("RecordIssuance(%s): %v", id, err)
		}
	}
	nodes, err := s.Nodes(ctx)
	if err != nil {
		t.Fatalf("Nodes: %v", err)
	}
	var got []string
	for _, n := range nodes {
		got = append(got, n.ID)
	}
	if want := []string{"node-a", "node-b", "node-c"}; !reflect.DeepEqual(got, want) {
		t.Errorf("Nodes IDs %v, want %v", got, want)
	}

	first, err := s.Node(ctx, "node-a")
	if err != nil {
		t.Fatalf("Node: %v", err)
	}
	if first.State != store.StateReady || first.CertSerial != "02" || first.Hostname != "host-node-a" ||
		first.CreatedAt.IsZero() || first.UpdatedAt.IsZero() || !first.CertNotAfter.Equal(t0.Add(90*24*time.Hour)) {
		t.Errorf("new node: %+v", first)
	}

	// A renewal updates the node in place, keeping what it leaves empty.
	renew, c := Issuance("node-a", "0a", t0.Add(time.Hour))
	renew.Hostname, renew.State = "", ""
	if err := s.RecordIssuance(ctx, renew, c); err != nil {
		t.Fatalf("RecordIssuance(renewal): %v", err)
	}
	renewed, _ := s.Node(ctx, "node-a")
	if renewed.CertSerial != "0a" || renewed.Role != first.Role || renewed.Hostname != first.Hostname ||
		renewed.State != store.StateReady || !renewed.CreatedAt.Equal(first.CreatedAt) {
		t.Errorf("renewed node: %+v, was %+v", renewed, first)
	}
	// A renewal for a role the node no longer has (a demotion or promotion
	// committed meanwhile) writes nothing.
	stale, c := Issuance("node-a", "0c", t0.Add(time.Hour))
	stale.Role = "swarm-manager"
	if err := s.RecordIssuance(ctx, stale, c); !errors.Is(err, store.ErrConflict) {
		t.Fatalf("RecordIssuance with a stale role: %v, want ErrConflict", err)
	}
	if _, err := s.IssuedCertificate(ctx, "0c"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("a refused issuance was recorded: %v", err)
	}

	updated, err := s.UpdateNode(ctx, "node-a", func(n *store.Node) error { n.State = store.StateRemoved; return nil })
	if err != nil {
		t.Fatalf("UpdateNode: %v", err)
	}
	if read, _ := s.Node(ctx, "node-a"); read.State != store.StateRemoved || !equal(read, updated) {
		t.Errorf("after UpdateNode: read %+v, returned %+v", read, updated)
	}
	// A later renewal does not undo the removal: it is refused.
	n, c := Issuance("node-a", "0b", t0.Add(2*time.Hour))
	n.State = ""
	if err := s.RecordIssuance(ctx, n, c); !errors.Is(err, store.ErrConflict) {
		t.Fatalf("RecordIssuance for a removed node: %v, want ErrConflict", err)
	}
	if read, _ := s.Node(ctx, "node-a"); read.State != store.StateRemoved {
		t.Errorf("RecordIssuance with empty State changed State to %q", read.State)
	}

	boom := errors.New("boom")
	before, _ := s.Node(ctx, "node-b")
	for name, fn := range map[string]func(*store.Node) error{
		"fn error":  func(n *store.Node) error { n.Hostname = "x"; return boom },
		"ID change": func(n *store.Node) error { n.ID = "node-z"; return nil },
	} {
		if _, err := s.UpdateNode(ctx, "node-b", fn); err == nil {
			t.Errorf("UpdateNode(%s) succeeded", name)
		}
		if after, _ := s.Node(ctx, "node-b"); !equal(after, before) {
			t.Errorf("failed UpdateNode(%s) changed the node: %+v", name, after)
		}
	}
	if _, err := s.Node(ctx, "node-z"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("failed UpdateNode(ID change) created node-z: %v", err)
	}
}

func testIssuedCertificates(t *testing.T, s store.Store) {
	ctx := t.Context()
	if _, err := s.IssuedCertificate(ctx, "ff"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("IssuedCertificate(missing): got %v, want ErrNotFound", err)
	}
	// Recorded out of order; serials 03 and 04 share an IssuedAt.
	records := []struct {
		node, serial string
		at           time.Duration
	}{
		{"n1", "04", 2 * time.Hour},
		{"n2", "01", 0},
		{"n1", "03", 2 * time.Hour},
		{"n1", "02", time.Hour},
		{"n2", "05", 3 * time.Hour},
	}
	for _, r := range records {
		n, c := Issuance(r.node, r.serial, t0.Add(r.at))
		if err := s.RecordIssuance(ctx, n, c); err != nil {
			t.Fatalf("RecordIssuance(%s): %v", r.serial, err)
		}
	}
	tests := []struct {
		node string
		want []string
	}{
		{"", []string{"01", "02", "03", "04", "05"}},
		{"n1", []string{"02", "03", "04"}},
		{"n2", []string{"01", "05"}},
		{"n3", nil},
	}
	for _, tt := range tests {
		certs, err := s.IssuedCertificates(ctx, tt.node)
		if err != nil {
			t.Fatalf("IssuedCertificates(%q): %v", tt.node, err)
		}
		var got []string
		for _, c := range certs {
			got = append(got, c.Serial)
		}
		if !reflect.DeepEqual(got, tt.want) {
			t.Errorf("IssuedCertificates(%q) = %v, want %v", tt.node, got, tt.want)
		}
	}
	_, want := Issuance("n1", "02", t0.Add(time.Hour))
	if got, err := s.IssuedCertificate(ctx, "02"); err != nil || !equal(got, want) {
		t.Errorf("IssuedCertificate(02) = (%+v, %v), want %+v", got, err, want)
	}
	if n, _ := s.Node(ctx, "n1"); n.CertSerial != "02" {
		t.Errorf("node n1 CertSerial %q, want the last recorded, 02", n.CertSerial)
	}
}

func testRecordIssuanceRefuses(t *testing.T, s store.Store) {
	ctx := t.Context()
	n, c := Issuance("n1", "01", t0)
	if err := s.RecordIssuance(ctx, n, c); err != nil {
		t.Fatalf("RecordIssuance: %v", err)
	}
	before, _ := s.Node(ctx, "n1")
	tests := []struct {
		name    string
		edit    func(*store.Node, *store.IssuedCertificate)
		wantErr error
	}{
		{"duplicate serial", func(n *store.Node, c *store.IssuedCertificate) { n.Hostname = "x" }, store.ErrExists},
		{"no node ID", func(n *store.Node, c *store.IssuedCertificate) { n.ID, c.NodeID = "", "" }, nil},
		{"no serial", func(n *store.Node, c *store.IssuedCertificate) { n.CertSerial, c.Serial = "", "" }, nil},
		{"upper case serial", func(n *store.Node, c *store.IssuedCertificate) { n.CertSerial, c.Serial = "0AB", "0AB" }, nil},
		{"other node", func(n *store.Node, c *store.IssuedCertificate) { n.CertSerial, c.Serial, c.NodeID = "02", "02", "n2" }, nil},
		{"node serial differs", func(n *store.Node, c *store.IssuedCertificate) { n.CertSerial, c.Serial = "03", "04" }, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			n, c := Issuance("n1", "01", t0.Add(time.Hour))
			tt.edit(&n, &c)
			err := s.RecordIssuance(ctx, n, c)
			if err == nil || (tt.wantErr != nil && !errors.Is(err, tt.wantErr)) {
				t.Fatalf("RecordIssuance: got %v, want error %v", err, tt.wantErr)
			}
			if after, _ := s.Node(ctx, "n1"); !equal(after, before) {
				t.Errorf("refused RecordIssuance changed the node: %+v", after)
			}
			if certs, _ := s.IssuedCertificates(ctx, ""); len(certs) != 1 {
				t.Errorf("refused RecordIssuance left %d certificates, want 1", len(certs))
			}
		})
	}
}

func testConcurrentRecordIssuance(t *testing.T, s store.Store) {
	ctx := t.Context()
	const workers, each = 8, 10
	var wg sync.WaitGroup
	errs := make(chan error, workers*each)
	for w := range workers {
		wg.Go(func() {
			for i := range each {
				// Two workers share each node, so node upserts contend too.
				n, c := Issuance(fmt.Sprintf("node-%d", w/2), fmt.Sprintf("%02x%02x", w, i), t0.Add(time.Duration(i)*time.Minute))
				if err := s.RecordIssuance(ctx, n, c); err != nil {
					errs <- err
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Errorf("RecordIssuance: %v", err)
	}
	certs, err := s.IssuedCertificates(ctx, "")
	if err != nil || len(certs) != workers*each {
		t.Fatalf("IssuedCertificates: %d certificates (%v), want %d", len(certs), err, workers*each)
	}
	if nodes, err := s.Nodes(ctx); err != nil || len(nodes) != workers/2 {
		t.Fatalf("Nodes: %d nodes (%v), want %d", len(nodes), err, workers/2)
	}
}

func testCanceledContext(t *testing.T, s store.Store) {
	ctx := t.Context()
	if err := s.CreateCluster(ctx, Cluster()); err != nil {
		t.Fatalf("CreateCluster: %v", err)
	}
	n, c := Issuance("n1", "01", t0)
	if err := s.RecordIssuance(ctx, n, c); err != nil {
		t.Fatalf("RecordIssuance: %v", err)
	}
	canceled, cancel := context.WithCancel(ctx)
	cancel()
	n2, c2 := Issuance("n2", "02", t0)
	calls := map[string]func() error{
		"CreateCluster": func() error { return s.CreateCluster(canceled, Cluster()) },
		"Cluster":       func() error { _, err := s.Cluster(canceled); return err },
		"UpdateCluster": func() error {
			_, err := s.UpdateCluster(canceled, func(c *store.Cluster) error { c.CertExpiry = time.Hour; return nil })
			return err
		},
		"Node":  func() error { _, err := s.Node(canceled, "n1"); return err },
		"Nodes": func() error { _, err := s.Nodes(canceled); return err },
		"UpdateNode": func() error {
			_, err := s.UpdateNode(canceled, "n1", func(n *store.Node) error { n.State = store.StateDown; return nil })
			return err
		},
		"RecordIssuance":     func() error { return s.RecordIssuance(canceled, n2, c2) },
		"IssuedCertificate":  func() error { _, err := s.IssuedCertificate(canceled, "01"); return err },
		"IssuedCertificates": func() error { _, err := s.IssuedCertificates(canceled, ""); return err },
		"ListNodes":          func() error { _, err := s.ListNodes(canceled, store.ListOptions{}); return err },
		"ListIssuedCertificates": func() error {
			_, err := s.ListIssuedCertificates(canceled, "", store.ListOptions{})
			return err
		},
	}
	for name, call := range calls {
		if err := call(); !errors.Is(err, context.Canceled) {
			t.Errorf("%s with a canceled context: got %v, want context.Canceled", name, err)
		}
	}
	if cl, _ := s.Cluster(ctx); cl.Version != 1 || cl.CertExpiry == time.Hour {
		t.Errorf("canceled UpdateCluster wrote: %+v", cl)
	}
	if got, _ := s.Node(ctx, "n1"); got.State != store.StateReady {
		t.Errorf("canceled UpdateNode wrote: %+v", got)
	}
	if _, err := s.Node(ctx, "n2"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("canceled RecordIssuance wrote node n2: %v", err)
	}
}

// Secret join tokens of the Cluster fixture; no store error may contain them.
const (
	workerToken  = "SWMTKN-1-3pu6hszjas19xyp7ghgosyx9k8atbfcr8p2is99znpy26u2lkl-1awxwuwd3z9j1z3puu7rcgdbx"
	managerToken = "SWMTKN-1-3pu6hszjas19xyp7ghgosyx9k8atbfcr8p2is99znpy26u2lkl-7p73s1dx5in4tatdymyhg9hu2"
)

// Cluster returns a cluster record fixture, with every field set but Version.
func Cluster() store.Cluster {
	return store.Cluster{
		ID:            "2ydzp6y8vj4hvvbe5kk7qbbe0",
		CreatedAt:     t0,
		RootCAPEM:     []byte("-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n"),
		Backend:       store.BackendConfig{Type: "file", Settings: map[string]string{"key_path": "/var/lib/chancery/root.key"}},
		WorkerToken:   workerToken,
		ManagerToken:  managerToken,
		CertExpiry:    2160 * time.Hour,
		ListenAddr:    "0.0.0.0:4242",
		AdvertiseAddr: "10.0.0.1:4242",
	}
}

// Issuance returns a node and the certificate record of a 90-day worker
// certificate issued to it at issuedAt, consistent as RecordIssuance wants.
func Issuance(nodeID, serial string, issuedAt time.Time) (store.Node, store.IssuedCertificate) {
	c := store.IssuedCertificate{
		Serial:      serial,
		NodeID:      nodeID,
		Role:        "swarm-worker",
		NotBefore:   issuedAt.Add(-time.Hour),
		NotAfter:    issuedAt.Add(90 * 24 * time.Hour),
		IssuerKeyID: "5c0ffee0",
		IssuedAt:    issuedAt,
	}
	n := store.Node{
		ID:           nodeID,
		Hostname:     "host-" + nodeID,
		Role:         c.Role,
		State:        store.StateReady,
		CertSerial:   serial,
		CertNotAfter: c.NotAfter,
	}
	return n, c
}

func checkNoSecret(t *testing.T, err error) {
	t.Helper()
	if err != nil && (strings.Contains(err.Error(), workerToken) || strings.Contains(err.Error(), managerToken)) {
		t.Errorf("error contains a join token: %v", err)
	}
}

// equal compares records, times by instant rather than by location, in
// nested roots too.
func equal[T any](a, b T) bool { return reflect.DeepEqual(utc(a), utc(b)) }

// utc returns a deep copy of v with every time.Time in UTC and without a
// monotonic reading.
func utc[T any](v T) T {
	return normalize(reflect.ValueOf(v)).Interface().(T)
}

var timeType = reflect.TypeFor[time.Time]()

func normalize(v reflect.Value) reflect.Value {
	switch {
	case v.Type() == timeType:
		return reflect.ValueOf(v.Interface().(time.Time).UTC().Round(0))
	case v.Kind() == reflect.Struct:
		out := reflect.New(v.Type()).Elem()
		out.Set(v)
		for i := range v.NumField() {
			if out.Field(i).CanSet() {
				out.Field(i).Set(normalize(v.Field(i)))
			}
		}
		return out
	case v.Kind() == reflect.Slice && !v.IsNil():
		out := reflect.MakeSlice(v.Type(), v.Len(), v.Len())
		for i := range v.Len() {
			out.Index(i).Set(normalize(v.Index(i)))
		}
		return out
	case v.Kind() == reflect.Pointer && !v.IsNil():
		out := reflect.New(v.Type().Elem())
		out.Elem().Set(normalize(v.Elem()))
		return out
	}
	return v
}

// testAudit checks that events are appended with the change they record,
// and not at all when the change is refused.
func testAudit(t *testing.T, s store.Store) {
	ctx := t.Context()
	if h, err := s.AuditHead(ctx); err != nil || h != audit.Genesis {
		t.Fatalf("AuditHead of a new store = %v, %v; want the genesis head", h, err)
	}
	ev := func(a audit.Action) audit.Event { return audit.Event{Action: a, Actor: "node-1"} }
	if err := s.CreateCluster(ctx, Cluster(), ev(audit.ActionInit)); err != nil {
		t.Fatal(err)
	}
	n, c := Issuance("node-1", "0a", t0)
	if err := s.RecordIssuance(ctx, n, c, ev(audit.ActionIssued)); err != nil {
		t.Fatal(err)
	}
	if _, err := s.UpdateCluster(ctx, func(c *store.Cluster) error { c.CertExpiry = time.Hour; return nil }, ev(audit.ActionCertExpiry)); err != nil {
		t.Fatal(err)
	}
	if _, err := s.UpdateNode(ctx, "node-1", func(n *store.Node) error { n.Role = "swarm-manager"; return nil }, ev(audit.ActionPromoted)); err != nil {
		t.Fatal(err)
	}
	entries, err := s.AppendAudit(ctx, ev(audit.ActionRefused), ev(audit.ActionRefused))
	if err != nil || len(entries) != 2 || entries[1].Seq != 6 {
		t.Fatalf("AppendAudit = %v, %v; want entries 5 and 6", entries, err)
	}
	// Refused changes record nothing.
	boom := errors.New("refused")
	s.UpdateCluster(ctx, func(*store.Cluster) error { return boom }, ev(audit.ActionTokenRotated))
	s.UpdateNode(ctx, "node-1", func(*store.Node) error { return boom }, ev(audit.ActionDemoted))
	s.RecordIssuance(ctx, n, c, ev(audit.ActionRenewed)) // duplicate serial
	s.CreateCluster(ctx, Cluster(), ev(audit.ActionInit))
	recs, err := s.AuditRecords(ctx, 1, 0)
	if err != nil {
		t.Fatal(err)
	}
	var actions []audit.Action
	for _, r := range recs {
		e, err := audit.Unmarshal(r.Data)
		if err != nil {
			t.Fatal(err)
		}
		actions = append(actions, e.Action)
	}
	want := []audit.Action{audit.ActionInit, audit.ActionIssued, audit.ActionCertExpiry, audit.ActionPromoted, audit.ActionRefused, audit.ActionRefused}
	if !reflect.DeepEqual(actions, want) {
		t.Errorf("audit actions %v, want %v", actions, want)
	}
	rep := audit.Verify(recs, nil)
	if !rep.OK() || rep.Head != entries[1].Head() {
		t.Errorf("the stored log does not verify: %s", rep)
	}
	if h, _ := s.AuditHead(ctx); h != entries[1].Head() {
		t.Errorf("AuditHead = %v, want %v", h, entries[1].Head())
	}
	if tail, _ := s.AuditRecords(ctx, 5, 0); len(tail) != 2 || tail[0].Key != 5 {
		t.Errorf("AuditRecords(5) = %d records, want entries 5 and 6", len(tail))
	}
	if page, _ := s.AuditRecords(ctx, 2, 3); len(page) != 3 || page[0].Key != 2 || page[2].Key != 4 {
		t.Errorf("AuditRecords(2, limit 3) = %d records, want entries 2-4", len(page))
	}
}

// testAuditConcurrent checks that concurrent issuances, which the store may
// batch, still make one unbroken chain.
func testAuditConcurrent(t *testing.T, s store.Store) {
	ctx := t.Context()
	const workers, each = 8, 10
	var wg sync.WaitGroup
	for w := range workers {
		wg.Go(func() {
			for i := range each {
				n, c := Issuance(fmt.Sprintf("node-%d", w), fmt.Sprintf("%02x%02x", w, i), t0)
				if err := s.RecordIssuance(ctx, n, c, audit.Event{Action: audit.ActionIssued, Serial: c.Serial}); err != nil {
					t.Error(err)
				}
			}
		})
	}
	wg.Wait()
	recs, err := s.AuditRecords(ctx, 1, 0)
	if err != nil {
		t.Fatal(err)
	}
	if rep := audit.Verify(recs, nil); !rep.OK() || rep.Verified != workers*each {
		t.Errorf("after concurrent issuance: %s", rep)
	}
}

// RunShared runs the cases of stores that several processes share (a
// store in etcd, say): open returns two Store instances, each with its own
// connection, on one new, empty store. Run closes them when the subtest
// ends.
func RunShared(t *testing.T, open func(t *testing.T) (a, b store.Store)) {
	tests := []struct {
		name string
		fn   func(t *testing.T, a, b store.Store)
	}{
		{"ConcurrentWriters", testSharedConcurrentWriters},
		{"SeesOthersWrites", testSharedSeesOthersWrites},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			a, b := open(t)
			t.Cleanup(func() { a.Close(); b.Close() })
			tt.fn(t, a, b)
		})
	}
}

// testSharedConcurrentWriters has two instances issue, update the same
// nodes and the cluster, and append refusals at once: every change
// commits once, and the audit chain has one entry per change, unforked.
func testSharedConcurrentWriters(t *testing.T, a, b store.Store) {
	ctx := t.Context()
	if err := a.CreateCluster(ctx, Cluster(), audit.Event{Action: audit.ActionInit}); err != nil {
		t.Fatal(err)
	}
	const workers, each = 4, 12 // per instance
	for w := range workers {
		n, c := Issuance(fmt.Sprintf("node-%d", w), fmt.Sprintf("ff%02x", w), t0)
		if err := a.RecordIssuance(ctx, n, c); err != nil {
			t.Fatal(err)
		}
	}
	var wg sync.WaitGroup
	for i, s := range []store.Store{a, b} {
		for w := range workers {
			wg.Go(func() {
				for k := range each {
					// Both instances renew the same nodes.
					node := fmt.Sprintf("node-%d", w)
					n, c := Issuance(node, fmt.Sprintf("%02x%02x%02x", i, w, k), t0.Add(time.Duration(k)*time.Minute))
					n.Hostname = "" // a renewal keeps the hostname
					if err := s.RecordIssuance(ctx, n, c, audit.Event{Action: audit.ActionIssued, NodeID: node, Serial: c.Serial}); err != nil {
						t.Errorf("RecordIssuance: %v", err)
					}
					switch k % 3 {
					case 0:
						if _, err := s.UpdateCluster(ctx, func(c *store.Cluster) error { c.CertExpiry += time.Second; return nil },
							audit.Event{Action: audit.ActionCertExpiry}); err != nil {
							t.Errorf("UpdateCluster: %v", err)
						}
					case 1:
						if _, err := s.UpdateNode(ctx, node, func(n *store.Node) error { n.Hostname += "x"; return nil },
							audit.Event{Action: audit.ActionPromoted, NodeID: node}); err != nil {
							t.Errorf("UpdateNode: %v", err)
						}
					case 2:
						if _, err := s.AppendAudit(ctx, audit.Event{Action: audit.ActionRefused}); err != nil {
							t.Errorf("AppendAudit: %v", err)
						}
					}
				}
			})
		}
	}
	wg.Wait()
	if t.Failed() {
		return
	}
	const changes = 2 * workers * each
	recs, err := b.AuditRecords(ctx, 1, 0)
	if err != nil {
		t.Fatal(err)
	}
	rep := audit.Verify(recs, nil)
	if want := 1 + 2*changes; !rep.OK() || rep.Verified != want {
		t.Errorf("audit log after concurrent writers: %s; want %d entries verified", rep, want)
	}
	if h, _ := a.AuditHead(ctx); h != rep.Head {
		t.Errorf("AuditHead %v, the verified log ends at %v", h, rep.Head)
	}
	c, _ := a.Cluster(ctx)
	if updates := uint64(2 * workers * ((each + 2) / 3)); c.Version != 1+updates || c.CertExpiry != Cluster().CertExpiry+time.Duration(updates)*time.Second {
		t.Errorf("cluster version %d, expiry %v after %d updates: an update was lost", c.Version, c.CertExpiry, updates)
	}
	for w := range workers {
		n, _ := a.Node(ctx, fmt.Sprintf("node-%d", w))
		if want := "host-" + n.ID + strings.Repeat("x", 2*((each+1)/3)); n.Hostname != want {
			t.Errorf("node %s hostname %q, want %q: an update was lost", n.ID, n.Hostname, want)
		}
	}
	if certs, err := a.IssuedCertificates(ctx, ""); err != nil || len(certs) != workers+changes {
		t.Errorf("%d certificates (%v), want %d", len(certs), err, workers+changes)
	}
}

// testSharedSeesOthersWrites checks that each instance reads what the
// other wrote, at once.
func testSharedSeesOthersWrites(t *testing.T, a, b store.Store) {
	ctx := t.Context()
	if err := a.CreateCluster(ctx, Cluster()); err != nil {
		t.Fatal(err)
	}
	if err := b.CreateCluster(ctx, Cluster()); !errors.Is(err, store.ErrExists) {
		t.Errorf("second instance's CreateCluster: %v, want ErrExists", err)
	}
	n, c := Issuance("n1", "01", t0)
	if err := b.RecordIssuance(ctx, n, c); err != nil {
		t.Fatal(err)
	}
	if got, err := a.Node(ctx, "n1"); err != nil || got.CertSerial != "01" {
		t.Errorf("the other instance reads n1 as (%+v, %v)", got, err)
	}
	if _, err := a.UpdateNode(ctx, "n1", func(n *store.Node) error { n.State = store.StateRemoved; return nil }); err != nil {
		t.Fatal(err)
	}
	n, c = Issuance("n1", "02", t0)
	if err := b.RecordIssuance(ctx, n, c); !errors.Is(err, store.ErrConflict) {
		t.Errorf("renewal of a node the other instance removed: %v, want ErrConflict", err)
	}
	if p, err := b.ListNodes(ctx, store.ListOptions{}); err != nil || len(p.Nodes) != 1 || p.Nodes[0].State != store.StateRemoved {
		t.Errorf("the other instance lists %+v, %v", p.Nodes, err)
	}
}
