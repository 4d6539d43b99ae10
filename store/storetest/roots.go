package storetest

import (
	"bytes"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/chancery-pki/chancery/audit"
	"github.com/chancery-pki/chancery/store"
)

// CertPEM returns a PEM CERTIFICATE block around body, which must be base64
// (such as "MIIB"). The store does not parse certificates, so the suite's
// roots are such stand-ins; distinct bodies make distinct roots.
func CertPEM(body string) []byte {
	return []byte("-----BEGIN CERTIFICATE-----\n" + body + "\n-----END CERTIFICATE-----\n")
}

// RotatedCluster returns a cluster record fixture, every field set but
// Version, that has had two roots before the current one (the root of
// Cluster, then an external CA's root with two intermediates, each current for 30 days) and is rotating to
// a fourth, in PhaseReissue.
func RotatedCluster() store.Cluster {
	c := Cluster()
	first := c.Roots()[0]
	first.ActiveUntil = t0.Add(30 * 24 * time.Hour)
	second := store.Root{
		CertPEM:          CertPEM("MIIC"),
		IntermediatesPEM: append(CertPEM("MIIG"), CertPEM("MIIH")...),
		Backend:          store.BackendConfig{Type: "cfssl", Settings: map[string]string{"external_ca.1": "protocol=cfssl,url=https://ca.example:8888/api/v1/cfssl/sign"}},
		ActiveFrom:       first.ActiveUntil,
		ActiveUntil:      first.ActiveUntil.Add(30 * 24 * time.Hour),
	}
	c.RootHistory = []store.Root{first, second}
	c.RootSince = second.ActiveUntil
	c.RootCAPEM = CertPEM("MIID")
	c.Backend = store.BackendConfig{Type: "pkcs11", Settings: map[string]string{"uri": "pkcs11:token=chancery;object=root"}}
	c.Rotation = &store.Rotation{
		Phase:         store.PhaseReissue,
		Target:        store.Root{CertPEM: CertPEM("MIIE"), Backend: store.BackendConfig{Type: "file", Settings: map[string]string{"key_path": "ca/root-ca-4.key"}}},
		AppendixPEM:   CertPEM("MIIF"),
		Path:          store.CrossSignPublicKey,
		StartedAt:     c.RootSince.Add(24 * time.Hour),
		UpdatedAt:     c.RootSince.Add(25 * time.Hour),
		ExcludedNodes: []string{"node-gone"},
		DeleteOldKey:  true,
	}
	// A rotation to another new root was re-targeted to this one; the
	// leader has yet to forget its key.
	c.RetiredKeys = []store.RetiredKey{{
		Root:   store.Root{CertPEM: CertPEM("MIIJ"), Backend: store.BackendConfig{Type: "file", Settings: map[string]string{"key_path": "ca/root-ca-3.key"}}},
		Reason: store.RetiredReplaced, Delete: true, Attempts: 1, NextAttempt: c.RootSince.Add(26 * time.Hour), LastError: "file: failed to remove the key file",
	}}
	return c
}

// testRootRecord checks that the root history and the rotation are stored
// and read back as written, by CreateCluster (a record copied from another
// store) and by UpdateCluster (a rotation finishing).
func testRootRecord(t *testing.T, s store.Store) {
	ctx := t.Context()
	want := RotatedCluster()
	if err := s.CreateCluster(ctx, want); err != nil {
		t.Fatalf("CreateCluster: %v", err)
	}
	want.Version = 1
	got, err := s.Cluster(ctx)
	if err != nil {
		t.Fatalf("Cluster: %v", err)
	}
	if !equal(got, want) {
		t.Fatalf("Cluster after CreateCluster:\n got %+v\nwant %+v", got, want)
	}

	// The rotation finishes: the current root moves to the history, the
	// target becomes current, and the rotation is cleared, in one update.
	done := want.RootSince.Add(40 * 24 * time.Hour)
	updated, err := s.UpdateCluster(ctx, func(c *store.Cluster) error {
		old := c.Roots()[len(c.Roots())-1]
		old.ActiveUntil = done
		c.RootHistory = append(c.RootHistory, old)
		c.RootCAPEM, c.Backend, c.RootSince = c.Rotation.Target.CertPEM, c.Rotation.Target.Backend, done
		c.Rotation = nil
		return nil
	})
	if err != nil {
		t.Fatalf("UpdateCluster finishing the rotation: %v", err)
	}
	read, err := s.Cluster(ctx)
	if err != nil {
		t.Fatalf("Cluster: %v", err)
	}
	if !equal(read, updated) {
		t.Errorf("read back\n %+v\nUpdateCluster returned\n %+v", read, updated)
	}
	roots := read.Roots()
	var bodies []string
	for _, r := range roots {
		bodies = append(bodies, strings.Fields(string(r.CertPEM))[2])
	}
	if got, want := strings.Join(bodies, " "), "MIIB MIIC MIID MIIE"; got != want {
		t.Errorf("roots after the rotation %s, want %s", got, want)
	}
	if read.Rotation != nil {
		t.Errorf("rotation %+v after it finished, want nil", read.Rotation)
	}
	if r := roots[2]; !r.ActiveUntil.Equal(done) || r.Backend.Type != "pkcs11" {
		t.Errorf("the replaced root in the history: %+v", r)
	}
	if r, ok := read.RootAt(done); !ok || !bytes.Equal(r.CertPEM, CertPEM("MIIE")) {
		t.Errorf("RootAt(the rotation's end) = %s, %v; want the new root", r.CertPEM, ok)
	}
}

