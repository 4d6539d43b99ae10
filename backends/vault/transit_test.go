package vault

import (
	"context"
	"crypto"
	"crypto/x509"
	"encoding/json"
	"errors"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hashicorp/vault/api"

	"github.com/chancery-pki/chancery/backends"
	"github.com/chancery-pki/chancery/ca"
	"github.com/chancery-pki/chancery/conformance"
	"github.com/chancery-pki/chancery/signer"
)

// transitEnv is a fresh transit mount and an AppRole limited to
// TransitPolicy(mount, ""), for the default key name.
type transitEnv struct {
	srv   *devServer
	mount string
	role  *appRole
}

func newTransitEnv(t testing.TB) *transitEnv {
	t.Helper()
	srv := vaultServer(t)
	m := srv.newTransitMount(t)
	return &transitEnv{srv: srv, mount: m, role: srv.newAppRole(t, TransitPolicy(m, ""), nil)}
}

// settings are the init settings that reach e's mount with role.
func (e *transitEnv) settings(role *appRole) backends.Settings {
	return backends.Settings{
		SettingAddress:             e.srv.Addr,
		SettingEngine:              EngineTransit,
		SettingMount:               e.mount,
		SettingAppRoleRoleIDFile:   role.roleIDFile,
		SettingAppRoleSecretIDFile: role.secretIDFile,
	}
}

// keys lists the mount's transit keys.
func (e *transitEnv) keys(t testing.TB) []string {
	t.Helper()
	return e.srv.list(t, e.mount+"/keys")
}

// createTransitRootFor runs the registered backend's CreateRoot with the
// transit engine and closes the Signer when the test ends.
func createTransitRootFor(t testing.TB, settings backends.Settings, alg string) (*TransitSigner, backends.Settings) {
	t.Helper()
	s, out := createWith(t, settings, alg)
	return s.(*TransitSigner), out
}

// openWith opens the root recorded in out as an AppRole limited to the run
// policy pinned to its key, as a running manager does.
func (e *transitEnv) openWith(t testing.TB, out backends.Settings, chain []*x509.Certificate) (*TransitSigner, *appRole) {
	t.Helper()
	run := e.srv.newAppRole(t, TransitRunPolicy(e.mount, out[SettingKey]), nil)
	s := out.Clone()
	s[SettingAppRoleRoleIDFile], s[SettingAppRoleSecretIDFile] = run.roleIDFile, run.secretIDFile
	sg, err := Backend{}.Open(context.Background(), backends.OpenRequest{Settings: s, Chain: chain})
	if err != nil {
		t.Fatalf("Open under the run policy: %v", err)
	}
	ts := sg.(*TransitSigner)
	t.Cleanup(func() { ts.Close() })
	return ts, run
}

// newTransitTestSignerAlg makes a root in a fresh transit mount under the
// init policy, and returns it opened again under the run policy.
func newTransitTestSignerAlg(t testing.TB, alg string) (*TransitSigner, *transitEnv) {
	t.Helper()
	e := newTransitEnv(t)
	created, out := createTransitRootFor(t, e.settings(e.role), alg)
	s, _ := e.openWith(t, out, created.Chain())
	return s, e
}

func newTransitTestSigner(t testing.TB) (*TransitSigner, *transitEnv) {
	return newTransitTestSignerAlg(t, "")
}

// TestTransitConformance runs the shared suite, with no option at all,
// against roots whose keys are in a real Vault's transit engine, signing as
// an AppRole limited to TransitRunPolicy.
func TestTransitConformance(t *testing.T) {
	for _, alg := range []string{"P-256", "P-384", "RSA-3072"} {
		t.Run(alg, func(t *testing.T) {
			conformance.Run(t, func(t *testing.T) signer.Signer {
				s, _ := newTransitTestSignerAlg(t, alg)
				return s
			}, conformance.Options{})
		})
	}
}

