package server

import (
	"context"
	"net/http"
	"strings"
	"sync"
	"testing"

	"github.com/chancery-pki/chancery/api"
	"github.com/chancery-pki/chancery/client"
	"github.com/chancery-pki/chancery/internal/seed"
	"github.com/chancery-pki/chancery/loadtest"
)

// TestNodePagesUnderConcurrentJoins pages through the node listing over
// mutual TLS, a few nodes a page, while nodes join through the API: every
// node that was there before the listing is listed exactly once, and no
// node twice.
func TestNodePagesUnderConcurrentJoins(t *testing.T) {
	e := newEnv(t, envOptions{quiet: true})
	ctx := context.Background()
	before, err := seed.Nodes(ctx, e.st, 400, seed.Options{ManagerEvery: 50})
	if err != nil {
		t.Fatal(err)
	}
	c := e.client(t, e.manager)
	var wg sync.WaitGroup
	wg.Add(1)
	var joinErr error
	go func() {
		defer wg.Done()
		res, err := loadtest.Run(ctx, loadtest.Config{Addr: e.addr, Token: e.init.WorkerToken, Nodes: 150, Concurrency: 8})
		if err == nil && res.Joins.Errors > 0 {
			err = &client.APIError{Message: res.Joins.FirstError}
		}
		joinErr = err
	}()
	// List again and again while the joins go on.
	for round := 0; round < 5; round++ {
		seen := map[string]int{}
		pages := 0
		err := c.EachNodePage(ctx, api.NodeQuery{Limit: 7}, func(p *api.NodePage) error {
			pages++
			for _, n := range p.Nodes {
				seen[n.ID]++
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
		for id, k := range seen {
			if k != 1 {
				t.Errorf("round %d: node %s listed %d times", round, id, k)
			}
		}
		for _, id := range before {
			if seen[id] != 1 {
				t.Errorf("round %d: node %s, there before the listing, listed %d times", round, id, seen[id])
			}
		}
		if pages < 400/7 {
			t.Errorf("round %d: %d pages of 7 for %d nodes", round, pages, len(seen))
		}
	}
	wg.Wait()
	if joinErr != nil {
		t.Fatal(joinErr)
	}
	all, err := c.Nodes(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(all) != 400+150+1 {
		t.Errorf("%d nodes after the joins, want %d", len(all), 400+150+1)
	}
}

// TestNodePageFilters lists with filters over the socket, and refuses bad
// limits, filters and cursors, saying why.
func TestNodePageFilters(t *testing.T) {
	e := newEnv(t, envOptions{quiet: true})
	ctx := context.Background()
	if _, err := seed.Nodes(ctx, e.st, 30, seed.Options{ManagerEvery: 10}); err != nil {
		t.Fatal(err)
	}
	e.join(t, e.init.WorkerToken)
	c := client.NewSocket(e.socket())
	tests := []struct {
		filters []string
		want    int
	}{
		{nil, 32},
		{[]string{"role=manager"}, 3 + 1},
		{[]string{"role=worker"}, 27 + 1},
		{[]string{"state=ready"}, 2}, // the manager itself, and the node that just joined
		{[]string{"state=down", "role=manager"}, 3},
		{[]string{"name=host-1"}, 11}, // host-1, host-10..host-19
		{[]string{"name=manager-1"}, 1},
		{[]string{"membership=accepted"}, 32},
		{[]string{"membership=pending"}, 0},
	}
	for _, tt := range tests {
		t.Run(strings.Join(tt.filters, ","), func(t *testing.T) {
			got := 0
			if err := c.EachNodePage(ctx, api.NodeQuery{Limit: 4, Filters: tt.filters}, func(p *api.NodePage) error { got += len(p.Nodes); return nil }); err != nil {
				t.Fatal(err)
			}
			if got != tt.want {
				t.Errorf("%d nodes, want %d", got, tt.want)
			}
		})
	}
	refusals := []struct{ query, says string }{
		{"limit=0", "limit must be 1-"},
		{"limit=100000", "limit must be 1-"},
		{"limit=x", "limit must be 1-"},
		{"filter=color%3Dred", "unknown key"},
		{"after=garbage", "cursor"},
	}
	for _, tt := range refusals {
		status, body := e.socketGet(t, api.PathAdminNodes+"?"+tt.query)
		if status != http.StatusBadRequest || !strings.Contains(body, tt.says) {
			t.Errorf("?%s: %d %s, want 400 saying %q", tt.query, status, body, tt.says)
		}
	}
	// A page never holds more than the limit.
	p, err := c.NodePage(ctx, api.NodeQuery{Limit: 5})
	if err != nil || len(p.Nodes) != 5 || p.Next == "" {
		t.Errorf("first page of 5: %v, %d nodes, next %q", err, len(p.Nodes), p.Next)
	}
}