// testRootRecordBackCompat checks that a record with none of the root
// history fields, as written before they existed, reads as one root,
// current since CreatedAt.
func testRootRecordBackCompat(t *testing.T, s store.Store) {
	ctx := t.Context()
	if err := s.CreateCluster(ctx, Cluster()); err != nil {
		t.Fatalf("CreateCluster: %v", err)
	}
	c, err := s.Cluster(ctx)
	if err != nil {
		t.Fatalf("Cluster: %v", err)
	}
	CheckOneRoot(t, c)
}

// CheckOneRoot checks that c, a record made from the Cluster fixture
// without root history, has one root: the fixture's, current since
// CreatedAt. Stores use it on records written before the history existed.
func CheckOneRoot(t *testing.T, c store.Cluster) {
	t.Helper()
	if !c.RootSince.IsZero() || c.RootHistory != nil || c.Rotation != nil {
		t.Errorf("root fields of a record without them: RootSince %v, RootHistory %v, Rotation %v", c.RootSince, c.RootHistory, c.Rotation)
	}
	want := store.Root{CertPEM: Cluster().RootCAPEM, Backend: Cluster().Backend, ActiveFrom: t0}
	roots := c.Roots()
	if len(roots) != 1 || !equalRoot(roots[0], want) {
		t.Fatalf("Roots() = %+v, want one root %+v", roots, want)
	}
	tests := []struct {
		at     time.Time
		wantOK bool
	}{
		{t0.Add(-time.Second), false},
		{t0, true},
		{t0.Add(20 * 365 * 24 * time.Hour), true},
	}
	for _, tt := range tests {
		r, ok := c.RootAt(tt.at)
		if ok != tt.wantOK || ok && !equalRoot(r, want) {
			t.Errorf("RootAt(%v) = %+v, %v; want ok %v", tt.at, r, ok, tt.wantOK)
		}
	}
}

func equalRoot(a, b store.Root) bool {
	return bytes.Equal(a.CertPEM, b.CertPEM) && equal(a.Backend, b.Backend) &&
		a.ActiveFrom.Equal(b.ActiveFrom) && a.ActiveUntil.Equal(b.ActiveUntil)
}

// InvalidCluster is an edit of RotatedCluster that ValidateCluster
// refuses, and a word its error must contain (the field at fault).
type InvalidCluster struct {
	Name string
	Edit func(*store.Cluster)
	Want string
}

