package server

import (
	"context"
	"net/http"
	"slices"
	"strings"
	"testing"

	"github.com/chancery-pki/chancery/api"
	"github.com/chancery-pki/chancery/audit"
	"github.com/chancery-pki/chancery/client"
)

// auditEntries returns the audit log's entries of action.
func (e *env) auditEntries(t *testing.T, action audit.Action) []audit.Entry {
	t.Helper()
	recs, err := e.st.AuditRecords(context.Background(), 1, 0)
	if err != nil {
		t.Fatal(err)
	}
	var out []audit.Entry
	for _, r := range recs {
		en, err := audit.Unmarshal(r.Data)
		if err != nil {
			t.Fatal(err)
		}
		if en.Action == action {
			out = append(out, en)
		}
	}
	return out
}

// TestNodeRenames: a node's host name changes through its status reports
// are audited with the old and the new name, limited per node, and never
// take another node's ID.
func TestNodeRenames(t *testing.T) {
	e := newEnv(t, envOptions{})
	ctx := context.Background()
	cert, out := e.join(t, e.init.WorkerToken)
	other, _ := e.join(t, e.init.WorkerToken)
	c := e.client(t, cert)
	hostname := func(id string) string {
		t.Helper()
		n, err := e.st.Node(ctx, id)
		if err != nil {
			t.Fatal(err)
		}
		return n.Hostname
	}
	steps := []struct {
		name, report, want string
		renamed            bool
	}{
		{name: "a new name", report: "web1", want: "web1", renamed: true},
		{name: "the same name", report: "web1", want: "web1"},
		{name: "another node's ID", report: e.init.NodeID, want: "web1"},
		{name: "within the limit", report: "web2", want: "web2", renamed: true},
		{name: "over the limit", report: "web3", want: "web2"},
	}
	for _, st := range steps {
		before := len(e.auditEntries(t, audit.ActionRenamed))
		if _, err := c.Status(ctx, api.StatusRequest{Hostname: st.report}); err != nil {
			t.Fatalf("%s: status: %v", st.name, err)
		}
		if got := hostname(out.NodeID); got != st.want {
			t.Errorf("%s: host name %q, want %q", st.name, got, st.want)
		}
		renames := e.auditEntries(t, audit.ActionRenamed)
		if got := len(renames) - before; got != map[bool]int{true: 1}[st.renamed] {
			t.Errorf("%s: %d node.renamed entries", st.name, got)
			continue
		}
		if st.renamed {
			last := renames[len(renames)-1]
			if last.NodeID != out.NodeID || last.Details["new"] != st.want || last.Details["old"] == st.want || last.Details["old"] == "" {
				t.Errorf("%s: entry %+v", st.name, last.Event)
			}
		}
	}
	refused := e.auditEntries(t, audit.ActionRefused)
	if len(refused) == 0 || refused[len(refused)-1].Reason != "hostname_is_node_id" || refused[len(refused)-1].NodeID != out.NodeID {
		t.Errorf("taking another node's ID as a name is not on the audit log: %+v", refused)
	}
	// Other nodes have limits of their own.
	if _, err := e.client(t, other).Status(ctx, api.StatusRequest{Hostname: "db1"}); err != nil {
		t.Fatal(err)
	}
	n, _ := e.st.Node(ctx, other.Leaf.Subject.CommonName)
	if n.Hostname != "db1" {
		t.Errorf("the other node's rename: %q", n.Hostname)
	}
}

// TestJoinNameNotNodeID: a node cannot join under another node's ID; asked
// without a valid token, the manager says nothing about node IDs.
func TestJoinNameNotNodeID(t *testing.T) {
	e := newEnv(t, envOptions{})
	c := e.client(t, nil)
	_, err := c.Join(context.Background(), api.JoinRequest{Token: e.init.WorkerToken, CSR: csrPEM(t, newKey(t)), Hostname: e.init.NodeID})
	aerr := apiError(t, err, http.StatusBadRequest, api.CodeBadRequest)
	if !strings.Contains(aerr.Message, "ID of another node") {
		t.Errorf("message %q", aerr.Message)
	}
	wrong := e.init.WorkerToken[:len(e.init.WorkerToken)-1] + "0"
	if wrong == e.init.WorkerToken {
		wrong = e.init.WorkerToken[:len(e.init.WorkerToken)-1] + "1"
	}
	_, err = c.Join(context.Background(), api.JoinRequest{Token: wrong, CSR: csrPEM(t, newKey(t)), Hostname: e.init.NodeID})
	apiError(t, err, http.StatusUnauthorized, api.CodeInvalidToken)
}

// TestAmbiguousNodeName: administration by a name that several nodes share
// is refused with ambiguous_name and their IDs; by ID it works.
func TestAmbiguousNodeName(t *testing.T) {
	e := newEnv(t, envOptions{})
	ctx := context.Background()
	var ids []string
	for range 2 {
		cert, out := e.join(t, e.init.WorkerToken)
		if _, err := e.client(t, cert).Status(ctx, api.StatusRequest{Hostname: "twin"}); err != nil {
			t.Fatal(err)
		}
		ids = append(ids, out.NodeID)
	}
	slices.Sort(ids)
	admin := client.NewSocket(e.socket())
	defer admin.Close()
	calls := map[string]func(string) error{
		"inspect": func(n string) error { _, err := admin.Node(ctx, n); return err },
		"promote": func(n string) error { _, err := admin.Promote(ctx, n); return err },
		"demote":  func(n string) error { _, err := admin.Demote(ctx, n); return err },
		"rm":      func(n string) error { _, err := admin.Remove(ctx, n, true); return err },
	}
	for name, call := range calls {
		aerr := apiError(t, call("twin"), http.StatusConflict, api.CodeAmbiguousName)
		got := slices.Sorted(slices.Values(aerr.Candidates))
		if !slices.Equal(got, ids) || !strings.Contains(aerr.Message, ids[0]) || !strings.Contains(aerr.Message, ids[1]) {
			t.Errorf("%s twin: candidates %v, message %q; want %v", name, aerr.Candidates, aerr.Message, ids)
		}
	}
	n, err := admin.Promote(ctx, ids[0])
	if err != nil || n.ID != ids[0] {
		t.Fatalf("promote by ID: %+v, %v", n, err)
	}
}