// TestTransitCreateRoot checks what init leaves: a key that cannot leave
// Vault, the settings that reopen it, and a root signed by it.
func TestTransitCreateRoot(t *testing.T) {
	e := newTransitEnv(t)
	s, out := createTransitRootFor(t, e.settings(e.role), "P-384")
	name := out[SettingKey]
	if name != DefaultTransitKey || out[SettingKeyVersion] != "1" || out[SettingGenerated] != "true" ||
		out[SettingEngine] != EngineTransit || out[SettingMount] != e.mount {
		t.Errorf("settings %v", out)
	}
	for k := range out {
		if strings.Contains(out[k], e.role.secretID) || strings.Contains(out[k], e.role.roleID) {
			t.Errorf("setting %s holds a secret", k)
		}
	}
	root := s.Chain()[0]
	if err := ca.CheckRootCA(root, root.PublicKey, time.Now()); err != nil {
		t.Errorf("root: %v", err)
	}
	if err := root.CheckSignatureFrom(root); err != nil {
		t.Errorf("root signature: %v", err)
	}
	key := e.srv.read(t, e.mount+"/keys/"+name).Data
	if key["type"] != "ecdsa-p384" || key["exportable"] != false || key["allow_plaintext_backup"] != false || key["deletion_allowed"] != false {
		t.Errorf("key %s: type %v exportable %v plaintext backup %v deletion allowed %v", name, key["type"], key["exportable"], key["allow_plaintext_backup"], key["deletion_allowed"])
	}
	// The private key cannot be read out, even with the root token.
	if _, err := e.srv.Root.Logical().Read(e.mount + "/export/signing-key/" + name); err == nil {
		t.Error("Vault exported the root's private key")
	}
	d := s.Describe().String()
	for _, want := range []string{"engine=transit", "key=" + name, "version=1", "auth=approle", "key_type=ecdsa-p384",
		"exportable=false", "allow_plaintext_backup=false", "imported=false", "deletion_allowed=false"} {
		if !strings.Contains(d, want) {
			t.Errorf("description %q lacks %q", d, want)
		}
	}
}

// TestTransitRunPolicyRefuses shows what the run policy keeps a manager
// from doing: anything to the key but reading and signing, and signing
// with any other key.
func TestTransitRunPolicyRefuses(t *testing.T) {
	e := newTransitEnv(t)
	created, out := createTransitRootFor(t, e.settings(e.role), "")
	s, _ := e.openWith(t, out, created.Chain())
	name := out[SettingKey]
	other := "chancery-root-other"
	e.srv.write(t, e.mount+"/keys/"+other, map[string]any{"type": "ecdsa-p256"})
	l := s.conn.client.Logical()
	for _, tc := range []struct{ method, path string }{
		{http.MethodPost, "/keys/" + name + "/rotate"},
		{http.MethodPost, "/keys/" + name + "/config"},
		{http.MethodPost, "/keys/" + name + "/trim"},
		{http.MethodDelete, "/keys/" + name},
		{http.MethodGet, "/export/signing-key/" + name},
		{http.MethodGet, "/backup/" + name},
		{http.MethodPost, "/keys/chancery-root-new"},
		{http.MethodPost, "/sign/" + other},
		{http.MethodPost, "/sign/" + name + "/sha2-256"},
	} {
		var err error
		p := e.mount + tc.path
		data := map[string]any{"input": "AAAA", "type": "ecdsa-p256", "deletion_allowed": true}
		switch tc.method {
		case http.MethodPost:
			_, err = l.Write(p, data)
		case http.MethodDelete:
			_, err = l.Delete(p)
		default:
			_, err = l.Read(p)
		}
		var re *api.ResponseError
		if !errors.As(err, &re) || re.StatusCode != http.StatusForbidden {
			t.Errorf("%s %s under the run policy: %v, want 403", tc.method, p, err)
		}
	}
	if _, err := s.Sign(context.Background(), nodeRequest(t, s.Chain()[0], ca.RoleManager, time.Now())); err != nil {
		t.Errorf("Sign under the run policy: %v", err)
	}
}

