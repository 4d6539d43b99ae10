package vault

import (
	"bytes"
	"context"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/chancery-pki/chancery/backends"
	"github.com/chancery-pki/chancery/ca"
	"github.com/chancery-pki/chancery/hint"
	"github.com/chancery-pki/chancery/internal/vaultdev"
	"github.com/chancery-pki/chancery/secretfile"
	"github.com/chancery-pki/chancery/signer"
)

// mountState is what a test checks was left unchanged: the issuers, keys and
// roles of a mount.
type mountState struct{ issuers, keys, roles []string }

func (e *env) state(t testing.TB) mountState {
	t.Helper()
	return mountState{
		issuers: e.srv.list(t, e.mount+"/issuers"),
		keys:    e.srv.list(t, e.mount+"/keys"),
		roles:   e.srv.list(t, e.mount+"/roles"),
	}
}

func (m mountState) equal(o mountState) bool {
	return slices.Equal(m.issuers, o.issuers) && slices.Equal(m.keys, o.keys) && slices.Equal(m.roles, o.roles)
}

// wantError checks that err matches want, starts with "vault: ", and leaks
// none of secrets.
func wantError(t *testing.T, err, want error, secrets ...string) {
	t.Helper()
	if err == nil {
		t.Fatalf("no error, want %v", want)
	}
	if !errors.Is(err, want) {
		t.Fatalf("error %q does not match %q", err, want)
	}
	t.Logf("error: %s", shown(err))
	if !strings.HasPrefix(err.Error(), "vault: ") {
		t.Errorf("error %q does not start with \"vault: \"", err)
	}
	for _, s := range secrets {
		if s != "" && strings.Contains(shown(err), s) {
			t.Errorf("error %q contains a secret", shown(err))
		}
	}
}

// shown is what a user sees of err: its message, then its hints.
func shown(err error) string {
	s := err.Error()
	for _, h := range hint.All(err) {
		s += "\nhint: " + h
	}
	return s
}

func TestSealed(t *testing.T) {
	s, e := newTestSigner(t)
	settings := e.settings()
	before := e.state(t)
	req := nodeRequest(t, s.Chain()[0], ca.RoleWorker, time.Now())
	e.srv.seal(t)
	sealed := true
	t.Cleanup(func() {
		if sealed {
			e.srv.unseal(t)
		}
	})

	for _, tc := range []struct {
		name string
		run  func() error
	}{
		{"Sign", func() error { _, err := s.Sign(context.Background(), req); return err }},
		{"CreateRoot", func() error {
			_, _, err := Backend{}.CreateRoot(context.Background(), backends.CreateRootRequest{Settings: settings, Now: time.Now()})
			return err
		}},
		{"Open", func() error {
			out := recordSettings(settings, s.issuerID, "", true)
			_, err := Backend{}.Open(context.Background(), backends.OpenRequest{Settings: out, Chain: s.Chain()})
			return err
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			start := time.Now()
			err := tc.run()
			wantError(t, err, ErrSealed, e.role.secretID, e.role.roleID)
			if !strings.Contains(shown(err), "unseal") {
				t.Errorf("error %q does not say to unseal Vault", shown(err))
			}
			if d := time.Since(start); d > 2*time.Second {
				t.Errorf("took %s: a sealed Vault is not a transient failure to retry", d)
			}
		})
	}
	e.srv.unseal(t)
	sealed = false
	if after := e.state(t); !after.equal(before) {
		t.Errorf("the mount changed while sealed: %+v, was %+v", after, before)
	}
	if _, err := s.Sign(context.Background(), req); err != nil {
		t.Errorf("Sign after unsealing: %v", err)
	}
}

