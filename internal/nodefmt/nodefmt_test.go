package nodefmt

import (
	"bytes"
	"strings"
	"testing"
	"time"

	"github.com/chancery-pki/chancery/api"
)

func TestPrinter(t *testing.T) {
	page1 := []api.Node{{ID: "aaa", Hostname: "h1", Role: "swarm-manager", Status: "Ready", Availability: "Active", ManagerStatus: "Leader"}}
	page2 := []api.Node{{ID: "bbb", Hostname: "a-longer-host", Role: "swarm-worker", Status: "Down", Availability: "Active"}}
	tests := []struct {
		name, format string
		quiet        bool
		want         string
	}{
		{"default", "", false, "" +
			"ID      HOSTNAME   STATUS   AVAILABILITY   MANAGER STATUS\n" +
			"aaa *   h1         Ready    Active         Leader\n" +
			// The second page widens the host name column.
			"bbb     a-longer-host   Down     Active         \n"},
		{"quiet", "", true, "aaa\nbbb\n"},
		{"template", "{{.ID}}:{{.Role}}:{{.Self}}", false, "aaa:manager:true\nbbb:worker:false\n"},
		{"table", `table {{.Hostname}}\t{{upper .Role}}`, false, "HOSTNAME   ROLE\nh1         MANAGER\na-longer-host   WORKER\n"},
		{"json", "json", false, "" +
			`{"ID":"aaa","Hostname":"h1","Role":"manager","Status":"Ready","Availability":"Active","ManagerStatus":"Leader","CertSerial":"","CertNotAfter":"0001-01-01T00:00:00Z","Self":true}` + "\n" +
			`{"ID":"bbb","Hostname":"a-longer-host","Role":"worker","Status":"Down","Availability":"Active","ManagerStatus":"","CertSerial":"","CertNotAfter":"0001-01-01T00:00:00Z","Self":false}` + "\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var b bytes.Buffer
			p, err := New(&b, tt.format, tt.quiet, "aaa")
			if err != nil {
				t.Fatal(err)
			}
			// An empty page first, as a filtered listing has.
			if err := p.Page(nil); err != nil {
				t.Fatal(err)
			}
			if err := p.Page(page1); err != nil {
				t.Fatal(err)
			}
			if err := p.Page(page2); err != nil {
				t.Fatal(err)
			}
			if err := p.Flush(); err != nil {
				t.Fatal(err)
			}
			if b.String() != tt.want {
				t.Errorf("got:\n%s\nwant:\n%s", b.String(), tt.want)
			}
		})
	}
}

func TestNewRefuses(t *testing.T) {
	for _, tt := range []struct {
		format string
		quiet  bool
		says   string
	}{
		{"{{.ID", false, "--format"},
		{"json", true, "cannot be used together"},
	} {
		if _, err := New(&bytes.Buffer{}, tt.format, tt.quiet, ""); err == nil || !strings.Contains(err.Error(), tt.says) {
			t.Errorf("New(%q, %v): %v, want %q", tt.format, tt.quiet, err, tt.says)
		}
	}
}

func TestPretty(t *testing.T) {
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	var b bytes.Buffer
	n := api.Node{ID: "aaa", Hostname: "h1", Role: "swarm-worker", Status: "Down", Availability: "Active",
		CertSerial: "0a", CertNotAfter: now.Add(30 * time.Hour), CreatedAt: now.Add(-time.Hour)}
	if err := Pretty(&b, n, "", now); err != nil {
		t.Fatal(err)
	}
	want := "" +
		"ID:                     aaa\n" +
		"Hostname:               h1\n" +
		"Joined at:              2025-12-31T23:00:00Z\n" +
		"Role:                   worker\n" +
		"Status:\n" +
		" State:                 Down\n" +
		" Availability:          Active\n" +
		" Last seen:             never, since the manager started\n" +
		"TLS Info:\n" +
		" Certificate Serial:    0a\n" +
		" Certificate Expiry:    2026-01-02T06:00:00Z (in 30 hours)\n"
	if b.String() != want {
		t.Errorf("got:\n%s\nwant:\n%s", b.String(), want)
	}
}

func TestBrief(t *testing.T) {
	for _, tt := range []struct {
		format string
		quiet  bool
		brief  bool
	}{
		{"", false, true},
		{"", true, true},
		{"json", false, false},
		{"{{.ID}} {{.Hostname}}", false, true},
		{`table {{.ID}}\t{{.Status}}`, false, true},
		{"{{.ID}} {{.CertNotAfter}}", false, false},
		{"{{.}}", false, false},
		{"{{json .}}", false, false},
		{"{{ . }}", false, false},
		{`{{printf "%.3s" .ID}}`, false, false},
	} {
		p, err := New(&bytes.Buffer{}, tt.format, tt.quiet, "")
		if err != nil {
			t.Fatal(err)
		}
		if got := p.Brief(); got != tt.brief {
			t.Errorf("Brief() of %q (quiet %v) = %v, want %v", tt.format, tt.quiet, got, tt.brief)
		}
	}
}

// TestEmptyTable: a listing with no node prints the table's header alone.
func TestEmptyTable(t *testing.T) {
	var b bytes.Buffer
	p, err := New(&b, `table {{.Hostname}}\t{{.Role}}`, false, "")
	if err != nil {
		t.Fatal(err)
	}
	if err := p.Page(nil); err != nil {
		t.Fatal(err)
	}
	if err := p.Flush(); err != nil {
		t.Fatal(err)
	}
	if b.String() != "HOSTNAME   ROLE\n" {
		t.Errorf("got %q", b.String())
	}
}