// TestTransitPinnedVersion: a rotation of the transit key in Vault does not
// change the key that signs for the cluster.
func TestTransitPinnedVersion(t *testing.T) {
	s, e := newTransitTestSigner(t)
	e.srv.write(t, e.mount+"/keys/"+s.KeyName()+"/rotate", nil)
	root := s.Chain()[0]
	req := nodeRequest(t, root, ca.RoleWorker, time.Now())
	cert, err := s.Sign(context.Background(), req)
	if err != nil {
		t.Fatalf("Sign after a rotation: %v", err)
	}
	if err := cert.CheckSignatureFrom(root); err != nil {
		t.Errorf("a certificate signed after the key's rotation does not verify under the root: %v", err)
	}
	if s.KeyVersion() != 1 {
		t.Errorf("key version %d, want 1", s.KeyVersion())
	}
}

// TestTransitAdoptKey: init with --vault-key uses a key made beforehand,
// needing only the run policy, and never deletes it; a key that could leave
// Vault is refused.
func TestTransitAdoptKey(t *testing.T) {
	e := newTransitEnv(t)
	e.srv.write(t, e.mount+"/keys/team-root", map[string]any{"type": "ecdsa-p384"})
	run := e.srv.newAppRole(t, TransitRunPolicy(e.mount, "team-root"), nil)
	settings := e.settings(run)
	settings[SettingKey] = "team-root"
	s, out := createTransitRootFor(t, settings, "")
	if out[SettingGenerated] != "false" || out[SettingKey] != "team-root" {
		t.Errorf("settings %v", out)
	}
	if _, err := s.Sign(context.Background(), nodeRequest(t, s.Chain()[0], ca.RoleWorker, time.Now())); err != nil {
		t.Errorf("Sign: %v", err)
	}
	if err := (Backend{}).DeleteRoot(context.Background(), "", out); err != nil {
		t.Errorf("DeleteRoot of an adopted key: %v", err)
	}
	if !slices.Contains(e.keys(t), "team-root") {
		t.Error("DeleteRoot deleted a key init adopted")
	}
	// --key-algorithm must agree with the key.
	_, _, err := Backend{}.CreateRoot(context.Background(), backends.CreateRootRequest{Settings: settings, KeyAlgorithm: "P-256", Now: time.Now()})
	wantError(t, err, ErrConfig)

	for _, tc := range []struct {
		name   string
		params map[string]any
		want   string
	}{
		{"Exportable", map[string]any{"type": "ecdsa-p256", "exportable": true}, "exportable"},
		{"PlaintextBackup", map[string]any{"type": "ecdsa-p256", "allow_plaintext_backup": true}, "plaintext backups"},
		{"Encryption", map[string]any{"type": "aes256-gcm96"}, "cannot sign"},
		{"Ed25519", map[string]any{"type": "ed25519"}, "unsupported"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			name := "team-" + strings.ToLower(tc.name)
			e.srv.write(t, e.mount+"/keys/"+name, tc.params)
			settings := e.settings(e.srv.newAppRole(t, TransitRunPolicy(e.mount, name), nil))
			settings[SettingKey] = name
			before := e.keys(t)
			_, _, err := Backend{}.CreateRoot(context.Background(), backends.CreateRootRequest{Settings: settings, Now: time.Now()})
			wantError(t, err, ErrConfig)
			if !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error %q does not say %q", err, tc.want)
			}
			if after := e.keys(t); !slices.Equal(after, before) {
				t.Errorf("keys %v, were %v", after, before)
			}
		})
	}
}

