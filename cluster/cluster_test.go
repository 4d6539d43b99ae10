package cluster

import (
	"bytes"
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"github.com/chancery-pki/chancery/internal/etcddev"
	"io"
	"io/fs"
	"math/big"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chancery-pki/chancery/audit"
	"github.com/chancery-pki/chancery/backends"
	"github.com/chancery-pki/chancery/backends/file"
	"github.com/chancery-pki/chancery/ca"
	"github.com/chancery-pki/chancery/certdir"
	"github.com/chancery-pki/chancery/conformance"
	"github.com/chancery-pki/chancery/issuer"
	"github.com/chancery-pki/chancery/signer"
	"github.com/chancery-pki/chancery/store"
)

// testNow is a whole second, so that the truncation of validity times
// changes nothing and durations can be compared exactly.
var testNow = time.Date(2025, 6, 1, 12, 0, 0, 0, time.UTC)

func fixedNow() time.Time { return testNow }

const (
	testListen   = "127.0.0.1:2378"
	testHostname = "manager-1"
)

// initRequest returns the request the tests start from: a fixed clock, a
// loopback address (so that no interface is probed) and a fixed host name.
func initRequest(dataDir string) InitRequest {
	return InitRequest{
		DataDir:    dataDir,
		ListenAddr: testListen,
		Hostname:   testHostname,
		Now:        fixedNow,
	}
}

func mustInit(t testing.TB, req InitRequest) *InitResult {
	t.Helper()
	if opts := etcddev.TestStoreOptions(t); opts != nil && req.Store.Type == "" {
		req.Store = store.Settings{Type: "etcd", Options: opts}
	}
	res, err := Init(context.Background(), req)
	if err != nil {
		t.Fatalf("Init: %v", err)
	}
	return res
}

func openStore(t testing.TB, dataDir string) store.Store {
	t.Helper()
	st, err := OpenStore(dataDir)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	return st
}

