package rotation

import (
	"context"
	"errors"
	"io"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/chancery-pki/chancery/backends"
	"github.com/chancery-pki/chancery/backends/cfssl"
	_ "github.com/chancery-pki/chancery/backends/file"
	"github.com/chancery-pki/chancery/backends/pkcs11"
	"github.com/chancery-pki/chancery/backends/stepca"
	"github.com/chancery-pki/chancery/backends/vault"
	"github.com/chancery-pki/chancery/internal/cfssldev"
	"github.com/chancery-pki/chancery/internal/stepcadev"
	"github.com/chancery-pki/chancery/internal/vaultdev"
	"github.com/chancery-pki/chancery/signer"
	"github.com/chancery-pki/chancery/softhsm"
)

func TestMain(m *testing.M) {
	code := softhsm.Main(m)
	vaultdev.StopShared()
	os.Exit(code)
}

// rootFactory makes a fresh cluster root in one backend with its real peer,
// through the backends registry as `chancery init` does, closed when the
// test ends.
type rootFactory struct {
	name string
	make func(t *testing.T) signer.Signer
}

func createRoot(t *testing.T, backend string, settings backends.Settings) signer.Signer {
	t.Helper()
	b, err := backends.Get(backend)
	if err != nil {
		t.Fatal(err)
	}
	s, _, err := b.CreateRoot(context.Background(), backends.CreateRootRequest{
		DataDir: t.TempDir(), Settings: settings, CommonName: "swarm-ca", Now: time.Now(),
	})
	if err != nil {
		t.Fatalf("%s: CreateRoot: %v", backend, err)
	}
	if c, ok := s.(io.Closer); ok {
		t.Cleanup(func() { c.Close() })
	}
	return s
}

// vaultSettings enables a fresh mount of engine on the shared Vault dev
// server and returns settings that reach it with a root-token file.
func vaultSettings(t *testing.T, engine string) backends.Settings {
	t.Helper()
	srv := vaultdev.Require(t)
	mount := engine + "-" + vaultdev.RandomHex(4)
	if _, err := srv.Root.Logical().Write("sys/mounts/"+mount, map[string]any{"type": engine}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { srv.Root.Logical().Delete("sys/mounts/" + mount) })
	tokenFile := filepath.Join(t.TempDir(), "token")
	if err := os.WriteFile(tokenFile, []byte(srv.RootToken), 0o600); err != nil {
		t.Fatal(err)
	}
	return backends.Settings{vault.SettingAddress: srv.Addr, vault.SettingEngine: engine, vault.SettingMount: mount, vault.SettingTokenFile: tokenFile}
}

var factories = []rootFactory{
	{"file", func(t *testing.T) signer.Signer { return createRoot(t, "file", backends.Settings{}) }},
	{"pkcs11", func(t *testing.T) signer.Signer {
		return createRoot(t, pkcs11.Name, backends.Settings{pkcs11.SettingURI: softhsm.NewToken(t).URI("root")})
	}},
	{"vault-pki", func(t *testing.T) signer.Signer { return createRoot(t, vault.Name, vaultSettings(t, vault.EnginePKI)) }},
	{"vault-transit", func(t *testing.T) signer.Signer {
		return createRoot(t, vault.Name, vaultSettings(t, vault.EngineTransit))
	}},
	// An external CA: a cfssl serve of its own, whose CA is the root.
	{"cfssl", func(t *testing.T) signer.Signer {
		srv := cfssldev.Start(t, cfssldev.Options{})
		spec := "protocol=cfssl,url=" + srv.SignURL + ",cacert=" + srv.BundleFile
		return createRoot(t, cfssl.Name, cfssl.NewSettings([]string{spec}, ""))
	}},
	// An external CA: a step-ca of its own that signs with its root (so
	// that it can be rotated into) and issues CA certificates.
	{"stepca", func(t *testing.T) signer.Signer {
		srv := stepcadev.Start(t, stepcadev.Options{RootSigns: true, CrossSign: true})
		return createRoot(t, stepca.Name, srv.Settings())
	}},
}

// externalCAs are the factories whose CA signs only CSRs and cannot make
// one for its own key.
var externalCAs = map[string]bool{"cfssl": true, "stepca": true}

// TestCrossSignMatrix rotates between every pair of backends, each with
// its real peer (SoftHSM2, a Vault dev server, cfssl serve, step-ca): the
// current root's backend cross-signs the new root by the path their capabilities
// allow (from one external CA to another, through a bridge key), and a
// node certificate from the new root then verifies against the old root
// through what CrossSign returns, and against the new root.
func TestCrossSignMatrix(t *testing.T) {
	for _, old := range factories {
		for _, next := range factories {
			t.Run(old.name+"_to_"+next.name, func(t *testing.T) {
				now := time.Now()
				o, n := old.make(t), next.make(t)
				// What the backends declare: an external CA (CFSSL,
				// step-ca) signs only CSRs and cannot make one for its own
				// key; every other backend signs a public key alone and
				// makes CSRs.
				want := PathPublicKey
				switch {
				case externalCAs[old.name] && externalCAs[next.name]:
					want = PathBridge
				case externalCAs[old.name]:
					want = PathCSR
				}
				if path := ChoosePath(o, n); path != want {
					t.Errorf("ChoosePath = %v, want %v", path, want)
				}
				if want == PathBridge {
					if _, err := CrossSign(context.Background(), o, n, Options{Now: now}); !errors.Is(err, ErrNeedsBridge) {
						t.Errorf("without AllowBridge: %v, want ErrNeedsBridge", err)
					}
				}
				appendix, err := CrossSign(context.Background(), o, n, Options{Now: now, AllowBridge: true})
				if err != nil {
					t.Fatalf("CrossSign: %v", err)
				}
				checkRotation(t, o, n, appendix, now)
			})
		}
	}
}