// TestTransitOpenRefuses: Open checks the key against the cluster's root.
func TestTransitOpenRefuses(t *testing.T) {
	e := newTransitEnv(t)
	created, out := createTransitRootFor(t, e.settings(e.role), "")
	second := e.settings(e.srv.newAppRole(t, TransitPolicy(e.mount, "root-other"), nil))
	second[SettingKey] = "root-other"
	other, otherOut := createTransitRootFor(t, second, "")
	missing := e.srv.newAppRole(t, TransitRunPolicy(e.mount, "root-missing"), nil)
	for _, tc := range []struct {
		name  string
		edit  func(backends.Settings)
		chain []*x509.Certificate
		want  error
		says  string
	}{
		{"OtherRoot", nil, other.Chain(), ErrIssuerNotFound, "not the key of the cluster's root"},
		{"MissingKey", func(s backends.Settings) {
			s[SettingKey] = "root-missing"
			s[SettingAppRoleRoleIDFile], s[SettingAppRoleSecretIDFile] = missing.roleIDFile, missing.secretIDFile
		}, created.Chain(), ErrIssuerNotFound, "no key of that name"},
		{"MissingVersion", func(s backends.Settings) { s[SettingKeyVersion] = "7" }, created.Chain(), ErrConfig, "no version 7"},
		{"OtherKeysVersion", func(s backends.Settings) {
			s[SettingKey] = otherOut[SettingKey]
			s[SettingAppRoleRoleIDFile], s[SettingAppRoleSecretIDFile] = second[SettingAppRoleRoleIDFile], second[SettingAppRoleSecretIDFile]
		}, created.Chain(), ErrIssuerNotFound, "not the key of the cluster's root"},
		{"KeyOutsideThePolicy", func(s backends.Settings) { s[SettingKey] = otherOut[SettingKey] }, created.Chain(), ErrPermissionDenied, "keys/root-other"},
		{"WrongMount", func(s backends.Settings) { s[SettingMount] = "transit-missing" }, created.Chain(), ErrMountNotFound, "no transit secrets engine"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := out.Clone()
			if tc.edit != nil {
				tc.edit(s)
			}
			_, err := Backend{}.Open(context.Background(), backends.OpenRequest{Settings: s, Chain: tc.chain})
			wantError(t, err, tc.want, e.role.secretID, e.role.roleID)
			if !strings.Contains(err.Error(), tc.says) {
				t.Errorf("error %q does not say %q", err, tc.says)
			}
		})
	}
}

// TestTransitMountOfOtherEngine: a PKI mount named as the transit mount is
// reported as such.
func TestTransitMountOfOtherEngine(t *testing.T) {
	e := newTransitEnv(t)
	pki := e.srv.newMount(t)
	role := e.srv.newAppRole(t, TransitPolicy(pki, ""), nil)
	settings := e.settings(role)
	settings[SettingMount] = pki
	_, _, err := Backend{}.CreateRoot(context.Background(), backends.CreateRootRequest{Settings: settings, Now: time.Now()})
	wantError(t, err, ErrMountNotFound)
	if !strings.Contains(err.Error(), "is a pki secrets engine, not transit") {
		t.Errorf("error %q does not name the mount's engine", err)
	}
}

// TestTransitPolicyLacksPath takes each path out of TransitPolicy in turn:
// init fails with an error naming the path, and leaves no key behind. The
// token has no other policy, not even Vault's default.
func TestTransitPolicyLacksPath(t *testing.T) {
	for _, tc := range []struct{ path, mentions string }{
		{"MOUNT/keys/chancery-root", "/keys/chancery-root"},
		{"MOUNT/sign/chancery-root", "/sign/chancery-root"},
		{"auth/token/lookup-self", "lookup-self"},
	} {
		t.Run(strings.ReplaceAll(tc.path, "/", "_"), func(t *testing.T) {
			e := newTransitEnv(t)
			name := "lacking-" + randomHex(4)
			e.srv.write(t, "sys/policies/acl/"+name, map[string]any{"policy": policyWithout(t, TransitPolicy(e.mount, ""), e.mount, tc.path)})
			t.Cleanup(func() { e.srv.Root.Logical().Delete("sys/policies/acl/" + name) })
			token := e.srv.write(t, "auth/token/create", map[string]any{"policies": []string{name}, "no_default_policy": true, "ttl": "1h"}).Auth.ClientToken
			file := filepath.Join(t.TempDir(), "token")
			if err := os.WriteFile(file, []byte(token), 0o600); err != nil {
				t.Fatal(err)
			}
			settings := backends.Settings{SettingAddress: e.srv.Addr, SettingEngine: EngineTransit, SettingMount: e.mount, SettingTokenFile: file}
			_, _, err := Backend{}.CreateRoot(context.Background(), backends.CreateRootRequest{Settings: settings, Now: time.Now()})
			wantError(t, err, ErrPermissionDenied, token)
			if errors.Is(err, ErrTokenInvalid) {
				t.Errorf("error %q blames the token, not the policy", err)
			}
			if !strings.Contains(err.Error(), tc.mentions) {
				t.Errorf("error %q does not name %s", err, tc.mentions)
			}
			if keys := e.keys(t); len(keys) != 0 {
				t.Errorf("init left keys %v in the mount", keys)
			}
		})
	}
}