func clusterRecord(t testing.TB, st store.Store) store.Cluster {
	t.Helper()
	c, err := st.Cluster(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// newCluster creates a cluster in a fresh directory and returns its data
// directory, its store and an Authority over its root's Signer.
func newCluster(t testing.TB) (string, store.Store, *Authority) {
	t.Helper()
	dataDir := filepath.Join(t.TempDir(), "data")
	mustInit(t, initRequest(dataDir))
	st := openStore(t, dataDir)
	sg, err := OpenSigner(context.Background(), dataDir, clusterRecord(t, st), nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	return dataDir, st, NewAuthority(st, holderOf(t, sg), fixedNow)
}

// holderOf holds the Issuer of sg.
func holderOf(t testing.TB, sg signer.Signer) *issuer.Holder {
	t.Helper()
	iss, err := issuer.New(sg, issuer.Options{})
	if err != nil {
		t.Fatal(err)
	}
	return issuer.NewHolder(iss)
}

func newP256(t testing.TB) *ecdsa.PrivateKey {
	t.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

// newCSR returns a P-256 key and a DER CSR for it.
func newCSR(t testing.TB) (*ecdsa.PrivateKey, []byte) {
	t.Helper()
	key := newP256(t)
	der, err := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{Subject: pkix.Name{CommonName: "ignored"}}, key)
	if err != nil {
		t.Fatal(err)
	}
	return key, der
}

func newNodeID(t testing.TB) string {
	t.Helper()
	id, err := ca.NewID(nil)
	if err != nil {
		t.Fatal(err)
	}
	return id
}

func fileMode(t *testing.T, path string) fs.FileMode {
	t.Helper()
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	return fi.Mode().Perm()
}

func TestInit(t *testing.T) {
	ctx := context.Background()
	dataDir := filepath.Join(t.TempDir(), "data")
	req := initRequest(dataDir)
	req.CertExpiry = 720 * time.Hour
	req.Store = store.Settings{Type: "bbolt"} // the files of a data directory, the store's among them
	res := mustInit(t, req)

	if !ca.ValidID(res.ClusterID) || !ca.ValidID(res.NodeID) || res.ClusterID == res.NodeID {
		t.Errorf("IDs: cluster %q, node %q: want two different valid IDs", res.ClusterID, res.NodeID)
	}
	if res.AdvertiseAddr != testListen {
		t.Errorf("advertise address = %q, want the listen address %q", res.AdvertiseAddr, testListen)
	}

	st := openStore(t, dataDir)
	c := clusterRecord(t, st)
	if c.ID != res.ClusterID {
		t.Errorf("stored cluster ID %q, Init said %q", c.ID, res.ClusterID)
	}
	if c.WorkerToken != res.WorkerToken || c.ManagerToken != res.ManagerToken {
		t.Errorf("stored tokens differ from those Init returned")
	}
	if res.WorkerToken == res.ManagerToken {
		t.Errorf("worker and manager tokens are equal")
	}
	for role, tok := range map[string]string{"worker": res.WorkerToken, "manager": res.ManagerToken} {
		if len(tok) != 85 {
			t.Errorf("%s token has %d characters, want 85", role, len(tok))
		}
		jt, err := ca.ParseJoinToken(tok)
		if err != nil {
			t.Errorf("%s token: %v", role, err)
			continue
		}
		if err := jt.CheckRoot(c.RootCAPEM); err != nil {
			t.Errorf("%s token does not carry the stored root's digest: %v", role, err)
		}
	}

	// Files and modes.
	dir := certdir.In(dataDir)
	for _, tc := range []struct {
		path string
		mode fs.FileMode
	}{
		{dataDir, 0o700},
		{StorePath(dataDir), 0o600},
		{filepath.Join(dataDir, store.SettingsFile), 0o600},
		{filepath.Join(dataDir, file.DefaultKeyPath), 0o600},
		{dir.Path(certdir.NodeKeyFile), 0o600},
		{dir.Path(certdir.NodeCertFile), 0o644},
		{dir.Path(certdir.RootCAFile), 0o644},
	} {
		if got := fileMode(t, tc.path); got != tc.mode {
			t.Errorf("%s: mode %v, want %v", tc.path, got, tc.mode)
		}
	}
	rootFile, err := os.ReadFile(dir.Path(certdir.RootCAFile))
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(rootFile, c.RootCAPEM) {
		t.Errorf("%s differs from the stored root PEM", certdir.RootCAFile)
	}
	roots, err := Roots(c)
	if err != nil {
		t.Fatal(err)
	}
	if len(roots) != 1 || roots[0].Subject.CommonName != ca.DefaultRootCN {
		t.Fatalf("stored roots: %v, want one named %s", roots, ca.DefaultRootCN)
	}
	if got := Fingerprint(roots[0]); got != res.RootFingerprint {
		t.Errorf("root fingerprint %s, Init said %s", got, res.RootFingerprint)
	}

	// The node certificate.
	chain, err := dir.NodeChain()
	if err != nil {
		t.Fatal(err)
	}
	if len(chain) != 1 {
		t.Fatalf("%s holds %d certificates, want the leaf only", certdir.NodeCertFile, len(chain))
	}
	nodeKey, err := dir.NodeKey()
	if err != nil {
		t.Fatal(err)
	}
	leaf := chain[0]
	conformance.CheckNodeCertificate(t, leaf, roots, conformance.NodeExpectation{
		ClusterID: res.ClusterID, NodeID: res.NodeID, Role: ca.RoleManager,
		PublicKey: nodeKey.Public(),
		NotBefore: testNow.Add(-ca.CertBackdate), NotAfter: testNow.Add(req.CertExpiry),
	})
	if got, want := leaf.NotAfter.Sub(leaf.NotBefore), req.CertExpiry+ca.CertBackdate; got != want {
		t.Errorf("node certificate lifetime %s, want %s (cert-expiry + backdate)", got, want)
	}
	node, err := st.Node(ctx, res.NodeID)
	if err != nil {
		t.Fatal(err)
	}
	if node.Role != string(ca.RoleManager) || node.Hostname != testHostname || node.State != store.StateReady ||
		node.CertSerial != hex.EncodeToString(leaf.SerialNumber.Bytes()) {
		t.Errorf("node record %+v does not match the certificate on disk", node)
	}

	info, err := ReadInfo(ctx, st)
	if err != nil {
		t.Fatal(err)
	}
	want := Info{
		ClusterID: res.ClusterID, Managers: 1, Nodes: 1, CertExpiry: req.CertExpiry, Backend: file.Name,
		AdvertiseAddr: testListen, RootSubject: roots[0].Subject.String(), RootFingerprint: res.RootFingerprint,
		RootNotAfter: roots[0].NotAfter,
	}
	if info != want {
		t.Errorf("ReadInfo = %+v\nwant       %+v", info, want)
	}
}

func TestInitDefaultCertExpiry(t *testing.T) {
	dataDir, st, _ := newCluster(t)
	if got := clusterRecord(t, st).CertExpiry; got != ca.DefaultCertExpiry {
		t.Errorf("cert-expiry = %s, want the default %s", got, ca.DefaultCertExpiry)
	}
	chain, err := certdir.In(dataDir).NodeChain()
	if err != nil {
		t.Fatal(err)
	}
	if got := chain[0].NotAfter.Sub(chain[0].NotBefore); got != ca.DefaultCertExpiry+ca.CertBackdate {
		t.Errorf("node certificate lifetime %s, want %s", got, ca.DefaultCertExpiry+ca.CertBackdate)
	}
}

type fileState struct {
	mode    fs.FileMode
	data    []byte
	modTime time.Time
}

// snapshot records every file and directory under root.
func snapshot(t *testing.T, root string) map[string]fileState {
	t.Helper()
	snap := map[string]fileState{}
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		fi, err := d.Info()
		if err != nil {
			return err
		}
		st := fileState{mode: fi.Mode()}
		if fi.Mode().IsRegular() {
			st.modTime = fi.ModTime()
			if st.data, err = os.ReadFile(p); err != nil {
				return err
			}
		}
		rel, _ := filepath.Rel(root, p)
		snap[rel] = st
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return snap
}

func compareSnapshots(t *testing.T, before, after map[string]fileState) {
	t.Helper()
	for p, b := range before {
		a, ok := after[p]
		switch {
		case !ok:
			t.Errorf("%s was removed", p)
		case a.mode != b.mode:
			t.Errorf("%s: mode changed from %v to %v", p, b.mode, a.mode)
		case !bytes.Equal(a.data, b.data):
			t.Errorf("%s: contents changed", p)
		case !a.modTime.Equal(b.modTime):
			t.Errorf("%s: modification time changed", p)
		}
	}
	for p := range after {
		if _, ok := before[p]; !ok {
			t.Errorf("%s was created", p)
		}
	}
}

func TestInitRefusesExistingCluster(t *testing.T) {
	for _, tc := range []struct {
		name  string
		setup func(t *testing.T, dataDir string)
	}{
		{"SecondInit", func(t *testing.T, dataDir string) { mustInit(t, initRequest(dataDir)) }},
		{"StoreOnly", func(t *testing.T, dataDir string) {
			mustWrite(t, StorePath(dataDir), []byte("not a database"), 0o600)
		}},
		{"NodeCertificateOnly", func(t *testing.T, dataDir string) {
			mustWrite(t, certdir.In(dataDir).Path(certdir.NodeCertFile), []byte("old certificate"), 0o644)
		}},
		{"NodeKeyOnly", func(t *testing.T, dataDir string) {
			mustWrite(t, certdir.In(dataDir).Path(certdir.NodeKeyFile), []byte("old key"), 0o600)
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dataDir := filepath.Join(t.TempDir(), "data")
			tc.setup(t, dataDir)
			before := snapshot(t, dataDir)
			res, err := Init(context.Background(), initRequest(dataDir))
			if !errors.Is(err, ErrClusterExists) {
				t.Fatalf("second Init = %+v, %v; want ErrClusterExists", res, err)
			}
			compareSnapshots(t, before, snapshot(t, dataDir))
		})
	}
}

func mustWrite(t *testing.T, path string, data []byte, mode fs.FileMode) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, data, mode); err != nil {
		t.Fatal(err)
	}
}

// rootPEMs self-signs a certificate for key from tmpl, and returns the
// certificate and key PEM.
func rootPEMs(t *testing.T, key crypto.Signer, tmpl *x509.Certificate) (certPEM, keyPEM []byte) {
	t.Helper()
	if tmpl.SerialNumber == nil {
		tmpl.SerialNumber = big.NewInt(1)
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
	if err != nil {
		t.Fatal(err)
	}
	kder, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}),
		pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: kder})
}

