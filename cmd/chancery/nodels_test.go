package main

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/chancery-pki/chancery/api"
	"github.com/chancery-pki/chancery/cluster"
	"github.com/chancery-pki/chancery/internal/seed"
)

// seededLab is a running manager m1 whose store was seeded with n nodes
// (every tenth a manager, host names host-<i>) before it started; it
// returns the seeded IDs.
func seededLab(t *testing.T, n int) (*lab, []string) {
	t.Helper()
	root, err := os.MkdirTemp("", "ls") // short: the manager's socket path must fit
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
	st, err := cluster.OpenStore(l.dir("m1"))
	if err != nil {
		t.Fatal(err)
	}
	ids, err := seed.Nodes(ctx, st, n, seed.Options{ManagerEvery: 10})
	st.Close()
	if err != nil {
		t.Fatal(err)
	}
	l.runLeader("m1", ln)
	return l, ids
}

// TestNodeLsPagesFiltersFormats lists a cluster larger than one page
// through the CLI: every node exactly once, streamed with one header; the
// filters, -q, the formats (template, table, json), and inspect --pretty.
func TestNodeLsPagesFiltersFormats(t *testing.T) {
	const n = api.MaxNodePage + 150 // two pages
	l, ids := seededLab(t, n)
	m1 := l.dir("m1")
	self := l.selfOf("m1")
	want := append(slices.Clone(ids), self)
	slices.Sort(want)

	// -q: the IDs, every one once, in ID order across pages.
	out, _ := l.cli(false, "node", "ls", "-q", "--data-dir", m1)
	if got := strings.Fields(out); !slices.Equal(got, want) {
		t.Errorf("node ls -q: %d IDs, want the %d nodes once each in ID order", len(got), len(want))
	}

	// The default table: one header, aligned columns, this node marked.
	out, _ = l.cli(false, "node", "ls", "--data-dir", m1)
	lines := strings.Split(strings.TrimSuffix(out, "\n"), "\n")
	if len(lines) != n+2 || strings.Count(out, "HOSTNAME") != 1 {
		t.Fatalf("node ls: %d lines (want %d) and %d headers", len(lines), n+2, strings.Count(out, "HOSTNAME"))
	}
	// The columns are as wide as the first page needs: two more when this
	// node (marked " *") sorts into it, which its random ID decides.
	if !regexp.MustCompile(`^ID {26}( {2})?HOSTNAME +STATUS +AVAILABILITY +MANAGER STATUS$`).MatchString(lines[0]) {
		t.Errorf("header %q", lines[0])
	}
	if !regexp.MustCompile(`(?m)^` + self + ` \* +m1 +Ready +Active +Leader$`).MatchString(out) {
		t.Errorf("node ls does not mark m1 as itself and the leader")
	}
	if !regexp.MustCompile(`(?m)^[0-9a-z]{25} +host-7 +Down +Active *$`).MatchString(out) {
		t.Errorf("node ls lacks host-7 as a down worker")
	}

	// Filters, against what the seeded names and roles say.
	count := func(match func(i int, host string, manager bool) bool) int {
		k := 0
		for i := range n {
			if match(i, fmt.Sprintf("host-%d", i), i%10 == 0) {
				k++
			}
		}
		return k
	}
	managers := count(func(_ int, _ string, m bool) bool { return m }) + 1
	filters := []struct {
		args []string
		want int
	}{
		{[]string{"--filter", "role=manager"}, managers},
		{[]string{"-f", "role=worker"}, n + 1 - managers},
		{[]string{"--filter", "name=host-12", "--filter", "role=worker"}, count(func(_ int, h string, m bool) bool { return strings.HasPrefix(h, "host-12") && !m })},
		{[]string{"--filter", "id=" + self[:6]}, 1},
		{[]string{"--filter", "state=ready"}, 1},
		{[]string{"--filter", "state=down", "--filter", "membership=accepted"}, n},
		{[]string{"--filter", "name=host-5", "--filter", "name=host-6"}, count(func(_ int, h string, _ bool) bool {
			return strings.HasPrefix(h, "host-5") || strings.HasPrefix(h, "host-6")
		})},
		{[]string{"--filter", "membership=pending"}, 0},
	}
	for _, f := range filters {
		out, _ := l.cli(false, append([]string{"node", "ls", "-q", "--data-dir", m1}, f.args...)...)
		if got := len(strings.Fields(out)); got != f.want {
			t.Errorf("node ls %s: %d nodes, want %d", strings.Join(f.args, " "), got, f.want)
		}
	}
	if _, stderr := l.cli(true, "node", "ls", "--filter", "color=red", "--data-dir", m1); !strings.Contains(stderr, `unknown key "color"`) {
		t.Errorf("a bad filter: %s", stderr)
	}

	// Formats.
	out, _ = l.cli(false, "node", "ls", "--filter", "name=host-2149", "--format", "{{.Hostname}} {{.Role}} {{.Status}} self={{.Self}}", "--data-dir", m1)
	if out != "host-2149 worker Down self=false\n" {
		t.Errorf("--format template: %q", out)
	}
	out, _ = l.cli(false, "node", "ls", "--filter", "role=manager", "--filter", "name=m", "--format", `table {{.Hostname}}\t{{.Role}}\t{{.ManagerStatus}}`, "--data-dir", m1)
	if out != "HOSTNAME   ROLE      MANAGER STATUS\nm1         manager   Leader\n" {
		t.Errorf("--format table:\n%q", out)
	}
	out, _ = l.cli(false, "node", "ls", "--filter", "name=host-21", "--format", "json", "--data-dir", m1)
	rows := strings.Split(strings.TrimSpace(out), "\n")
	if want := count(func(_ int, h string, _ bool) bool { return strings.HasPrefix(h, "host-21") }); len(rows) != want {
		t.Errorf("--format json: %d lines, want %d", len(rows), want)
	}
	for _, r := range rows {
		var v map[string]any
		if err := json.Unmarshal([]byte(r), &v); err != nil {
			t.Fatalf("--format json line %q: %v", r, err)
		}
		if h, _ := v["Hostname"].(string); !strings.HasPrefix(h, "host-21") || v["ID"] == nil || v["Role"] == nil || v["CertNotAfter"] == nil {
			t.Errorf("--format json line %q", r)
		}
	}
	if _, stderr := l.cli(true, "node", "ls", "--format", "{{.Nope}}", "--data-dir", m1); !strings.Contains(stderr, "Nope") {
		t.Errorf("a template with an unknown field: %s", stderr)
	}
	if _, stderr := l.cli(true, "node", "ls", "--format", "{{.ID", "--data-dir", m1); !strings.Contains(stderr, "--format") {
		t.Errorf("a template that does not parse: %s", stderr)
	}
	if _, stderr := l.cli(true, "node", "ls", "-q", "--format", "json", "--data-dir", m1); !strings.Contains(stderr, "cannot be used together") {
		t.Errorf("-q with --format: %s", stderr)
	}

	// inspect --pretty.
	out, _ = l.cli(false, "node", "inspect", "--pretty", "m1", "--data-dir", m1)
	for _, want := range []string{
		"ID:                     " + self + " *\n", "Hostname:               m1\n", "Role:                   manager\n",
		" State:                 Ready\n", " Leader:                Yes\n", " Certificate Expiry:    ",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("inspect --pretty lacks %q:\n%s", want, out)
		}
	}
	out, _ = l.cli(false, "node", "inspect", "--pretty", "host-2149", "--data-dir", m1)
	if !strings.Contains(out, " State:                 Down\n") || strings.Contains(out, "Manager Status") || !regexp.MustCompile(`\(in \d+ days\)`).MatchString(out) {
		t.Errorf("inspect --pretty of a worker:\n%s", out)
	}
}
