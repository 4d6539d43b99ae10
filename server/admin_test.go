package server

import (
	"context"
	"crypto/x509"
	"errors"
	"net/http"
	"strings"
	"testing"

	"github.com/chancery-pki/chancery/api"
	"github.com/chancery-pki/chancery/hint"
	"github.com/chancery-pki/chancery/issuer"
	"github.com/chancery-pki/chancery/signer"
)

// TestAdminRefusals pins the answers to refused administration requests:
// the status, the code, and the message, which is the cluster's refusal
// without its "cluster: " prefix.
func TestAdminRefusals(t *testing.T) {
	e := newEnv(t, envOptions{})
	ctx := context.Background()
	e.join(t, e.init.WorkerToken) // two nodes named "node"
	_, second := e.join(t, e.init.WorkerToken)
	removed := second.NodeID
	c := e.client(t, e.manager)
	if _, err := c.Remove(ctx, removed, true); err != nil {
		t.Fatal(err)
	}
	_, third := e.join(t, e.init.WorkerToken)

	for _, tc := range []struct {
		name   string
		call   func() error
		status int
		code   string
		msg    string
	}{
		{"InspectMissing", func() error { _, err := c.Node(ctx, "nope"); return err },
			http.StatusNotFound, api.CodeNotFound, `no such node: "nope"`},
		{"RemoveRemoved", func() error { _, err := c.Remove(ctx, removed, true); return err },
			http.StatusNotFound, api.CodeNotFound, "no such node: " + removed + " was already removed"},
		{"DemoteLeader", func() error { _, err := c.Demote(ctx, e.init.NodeID); return err },
			http.StatusConflict, api.CodeConflict, "the leader cannot be demoted or removed"},
		{"RemoveManager", func() error { _, err := c.Remove(ctx, e.init.NodeID, true); return err },
			http.StatusConflict, api.CodeConflict, "the leader cannot be demoted or removed"},
		{"RemoveLiveNode", func() error { _, err := c.Remove(ctx, third.NodeID, false); return err },
			http.StatusConflict, api.CodeConflict, "the node is not down and can't be removed; stop it first, or use --force"},
		{"PromoteRemoved", func() error { _, err := c.Promote(ctx, removed); return err },
			http.StatusConflict, api.CodeConflict, "the node was removed from the cluster and must join again with a join token"},
		{"Ambiguous", func() error { _, err := c.Node(ctx, "node"); return err },
			http.StatusConflict, api.CodeAmbiguousName, `the node name is ambiguous: "node" matches 2 nodes: `}, // then their IDs
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.call()
			if aerr := apiError(t, err, tc.status, tc.code); aerr.Message != tc.msg && (tc.code != api.CodeAmbiguousName || !strings.HasPrefix(aerr.Message, tc.msg)) {
				t.Errorf("message %q, want %q", aerr.Message, tc.msg)
			}
		})
	}
}

// failingSigner fails every signature with err.
type failingSigner struct {
	signer.Signer
	err error
}

func (f failingSigner) Sign(context.Context, *signer.Request) (*x509.Certificate, error) {
	return nil, f.err
}

// TestSignerFailureLogsHint checks that a signer failure, which the API
// does not show, reaches the manager's log with its hint, as the message
// no longer carries it.
func TestSignerFailureLogsHint(t *testing.T) {
	e := newEnv(t, envOptions{})
	sealed := hint.With(errors.New("vault: Vault is sealed"), "unseal Vault (`vault operator unseal`) and try again")
	iss, err := issuer.New(failingSigner{Signer: e.sg, err: sealed}, issuer.Options{})
	if err != nil {
		t.Fatal(err)
	}
	e.issuers.Store(iss)
	_, err = e.client(t, nil).Join(context.Background(), api.JoinRequest{Token: e.init.WorkerToken, CSR: csrPEM(t, newKey(t))})
	apiError(t, err, http.StatusInternalServerError, api.CodeSignerFailure)
	want := "err=\"vault: Vault is sealed\" hint=\"unseal Vault (`vault operator unseal`) and try again\""
	if logs := e.logs.String(); !strings.Contains(logs, "issuance failed") || !strings.Contains(logs, want) {
		t.Errorf("the log lacks the failure with its hint %s:\n%s", want, logs)
	}
}