func TestInitImport(t *testing.T) {
	key := newP256(t)
	certPEM, keyPEM := rootPEMs(t, key, ca.NewRootTemplate("imported-ca", testNow))
	dataDir := filepath.Join(t.TempDir(), "data")
	req := initRequest(dataDir)
	req.ImportCertPEM, req.ImportKeyPEM = certPEM, keyPEM
	mustInit(t, req)
	st := openStore(t, dataDir)
	if c := clusterRecord(t, st); !bytes.Equal(c.RootCAPEM, certPEM) {
		t.Errorf("stored root differs from the imported certificate")
	}
	stored, err := file.LoadKey(filepath.Join(dataDir, file.DefaultKeyPath), nil)
	if err != nil {
		t.Fatal(err)
	}
	if !key.PublicKey.Equal(stored.Public()) {
		t.Errorf("stored key is not the imported key")
	}
}

func TestInitFailureLeavesNothing(t *testing.T) {
	key := newP256(t)
	otherKey := newP256(t)
	goodCert, goodKey := rootPEMs(t, key, ca.NewRootTemplate("", testNow))
	_, otherKeyPEM := rootPEMs(t, otherKey, ca.NewRootTemplate("", testNow))
	notCATmpl := ca.NewRootTemplate("", testNow)
	notCATmpl.IsCA = false
	notCA, _ := rootPEMs(t, key, notCATmpl)
	soonTmpl := ca.NewRootTemplate("", testNow)
	soonTmpl.NotAfter = testNow.Add(200 * 24 * time.Hour)
	soon, _ := rootPEMs(t, key, soonTmpl)
	rsa1024, err := rsa.GenerateKey(rand.Reader, 1024)
	if err != nil {
		t.Fatal(err)
	}
	smallCert, smallKey := rootPEMs(t, rsa1024, ca.NewRootTemplate("", testNow))

	for _, tc := range []struct {
		name   string
		mutate func(*InitRequest)
		is     error  // matched with errors.Is when not nil
		says   string // in the error message when not empty
	}{
		{"KeyNotMatchingCert", func(r *InitRequest) { r.ImportCertPEM, r.ImportKeyPEM = goodCert, otherKeyPEM }, ca.ErrRootKeyMismatch, ""},
		{"CertNotCA", func(r *InitRequest) { r.ImportCertPEM, r.ImportKeyPEM = notCA, goodKey }, ca.ErrRootNotCA, ""},
		{"RSA1024", func(r *InitRequest) { r.ImportCertPEM, r.ImportKeyPEM = smallCert, smallKey }, file.ErrBadKey, "too small"},
		{"GarbageCertPEM", func(r *InitRequest) { r.ImportCertPEM, r.ImportKeyPEM = []byte("garbage"), goodKey }, nil, "no certificate"},
		{"GarbageKeyPEM", func(r *InitRequest) { r.ImportCertPEM, r.ImportKeyPEM = goodCert, []byte("garbage") }, file.ErrBadKey, ""},
		{"ExpiresWithinAYear", func(r *InitRequest) { r.ImportCertPEM, r.ImportKeyPEM = soon, goodKey }, ca.ErrRootExpiresTooSoon, ""},
		{"CertWithoutKey", func(r *InitRequest) { r.ImportCertPEM = goodCert }, nil, "both"},
		{"CertExpiry30m", func(r *InitRequest) { r.CertExpiry = 30 * time.Minute }, nil, "below the minimum"},
		{"NegativeCertExpiry", func(r *InitRequest) { r.CertExpiry = -time.Hour }, nil, "below the minimum"},
		{"ListenNoPort", func(r *InitRequest) { r.ListenAddr = "127.0.0.1" }, nil, "listen address"},
		{"ListenBadPort", func(r *InitRequest) { r.ListenAddr = "127.0.0.1:99999" }, nil, "port must be 1-65535"},
		{"ListenBadHost", func(r *InitRequest) { r.ListenAddr = "bad_host!:2378" }, nil, "listen address"},
		{"AdvertiseBad", func(r *InitRequest) { r.AdvertiseAddr = "nowhere" }, nil, "advertise address"},
		{"UnknownBackend", func(r *InitRequest) { r.Backend = "nonesuch" }, nil, "unknown backend"},
		{"UnknownBackendSetting", func(r *InitRequest) { r.BackendSettings = backends.Settings{"pin": "1234"} }, nil, "unknown setting"},
		{"UnknownKeyAlgorithm", func(r *InitRequest) { r.KeyAlgorithm = "DSA" }, nil, "unknown key algorithm"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			check := func(t *testing.T, err error) {
				t.Helper()
				if err == nil {
					t.Fatal("Init succeeded, want an error")
				}
				if tc.is != nil && !errors.Is(err, tc.is) {
					t.Errorf("error %q does not match %q", err, tc.is)
				}
				if tc.says != "" && !strings.Contains(err.Error(), tc.says) {
					t.Errorf("error %q does not say %q", err, tc.says)
				}
			}
			t.Run("NewDir", func(t *testing.T) {
				parent := t.TempDir()
				dataDir := filepath.Join(parent, "data")
				req := initRequest(dataDir)
				tc.mutate(&req)
				res, err := Init(context.Background(), req)
				if res != nil {
					t.Errorf("Init returned a result with its error: %+v", res)
				}
				check(t, err)
				if _, err := os.Lstat(dataDir); !errors.Is(err, fs.ErrNotExist) {
					t.Errorf("the data directory is left behind (stat: %v)", err)
				}
				if entries, _ := os.ReadDir(parent); len(entries) != 0 {
					t.Errorf("left behind in the parent directory: %v", entries)
				}
			})
			t.Run("NewNestedDir", func(t *testing.T) {
				parent := t.TempDir()
				req := initRequest(filepath.Join(parent, "a", "b", "data"))
				tc.mutate(&req)
				_, err := Init(context.Background(), req)
				check(t, err)
				if entries, _ := os.ReadDir(parent); len(entries) != 0 {
					t.Errorf("left behind in the parent directory: %v", entries)
				}
			})
			t.Run("ExistingEmptyDir", func(t *testing.T) {
				dataDir := t.TempDir()
				before := snapshot(t, dataDir)
				req := initRequest(dataDir)
				tc.mutate(&req)
				_, err := Init(context.Background(), req)
				check(t, err)
				compareSnapshots(t, before, snapshot(t, dataDir))
			})
		})
	}
}

