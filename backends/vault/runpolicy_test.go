package vault

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chancery-pki/chancery/backends"
	"github.com/chancery-pki/chancery/ca"
	"github.com/chancery-pki/chancery/conformance"
	"github.com/chancery-pki/chancery/signer"
)

// newRunSigner makes a root with the init policy (Policy), then opens it as
// a running manager does, with an AppRole whose only policy is
// RunPolicy(mount, issuer): not even Vault's default policy.
func newRunSigner(t testing.TB) (*Signer, *env) {
	t.Helper()
	e := newEnv(t)
	initSigner, out := createRoot(t, e.settings(), "")
	run := e.srv.newAppRole(t, RunPolicy(e.mount, initSigner.IssuerID()), map[string]any{"token_no_default_policy": true})
	settings := backends.Settings{}
	for k, v := range out {
		settings[k] = v
	}
	settings[SettingAppRoleRoleIDFile] = run.roleIDFile
	settings[SettingAppRoleSecretIDFile] = run.secretIDFile
	sg, err := Backend{}.Open(context.Background(), backends.OpenRequest{Settings: settings, Chain: initSigner.Chain()})
	if err != nil {
		t.Fatalf("Open with the run policy: %v", err)
	}
	s := sg.(*Signer)
	t.Cleanup(func() { s.Close() })
	return s, e
}

// TestConformanceRunPolicy runs the shared suite (node issuance,
// cross-signing, ...) with a Signer whose token has only RunPolicy.
func TestConformanceRunPolicy(t *testing.T) {
	conformance.Run(t, func(t *testing.T) signer.Signer {
		s, _ := newRunSigner(t)
		return s
	}, conformance.Options{
		NotBeforeTolerance: roleSlack + time.Second,
		DNSNamesSorted:     true,
	})
}

// TestRunPolicyRefuses: with RunPolicy, Vault itself (HTTP 403) refuses
// generating a root, deleting the issuer, its key or a role, pointing a
// role at another issuer, cross-signing with another issuer, and a CSR for
// a key; the mount is unchanged.
func TestRunPolicyRefuses(t *testing.T) {
	s, e := newRunSigner(t)
	ctx := context.Background()
	// It works for what a manager does.
	if _, err := s.Sign(ctx, nodeRequest(t, s.Chain()[0], ca.RoleManager, time.Now())); err != nil {
		t.Fatalf("node certificate with the run policy: %v", err)
	}
	if _, err := s.Sign(ctx, crossSignRequest(t, s.Chain()[0])); err != nil {
		t.Fatalf("cross-sign with the run policy: %v", err)
	}
	other := e.srv.write(t, e.mount+"/root/generate/internal", map[string]any{"common_name": "other", "key_type": "ec", "ttl": "87600h"})
	otherID := other.Data["issuer_id"].(string)
	keyID, err := lookupKeyID(ctx, s.conn, s.IssuerID())
	if err != nil {
		t.Fatal(err)
	}
	roles := e.srv.list(t, e.mount+"/roles")
	if len(roles) != 1 {
		t.Fatalf("roles %v", roles)
	}
	before := e.state(t)
	selfIssued := map[string]any{"certificate": "x"}
	m := e.mount
	for _, tc := range []struct {
		name, method, path string
		data               map[string]any
	}{
		{"GenerateRoot", http.MethodPost, m + "/issuers/generate/root/internal", map[string]any{"common_name": "x", "key_type": "ec"}},
		{"GenerateRootLegacy", http.MethodPost, m + "/root/generate/internal", map[string]any{"common_name": "x", "key_type": "ec"}},
		{"GenerateKey", http.MethodPost, m + "/keys/generate/internal", map[string]any{"key_type": "ec"}},
		{"DeleteIssuer", http.MethodDelete, m + "/issuer/" + s.IssuerID(), nil},
		{"DeleteKey", http.MethodDelete, m + "/key/" + keyID, nil},
		{"DeleteRole", http.MethodDelete, m + "/roles/" + roles[0], nil},
		{"DeleteRoot", http.MethodDelete, m + "/root", nil},
		{"ListRoles", "LIST", m + "/roles", nil},
		{"RoleForAnotherIssuer", http.MethodPost, m + "/roles/chancery-" + s.IssuerID() + "-evil", map[string]any{"issuer_ref": otherID, "allow_any_name": true}},
		{"RoleForTheDefaultIssuer", http.MethodPost, m + "/roles/chancery-" + s.IssuerID() + "-evil", map[string]any{"allow_any_name": true}},
		{"RoleOutsideChancery", http.MethodPost, m + "/roles/evil", map[string]any{"issuer_ref": s.IssuerID()}},
		{"SignSelfIssuedOtherIssuer", http.MethodPost, m + "/issuer/" + otherID + "/sign-self-issued", selfIssued},
		{"SignSelfIssuedDefault", http.MethodPost, m + "/root/sign-self-issued", selfIssued},
		{"SignVerbatim", http.MethodPost, m + "/issuer/" + s.IssuerID() + "/sign-verbatim", map[string]any{"csr": "x"}},
		{"SignIntermediate", http.MethodPost, m + "/issuer/" + s.IssuerID() + "/sign-intermediate", map[string]any{"csr": "x"}},
		{"CrossSignCSR", http.MethodPost, m + "/intermediate/cross-sign", map[string]any{"key_ref": keyID, "common_name": "x"}},
		{"ImportBundle", http.MethodPost, m + "/issuers/import/bundle", map[string]any{"pem_bundle": "x"}},
		{"UpdateIssuer", http.MethodPost, m + "/issuer/" + s.IssuerID(), map[string]any{"usage": "read-only"}},
		{"MountConfig", http.MethodPost, m + "/config/urls", map[string]any{"issuing_certificates": "http://x"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := s.conn.call(ctx, request{op: tc.name, method: tc.method, path: tc.path, data: tc.data, mountPath: true})
			var ve *Error
			if !errors.As(err, &ve) || !errors.Is(err, ErrPermissionDenied) || ve.Status != http.StatusForbidden {
				t.Fatalf("%s %s with the run policy: %v, want HTTP 403", tc.method, tc.path, err)
			}
		})
	}
	if after := e.state(t); !after.equal(before) {
		t.Errorf("the mount changed: %+v, was %+v", after, before)
	}
}

