package agent

import (
	"fmt"
	"log/slog"
	"slices"
	"testing"

	"github.com/chancery-pki/chancery/api"
)

// TestKeepManagers: the managers a status answer lists are recorded after
// the one the agent calls, without duplicates or malformed addresses, at
// most api.MaxManagers; an empty list changes nothing.
func TestKeepManagers(t *testing.T) {
	many := make([]string, 30)
	for i := range many {
		many[i] = fmt.Sprintf("10.0.0.%d:4242", i+1)
	}
	for _, tc := range []struct {
		name string
		list []string
		want []string
	}{
		{"empty keeps the state", nil, []string{"a:1", "old:1"}},
		{"the one called first", []string{"b:2", "a:1"}, []string{"a:1", "b:2"}},
		{"malformed dropped", []string{"no-port", "b:2", "b:2", "[::1"}, []string{"a:1", "b:2"}},
		{"bounded", many, append([]string{"a:1"}, many[:api.MaxManagers-1]...)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			if err := WriteState(dir, State{Managers: []string{"a:1", "old:1"}, Hostname: "h"}); err != nil {
				t.Fatal(err)
			}
			a := &Agent{cfg: Config{DataDir: dir}, addr: "a:1", log: slog.New(slog.DiscardHandler)}
			a.keepManagers(tc.list)
			st, err := ReadState(dir)
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(st.Managers, tc.want) || st.Hostname != "h" {
				t.Errorf("state %+v; want managers %q", st, tc.want)
			}
		})
	}
}
