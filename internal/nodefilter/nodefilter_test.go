package nodefilter

import (
	"strings"
	"testing"

	"github.com/chancery-pki/chancery/api"
)

func TestMatch(t *testing.T) {
	nodes := []api.Node{
		{ID: "abc111", Hostname: "web-1", Role: "swarm-worker", Status: "Ready"},
		{ID: "abd222", Hostname: "web-2", Role: "swarm-worker", Status: "Down"},
		{ID: "xyz333", Hostname: "db-1", Role: "swarm-manager", Status: "Ready"},
	}
	tests := []struct {
		filters []string
		want    string // IDs matched, space separated
	}{
		{nil, "abc111 abd222 xyz333"},
		{[]string{"id=ab"}, "abc111 abd222"},
		{[]string{"id=abc111"}, "abc111"},
		{[]string{"id=abc", "id=xyz"}, "abc111 xyz333"}, // one key: any value
		{[]string{"name=web"}, "abc111 abd222"},
		{[]string{"name=web", "role=worker", "state=ready"}, "abc111"}, // keys: all
		{[]string{"role=manager"}, "xyz333"},
		{[]string{"role=swarm-manager"}, "xyz333"},
		{[]string{"role=Worker"}, "abc111 abd222"},
		{[]string{"membership=accepted"}, "abc111 abd222 xyz333"},
		{[]string{"membership=pending"}, ""},
		{[]string{"state=down"}, "abd222"},
		{[]string{"state=READY", "role=worker"}, "abc111"},
		{[]string{"id="}, "abc111 abd222 xyz333"},
		{[]string{"name=nope"}, ""},
	}
	for _, tt := range tests {
		t.Run(strings.Join(tt.filters, ","), func(t *testing.T) {
			f, err := Parse(tt.filters)
			if err != nil {
				t.Fatal(err)
			}
			var got []string
			for _, n := range nodes {
				if f.Match(n) {
					got = append(got, n.ID)
				}
			}
			if strings.Join(got, " ") != tt.want {
				t.Errorf("matched %q, want %q", strings.Join(got, " "), tt.want)
			}
		})
	}
}

func TestParseRefuses(t *testing.T) {
	tests := []struct{ filter, says string }{
		{"role", "want KEY=VALUE"},
		{"color=red", `unknown key "color"`},
		{"role=admin", "want manager or worker"},
		{"membership=maybe", "want accepted or pending"},
		{"state=gone", "want ready or down"},
		{"name=" + strings.Repeat("x", 300), "longer than 256"},
	}
	for _, tt := range tests {
		t.Run(tt.says, func(t *testing.T) {
			if _, err := Parse([]string{tt.filter}); err == nil || !strings.Contains(err.Error(), tt.says) {
				t.Errorf("Parse(%.40q): %v, want an error saying %q", tt.filter, err, tt.says)
			}
		})
	}
	many := make([]string, 40)
	for i := range many {
		many[i] = "id=a"
	}
	if _, err := Parse(many); err == nil {
		t.Errorf("40 filters accepted")
	}
}

// FuzzParse: Parse never panics, and what it accepts matches without
// panicking.
func FuzzParse(f *testing.F) {
	for _, s := range []string{"id=abc", "role=manager", "name=", "=", "state=Down", "membership=accepted"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		flt, err := Parse([]string{s})
		if err != nil {
			return
		}
		flt.Match(api.Node{ID: "abc", Hostname: "h", Role: "swarm-worker", Status: "Ready"})
	})
}