// TestRunPolicyText: the run policy is pinned to the issuer and grants no
// delete, no generation, no wildcard issuer; a bad issuer ID grants
// nothing.
func TestRunPolicyText(t *testing.T) {
	const id = "0f3c1c8e-5e1a-4d2b-9f55-6a1f0f2b7c11"
	p := RunPolicy("/pki-int/", id)
	for _, want := range []string{
		`path "pki-int/roles/chancery-` + id + `-*" {` + "\n" + `  capabilities = ["create", "update"]`,
		`"issuer_ref" = ["` + id + `"]`,
		`required_parameters = ["issuer_ref"]`,
		`path "pki-int/sign/chancery-` + id + `-*" {` + "\n" + `  capabilities = ["update"]`,
		`path "pki-int/issuer/` + id + `/sign-self-issued" {` + "\n" + `  capabilities = ["update", "sudo"]`,
		`path "auth/token/renew-self"`,
		`path "auth/token/lookup-self"`,
		`path "sys/capabilities-self"`,
	} {
		if !strings.Contains(p, want) {
			t.Errorf("the run policy lacks %q:\n%s", want, p)
		}
	}
	for _, line := range strings.Split(p, "\n") {
		if strings.HasPrefix(line, "#") {
			continue
		}
		for _, bad := range []string{`"delete"`, "generate", "+", "cross-sign", `"list"`, `"read"]`} {
			if strings.Contains(line, bad) && !(bad == `"read"]` && line == `  capabilities = ["read"]`) {
				t.Errorf("the run policy has %q: %s", bad, line)
			}
		}
	}
	if RunPolicy("", id) != RunPolicy(DefaultMount, id) {
		t.Error(`RunPolicy("", id) is not the default mount's`)
	}
	for _, bad := range []string{"", "+", "*", "a/b", "a b", `a"b`, "..", "abc*"} {
		if err := CheckIssuerID(bad); err == nil {
			t.Errorf("CheckIssuerID(%q) accepted", bad)
		}
		if p := RunPolicy("pki", bad); strings.Contains(p, "path ") {
			t.Errorf("RunPolicy(%q) grants:\n%s", bad, p)
		}
	}
	if err := CheckIssuerID(id); err != nil {
		t.Error(err)
	}
}