// failingReader passes reads through to crypto/rand until the read numbered
// failAt (from 0), which fails, as do all after it. It counts reads.
type failingReader struct {
	mu     sync.Mutex
	failAt int // -1: never
	reads  int
}

var errRandFailed = errors.New("test: the random source failed")

func (r *failingReader) Read(p []byte) (int, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	n := r.reads
	r.reads++
	if r.failAt >= 0 && n >= r.failAt {
		return 0, errRandFailed
	}
	return rand.Read(p)
}

// TestInitFailureAtEachStep makes the random source fail at each of Init's
// reads in turn, reaching every stage of Init (IDs, root serial, tokens, the
// node certificate), and checks that each failure leaves nothing behind.
func TestInitFailureAtEachStep(t *testing.T) {
	probe := &failingReader{failAt: -1}
	req := initRequest(filepath.Join(t.TempDir(), "data"))
	req.Rand = probe
	mustInit(t, req)
	if probe.reads < 5 {
		t.Fatalf("Init read the random source %d times; the test expects at least 5 (IDs, serials, tokens)", probe.reads)
	}
	for i := 0; i < probe.reads; i++ {
		for _, existing := range []bool{false, true} {
			parent := t.TempDir()
			dataDir := filepath.Join(parent, "data")
			if !existing {
				dataDir = filepath.Join(parent, "new", "data")
			}
			if existing {
				if err := os.Mkdir(dataDir, 0o700); err != nil {
					t.Fatal(err)
				}
			}
			req := initRequest(dataDir)
			fr := &failingReader{failAt: i}
			req.Rand = fr
			_, err := Init(context.Background(), req)
			if err == nil && fr.reads <= i {
				// This run read less than the probe: a random serial the
				// probe drew again (1 in 128) was right the first time.
				continue
			}
			if !errors.Is(err, errRandFailed) {
				t.Errorf("read %d (existing dir %v): Init = %v, want the random source's error", i, existing, err)
			}
			var left []string
			filepath.WalkDir(parent, func(p string, d fs.DirEntry, err error) error {
				if p != parent && !(existing && p == dataDir) {
					left = append(left, strings.TrimPrefix(p, parent))
				}
				return nil
			})
			if len(left) != 0 {
				t.Errorf("read %d (existing dir %v): Init failed with %q and left behind %v", i, existing, err, left)
			}
		}
	}
}

func TestInitEncryptedKey(t *testing.T) {
	ctx := context.Background()
	const passphrase = "correct-horse-battery-staple-7f3a"
	t.Setenv(file.PassphraseEnv, passphrase)
	dataDir := filepath.Join(t.TempDir(), "data")
	mustInit(t, initRequest(dataDir))

	keyPEM, err := os.ReadFile(filepath.Join(dataDir, file.DefaultKeyPath))
	if err != nil {
		t.Fatal(err)
	}
	if b, _ := pem.Decode(keyPEM); b == nil || b.Type != "ENCRYPTED PRIVATE KEY" {
		t.Fatalf("the key file is not an encrypted PKCS#8 key")
	}
	st := openStore(t, dataDir)
	c := clusterRecord(t, st)
	if c.Backend.Settings[file.SettingEncrypted] != "true" {
		t.Errorf("backend settings %v do not record the key as encrypted", c.Backend.Settings)
	}
	for k, v := range c.Backend.Settings {
		if strings.Contains(v, passphrase) || strings.Contains(k, passphrase) {
			t.Errorf("backend setting %s holds the passphrase", k)
		}
	}

	var errs []error
	os.Unsetenv(file.PassphraseEnv) // t.Setenv restores it after the test
	_, err = OpenSigner(ctx, dataDir, c, nil, nil)
	if !errors.Is(err, file.ErrPassphraseNeeded) {
		t.Errorf("OpenSigner without a passphrase = %v, want ErrPassphraseNeeded", err)
	} else if !strings.Contains(err.Error(), "passphrase") {
		t.Errorf("error %q does not mention the passphrase", err)
	}
	errs = append(errs, err)

	t.Setenv(file.PassphraseEnv, passphrase+"-wrong")
	_, err = OpenSigner(ctx, dataDir, c, nil, nil)
	if !errors.Is(err, file.ErrWrongPassphrase) {
		t.Errorf("OpenSigner with a wrong passphrase = %v, want ErrWrongPassphrase", err)
	}
	errs = append(errs, err)

	emptyFile := filepath.Join(t.TempDir(), "empty")
	mustWrite(t, emptyFile, nil, 0o600)
	_, err = OpenSigner(ctx, dataDir, c, backends.Settings{file.SettingPassphraseFile: emptyFile}, nil)
	if err == nil {
		t.Errorf("OpenSigner with an empty passphrase file succeeded")
	}
	errs = append(errs, err)

	for _, err := range errs {
		if err != nil && strings.Contains(err.Error(), passphrase) {
			t.Errorf("error %q contains the passphrase", err)
		}
	}

	// The right passphrase, from the environment or from a file given as
	// an override, opens a Signer that issues.
	passFile := filepath.Join(t.TempDir(), "passphrase")
	mustWrite(t, passFile, []byte(passphrase+"\n"), 0o600)
	for _, tc := range []struct {
		name      string
		env       string
		overrides backends.Settings
	}{
		{"Env", passphrase, nil},
		{"FileOverride", passphrase + "-wrong", backends.Settings{file.SettingPassphraseFile: passFile}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Setenv(file.PassphraseEnv, tc.env)
			sg, err := OpenSigner(ctx, dataDir, c, tc.overrides, nil)
			if err != nil {
				t.Fatalf("OpenSigner: %v", err)
			}
			_, csr := newCSR(t)
			issued, err := NewAuthority(st, holderOf(t, sg), fixedNow).IssueNodeCertificate(ctx, IssueRequest{
				NodeID: newNodeID(t), Role: ca.RoleWorker, CSR: csr,
			})
			if err != nil {
				t.Fatal(err)
			}
			if err := issued.Certificate.CheckSignatureFrom(sg.Chain()[0]); err != nil {
				t.Errorf("the certificate is not signed by the root: %v", err)
			}
		})
	}
}

