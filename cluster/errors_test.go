package cluster

import (
	"context"
	"errors"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/chancery-pki/chancery/backends"
	"github.com/chancery-pki/chancery/ca"
	"github.com/chancery-pki/chancery/store"
	"github.com/chancery-pki/chancery/store/boltstore"
)

// prefixRun matches two package prefixes in a row, as in "cluster: store: ".
var prefixRun = regexp.MustCompile(`\b(cluster|store|boltstore|backends|ca|signer|issuer): [a-z]+: `)

// TestErrorsSayTheirOriginOnce checks that an error from the store or the
// backends registry leaves the cluster package with the prefix of its
// origin alone, and that the cluster's own refusals carry "cluster: " and a
// Reason without it.
func TestErrorsSayTheirOriginOnce(t *testing.T) {
	ctx := context.Background()
	empty, err := boltstore.Open(filepath.Join(t.TempDir(), "empty.db"), boltstore.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { empty.Close() })
	_, st, auth := newCluster(t)
	leader := clusterRecord(t, st).LeaderID
	_, csr := newCSR(t)
	worker := newNodeID(t)
	if _, err := auth.IssueNodeCertificate(ctx, IssueRequest{NodeID: worker, Role: ca.RoleWorker, Hostname: "w1", CSR: csr}); err != nil {
		t.Fatal(err)
	}

	for _, tc := range []struct {
		name   string
		call   func() error
		want   string // the whole message
		kind   error  // matched with errors.Is
		reason string // the RefusalError's Reason, "" when it is none
	}{
		{"ReadInfoWithoutCluster", func() error { _, err := ReadInfo(ctx, empty); return err },
			"store: cluster not found", store.ErrNotFound, ""},
		{"JoinTokenWithoutCluster", func() error { _, err := JoinToken(ctx, empty, ca.RoleWorker); return err },
			"store: cluster not found", store.ErrNotFound, ""},
		{"IssueWithoutCluster", func() error {
			_, err := NewAuthority(empty, auth.Issuers(), fixedNow).IssueNodeCertificate(ctx, IssueRequest{NodeID: worker, Role: ca.RoleWorker, CSR: csr})
			return err
		}, "store: cluster not found", store.ErrNotFound, ""},
		{"AbortRotationWithoutCluster", func() error { _, err := AbortRotation(ctx, empty, t.TempDir()); return err },
			"store: cluster not found", store.ErrNotFound, ""},
		{"ExcludeNodesWithoutCluster", func() error { _, err := ExcludeNodes(ctx, empty, []string{"x"}, ""); return err },
			"store: cluster not found", store.ErrNotFound, ""},
		{"SetRoleWithoutCluster", func() error { _, err := SetRole(ctx, empty, "x", ca.RoleWorker, nil); return err },
			`cluster: no such node: "x"`, ErrNodeNotFound, `no such node: "x"`},
		{"OpenRootUnknownBackend", func() error {
			root := clusterRecord(t, st).CurrentRoot()
			root.Backend.Type = "nope"
			_, err := OpenRoot(ctx, t.TempDir(), root, nil, nil)
			return err
		}, `backends: unknown backend "nope" (available: ` + strings.Join(backends.Names(), ", ") + ")", nil, ""},
		{"FindNodeMissing", func() error { _, err := FindNode(ctx, st, "nope"); return err },
			`cluster: no such node: "nope"`, ErrNodeNotFound, `no such node: "nope"`},
		{"DemoteLeader", func() error { _, err := SetRole(ctx, st, leader, ca.RoleWorker, nil); return err },
			"cluster: the leader cannot be demoted or removed", ErrIsLeader, "the leader cannot be demoted or removed"},
		{"RemoveLiveNode", func() error { _, err := RemoveNode(ctx, st, "w1", false, false, nil); return err },
			"cluster: the node is not down and can't be removed; stop it first, or use --force", ErrNodeNotDown,
			"the node is not down and can't be removed; stop it first, or use --force"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.call()
			if err == nil {
				t.Fatal("no error")
			}
			if err.Error() != tc.want {
				t.Errorf("error %q, want %q", err, tc.want)
			}
			if m := prefixRun.FindString(err.Error()); m != "" {
				t.Errorf("error %q has a run of prefixes %q", err, m)
			}
			if tc.kind != nil && !errors.Is(err, tc.kind) {
				t.Errorf("error %q does not match %v", err, tc.kind)
			}
			var r *RefusalError
			switch {
			case tc.reason == "" && errors.As(err, &r):
				t.Errorf("error %q is a RefusalError", err)
			case tc.reason != "" && !errors.As(err, &r):
				t.Errorf("error %q is not a RefusalError", err)
			case tc.reason != "" && r.Reason != tc.reason:
				t.Errorf("Reason %q, want %q", r.Reason, tc.reason)
			}
		})
	}
}
