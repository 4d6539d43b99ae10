package storetest

import (
	"errors"
	"fmt"
	"reflect"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chancery-pki/chancery/audit"
	"github.com/chancery-pki/chancery/store"
)

// nodeIDs returns the IDs of nodes.
func nodeIDs(nodes []store.Node) []string {
	ids := make([]string, 0, len(nodes))
	for _, n := range nodes {
		ids = append(ids, n.ID)
	}
	return ids
}

// serials returns the serials of certs.
func serials(certs []store.IssuedCertificate) []string {
	out := make([]string, 0, len(certs))
	for _, c := range certs {
		out = append(out, c.Serial)
	}
	return out
}

// pageNodes lists every node in pages of limit, checking each page's size.
func pageNodes(t *testing.T, s store.Store, limit int) (ids []string, pages int) {
	t.Helper()
	opts := store.ListOptions{Limit: limit}
	for {
		p, err := s.ListNodes(t.Context(), opts)
		if err != nil {
			t.Fatalf("ListNodes(%+v): %v", opts, err)
		}
		pages++
		if len(p.Nodes) > limit {
			t.Fatalf("ListNodes(limit %d) returned %d nodes", limit, len(p.Nodes))
		}
		if p.Next != "" && len(p.Nodes) != limit {
			t.Fatalf("ListNodes(limit %d) returned %d nodes and a next cursor", limit, len(p.Nodes))
		}
		ids = append(ids, nodeIDs(p.Nodes)...)
		if p.Next == "" {
			return ids, pages
		}
		opts.After = p.Next
	}
}

// testListNodes checks ListNodes' pages, limits and cursors.
func testListNodes(t *testing.T, s store.Store) {
	ctx := t.Context()
	p, err := s.ListNodes(ctx, store.ListOptions{})
	if err != nil || len(p.Nodes) != 0 || p.Next != "" {
		t.Fatalf("ListNodes on an empty store = (%+v, %v), want an empty last page", p, err)
	}
	var want []string
	for i := range 23 {
		id := fmt.Sprintf("node-%02d", 22-i) // recorded in reverse order
		n, c := Issuance(id, fmt.Sprintf("%02x", i+1), t0)
		if err := s.RecordIssuance(ctx, n, c); err != nil {
			t.Fatalf("RecordIssuance(%s): %v", id, err)
		}
		want = append(want, id)
	}
	slices.Sort(want)

	tests := []struct {
		limit     int
		wantPages int
	}{
		{1, 23}, {5, 5}, {22, 2}, {23, 1}, {24, 1}, {store.MaxPageLimit + 1, 1},
	}
	for _, tt := range tests {
		t.Run(fmt.Sprintf("limit %d", tt.limit), func(t *testing.T) {
			got, pages := pageNodes(t, s, min(tt.limit, store.MaxPageLimit))
			if !reflect.DeepEqual(got, want) {
				t.Errorf("paged IDs %v, want %v", got, want)
			}
			if pages != tt.wantPages {
				t.Errorf("%d pages, want %d", pages, tt.wantPages)
			}
		})
	}
	// A limit of 0 is the default page; one above the maximum is the
	// maximum.
	for _, limit := range []int{0, store.MaxPageLimit + 1} {
		if p, err := s.ListNodes(ctx, store.ListOptions{Limit: limit}); err != nil || len(p.Nodes) != 23 || p.Next != "" {
			t.Errorf("ListNodes(limit %d) = %d nodes, next %q, %v; want all 23", limit, len(p.Nodes), p.Next, err)
		}
	}
	// A page holds whole records, as Node returns them.
	p, err = s.ListNodes(ctx, store.ListOptions{Limit: 1})
	if err != nil {
		t.Fatal(err)
	}
	if n, _ := s.Node(ctx, "node-00"); len(p.Nodes) != 1 || !equal(p.Nodes[0], n) {
		t.Errorf("first page %+v, want node-00 as Node returns it: %+v", p.Nodes, n)
	}
	// Nodes, the convenience, agrees with the pages.
	if nodes, err := s.Nodes(ctx); err != nil || !reflect.DeepEqual(nodeIDs(nodes), want) {
		t.Errorf("Nodes = %v, %v; want %v", nodeIDs(nodes), err, want)
	}
	// The last node's cursor is a last page.
	if p, err := s.ListNodes(ctx, store.ListOptions{After: store.NodeCursor("node-22")}); err != nil || len(p.Nodes) != 0 || p.Next != "" {
		t.Errorf("ListNodes after the last node = (%+v, %v), want an empty last page", p, err)
	}
	// A cursor of a node that does not exist starts after where it would be.
	if p, err := s.ListNodes(ctx, store.ListOptions{After: store.NodeCursor("node-10x"), Limit: 2}); err != nil ||
		!reflect.DeepEqual(nodeIDs(p.Nodes), []string{"node-11", "node-12"}) {
		t.Errorf("ListNodes after a missing node = (%v, %v), want node-11, node-12", nodeIDs(p.Nodes), err)
	}
}