func TestIssueNodeCertificate(t *testing.T) {
	ctx := context.Background()
	_, st, auth := newCluster(t)
	c := clusterRecord(t, st)
	root := auth.Signer().Chain()[0]

	const expiry = 168 * time.Hour
	if err := SetCertExpiry(ctx, st, expiry); err != nil {
		t.Fatal(err)
	}
	if err := SetCertExpiry(ctx, st, 30*time.Minute); err == nil {
		t.Errorf("SetCertExpiry(30m) succeeded")
	}
	if got := clusterRecord(t, st).CertExpiry; got != expiry {
		t.Fatalf("cert-expiry = %s after a refused change, want %s", got, expiry)
	}

	key, csr := newCSR(t)
	nodeID := newNodeID(t)
	issued, err := auth.IssueNodeCertificate(ctx, IssueRequest{NodeID: nodeID, Role: ca.RoleWorker, Hostname: "worker-1", CSR: csr})
	if err != nil {
		t.Fatal(err)
	}
	cert := issued.Certificate
	if got := cert.NotAfter.Sub(cert.NotBefore.Add(ca.CertBackdate)); got != expiry {
		t.Errorf("NotAfter - (NotBefore + 1h) = %s, want %s", got, expiry)
	}
	conformance.CheckNodeCertificate(t, cert, auth.Signer().Chain(), conformance.NodeExpectation{
		ClusterID: c.ID, NodeID: nodeID, Role: ca.RoleWorker, PublicKey: key.Public(),
		NotBefore: testNow.Add(-ca.CertBackdate), NotAfter: testNow.Add(expiry),
	})
	if len(issued.Chain) != 1 || issued.Chain[0] != cert {
		t.Errorf("issued chain has %d certificates, want the leaf alone (no intermediates)", len(issued.Chain))
	}

	serial := hex.EncodeToString(cert.SerialNumber.Bytes())
	node, err := st.Node(ctx, nodeID)
	if err != nil {
		t.Fatal(err)
	}
	if node.CertSerial != serial || node.Role != string(ca.RoleWorker) || node.Hostname != "worker-1" ||
		node.State != store.StateReady || !node.CertNotAfter.Equal(cert.NotAfter) {
		t.Errorf("node record = %+v, want serial %s, role worker, host worker-1, ready, not after %s", node, serial, cert.NotAfter)
	}
	if issued.Node.CertSerial != serial {
		t.Errorf("Issued.Node.CertSerial = %s, want %s", issued.Node.CertSerial, serial)
	}
	recs, err := st.IssuedCertificates(ctx, nodeID)
	if err != nil {
		t.Fatal(err)
	}
	wantRec := store.IssuedCertificate{
		Serial: serial, NodeID: nodeID, Role: string(ca.RoleWorker),
		NotBefore: cert.NotBefore, NotAfter: cert.NotAfter,
		IssuerKeyID: hex.EncodeToString(root.SubjectKeyId), IssuedAt: testNow,
	}
	if len(root.SubjectKeyId) == 0 {
		t.Fatal("the root has no subject key ID")
	}
	if len(recs) != 1 || !sameRecord(recs[0], wantRec) {
		t.Errorf("IssuedCertificates = %+v, want [%+v]", recs, wantRec)
	}

	// A renewal keeps the host name and adds a record.
	issued2, err := auth.IssueNodeCertificate(ctx, IssueRequest{NodeID: nodeID, Role: ca.RoleWorker, CSR: csr})
	if err != nil {
		t.Fatal(err)
	}
	if issued2.Certificate.SerialNumber.Cmp(cert.SerialNumber) == 0 {
		t.Errorf("the renewal has the same serial")
	}
	if node, err := st.Node(ctx, nodeID); err != nil || node.Hostname != "worker-1" ||
		node.CertSerial != hex.EncodeToString(issued2.Certificate.SerialNumber.Bytes()) {
		t.Errorf("after renewal the node is %+v (%v)", node, err)
	}
	if recs, _ := st.IssuedCertificates(ctx, nodeID); len(recs) != 2 {
		t.Errorf("after renewal %d certificates are recorded, want 2", len(recs))
	}
}

func sameRecord(a, b store.IssuedCertificate) bool {
	return a.Serial == b.Serial && a.NodeID == b.NodeID && a.Role == b.Role &&
		a.NotBefore.Equal(b.NotBefore) && a.NotAfter.Equal(b.NotAfter) &&
		a.IssuerKeyID == b.IssuerKeyID && a.IssuedAt.Equal(b.IssuedAt)
}