// TestTransitSealed: a sealed Vault is reported at once, and signing works
// again after unsealing.
func TestTransitSealed(t *testing.T) {
	s, e := newTransitTestSigner(t)
	req := nodeRequest(t, s.Chain()[0], ca.RoleWorker, time.Now())
	e.srv.seal(t)
	sealed := true
	t.Cleanup(func() {
		if sealed {
			e.srv.unseal(t)
		}
	})
	start := time.Now()
	_, err := s.Sign(context.Background(), req)
	wantError(t, err, ErrSealed)
	if d := time.Since(start); d > 2*time.Second {
		t.Errorf("took %s: a sealed Vault is not a transient failure to retry", d)
	}
	e.srv.unseal(t)
	sealed = false
	if _, err := s.Sign(context.Background(), req); err != nil {
		t.Errorf("Sign after unsealing: %v", err)
	}
}

// TestTransitSignHonoursContext: a request whose context has ended is not
// signed.
func TestTransitSignHonoursContext(t *testing.T) {
	s, _ := newTransitTestSigner(t)
	ctx, cancel := context.WithCancel(context.Background())
	req := nodeRequest(t, s.Chain()[0], ca.RoleWorker, time.Now())
	cancel()
	if _, err := s.Sign(ctx, req); !errors.Is(err, context.Canceled) {
		t.Errorf("Sign with a cancelled context: %v", err)
	}
	// The key itself, as the local issuer calls it.
	if _, err := s.key.SignContext(ctx, nil, make([]byte, 32), crypto.SHA256); !errors.Is(err, context.Canceled) {
		t.Errorf("SignContext with a cancelled context: %v", err)
	}
}