// testListBadOptions checks that both listings refuse bad cursors and
// negative limits, with errors that do not echo the cursor.
func testListBadOptions(t *testing.T, s store.Store) {
	ctx := t.Context()
	n, c := Issuance("n1", "01", t0)
	if err := s.RecordIssuance(ctx, n, c); err != nil {
		t.Fatal(err)
	}
	const secretish = "SWMTKN-1-not-a-cursor"
	tests := []struct {
		name string
		opts store.ListOptions
		want error
	}{
		{"garbage", store.ListOptions{After: secretish}, store.ErrInvalidCursor},
		{"bad base64", store.ListOptions{After: "n1.!!!"}, store.ErrInvalidCursor},
		{"empty key", store.ListOptions{After: "n1."}, store.ErrInvalidCursor},
		{"other listing's", store.ListOptions{After: store.CertificateCursor("01")}, store.ErrInvalidCursor},
		{"negative limit", store.ListOptions{Limit: -1}, store.ErrInvalidListOptions},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p, err := s.ListNodes(ctx, tt.opts)
			if !errors.Is(err, tt.want) {
				t.Errorf("ListNodes = (%+v, %v), want %v", p, err, tt.want)
			} else if strings.Contains(err.Error(), secretish) {
				t.Errorf("ListNodes' error echoes the cursor: %v", err)
			}
			certOpts := tt.opts
			if tt.name == "other listing's" {
				certOpts.After = store.NodeCursor("n1")
			} else if tt.name == "bad base64" || tt.name == "empty key" {
				certOpts.After = "c" + tt.opts.After[1:]
			}
			cp, err := s.ListIssuedCertificates(ctx, "", certOpts)
			if !errors.Is(err, tt.want) {
				t.Errorf("ListIssuedCertificates = (%+v, %v), want %v", cp, err, tt.want)
			}
		})
	}
}

// testListNodesConcurrentJoins pages through the nodes while others join:
// every node that existed before the listing began is listed exactly once,
// and no node is listed twice or out of order.
func testListNodesConcurrentJoins(t *testing.T, s store.Store) {
	ctx := t.Context()
	const before = 60
	for i := range before {
		id := fmt.Sprintf("node-%03d", 2*i) // even numbers before
		n, c := Issuance(id, fmt.Sprintf("a%03x", i), t0)
		if err := s.RecordIssuance(ctx, n, c); err != nil {
			t.Fatalf("RecordIssuance(%s): %v", id, err)
		}
	}
	stop := make(chan struct{})
	var wg sync.WaitGroup
	run := func(serial string, ids func(i int) string) {
		wg.Go(func() {
			for i := range before {
				select {
				case <-stop:
					return
				default:
				}
				n, c := Issuance(ids(i), fmt.Sprintf("%s%03x", serial, i), t0.Add(time.Minute))
				if err := s.RecordIssuance(ctx, n, c); err != nil {
					t.Errorf("RecordIssuance(%s): %v", n.ID, err)
					return
				}
			}
		})
	}
	// New nodes join at both ends of the key space (odd numbers, from
	// the outside in), some before the cursor and some after it, while
	// the nodes there before renew, which rewrites them in place.
	run("b", func(i int) string {
		if i%2 == 0 {
			return fmt.Sprintf("node-%03d", i+1)
		}
		return fmt.Sprintf("node-%03d", 2*before-i)
	})
	run("c", func(i int) string { return fmt.Sprintf("node-%03d", 2*i) })
	var got []string
	opts := store.ListOptions{Limit: 7}
	for {
		p, err := s.ListNodes(ctx, opts)
		if err != nil {
			t.Fatalf("ListNodes: %v", err)
		}
		got = append(got, nodeIDs(p.Nodes)...)
		if p.Next == "" {
			break
		}
		opts.After = p.Next
	}
	close(stop)
	wg.Wait()

	seen := map[string]bool{}
	for i, id := range got {
		if seen[id] {
			t.Errorf("node %s listed twice", id)
		}
		seen[id] = true
		if i > 0 && got[i-1] >= id {
			t.Errorf("listing out of order: %s after %s", id, got[i-1])
		}
	}
	for i := range before {
		if id := fmt.Sprintf("node-%03d", 2*i); !seen[id] {
			t.Errorf("node %s, there before the listing began, was missed", id)
		}
	}
}