func TestIssueNodeCertificateRefusals(t *testing.T) {
	ctx := context.Background()
	_, st, auth := newCluster(t)
	_, csr := newCSR(t)

	// A node that was issued a certificate, then removed.
	removedID := newNodeID(t)
	if _, err := auth.IssueNodeCertificate(ctx, IssueRequest{NodeID: removedID, Role: ca.RoleWorker, CSR: csr}); err != nil {
		t.Fatal(err)
	}
	if _, err := st.UpdateNode(ctx, removedID, func(n *store.Node) error { n.State = store.StateRemoved; return nil }); err != nil {
		t.Fatal(err)
	}

	// A CSR whose signature has one byte flipped.
	parsed, err := x509.ParseCertificateRequest(csr)
	if err != nil {
		t.Fatal(err)
	}
	i := bytes.LastIndex(csr, parsed.Signature)
	if i < 0 {
		t.Fatal("signature not found in the CSR")
	}
	badSig := bytes.Clone(csr)
	badSig[i+len(parsed.Signature)-1] ^= 0x01
	if _, err := x509.ParseCertificateRequest(badSig); err != nil {
		t.Fatalf("the altered CSR must still parse: %v", err)
	}
	badSigPEM := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE REQUEST", Bytes: badSig})

	canceled, cancel := context.WithCancel(ctx)
	cancel()

	for _, tc := range []struct {
		name string
		ctx  context.Context
		req  IssueRequest
		is   error
	}{
		{"RemovedNode", ctx, IssueRequest{NodeID: removedID, Role: ca.RoleWorker, CSR: csr}, ErrNodeRemoved},
		{"RemovedNodeAsManager", ctx, IssueRequest{NodeID: removedID, Role: ca.RoleManager, CSR: csr}, ErrNodeRemoved},
		{"BadCSRSignatureDER", ctx, IssueRequest{NodeID: newNodeID(t), Role: ca.RoleWorker, CSR: badSig}, ca.ErrInvalidCSR},
		{"BadCSRSignaturePEM", ctx, IssueRequest{NodeID: newNodeID(t), Role: ca.RoleWorker, CSR: badSigPEM}, ca.ErrInvalidCSR},
		{"EmptyCSR", ctx, IssueRequest{NodeID: newNodeID(t), Role: ca.RoleWorker}, ca.ErrInvalidCSR},
		{"CanceledContext", canceled, IssueRequest{NodeID: newNodeID(t), Role: ca.RoleWorker, CSR: csr}, context.Canceled},
		{"BadNodeID", ctx, IssueRequest{NodeID: "not-an-id", Role: ca.RoleWorker, CSR: csr}, nil},
		{"BadRole", ctx, IssueRequest{NodeID: newNodeID(t), Role: "swarm-admin", CSR: csr}, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			before, err := st.IssuedCertificates(ctx, "")
			if err != nil {
				t.Fatal(err)
			}
			nodesBefore, err := st.Nodes(ctx)
			if err != nil {
				t.Fatal(err)
			}
			issued, err := auth.IssueNodeCertificate(tc.ctx, tc.req)
			if err == nil {
				t.Fatalf("IssueNodeCertificate issued %q", issued.Certificate.Subject)
			}
			if tc.is != nil && !errors.Is(err, tc.is) {
				t.Errorf("error %q does not match %q", err, tc.is)
			}
			after, _ := st.IssuedCertificates(ctx, "")
			nodesAfter, _ := st.Nodes(ctx)
			if len(after) != len(before) || len(nodesAfter) != len(nodesBefore) {
				t.Errorf("a refused request was recorded: %d→%d certificates, %d→%d nodes", len(before), len(after), len(nodesBefore), len(nodesAfter))
			}
			if n, err := st.Node(ctx, removedID); err != nil || n.State != store.StateRemoved {
				t.Errorf("the removed node is now %+v (%v)", n, err)
			}
		})
	}
}

// TestIssueWithWrongSigner hands the Authority a Signer for another root:
// what it signs does not chain to the cluster's root, so nothing is issued
// or recorded.
func TestIssueWithWrongSigner(t *testing.T) {
	ctx := context.Background()
	_, st, _ := newCluster(t)
	for _, cn := range []string{ca.DefaultRootCN, "other-ca"} {
		t.Run(cn, func(t *testing.T) {
			key := newP256(t)
			other, err := signer.SelfSign(nil, key, ca.NewRootTemplate(cn, testNow))
			if err != nil {
				t.Fatal(err)
			}
			wrong, err := signer.NewLocalIssuer(signer.LocalConfig{Key: key, Chain: []*x509.Certificate{other}})
			if err != nil {
				t.Fatal(err)
			}
			before, _ := st.IssuedCertificates(ctx, "")
			nodeID := newNodeID(t)
			_, csr := newCSR(t)
			issued, err := NewAuthority(st, holderOf(t, wrong), fixedNow).IssueNodeCertificate(ctx, IssueRequest{NodeID: nodeID, Role: ca.RoleWorker, CSR: csr})
			if err == nil {
				t.Fatalf("issued %q under a root the cluster does not trust", issued.Certificate.Subject)
			}
			var ce *ca.ChainError
			if !errors.As(err, &ce) || ce.Reason != ca.UnknownIssuer {
				t.Errorf("error %v is not a ChainError with reason %s", err, ca.UnknownIssuer)
			}
			if _, err := st.Node(ctx, nodeID); !errors.Is(err, store.ErrNotFound) {
				t.Errorf("the node was recorded: Node = %v", err)
			}
			if after, _ := st.IssuedCertificates(ctx, ""); len(after) != len(before) {
				t.Errorf("%d certificates recorded, want %d", len(after), len(before))
			}
		})
	}
}

func TestRotateJoinToken(t *testing.T) {
	ctx := context.Background()
	for _, role := range []ca.Role{ca.RoleWorker, ca.RoleManager} {
		t.Run(role.Short(), func(t *testing.T) {
			_, st, _ := newCluster(t)
			before := clusterRecord(t, st)
			old, err := JoinToken(ctx, st, role)
			if err != nil {
				t.Fatal(err)
			}
			other := ca.RoleManager
			if role == ca.RoleManager {
				other = ca.RoleWorker
			}
			otherOld, _ := JoinToken(ctx, st, other)

			rotated, err := RotateJoinToken(ctx, st, role, nil)
			if err != nil {
				t.Fatal(err)
			}
			after := clusterRecord(t, st)
			if got, _ := tokenFor(after, role); got != rotated {
				t.Errorf("stored %s token is not the one returned", role.Short())
			}
			if got, _ := tokenFor(after, other); got != otherOld {
				t.Errorf("the %s token changed", other.Short())
			}
			if after.Version != before.Version+1 {
				t.Errorf("cluster version %d → %d, want one update", before.Version, after.Version)
			}
			oldT, err := ca.ParseJoinToken(old)
			if err != nil {
				t.Fatal(err)
			}
			newT, err := ca.ParseJoinToken(rotated)
			if err != nil {
				t.Fatal(err)
			}
			if newT.Digest != oldT.Digest {
				t.Errorf("the digest changed")
			}
			if newT.Secret == oldT.Secret {
				t.Errorf("the secret did not change")
			}
			if err := newT.CheckRoot(after.RootCAPEM); err != nil {
				t.Errorf("the new token does not match the root: %v", err)
			}
			if len(rotated) != ca.TokenLength {
				t.Errorf("new token has %d characters, want %d", len(rotated), ca.TokenLength)
			}
			if _, err := ca.TokenRole(old, after.WorkerToken, after.ManagerToken); !errors.Is(err, ca.ErrTokenNotAccepted) {
				t.Errorf("the old %s token is still accepted (%v)", role.Short(), err)
			}
			if got, err := ca.TokenRole(rotated, after.WorkerToken, after.ManagerToken); err != nil || got != role {
				t.Errorf("TokenRole(new) = %q, %v; want %q", got, err, role)
			}
			if got, err := ca.TokenRole(otherOld, after.WorkerToken, after.ManagerToken); err != nil || got != other {
				t.Errorf("TokenRole(other) = %q, %v; want %q", got, err, other)
			}
		})
	}
	t.Run("UnknownRole", func(t *testing.T) {
		_, st, _ := newCluster(t)
		before := clusterRecord(t, st)
		if _, err := RotateJoinToken(ctx, st, "swarm-admin", nil); err == nil {
			t.Fatal("RotateJoinToken accepted an unknown role")
		}
		if after := clusterRecord(t, st); after.Version != before.Version || after.WorkerToken != before.WorkerToken || after.ManagerToken != before.ManagerToken {
			t.Errorf("a refused rotation changed the cluster record")
		}
	})
}

