package manager

import (
	"context"
	"errors"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chancery-pki/chancery/admin"
	"github.com/chancery-pki/chancery/api"
	"github.com/chancery-pki/chancery/certdir"
	"github.com/chancery-pki/chancery/client"
)

// TestDemoteAndRemoveFollowTheElection: on etcd the manager that leads is
// the elected one, not the one that ran init (the cluster record's
// LeaderID). With three managers, demoting or removing the elected leader
// is refused (409 conflict, saying which node leads and to stop it first);
// once the first manager stops and another is elected, the first is
// demoted and removed like any other manager, the new leader is refused in
// its turn, and node ls, node inspect and info name the elected leader,
// through a running manager and, with every manager of a data directory
// stopped, from the store directly.
func TestDemoteAndRemoveFollowTheElection(t *testing.T) {
	data1, res, _, _ := etcdDataDir(t)
	g := managersOnWith(t, 3, 3*time.Second, data1, res, Config{HeartbeatPeriod: 200 * time.Millisecond})
	ctx := context.Background()
	ids := make([]string, len(g.data))
	for i, d := range g.data {
		chain, err := certdir.In(d).NodeChain()
		if err != nil {
			t.Fatal(err)
		}
		ids[i] = chain[0].Subject.CommonName
	}
	leading := func() int {
		for i, m := range g.mets {
			if scrape(t, m, "chancery_manager_leader") == 1 {
				return i
			}
		}
		return -1
	}
	waitFor(t, "a leader", func() bool { return leading() >= 0 })
	if l := leading(); l != 0 {
		t.Fatalf("manager %d leads first, want the first", l+1)
	}
	adm := client.NewSocket(filepath.Join(g.data[1], api.SocketFile))
	defer adm.Close()

	refused := func(what string, err error, leader string) {
		t.Helper()
		var ae *client.APIError
		if !errors.As(err, &ae) || ae.Status != http.StatusConflict || ae.Code != api.CodeConflict {
			t.Fatalf("%s: %v, want 409 conflict", what, err)
		}
		if !strings.Contains(ae.Message, leader+" leads the managers now; stop it") {
			t.Errorf("%s: %q does not say that %s leads and to stop it", what, ae.Message, leader)
		}
	}
	_, err := adm.Demote(ctx, ids[0])
	refused("demoting the first manager while it leads", err, ids[0])
	_, err = adm.Remove(ctx, ids[0], true)
	refused("removing the first manager while it leads", err, ids[0])

	g.stops[0]()
	waitFor(t, "another manager to lead", func() bool { return leading() > 0 })
	l := leading()
	leader := ids[l]

	// Through a running manager, and from the store with no manager
	// running on the data directory (the first one's, stopped).
	direct, closeDirect, err := admin.Open(ctx, g.data[0])
	if err != nil {
		t.Fatal(err)
	}
	defer closeDirect()
	for name, c := range map[string]*client.Client{"socket": adm, "direct": direct} {
		info, err := c.Info(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if info.LeaderID != leader {
			t.Errorf("%s: info's leader %s, want the elected %s", name, info.LeaderID, leader)
		}
		nodes, err := c.Nodes(ctx)
		if err != nil {
			t.Fatal(err)
		}
		for _, n := range nodes {
			if want := n.ID == leader; (n.ManagerStatus == "Leader") != want {
				t.Errorf("%s: node ls says %s is %q", name, n.ID, n.ManagerStatus)
			}
		}
	}

	n, err := adm.Demote(ctx, ids[0])
	if err != nil {
		t.Fatalf("demoting the first manager once another leads: %v", err)
	}
	if n.Role != "swarm-worker" || n.ManagerStatus != "" {
		t.Errorf("the demoted first manager: %+v", n)
	}
	if _, err := adm.Remove(ctx, ids[0], true); err != nil {
		t.Fatalf("removing the demoted first manager: %v", err)
	}
	if _, err := direct.Demote(ctx, leader); err == nil {
		t.Fatal("the elected leader was demoted from the store directly")
	} else {
		refused("demoting the elected leader from the store", err, leader)
	}
	_, err = adm.Demote(ctx, leader)
	refused("demoting the elected leader", err, leader)
	_, err = adm.Remove(ctx, leader, true)
	refused("removing the elected leader", err, leader)
	other := ids[3-l]
	// docker's rule stays: a manager is demoted before it is removed.
	var ae *client.APIError
	if _, err := adm.Remove(ctx, other, true); !errors.As(err, &ae) || ae.Status != http.StatusConflict || !strings.Contains(ae.Message, "must be demoted") {
		t.Errorf("removing a manager that is not demoted: %v", err)
	}
	if got, err := adm.Node(ctx, leader); err != nil || got.ManagerStatus != "Leader" || got.Role != "swarm-manager" {
		t.Errorf("the elected leader after the refusals: %+v, %v", got, err)
	}
}