// tokenEnv is a fresh mount and a token (in a file) whose only policy is
// Policy(mount): not even Vault's default policy.
func tokenEnv(t *testing.T) (e *env, token, file string) {
	t.Helper()
	e = newEnv(t)
	name := "tok-" + randomHex(4)
	e.srv.write(t, "sys/policies/acl/"+name, map[string]any{"policy": Policy(e.mount)})
	t.Cleanup(func() { e.srv.Root.Logical().Delete("sys/policies/acl/" + name) })
	sec := e.srv.write(t, "auth/token/create", map[string]any{"policies": []string{name}, "no_default_policy": true, "ttl": "1h"})
	token = sec.Auth.ClientToken
	file = filepath.Join(t.TempDir(), "token")
	if err := os.WriteFile(file, []byte(token+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	return e, token, file
}

func TestRevokedToken(t *testing.T) {
	e, token, file := tokenEnv(t)
	settings := backends.Settings{SettingAddress: e.srv.Addr, SettingMount: e.mount, SettingTokenFile: file}
	s, out := createRoot(t, settings, "")
	if _, err := s.Sign(context.Background(), nodeRequest(t, s.Chain()[0], ca.RoleWorker, time.Now())); err != nil {
		t.Fatal(err)
	}
	before := e.state(t)
	e.srv.write(t, "auth/token/revoke", map[string]any{"token": token})

	for _, tc := range []struct {
		name string
		run  func() error
	}{
		// A role the Signer has configured already.
		{"SignWorker", func() error {
			_, err := s.Sign(context.Background(), nodeRequest(t, s.Chain()[0], ca.RoleWorker, time.Now()))
			return err
		}},
		// A role it would have to configure first.
		{"SignManager", func() error {
			_, err := s.Sign(context.Background(), nodeRequest(t, s.Chain()[0], ca.RoleManager, time.Now()))
			return err
		}},
		{"CreateCSR", func() error {
			_, err := s.CreateCSR(context.Background(), &x509CSRTemplate)
			return err
		}},
		{"Open", func() error {
			_, err := Backend{}.Open(context.Background(), backends.OpenRequest{Settings: out, Chain: s.Chain()})
			return err
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.run()
			wantError(t, err, ErrTokenInvalid, token)
			if !errors.Is(err, ErrPermissionDenied) {
				t.Errorf("error %q does not match ErrPermissionDenied", err)
			}
		})
	}
	if after := e.state(t); !after.equal(before) {
		t.Errorf("the mount changed: %+v, was %+v", after, before)
	}
}

// TestAppRoleRevoked: with AppRole, a revoked token is replaced by a new
// login; when the secret ID is gone too, the error says so.
func TestAppRoleRevoked(t *testing.T) {
	s, e := newTestSigner(t)
	req := nodeRequest(t, s.Chain()[0], ca.RoleWorker, time.Now())
	revoke := func() {
		e.srv.write(t, "auth/token/revoke", map[string]any{"token": s.conn.client.Token()})
	}
	revoke()
	if _, err := s.Sign(context.Background(), req); err != nil {
		t.Fatalf("Sign after the token was revoked: %v (want a new AppRole login)", err)
	}
	if logins, _ := s.conn.auth.stats(); logins != 2 {
		t.Errorf("%d logins, want 2", logins)
	}
	before := e.state(t)
	revoke()
	e.srv.write(t, "auth/approle/role/"+e.role.name+"/secret-id-accessor/destroy", map[string]any{"secret_id_accessor": e.role.accessor})
	_, err := s.Sign(context.Background(), req)
	wantError(t, err, ErrTokenInvalid, e.role.secretID, e.role.roleID)
	if after := e.state(t); !after.equal(before) {
		t.Errorf("the mount changed: %+v, was %+v", after, before)
	}
}

func TestWrongMount(t *testing.T) {
	e := newEnv(t)
	before := e.state(t)
	for _, tc := range []struct {
		name     string
		settings func() backends.Settings
	}{
		// The AppRole's policy covers only e.mount: Vault answers 403 for
		// another path, and chancery tells a missing mount from a refusal.
		{"AppRole", func() backends.Settings {
			s := e.settings()
			s[SettingMount] = "nope-" + randomHex(3)
			return s
		}},
		// The root token may go anywhere: Vault answers "no handler".
		{"RootToken", func() backends.Settings {
			f := filepath.Join(t.TempDir(), "token")
			os.WriteFile(f, []byte(e.srv.RootToken), 0o600)
			return backends.Settings{SettingAddress: e.srv.Addr, SettingMount: "nope-" + randomHex(3), SettingTokenFile: f}
		}},
		// A mount that exists but is not PKI.
		{"NotPKI", func() backends.Settings {
			s := e.settings()
			s[SettingMount] = "secret"
			return s
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			settings := tc.settings()
			_, _, err := Backend{}.CreateRoot(context.Background(), backends.CreateRootRequest{Settings: settings, Now: time.Now()})
			wantError(t, err, ErrMountNotFound, e.srv.RootToken, e.role.secretID)
			if !strings.Contains(err.Error(), settings[SettingMount]) {
				t.Errorf("error %q does not name the mount", err)
			}
			settings[SettingIssuer] = "00000000-0000-0000-0000-000000000000"
			_, err = Backend{}.Open(context.Background(), backends.OpenRequest{Settings: settings})
			wantError(t, err, ErrMountNotFound, e.srv.RootToken, e.role.secretID)
		})
	}
	if after := e.state(t); !after.equal(before) {
		t.Errorf("the real mount changed: %+v, was %+v", after, before)
	}
}

func TestMissingIssuer(t *testing.T) {
	e := newEnv(t)
	settings := e.settings()
	settings[SettingIssuer] = "no-such-issuer"
	_, _, err := Backend{}.CreateRoot(context.Background(), backends.CreateRootRequest{Settings: settings, Now: time.Now()})
	wantError(t, err, ErrIssuerNotFound, e.role.secretID)
	_, err = Backend{}.Open(context.Background(), backends.OpenRequest{Settings: settings})
	wantError(t, err, ErrIssuerNotFound, e.role.secretID)
	if st := e.state(t); len(st.issuers)+len(st.keys)+len(st.roles) != 0 {
		t.Errorf("the mount is not empty: %+v", st)
	}
}

// policyWithout returns the policy full without the block for path
// (written with MOUNT for the mount).
func policyWithout(t *testing.T, full, mount, path string) string {
	t.Helper()
	p := strings.ReplaceAll(path, "MOUNT", mount)
	re := regexp.MustCompile(`(?s)path "` + regexp.QuoteMeta(p) + `" \{.*?\n\}\n`)
	out := re.ReplaceAllString(full, "")
	if out == full {
		t.Fatalf("no block for %s in the policy", p)
	}
	return out
}

// TestPolicyLacksPath takes each path out of Policy in turn and shows that
// chancery then fails where it needs it, with a clear error naming the
// path, and leaves the mount as it was: every path is needed, and none is
// too many. The token has no other policy, not even Vault's default.
func TestPolicyLacksPath(t *testing.T) {
	for _, tc := range []struct {
		path     string
		op       string // what fails without it
		mentions string // what the error names
	}{
		{"MOUNT/issuers/generate/root/internal", "CreateRoot", "generate/root"},
		{"MOUNT/roles/chancery-*", "SignNode", "/roles/chancery-"},
		{"MOUNT/sign/chancery-*", "SignNode", "/sign/chancery-"},
		{"MOUNT/issuer/+/sign-self-issued", "SignCA", "sign-self-issued"},
		{"MOUNT/intermediate/cross-sign", "CreateCSR", "intermediate/cross-sign"},
		{"MOUNT/issuer/+", "DeleteRoot", "/issuer/"},
		{"MOUNT/key/+", "DeleteRoot", "/key/"},
		{"MOUNT/roles", "DeleteRoot", "/roles"},
		{"auth/token/lookup-self", "Open", "lookup-self"},
	} {
		t.Run(strings.ReplaceAll(tc.path, "/", "_"), func(t *testing.T) {
			e := newEnv(t)
			// The root, made with the full policy.
			full, out := createRoot(t, e.settings(), "")
			if _, err := full.Sign(context.Background(), nodeRequest(t, full.Chain()[0], ca.RoleWorker, time.Now())); err != nil {
				t.Fatal(err)
			}
			name := "lacking-" + randomHex(4)
			e.srv.write(t, "sys/policies/acl/"+name, map[string]any{"policy": policyWithout(t, Policy(e.mount), e.mount, tc.path)})
			t.Cleanup(func() { e.srv.Root.Logical().Delete("sys/policies/acl/" + name) })
			token := e.srv.write(t, "auth/token/create", map[string]any{"policies": []string{name}, "no_default_policy": true, "ttl": "1h"}).Auth.ClientToken
			file := filepath.Join(t.TempDir(), "token")
			os.WriteFile(file, []byte(token), 0o600)
			limited := backends.Settings{}
			for k, v := range out {
				if k != SettingAppRoleRoleIDFile && k != SettingAppRoleSecretIDFile {
					limited[k] = v
				}
			}
			limited[SettingTokenFile] = file
			open := func() *Signer {
				s, err := Backend{}.Open(context.Background(), backends.OpenRequest{Settings: limited, Chain: full.Chain()})
				if err != nil {
					t.Fatalf("Open: %v", err)
				}
				t.Cleanup(func() { s.(*Signer).Close() })
				return s.(*Signer)
			}
			before := e.state(t)
			var err error
			switch tc.op {
			case "CreateRoot":
				create := backends.Settings{SettingAddress: e.srv.Addr, SettingMount: e.mount, SettingTokenFile: file}
				_, _, err = Backend{}.CreateRoot(context.Background(), backends.CreateRootRequest{Settings: create, Now: time.Now()})
			case "SignNode":
				_, err = open().Sign(context.Background(), nodeRequest(t, full.Chain()[0], ca.RoleManager, time.Now()))
			case "SignCA":
				_, err = open().Sign(context.Background(), crossSignRequest(t, full.Chain()[0]))
			case "CreateCSR":
				_, err = open().CreateCSR(context.Background(), &x509CSRTemplate)
			case "Open":
				_, err = Backend{}.Open(context.Background(), backends.OpenRequest{Settings: limited, Chain: full.Chain()})
			case "DeleteRoot":
				err = Backend{}.DeleteRoot(context.Background(), "", limited)
			}
			wantError(t, err, ErrPermissionDenied, token)
			if errors.Is(err, ErrTokenInvalid) {
				t.Errorf("error %q blames the token, not the policy", err)
			}
			if !strings.Contains(err.Error(), tc.mentions) {
				t.Errorf("error %q does not name the path (%s)", err, tc.mentions)
			}
			if after := e.state(t); tc.op != "DeleteRoot" && !after.equal(before) {
				t.Errorf("the mount changed: %+v, was %+v", after, before)
			}
		})
	}
}

// crossSignRequest asks for a CA certificate of cross-sign shape for a
// fresh root.
func crossSignRequest(t testing.TB, issuer *x509.Certificate) *signer.Request {
	t.Helper()
	k := newP256(t)
	root, err := signer.SelfSign(nil, k, ca.NewRootTemplate("swarm-ca", time.Now()))
	if err != nil {
		t.Fatal(err)
	}
	return &signer.Request{PublicKey: k.Public(), Profile: signer.ProfileCA, Template: &x509.Certificate{
		RawSubject: root.RawSubject, SubjectKeyId: root.SubjectKeyId,
		NotBefore: later(root.NotBefore, issuer.NotBefore), NotAfter: root.NotAfter.Add(-time.Hour),
		IsCA: true, BasicConstraintsValid: true, MaxPathLen: -1, KeyUsage: x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
	}}
}

func later(a, b time.Time) time.Time {
	if a.After(b) {
		return a
	}
	return b
}

// x509CSRTemplate asks for a CSR for the root's key with the root's
// subject and CA:TRUE, as a rotation out of Vault does.
var x509CSRTemplate = x509.CertificateRequest{
	Subject:         pkix.Name{CommonName: "swarm-ca"},
	ExtraExtensions: []pkix.Extension{vaultBasicConstraints},
}

// freeAddr returns an address on 127.0.0.1 where nothing listens.
func freeAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	return "http://" + addr
}

func TestUnreachable(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "token")
	os.WriteFile(file, []byte("hvs.CHANCERYUNREACHABLETOKEN0123"), 0o600)
	cfg := Config{Address: freeAddr(t), Mount: "pki", Issuer: "x", TokenFile: file, Retry: fastRetry}
	start := time.Now()
	_, err := Open(context.Background(), cfg, nil, nil)
	wantError(t, err, ErrUnreachable, "hvs.CHANCERYUNREACHABLETOKEN0123")
	if !strings.Contains(shown(err), "--vault-addr") {
		t.Errorf("error %q does not say what to check", shown(err))
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("took %s with %d short retries", d, fastRetry.Attempts)
	}
}