func TestReadInfoSkipsRemovedNodes(t *testing.T) {
	ctx := context.Background()
	_, st, auth := newCluster(t)
	_, csr := newCSR(t)
	var ids []string
	for _, role := range []ca.Role{ca.RoleWorker, ca.RoleWorker, ca.RoleManager} {
		id := newNodeID(t)
		if _, err := auth.IssueNodeCertificate(ctx, IssueRequest{NodeID: id, Role: role, CSR: csr}); err != nil {
			t.Fatal(err)
		}
		ids = append(ids, id)
	}
	info, err := ReadInfo(ctx, st)
	if err != nil {
		t.Fatal(err)
	}
	if info.Nodes != 4 || info.Managers != 2 {
		t.Errorf("ReadInfo: %d nodes, %d managers; want 4, 2", info.Nodes, info.Managers)
	}
	for _, id := range ids[1:] {
		if _, err := st.UpdateNode(ctx, id, func(n *store.Node) error { n.State = store.StateRemoved; return nil }); err != nil {
			t.Fatal(err)
		}
	}
	if info, err = ReadInfo(ctx, st); err != nil {
		t.Fatal(err)
	}
	if info.Nodes != 2 || info.Managers != 1 {
		t.Errorf("ReadInfo after removals: %d nodes, %d managers; want 2, 1", info.Nodes, info.Managers)
	}
}

func TestOpenStoreWithoutCluster(t *testing.T) {
	dir := t.TempDir()
	if _, err := OpenStore(dir); !errors.Is(err, ErrNoCluster) {
		t.Errorf("OpenStore(empty dir) = %v, want ErrNoCluster", err)
	}
	if entries, _ := os.ReadDir(dir); len(entries) != 0 {
		t.Errorf("OpenStore created %v", entries)
	}
}

// BenchmarkIssueNodeCertificate measures in-process node certificate
// issuance: a CSR in, Authority.IssueNodeCertificate out, the store write
// (a real bbolt file, synced) included. The CSR is made once and re-used;
// each iteration certifies a fresh node ID.
// noAudit is a store that drops audit events, to measure what the audit
// log costs issuance.
type noAudit struct{ store.Store }

func (s noAudit) RecordIssuance(ctx context.Context, n store.Node, c store.IssuedCertificate, _ ...audit.Event) error {
	return s.Store.RecordIssuance(ctx, n, c)
}

// BenchmarkIssueNodeCertificate is in-process node certificate issuance:
// CSR in, certificate out, store write included; with the audit log (as
// chancery runs) and without it (audit=off), to show its cost.
func BenchmarkIssueNodeCertificate(b *testing.B) {
	for _, mode := range []string{"audit=on", "audit=off"} {
		b.Run(mode, func(b *testing.B) { benchmarkIssue(b, mode == "audit=off") })
	}
}

func benchmarkIssue(b *testing.B, dropAudit bool) {
	ctx := context.Background()
	dataDir := filepath.Join(b.TempDir(), "data")
	req := initRequest(dataDir)
	req.Now = nil
	mustInit(b, req)
	var st store.Store = openStore(b, dataDir)
	if dropAudit {
		st = noAudit{st}
	}
	sg, err := OpenSigner(ctx, dataDir, clusterRecord(b, st), nil, nil)
	if err != nil {
		b.Fatal(err)
	}
	auth := NewAuthority(st, holderOf(b, sg), nil)
	_, der := newCSR(b)
	csr := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE REQUEST", Bytes: der})

	issue := func() error {
		id, err := ca.NewID(nil)
		if err != nil {
			return err
		}
		_, err = auth.IssueNodeCertificate(ctx, IssueRequest{NodeID: id, Role: ca.RoleWorker, CSR: csr})
		return err
	}

	b.Run("serial", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if err := issue(); err != nil {
				b.Fatal(err)
			}
		}
		b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "certs/s")
	})
	b.Run("parallel", func(b *testing.B) {
		b.ReportAllocs()
		b.SetParallelism(4)
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				if err := issue(); err != nil {
					b.Error(err)
					return
				}
			}
		})
		b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "certs/s")
	})
}

var _ io.Reader = (*failingReader)(nil)

// racingStore changes a node right after the Authority reads it, as an
// administrator's removal or demotion committing during issuance would.
type racingStore struct {
	store.Store
	change func(*store.Node)
}

func (s racingStore) Node(ctx context.Context, id string) (store.Node, error) {
	n, err := s.Store.Node(ctx, id)
	if err == nil {
		if _, err := s.Store.UpdateNode(ctx, id, func(n *store.Node) error { s.change(n); return nil }); err != nil {
			return n, err
		}
	}
	return n, err
}