// lostAnswerProxy forwards every request to Vault, and hands the answers
// to the requests whose path contains match to mod, which may replace
// them. It records the status Vault answered them with.
func lostAnswerProxy(t *testing.T, target, match string, mod func(*http.Response) error) (string, func() []int) {
	t.Helper()
	u, err := url.Parse(target)
	if err != nil {
		t.Fatal(err)
	}
	var (
		mu       sync.Mutex
		statuses []int
	)
	rp := httputil.NewSingleHostReverseProxy(u)
	rp.ModifyResponse = func(resp *http.Response) error {
		if !strings.Contains(resp.Request.URL.Path, match) {
			return nil
		}
		mu.Lock()
		statuses = append(statuses, resp.StatusCode)
		mu.Unlock()
		return mod(resp)
	}
	rp.ErrorLog = log.New(io.Discard, "", 0)
	ts := httptest.NewServer(rp)
	t.Cleanup(ts.Close)
	return ts.URL, func() []int {
		mu.Lock()
		defer mu.Unlock()
		return slices.Clone(statuses)
	}
}

// replaceBody sets resp's status and body.
func replaceBody(resp *http.Response, status int, body []byte) {
	resp.Body.Close()
	resp.StatusCode = status
	resp.Status = http.StatusText(status)
	resp.Body = io.NopCloser(bytes.NewReader(body))
	resp.ContentLength = int64(len(body))
	resp.Header.Set("Content-Length", strconv.Itoa(len(body)))
	resp.Header.Set("Content-Type", "application/json")
}

// editData rewrites the data of a JSON answer.
func editData(resp *http.Response, edit func(map[string]any)) error {
	var body map[string]any
	if err := json.NewDecoder(resp.Body).Decode(&body); err != nil {
		return err
	}
	data, _ := body["data"].(map[string]any)
	edit(data)
	b, err := json.Marshal(body)
	if err != nil {
		return err
	}
	replaceBody(resp, resp.StatusCode, b)
	return nil
}

// TestCreateRootAnswerLost: Vault generates the root, but chancery never
// gets a usable answer (a 502 in its place, the connection dropped after a
// timeout, an unreadable certificate, no issuer or key ID). CreateRoot
// fails, does not send the generation again, and leaves nothing in the
// mount: no issuer, no key.
func TestCreateRootAnswerLost(t *testing.T) {
	for _, tc := range []struct {
		name    string
		mod     func(*http.Response) error
		timeout time.Duration
	}{
		{"502", func(resp *http.Response) error {
			replaceBody(resp, http.StatusBadGateway, []byte(`{"errors":["upstream hiccup"]}`))
			return nil
		}, 0},
		{"Timeout", func(resp *http.Response) error {
			// Hold the answer until chancery gives up on it.
			<-resp.Request.Context().Done()
			return resp.Request.Context().Err()
		}, 3 * time.Second},
		{"UnreadableCertificate", func(resp *http.Response) error {
			return editData(resp, func(d map[string]any) { d["certificate"] = "not a certificate" })
		}, 0},
		{"NoIDs", func(resp *http.Response) error {
			return editData(resp, func(d map[string]any) { delete(d, "issuer_id"); delete(d, "key_id") })
		}, 0},
		{"NoCertificateNorIDs", func(resp *http.Response) error {
			return editData(resp, func(d map[string]any) { clear(d) })
		}, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t)
			addr, statuses := lostAnswerProxy(t, e.srv.Addr, "/generate/root/", tc.mod)
			settings := e.settings()
			settings[SettingAddress] = addr
			ctx := context.Background()
			if tc.timeout > 0 {
				var cancel context.CancelFunc
				ctx, cancel = context.WithTimeout(ctx, tc.timeout)
				defer cancel()
			}
			_, _, err := Backend{}.CreateRoot(ctx, backends.CreateRootRequest{Settings: settings, Now: time.Now()})
			if err == nil {
				t.Fatal("CreateRoot succeeded without Vault's answer")
			}
			t.Logf("error: %v", err)
			if strings.Contains(err.Error(), e.role.secretID) {
				t.Errorf("error %q holds the secret ID", err)
			}
			if st := statuses(); len(st) != 1 || st[0] != http.StatusOK {
				t.Fatalf("Vault answered the generate requests with %v, want one 200 (Vault generated the root)", st)
			}
			if st := e.state(t); len(st.issuers) != 0 || len(st.keys) != 0 {
				t.Errorf("left in the mount: issuers %v, keys %v", st.issuers, st.keys)
			}
		})
	}
}
