package cluster

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/chancery-pki/chancery/ca"
	"github.com/chancery-pki/chancery/store"
)

// TestLeaderRefusals: SetRole, RemoveNode and LeaveNode protect the
// manager that leads now: the cluster record's LeaderID when no LeaderFunc
// is given (the embedded store, unchanged), else the manager the function
// names (the election with a shared store), so that the manager that ran
// init is demoted and removed like any other once another leads; with a
// shared store and no manager leading, the last manager is not demoted
// and does not leave. docker's rules stay: a manager is demoted before
// node rm, and leaves only with force.
func TestLeaderRefusals(t *testing.T) {
	ctx := context.Background()
	elected := func(id string) LeaderFunc { return func(context.Context) (string, error) { return id, nil } }
	const first, second = "{first}", "{second}" // the manager that ran init, another manager
	type op func(st store.Store, id string, leaderOf LeaderFunc) error
	demote := func(st store.Store, id string, leaderOf LeaderFunc) error {
		_, err := SetRole(ctx, st, id, ca.RoleWorker, leaderOf)
		return err
	}
	demoteThenRemove := func(st store.Store, id string, leaderOf LeaderFunc) error {
		if err := demote(st, id, leaderOf); err != nil {
			return err
		}
		_, err := RemoveNode(ctx, st, id, true, true, leaderOf)
		return err
	}
	remove := func(st store.Store, id string, leaderOf LeaderFunc) error {
		_, err := RemoveNode(ctx, st, id, true, true, leaderOf)
		return err
	}
	leave := func(st store.Store, id string, leaderOf LeaderFunc) error {
		_, err := LeaveNode(ctx, st, id, true, leaderOf)
		return err
	}
	for _, tc := range []struct {
		name     string
		op       op
		node     string
		leader   *string // nil: no LeaderFunc (the cluster record's LeaderID)
		demoted  bool    // the second manager is demoted (and so the first is the last manager)
		want     error   // nil: allowed
		inReason string
	}{
		{"RecordDemoteFirst", demote, first, nil, false, ErrIsLeader, ""},
		{"RecordRemoveFirst", remove, first, nil, false, ErrIsLeader, ""},
		{"RecordLeaveFirst", leave, first, nil, false, ErrSoleManager, ""},
		{"RecordDemoteSecond", demote, second, nil, false, nil, ""},
		{"RecordRemoveManager", remove, second, nil, false, ErrNodeIsManager, ""},
		{"ElectedSecondDemoteFirst", demote, first, ptr(second), false, nil, ""},
		{"ElectedSecondRemoveFirst", demoteThenRemove, first, ptr(second), false, nil, ""},
		{"ElectedSecondRemoveFirstUndemoted", remove, first, ptr(second), false, ErrNodeIsManager, ""},
		{"ElectedSecondLeaveFirst", leave, first, ptr(second), false, nil, ""},
		{"ElectedSecondDemoteSecond", demote, second, ptr(second), false, ErrIsLeader, "leads the managers now; stop it"},
		{"ElectedSecondRemoveSecond", remove, second, ptr(second), false, ErrIsLeader, "leads the managers now; stop it"},
		{"ElectedSecondLeaveSecond", leave, second, ptr(second), false, ErrIsLeader, "leads the managers now; stop it"},
		{"ElectedFirstDemoteFirst", demote, first, ptr(first), false, ErrIsLeader, "leads the managers now"},
		{"ElectedFirstDemoteSecond", demote, second, ptr(first), false, nil, ""},
		{"NoneLeadsDemoteOneOfTwo", demote, first, ptr(""), false, nil, ""},
		{"NoneLeadsDemoteLast", demote, first, ptr(""), true, ErrLastManager, ""},
		{"NoneLeadsLeaveLast", leave, first, ptr(""), true, ErrLastManager, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, st, auth := newCluster(t)
			ids := map[string]string{first: clusterRecord(t, st).LeaderID, "": ""}
			_, csr := newCSR(t)
			ids[second] = newNodeID(t)
			if _, err := auth.IssueNodeCertificate(ctx, IssueRequest{NodeID: ids[second], Role: ca.RoleManager, Hostname: "m2", CSR: csr}); err != nil {
				t.Fatal(err)
			}
			if tc.demoted {
				if _, err := SetRole(ctx, st, ids[second], ca.RoleWorker, nil); err != nil {
					t.Fatal(err)
				}
			}
			var leaderOf LeaderFunc
			if tc.leader != nil {
				leaderOf = elected(ids[*tc.leader])
			}
			before, err := st.Node(ctx, ids[tc.node])
			if err != nil {
				t.Fatal(err)
			}
			err = tc.op(st, ids[tc.node], leaderOf)
			after, rerr := st.Node(ctx, ids[tc.node])
			if rerr != nil {
				t.Fatal(rerr)
			}
			if tc.want == nil {
				if err != nil {
					t.Fatalf("refused: %v", err)
				}
				if after.Role == before.Role && after.State == before.State {
					t.Error("nothing changed")
				}
				return
			}
			if !errors.Is(err, tc.want) {
				t.Fatalf("error %v, want %v", err, tc.want)
			}
			if !strings.Contains(err.Error(), tc.inReason) || tc.inReason != "" && !strings.Contains(err.Error(), ids[*tc.leader]) {
				t.Errorf("error %q does not name the leader and say %q", err, tc.inReason)
			}
			if after.Role != before.Role || after.State != before.State {
				t.Errorf("the refused node changed: %+v, was %+v", after, before)
			}
		})
	}

	t.Run("ElectionFails", func(t *testing.T) {
		_, st, _ := newCluster(t)
		boom := errors.New("the election could not be read")
		failing := func(context.Context) (string, error) { return "", boom }
		id := clusterRecord(t, st).LeaderID
		for name, f := range map[string]op{"demote": demote, "remove": remove, "leave": leave} {
			if err := f(st, id, failing); !errors.Is(err, boom) {
				t.Errorf("%s: %v, want the election's error", name, err)
			}
		}
	})
}

func ptr[T any](v T) *T { return &v }