// TestTransitRevokedToken: a revoked token is reported as such, on every
// call, and never appears in the error.
func TestTransitRevokedToken(t *testing.T) {
	e := newTransitEnv(t)
	name := "tok-" + randomHex(4)
	e.srv.write(t, "sys/policies/acl/"+name, map[string]any{"policy": TransitPolicy(e.mount, "")})
	t.Cleanup(func() { e.srv.Root.Logical().Delete("sys/policies/acl/" + name) })
	token := e.srv.write(t, "auth/token/create", map[string]any{"policies": []string{name}, "no_default_policy": true, "ttl": "1h"}).Auth.ClientToken
	file := filepath.Join(t.TempDir(), "token")
	if err := os.WriteFile(file, []byte(token+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	settings := backends.Settings{SettingAddress: e.srv.Addr, SettingEngine: EngineTransit, SettingMount: e.mount, SettingTokenFile: file}
	s, out := createTransitRootFor(t, settings, "")
	e.srv.write(t, "auth/token/revoke", map[string]any{"token": token})
	before := e.keys(t)
	for _, tc := range []struct {
		name string
		run  func() error
	}{
		{"Sign", func() error {
			_, err := s.Sign(context.Background(), nodeRequest(t, s.Chain()[0], ca.RoleManager, time.Now()))
			return err
		}},
		{"CreateCSR", func() error {
			_, err := s.CreateCSR(context.Background(), &x509.CertificateRequest{RawSubject: s.Chain()[0].RawSubject})
			return err
		}},
		{"Open", func() error {
			_, err := Backend{}.Open(context.Background(), backends.OpenRequest{Settings: out, Chain: s.Chain()})
			return err
		}},
		{"CreateRoot", func() error {
			_, _, err := Backend{}.CreateRoot(context.Background(), backends.CreateRootRequest{Settings: settings, Now: time.Now()})
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
	if after := e.keys(t); !slices.Equal(after, before) {
		t.Errorf("keys %v, were %v", after, before)
	}
}

// TestTransitCreateRootAnswerLost: Vault creates the key or signs the root,
// but chancery gets no usable answer. CreateRoot fails, does not create a
// key again, and leaves no key in the mount.
func TestTransitCreateRootAnswerLost(t *testing.T) {
	var posts atomic.Int32
	onlyPost := func(mod func(*http.Response) error) func(*http.Response) error {
		return func(resp *http.Response) error {
			if (resp.Request.Method != http.MethodPost && resp.Request.Method != http.MethodPut) || strings.HasSuffix(resp.Request.URL.Path, "/config") {
				return nil
			}
			posts.Add(1)
			return mod(resp)
		}
	}
	for _, tc := range []struct {
		name, match string
		mod         func(*http.Response) error
	}{
		{"Create502", "/keys/chancery-root", func(resp *http.Response) error {
			replaceBody(resp, http.StatusBadGateway, []byte(`{"errors":["upstream hiccup"]}`))
			return nil
		}},
		{"SignatureGarbled", "/sign/chancery-root", func(resp *http.Response) error {
			return editData(resp, func(d map[string]any) { d["signature"] = "vault:v1:MAYCAQECAQI=" })
		}},
		{"SignatureOfOtherVersion", "/sign/chancery-root", func(resp *http.Response) error {
			return editData(resp, func(d map[string]any) { d["signature"] = "vault:v2:MAYCAQECAQI=" })
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newTransitEnv(t)
			posts.Store(0)
			addr, _ := lostAnswerProxy(t, e.srv.Addr, tc.match, onlyPost(tc.mod))
			settings := e.settings(e.role)
			settings[SettingAddress] = addr
			_, _, err := Backend{}.CreateRoot(context.Background(), backends.CreateRootRequest{Settings: settings, Now: time.Now()})
			if err == nil {
				t.Fatal("CreateRoot succeeded without Vault's answer")
			}
			t.Logf("error: %v", err)
			if strings.Contains(err.Error(), e.role.secretID) {
				t.Errorf("error %q holds the secret ID", err)
			}
			if n := posts.Load(); n != 1 {
				t.Errorf("%d requests to %s, want 1: a call Vault may have acted on is not sent again", n, tc.match)
			}
			if keys := e.keys(t); len(keys) != 0 {
				t.Errorf("left in the mount: keys %v", keys)
			}
		})
	}
}

// TestTransitInitPolicyConfined: the init policy reaches its own key name
// only, and cannot make the key leave Vault or weaken it: no exportable
// key, no config but deletion_allowed, no rotate, trim, export or backup,
// and nothing on another cluster's key in the same mount.
func TestTransitInitPolicyConfined(t *testing.T) {
	e := newTransitEnv(t)
	s, _ := createTransitRootFor(t, e.settings(e.role), "")
	e.srv.write(t, e.mount+"/keys/other-cluster", map[string]any{"type": "ecdsa-p256"})
	l := s.conn.client.Logical()
	k := e.mount + "/keys/" + DefaultTransitKey
	for _, tc := range []struct {
		method, path string
		data         map[string]any
	}{
		{http.MethodPost, k + "/config", map[string]any{"exportable": true}},
		{http.MethodPost, k + "/config", map[string]any{"allow_plaintext_backup": true}},
		{http.MethodPost, k + "/config", map[string]any{"min_decryption_version": 2}},
		{http.MethodPost, k, map[string]any{"type": "ecdsa-p256", "exportable": true}},
		{http.MethodPost, k, map[string]any{"type": "ecdsa-p256", "allow_plaintext_backup": true}},
		{http.MethodPost, k, map[string]any{"type": "ed25519"}},
		{http.MethodPost, k + "/rotate", nil},
		{http.MethodPost, k + "/trim", map[string]any{"min_available_version": 2}},
		{http.MethodGet, e.mount + "/export/signing-key/" + DefaultTransitKey, nil},
		{http.MethodGet, e.mount + "/backup/" + DefaultTransitKey, nil},
		{http.MethodPost, e.mount + "/keys/" + DefaultTransitKey + "-2", map[string]any{"type": "ecdsa-p256"}},
		{http.MethodPost, e.mount + "/sign/other-cluster", map[string]any{"input": "AAAA"}},
		{http.MethodGet, e.mount + "/keys/other-cluster", nil},
		{http.MethodPost, e.mount + "/keys/other-cluster/config", map[string]any{"deletion_allowed": true}},
		{http.MethodDelete, e.mount + "/keys/other-cluster", nil},
	} {
		var err error
		switch tc.method {
		case http.MethodPost:
			_, err = l.Write(tc.path, tc.data)
		case http.MethodDelete:
			_, err = l.Delete(tc.path)
		default:
			_, err = l.Read(tc.path)
		}
		var re *api.ResponseError
		if !errors.As(err, &re) || re.StatusCode != http.StatusForbidden {
			t.Errorf("%s %s %v under the init policy: %v, want 403", tc.method, tc.path, tc.data, err)
		}
	}
	key := e.srv.read(t, k).Data
	if key["exportable"] != false || key["allow_plaintext_backup"] != false || key["latest_version"] != json.Number("1") {
		t.Errorf("the root key changed: exportable %v, plaintext backup %v, latest version %v", key["exportable"], key["allow_plaintext_backup"], key["latest_version"])
	}
}

// TestTransitOpenRefusesWeakenedKey: a key made exportable, or allowed
// plaintext backups, after init, or whose pinned version Vault no longer
// signs with, is refused when the manager opens it, with what to do.
func TestTransitOpenRefusesWeakenedKey(t *testing.T) {
	for _, tc := range []struct {
		name   string
		weaken func(e *transitEnv, key string)
		says   string
	}{
		{"Exportable", func(e *transitEnv, key string) {
			e.srv.write(t, e.mount+"/keys/"+key+"/config", map[string]any{"exportable": true})
		}, "exportable"},
		{"PlaintextBackup", func(e *transitEnv, key string) {
			e.srv.write(t, e.mount+"/keys/"+key+"/config", map[string]any{"allow_plaintext_backup": true})
		}, "plaintext backups"},
		{"MinEncryptionVersion", func(e *transitEnv, key string) {
			e.srv.write(t, e.mount+"/keys/"+key+"/rotate", nil)
			e.srv.write(t, e.mount+"/keys/"+key+"/config", map[string]any{"min_encryption_version": 2})
		}, "min_encryption_version 2"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newTransitEnv(t)
			created, out := createTransitRootFor(t, e.settings(e.role), "")
			tc.weaken(e, out[SettingKey])
			_, err := Backend{}.Open(context.Background(), backends.OpenRequest{Settings: out, Chain: created.Chain()})
			wantError(t, err, ErrConfig, e.role.secretID)
			if !strings.Contains(err.Error(), tc.says) {
				t.Errorf("error %q does not say %q", err, tc.says)
			}
		})
	}
}

// TestTransitDefaultKeyExists: init without --vault-key never takes over a
// key that exists; named explicitly, the key is adopted and never deleted.
func TestTransitDefaultKeyExists(t *testing.T) {
	e := newTransitEnv(t)
	first, _ := createTransitRootFor(t, e.settings(e.role), "")
	_, _, err := Backend{}.CreateRoot(context.Background(), backends.CreateRootRequest{Settings: e.settings(e.role), Now: time.Now()})
	wantError(t, err, ErrConfig, e.role.secretID)
	if !strings.Contains(shown(err), "--vault-key "+DefaultTransitKey) {
		t.Errorf("error %q does not say how to use it", shown(err))
	}
	explicit := e.settings(e.role)
	explicit[SettingKey] = DefaultTransitKey
	s, out := createTransitRootFor(t, explicit, "")
	if out[SettingGenerated] != "false" || !signer.SamePublicKey(s.Chain()[0].PublicKey, first.Chain()[0].PublicKey) {
		t.Errorf("settings %v: want the existing key adopted", out)
	}
	if err := (Backend{}).DeleteRoot(context.Background(), "", out); err != nil {
		t.Fatal(err)
	}
	if !slices.Contains(e.keys(t), DefaultTransitKey) {
		t.Error("DeleteRoot deleted an adopted key")
	}
}

// TestTransitKeyAppearsDuringCreate: when Vault says the key it was asked
// to create existed already (made by someone else since chancery looked),
// init does not take it over unless it was named, and never deletes it.
func TestTransitKeyAppearsDuringCreate(t *testing.T) {
	e := newTransitEnv(t)
	addr, _ := lostAnswerProxy(t, e.srv.Addr, "/keys/"+DefaultTransitKey, func(resp *http.Response) error {
		if resp.Request.Method != http.MethodPut && resp.Request.Method != http.MethodPost || strings.HasSuffix(resp.Request.URL.Path, "/config") {
			return nil
		}
		var body map[string]any
		if err := json.NewDecoder(resp.Body).Decode(&body); err != nil {
			return err
		}
		body["warnings"] = []string{"key " + DefaultTransitKey + " already existed"}
		b, _ := json.Marshal(body)
		replaceBody(resp, resp.StatusCode, b)
		return nil
	})
	settings := e.settings(e.role)
	settings[SettingAddress] = addr
	_, _, err := Backend{}.CreateRoot(context.Background(), backends.CreateRootRequest{Settings: settings, Now: time.Now()})
	wantError(t, err, ErrConfig)
	if !strings.Contains(err.Error(), "exists already") {
		t.Errorf("error %q", err)
	}
	if !slices.Contains(e.keys(t), DefaultTransitKey) {
		t.Error("init deleted a key it did not create")
	}
}

// TestTransitUndoFails: when init fails and its undo is refused too, the
// error says which key may be left and how to delete it.
func TestTransitUndoFails(t *testing.T) {
	e := newTransitEnv(t)
	hcl := policyWithout(t, TransitPolicy(e.mount, ""), e.mount, "MOUNT/sign/"+DefaultTransitKey)
	hcl = policyWithout(t, hcl, e.mount, "MOUNT/keys/"+DefaultTransitKey+"/config")
	role := e.srv.newAppRole(t, hcl, nil)
	_, _, err := Backend{}.CreateRoot(context.Background(), backends.CreateRootRequest{Settings: e.settings(role), Now: time.Now()})
	wantError(t, err, ErrPermissionDenied, role.secretID)
	for _, want := range []string{"/sign/" + DefaultTransitKey, "transit key " + DefaultTransitKey + " may be left in Vault", "deletion_allowed=true"} {
		if !strings.Contains(shown(err), want) {
			t.Errorf("error %q does not say %q", shown(err), want)
		}
	}
}

// TestTransitNestedMount: a mount path inside a transit mount is not taken
// for the mount itself.
func TestTransitNestedMount(t *testing.T) {
	e := newTransitEnv(t)
	role := e.srv.newAppRole(t, TransitPolicy(e.mount+"/sub", "")+TransitRunPolicy(e.mount, "x"), nil)
	settings := e.settings(role)
	settings[SettingMount] = e.mount + "/sub"
	_, _, err := Backend{}.CreateRoot(context.Background(), backends.CreateRootRequest{Settings: settings, Now: time.Now()})
	wantError(t, err, ErrMountNotFound, role.secretID)
	if !strings.Contains(err.Error(), "inside mount") {
		t.Errorf("error %q does not say the path is inside another mount", err)
	}
	if keys := e.keys(t); len(keys) != 0 {
		t.Errorf("keys %v", keys)
	}
}