// flakyProxy forwards to Vault but answers 502 to the first n requests
// whose path contains match.
func flakyProxy(t *testing.T, target string, match string, n int64) (string, *atomic.Int64) {
	t.Helper()
	u, err := url.Parse(target)
	if err != nil {
		t.Fatal(err)
	}
	rp := httputil.NewSingleHostReverseProxy(u)
	var hits atomic.Int64
	ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if strings.Contains(r.URL.Path, match) && hits.Add(1) <= n {
			http.Error(w, `{"errors":["upstream hiccup"]}`, http.StatusBadGateway)
			return
		}
		rp.ServeHTTP(w, r)
	}))
	t.Cleanup(ts.Close)
	return ts.URL, &hits
}

func TestTransientRetried(t *testing.T) {
	e := newEnv(t)
	addr, hits := flakyProxy(t, e.srv.Addr, "/sign/", 2)
	settings := e.settings()
	settings[SettingAddress] = addr
	s, _ := createRoot(t, settings, "")
	s.conn.cfg.Retry = fastRetry
	if _, err := s.Sign(context.Background(), nodeRequest(t, s.Chain()[0], ca.RoleWorker, time.Now())); err != nil {
		t.Fatalf("Sign through two 502s: %v", err)
	}
	if n := hits.Load(); n != 3 {
		t.Errorf("%d sign requests, want 3 (two 502s, then success)", n)
	}
}