// testListIssuedCertificates checks the certificate listing's order,
// filter and pages.
func testListIssuedCertificates(t *testing.T, s store.Store) {
	ctx := t.Context()
	p, err := s.ListIssuedCertificates(ctx, "", store.ListOptions{})
	if err != nil || len(p.Certificates) != 0 || p.Next != "" {
		t.Fatalf("ListIssuedCertificates on an empty store = (%+v, %v), want an empty last page", p, err)
	}
	var all, n1 []string
	for i := range 30 {
		node := []string{"n1", "n2", "n3"}[i%3]
		serial := fmt.Sprintf("%02x", 60-2*i) // recorded in reverse order
		n, c := Issuance(node, serial, t0.Add(time.Duration(i)*time.Minute))
		if err := s.RecordIssuance(ctx, n, c); err != nil {
			t.Fatalf("RecordIssuance(%s): %v", serial, err)
		}
		all = append(all, serial)
		if node == "n1" {
			n1 = append(n1, serial)
		}
	}
	slices.Sort(all)
	slices.Sort(n1)
	tests := []struct {
		node  string
		limit int
		want  []string
	}{
		{"", 4, all},
		{"", 30, all},
		{"n1", 3, n1},
		{"n1", 10, n1},
		{"n1", 1, n1},
		{"nobody", 5, nil},
	}
	for _, tt := range tests {
		t.Run(fmt.Sprintf("%q limit %d", tt.node, tt.limit), func(t *testing.T) {
			var got []string
			opts := store.ListOptions{Limit: tt.limit}
			for {
				p, err := s.ListIssuedCertificates(ctx, tt.node, opts)
				if err != nil {
					t.Fatalf("ListIssuedCertificates(%q, %+v): %v", tt.node, opts, err)
				}
				if len(p.Certificates) > tt.limit || (p.Next != "" && len(p.Certificates) != tt.limit) {
					t.Fatalf("a page of %d certificates (limit %d), next %q", len(p.Certificates), tt.limit, p.Next)
				}
				for _, c := range p.Certificates {
					if tt.node != "" && c.NodeID != tt.node {
						t.Errorf("certificate %s of node %s listed for %s", c.Serial, c.NodeID, tt.node)
					}
				}
				got = append(got, serials(p.Certificates)...)
				if p.Next == "" {
					break
				}
				opts.After = p.Next
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("paged serials %v, want %v", got, tt.want)
			}
		})
	}
	// Records are whole.
	p, err = s.ListIssuedCertificates(ctx, "n1", store.ListOptions{Limit: 1})
	if err != nil || len(p.Certificates) != 1 {
		t.Fatalf("ListIssuedCertificates(n1, 1) = (%+v, %v)", p, err)
	}
	if want, _ := s.IssuedCertificate(ctx, n1[0]); !equal(p.Certificates[0], want) {
		t.Errorf("listed %+v, IssuedCertificate returns %+v", p.Certificates[0], want)
	}
}

// testConcurrentDuplicates has many callers record the same serials at
// once, for one node and for several: each serial is recorded once, every
// other call fails with ErrExists, and the audit log has one entry per
// recorded serial.
func testConcurrentDuplicates(t *testing.T, s store.Store) {
	ctx := t.Context()
	const callers, serialCount = 16, 4
	var wg sync.WaitGroup
	var mu sync.Mutex
	ok, exists := 0, 0
	for i := range callers {
		wg.Go(func() {
			serial := fmt.Sprintf("%02x", i%serialCount)
			n, c := Issuance(fmt.Sprintf("node-%d", i%serialCount), serial, t0)
			err := s.RecordIssuance(ctx, n, c, audit.Event{Action: audit.ActionIssued, Serial: serial})
			mu.Lock()
			defer mu.Unlock()
			switch {
			case err == nil:
				ok++
			case errors.Is(err, store.ErrExists):
				exists++
			default:
				t.Errorf("RecordIssuance(%s): %v", serial, err)
			}
		})
	}
	wg.Wait()
	if ok != serialCount || exists != callers-serialCount {
		t.Errorf("%d recorded and %d refused as existing, want %d and %d", ok, exists, serialCount, callers-serialCount)
	}
	recs, err := s.AuditRecords(ctx, 1, 0)
	if err != nil {
		t.Fatal(err)
	}
	if rep := audit.Verify(recs, nil); !rep.OK() || rep.Verified != serialCount {
		t.Errorf("audit log: %s; want %d entries", rep, serialCount)
	}
}