// InvalidClusters lists the edits of RotatedCluster that every store
// refuses.
func InvalidClusters() []InvalidCluster {
	history := func(c *store.Cluster) *store.Root { return &c.RootHistory[1] }
	return []InvalidCluster{
		{"no root certificate", func(c *store.Cluster) { c.RootCAPEM = nil }, "RootCAPEM"},
		{"root bundle not PEM", func(c *store.Cluster) { c.RootCAPEM = []byte("MIID") }, "RootCAPEM"},
		{"no backend type", func(c *store.Cluster) { c.Backend.Type = "" }, "Backend has no Type"},
		{"intermediates not PEM", func(c *store.Cluster) { c.IntermediatesPEM = []byte("MIID") }, "IntermediatesPEM"},
		{"a key among the intermediates", func(c *store.Cluster) {
			c.IntermediatesPEM = []byte("-----BEGIN PRIVATE KEY-----\nMIIB\n-----END PRIVATE KEY-----\n")
		}, "IntermediatesPEM"},
		{"target intermediates not PEM", func(c *store.Cluster) { c.Rotation.Target.IntermediatesPEM = []byte("x") }, "Rotation.Target.IntermediatesPEM"},
		{"history without certificate", func(c *store.Cluster) { history(c).CertPEM = nil }, "RootHistory[1].CertPEM"},
		{"retired key without certificate", func(c *store.Cluster) { c.RetiredKeys[0].Root.CertPEM = nil }, "RetiredKeys[0].Root.CertPEM"},
		{"retired key without backend type", func(c *store.Cluster) { c.RetiredKeys[0].Root.Backend.Type = "" }, "RetiredKeys[0].Root.Backend"},
		{"retired key without reason", func(c *store.Cluster) { c.RetiredKeys[0].Reason = "" }, "RetiredKeys[0].Reason"},
		{"retired current root", func(c *store.Cluster) { c.RetiredKeys[0].Root.CertPEM = c.RootCAPEM }, "RetiredKeys[0] is the current root"},
		{"retired new root", func(c *store.Cluster) { c.RetiredKeys[0].Root.CertPEM = c.Rotation.Target.CertPEM }, "RetiredKeys[0] is the rotation's new root"},
		{"history without backend type", func(c *store.Cluster) { history(c).Backend.Type = "" }, "RootHistory[1].Backend"},
		{"history without start", func(c *store.Cluster) { history(c).ActiveFrom = time.Time{} }, "RootHistory[1] has no ActiveFrom"},
		{"history without end", func(c *store.Cluster) { history(c).ActiveUntil = time.Time{} }, "RootHistory[1] has no ActiveUntil"},
		{"history ends before it starts", func(c *store.Cluster) {
			h := history(c)
			h.ActiveFrom, h.ActiveUntil = h.ActiveUntil, h.ActiveFrom
		}, "RootHistory[1].ActiveUntil"},
		{"history newest first", func(c *store.Cluster) {
			c.RootHistory[0], c.RootHistory[1] = c.RootHistory[1], c.RootHistory[0]
		}, "oldest first"},
		{"current root overlaps history", func(c *store.Cluster) { c.RootSince = c.RootSince.Add(-time.Second) }, "RootSince"},
		{"history without RootSince", func(c *store.Cluster) { c.RootSince = time.Time{} }, "RootSince"},
		{"rotation done", func(c *store.Cluster) { c.Rotation.Phase = "done" }, "Rotation.Phase"},
		{"rotation without phase", func(c *store.Cluster) { c.Rotation.Phase = "" }, "Rotation.Phase"},
		{"rotation without target", func(c *store.Cluster) { c.Rotation.Target.CertPEM = nil }, "Rotation.Target.CertPEM"},
		{"rotation to the current root", func(c *store.Cluster) { c.Rotation.Target.CertPEM = c.RootCAPEM }, "is the current root"},
		{"rotation target without backend", func(c *store.Cluster) { c.Rotation.Target.Backend.Type = "" }, "Rotation.Target.Backend"},
		{"rotation target already active", func(c *store.Cluster) { c.Rotation.Target.ActiveFrom = c.Rotation.StartedAt }, "not active until"},
		{"rotation unknown path", func(c *store.Cluster) { c.Rotation.Path = "magic" }, "Rotation.Path"},
		{"reissue without appendix", func(c *store.Cluster) { c.Rotation.AppendixPEM = nil }, "AppendixPEM"},
		{"switch-trust without path", func(c *store.Cluster) { c.Rotation.Phase, c.Rotation.Path = store.PhaseSwitchTrust, "" }, "no Path"},
		{"empty excluded node", func(c *store.Cluster) { c.Rotation.ExcludedNodes = append(c.Rotation.ExcludedNodes, "") }, "ExcludedNodes[1]"},
	}
}

// testValidateCluster checks that CreateCluster and UpdateCluster refuse
// what ValidateCluster refuses, with its error, and write nothing: no
// record, no audit entry.
func testValidateCluster(t *testing.T, s store.Store) {
	ctx := t.Context()
	ev := audit.Event{Action: audit.ActionRootRotation, Actor: "node-1"}
	check := func(t *testing.T, err error, want string) {
		t.Helper()
		if !errors.Is(err, store.ErrInvalidCluster) || !strings.Contains(err.Error(), want) {
			t.Errorf("got %v, want ErrInvalidCluster naming %q", err, want)
		}
		checkNoSecret(t, err)
		if h, _ := s.AuditHead(ctx); h != audit.Genesis {
			t.Errorf("a refused record appended audit entries, head %v", h)
		}
	}
	for _, tt := range InvalidClusters() {
		t.Run("Create/"+tt.Name, func(t *testing.T) {
			c := RotatedCluster()
			tt.Edit(&c)
			check(t, s.CreateCluster(ctx, c, ev), tt.Want)
			if _, err := s.Cluster(ctx); !errors.Is(err, store.ErrNotFound) {
				t.Errorf("a refused CreateCluster stored a record: %v", err)
			}
		})
	}
	noID := RotatedCluster()
	noID.ID = ""
	check(t, s.CreateCluster(ctx, noID, ev), "no ID")

	if err := s.CreateCluster(ctx, RotatedCluster()); err != nil {
		t.Fatalf("CreateCluster: %v", err)
	}
	before, err := s.Cluster(ctx)
	if err != nil {
		t.Fatalf("Cluster: %v", err)
	}
	for _, tt := range InvalidClusters() {
		t.Run("Update/"+tt.Name, func(t *testing.T) {
			_, err := s.UpdateCluster(ctx, func(c *store.Cluster) error { tt.Edit(c); c.CertExpiry = time.Hour; return nil }, ev)
			check(t, err, tt.Want)
			if after, _ := s.Cluster(ctx); !equal(after, before) {
				t.Errorf("a refused UpdateCluster changed the record:\n got %+v\nwant %+v", after, before)
			}
		})
	}
}