// TestCreateRootNotRetriedBlindly: a 502 on root generation may hide a
// root Vault made, so it is not sent again, and the error says so.
func TestCreateRootNotRetriedBlindly(t *testing.T) {
	e := newEnv(t)
	addr, hits := flakyProxy(t, e.srv.Addr, "/generate/root/", 1)
	settings := e.settings()
	settings[SettingAddress] = addr
	_, _, err := Backend{}.CreateRoot(context.Background(), backends.CreateRootRequest{Settings: settings, Now: time.Now()})
	wantError(t, err, ErrVault, e.role.secretID)
	if n := hits.Load(); n != 1 {
		t.Errorf("%d generate requests, want 1", n)
	}
	if st := e.state(t); len(st.issuers) != 0 {
		t.Errorf("issuers left: %v", st.issuers)
	}
}

// TestNoSecretsInErrorsOrLogs uses distinctive token and secret ID values
// and checks that no error and no log line carries them.
func TestNoSecretsInErrorsOrLogs(t *testing.T) {
	e := newEnv(t)
	var logs bytes.Buffer
	logger := slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	dir := t.TempDir()
	write := func(name, v string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(v), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	const (
		fakeToken    = "hvs.CHANCERYDISTINCTIVETOKEN0123456789"
		fakeSecretID = "CHANCERY-DISTINCTIVE-SECRET-ID-0123456789"
		envName      = "CHANCERY_TEST_VAULT_TOKEN"
	)
	t.Setenv(envName, fakeToken)
	s, _ := createRoot(t, e.settings(), "")
	for _, tc := range []struct {
		name string
		cfg  Config
	}{
		{"TokenFile", Config{TokenFile: write("token", fakeToken)}},
		{"TokenEnv", Config{TokenEnv: envName}},
		{"AppRoleBadSecretID", Config{AppRoleRoleIDFile: e.role.roleIDFile, AppRoleSecretIDFile: write("secret-id", fakeSecretID)}},
		{"AppRoleBadRoleID", Config{AppRoleRoleIDFile: write("role-id", fakeSecretID), AppRoleSecretIDFile: e.role.secretIDFile}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := tc.cfg
			cfg.Address, cfg.Mount, cfg.Issuer, cfg.Logger, cfg.Retry = e.srv.Addr, e.mount, s.issuerID, logger, fastRetry
			_, err := Open(context.Background(), cfg, nil, nil)
			wantError(t, err, ErrTokenInvalid, fakeToken, fakeSecretID, e.role.secretID, e.role.roleID)
		})
	}
	// A working Signer's renewals, retries and logins log nothing secret
	// either.
	clk := clockFake()
	cfg := Config{Address: e.srv.Addr, Mount: e.mount, Issuer: s.issuerID, AppRoleRoleIDFile: e.role.roleIDFile,
		AppRoleSecretIDFile: e.role.secretIDFile, Logger: logger, Clock: clk}
	good, err := Open(context.Background(), cfg, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer good.Close()
	token := good.conn.client.Token()
	e.srv.write(t, "auth/token/revoke", map[string]any{"token": token})
	if _, err := good.Sign(context.Background(), nodeRequest(t, good.Chain()[0], ca.RoleWorker, time.Now())); err != nil {
		t.Fatal(err)
	}
	advanceUntil(t, clk, good, func(logins, renewals int) bool { return renewals >= 1 })
	for _, secret := range []string{fakeToken, fakeSecretID, e.role.secretID, e.role.roleID, token, good.conn.client.Token()} {
		if strings.Contains(logs.String(), secret) {
			t.Errorf("the log contains a secret:\n%s", logs.String())
		}
	}
	if !strings.Contains(logs.String(), "authenticating again") {
		t.Errorf("the log does not record the new login:\n%s", logs.String())
	}
}

// TestTLS runs a Vault dev server over HTTPS: with its CA in --vault-ca-cert
// chancery works; without it, the error says to give the CA, at once.
func TestTLS(t *testing.T) {
	vaultServer(t) // skips or fails as the other tests do without vault
	bin, _ := vaultdev.Find()
	tlsSrv, err := vaultdev.Start(bin, true)
	if err != nil {
		t.Fatal(err)
	}
	defer tlsSrv.Stop()
	srv := &devServer{Server: tlsSrv}
	e := &env{srv: srv, mount: srv.newMount(t)}
	e.role = srv.newAppRole(t, Policy(e.mount), nil)
	settings := e.settings()
	settings[SettingCACert] = srv.CAPath
	s, _ := createRoot(t, settings, "")
	if _, err := s.Sign(context.Background(), nodeRequest(t, s.Chain()[0], ca.RoleWorker, time.Now())); err != nil {
		t.Fatal(err)
	}
	delete(settings, SettingCACert)
	start := time.Now()
	_, _, err = Backend{}.CreateRoot(context.Background(), backends.CreateRootRequest{Settings: settings, Now: time.Now()})
	wantError(t, err, ErrConfig, e.role.secretID)
	if !strings.Contains(shown(err), "--vault-ca-cert") || time.Since(start) > 2*time.Second {
		t.Errorf("error %q after %s: want an immediate hint to give the CA", shown(err), time.Since(start))
	}
}

// TestRoleDeletedUnderUs: when the role a Signer configured is deleted
// (by an operator, or a DeleteRoot elsewhere), the next Sign configures it
// again.
func TestRoleDeletedUnderUs(t *testing.T) {
	s, e := newTestSigner(t)
	req := nodeRequest(t, s.Chain()[0], ca.RoleWorker, time.Now())
	if _, err := s.Sign(context.Background(), req); err != nil {
		t.Fatal(err)
	}
	for _, r := range e.srv.list(t, e.mount+"/roles") {
		e.srv.Root.Logical().Delete(e.mount + "/roles/" + r)
	}
	if _, err := s.Sign(context.Background(), req); err != nil {
		t.Fatalf("Sign after the role was deleted: %v", err)
	}
	if roles := e.srv.list(t, e.mount+"/roles"); len(roles) != 1 {
		t.Errorf("roles %v", roles)
	}
}

// TestSecretFileRefused checks that a token, role ID or secret ID file that
// others may read or write, or that is not a regular file, is refused
// before it is read and before Vault is called (the address answers
// nothing: a call would fail as ErrUnreachable), with an error that names
// the file and the fix and never shows the secret.
func TestSecretFileRefused(t *testing.T) {
	dir := t.TempDir()
	const secret = "hvs.CHANCERYSECRETFILETOKEN0123"
	write := func(name string, mode os.FileMode) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(secret+"\n"), 0o600); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(p, mode); err != nil {
			t.Fatal(err)
		}
		return p
	}
	good := write("good", 0o600)
	fifo := filepath.Join(dir, "fifo")
	if err := syscall.Mkfifo(fifo, 0o600); err != nil {
		t.Fatal(err)
	}
	addr := freeAddr(t)
	for _, tc := range []struct {
		name   string
		cfg    func(bad string) Config
		mode   os.FileMode
		path   string // instead of a new file of mode mode
		want   string
		unsafe bool
	}{
		{"TokenWorldReadable", func(p string) Config { return Config{TokenFile: p} }, 0o644, "", "chmod 600", true},
		{"TokenGroupReadable", func(p string) Config { return Config{TokenFile: p} }, 0o640, "", "chmod 600", true},
		{"TokenReadOnlyGroup", func(p string) Config { return Config{TokenFile: p} }, 0o440, "", "mode 0440", true},
		{"RoleIDWorldReadable", func(p string) Config { return Config{AppRoleRoleIDFile: p, AppRoleSecretIDFile: good} }, 0o644, "", "chmod 600", true},
		{"SecretIDOthersWritable", func(p string) Config { return Config{AppRoleRoleIDFile: good, AppRoleSecretIDFile: p} }, 0o602, "", "chmod 600", true},
		{"TokenFIFO", func(p string) Config { return Config{TokenFile: p} }, 0, fifo, "not a regular file", false},
		{"ClientKeyGroupReadable", func(p string) Config { return Config{TokenFile: good, ClientCert: good, ClientKey: p} }, 0o640, "", "chmod 600", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := tc.path
			if p == "" {
				p = write(tc.name, tc.mode)
			}
			cfg := tc.cfg(p)
			cfg.Address, cfg.Mount, cfg.Issuer, cfg.Retry = addr, "pki", "x", fastRetry
			_, err := Open(context.Background(), cfg, nil, nil)
			wantError(t, err, ErrConfig, secret)
			if errors.Is(err, secretfile.ErrUnsafe) != tc.unsafe {
				t.Errorf("errors.Is(%v, secretfile.ErrUnsafe) = %v, want %v", err, !tc.unsafe, tc.unsafe)
			}
			if msg := err.Error(); !strings.Contains(msg, tc.want) || !strings.Contains(msg, p) {
				t.Errorf("error %q: want it to name %s and say %q", msg, p, tc.want)
			}
		})
	}
}
