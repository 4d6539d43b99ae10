package server

import (
	"context"
	"fmt"
	"slices"
	"testing"

	"github.com/chancery-pki/chancery/api"
)

// TestStatusListsManagers: the status answer lists the managers' addresses:
// the cluster's advertise address with the embedded store, the live
// managers of a shared store (at most api.MaxManagers), with no leader to
// follow there.
func TestStatusListsManagers(t *testing.T) {
	many := make([]string, 20)
	for i := range many {
		many[i] = fmt.Sprintf("10.0.0.%d:4242", i+1)
	}
	for _, tc := range []struct {
		name     string
		opts     envOptions
		want     func(e *env) []string
		leaderOK func(e *env, addr string) bool
	}{
		{"embedded store", envOptions{quiet: true},
			func(e *env) []string { return []string{advertiseOf(t, e)} },
			func(e *env, addr string) bool { return addr == advertiseOf(t, e) }},
		{"shared store", envOptions{quiet: true, shared: true, managers: func() []string { return many[:2] }},
			func(*env) []string { return many[:2] },
			func(_ *env, addr string) bool { return addr == "" }},
		{"bounded", envOptions{quiet: true, shared: true, managers: func() []string { return many }},
			func(*env) []string { return many[:api.MaxManagers] },
			func(_ *env, addr string) bool { return addr == "" }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t, tc.opts)
			worker, _ := e.join(t, e.init.WorkerToken)
			st, err := e.client(t, worker).Status(context.Background(), api.StatusRequest{})
			if err != nil {
				t.Fatal(err)
			}
			if want := tc.want(e); !slices.Equal(st.Managers, want) {
				t.Errorf("managers %q; want %q", st.Managers, want)
			}
			if !tc.leaderOK(e, st.LeaderAddr) {
				t.Errorf("leader address %q", st.LeaderAddr)
			}
		})
	}
}

// advertiseOf is the cluster record's advertise address.
func advertiseOf(t *testing.T, e *env) string {
	t.Helper()
	c, err := e.st.Cluster(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return c.AdvertiseAddr
}