// A removal or role change that commits while a certificate is being
// issued is never undone by the issuance: the certificate is withheld.
func TestIssueRacesAdministration(t *testing.T) {
	for _, tc := range []struct {
		name   string
		change func(*store.Node)
		want   error
	}{
		{"Removed", func(n *store.Node) { n.State = store.StateRemoved }, ErrNodeRemoved},
		{"Demoted", func(n *store.Node) { n.Role = string(ca.RoleWorker) }, ErrRoleChanged},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx := context.Background()
			_, st, auth := newCluster(t)
			_, csr := newCSR(t)
			id := newNodeID(t)
			if _, err := auth.IssueNodeCertificate(ctx, IssueRequest{NodeID: id, Role: ca.RoleManager, CSR: csr}); err != nil {
				t.Fatal(err)
			}
			before, _ := st.IssuedCertificates(ctx, id)
			racing := NewAuthority(racingStore{Store: st, change: tc.change}, auth.Issuers(), nil)
			_, err := racing.IssueNodeCertificate(ctx, IssueRequest{NodeID: id, Role: ca.RoleManager, CSR: csr})
			if !errors.Is(err, tc.want) {
				t.Fatalf("renewal racing a change: %v, want %v", err, tc.want)
			}
			after, _ := st.IssuedCertificates(ctx, id)
			n, _ := st.Node(ctx, id)
			if len(after) != len(before) {
				t.Errorf("a withheld certificate was recorded")
			}
			probe := n
			tc.change(&probe)
			if n.State != probe.State || n.Role != probe.Role {
				t.Errorf("the node after the race: %+v; the change was undone", n)
			}
		})
	}
}

// TestOpenStoreWithoutSettings opens a data directory made before settings
// files existed: its embedded store is found without one.
func TestOpenStoreWithoutSettings(t *testing.T) {
	if os.Getenv(etcddev.StoreEnv) == "etcd" {
		t.Skip("about the embedded store of data directories older than settings files; the run on bbolt covers it")
	}
	dataDir, st, _ := newCluster(t)
	want := clusterRecord(t, st).ID
	st.Close()
	if err := os.Remove(filepath.Join(dataDir, store.SettingsFile)); err != nil {
		t.Fatal(err)
	}
	if ok, err := HasStore(dataDir); !ok || err != nil {
		t.Fatalf("HasStore = %v, %v; want true", ok, err)
	}
	st2, err := OpenStore(dataDir)
	if err != nil {
		t.Fatal(err)
	}
	defer st2.Close()
	if got := clusterRecord(t, st2).ID; got != want {
		t.Errorf("cluster %s, want %s", got, want)
	}
	if ok, err := HasStore(t.TempDir()); ok || err != nil {
		t.Errorf("HasStore(empty directory) = %v, %v; want false", ok, err)
	}
	if _, err := OpenStore(t.TempDir()); !errors.Is(err, ErrNoCluster) {
		t.Errorf("OpenStore(empty directory) = %v, want ErrNoCluster", err)
	}
}

// TestInitRaceOnEtcd races two inits on one etcd prefix: the second finds
// the store empty, then the first creates its cluster before the second
// writes its own. The second fails with ErrClusterExists, and its undo
// leaves the first cluster's records alone.
func TestInitRaceOnEtcd(t *testing.T) {
	c := etcddev.Require(t)
	opts := map[string]string{"endpoints": strings.Join(c.Endpoints, ","), "prefix": "/init-race-" + t.Name() + "/"}
	settings := store.Settings{Type: "etcd", Options: opts}
	first := initRequest(filepath.Join(t.TempDir(), "first"))
	first.Store = settings
	second := initRequest(filepath.Join(t.TempDir(), "second"))
	second.Store = settings

	var won *InitResult
	beforeCreateCluster = func() {
		beforeCreateCluster = nil
		won = mustInit(t, first)
	}
	t.Cleanup(func() { beforeCreateCluster = nil })
	res, err := Init(context.Background(), second)
	if !errors.Is(err, ErrClusterExists) {
		t.Fatalf("the init that lost the race = %+v, %v; want ErrClusterExists", res, err)
	}
	if won == nil {
		t.Fatal("the racing init did not run")
	}
	if _, err := os.Stat(second.DataDir); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("the losing init left its data directory: %v", err)
	}
	st := openStore(t, first.DataDir)
	got, err := st.Cluster(context.Background())
	if err != nil {
		t.Fatalf("the winning cluster after the race: %v", err)
	}
	if got.ID != won.ClusterID {
		t.Fatalf("the store holds cluster %s, want the winner's %s", got.ID, won.ClusterID)
	}
	if _, err := st.Node(context.Background(), won.NodeID); err != nil {
		t.Fatalf("the winner's manager after the race: %v", err)
	}
}

// TestInitFailureOnEtcdLeavesNoCluster fails Init at each read of its
// random source with the store on etcd: each failure leaves the prefix
// empty, so that init can be run again there.
func TestInitFailureOnEtcdLeavesNoCluster(t *testing.T) {
	c := etcddev.Require(t)
	probe := &failingReader{failAt: -1}
	req := initRequest(filepath.Join(t.TempDir(), "data"))
	req.Rand = probe
	req.Store = store.Settings{Type: "etcd", Options: map[string]string{
		"endpoints": strings.Join(c.Endpoints, ","), "prefix": "/init-fail-probe/"}}
	mustInit(t, req)
	for i := 0; i < probe.reads; i++ {
		settings := store.Settings{Type: "etcd", Options: map[string]string{
			"endpoints": strings.Join(c.Endpoints, ","), "prefix": "/init-fail-" + strconv.Itoa(i) + "/"}}
		req := initRequest(filepath.Join(t.TempDir(), "data"))
		req.Store = settings
		fr := &failingReader{failAt: i}
		req.Rand = fr
		_, err := Init(context.Background(), req)
		if err == nil && fr.reads <= i {
			continue // as in TestInitFailureAtEachStep
		}
		if !errors.Is(err, errRandFailed) {
			t.Errorf("read %d: Init = %v, want the random source's error", i, err)
			continue
		}
		again := initRequest(filepath.Join(t.TempDir(), "data"))
		again.Store = settings
		if _, err := Init(context.Background(), again); err != nil {
			t.Errorf("read %d: Init failed with %q, and init again on the same prefix: %v", i, errRandFailed, err)
		}
	}
}
