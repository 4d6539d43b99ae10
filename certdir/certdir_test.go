package certdir

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/chancery-pki/chancery/ca"
	"github.com/chancery-pki/chancery/signer"
)

func TestWriteAndRead(t *testing.T) {
	now := time.Now()
	rootKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	root, err := signer.SelfSign(rand.Reader, rootKey, ca.NewRootTemplate("", now))
	if err != nil {
		t.Fatal(err)
	}
	iss, err := signer.NewLocalIssuer(signer.LocalConfig{Key: rootKey, Chain: []*x509.Certificate{root}})
	if err != nil {
		t.Fatal(err)
	}
	nodeKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	csr, _ := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{}, nodeKey)
	req, err := ca.NodeCertificateRequest(ca.NodeRequest{ClusterID: "ohgi9ctpbev24dl6daf7insou", NodeID: "kgwuvt1oqhqjsht0qcsq67rvu",
		Role: ca.RoleWorker, CSR: csr, Now: now}, root)
	if err != nil {
		t.Fatal(err)
	}
	leaf, err := iss.Sign(t.Context(), req)
	if err != nil {
		t.Fatal(err)
	}

	d := In(filepath.Join(t.TempDir(), "data"))
	rootPEM := ca.EncodeCertificatesPEM(root)
	if err := d.WriteRoot(rootPEM); err != nil {
		t.Fatal(err)
	}
	if err := d.WriteNode(nodeKey, []*x509.Certificate{leaf}); err != nil {
		t.Fatal(err)
	}
	for name, mode := range map[string]os.FileMode{RootCAFile: 0o644, NodeCertFile: 0o644, NodeKeyFile: 0o600} {
		st, err := os.Stat(d.Path(name))
		if err != nil {
			t.Fatal(err)
		}
		if st.Mode().Perm() != mode {
			t.Errorf("%s mode %o, want %o", name, st.Mode().Perm(), mode)
		}
	}
	roots, gotPEM, err := d.Root()
	if err != nil || len(roots) != 1 || string(gotPEM) != string(rootPEM) {
		t.Fatalf("Root() = %d certs, %v; want the written bundle", len(roots), err)
	}
	chain, err := d.NodeChain()
	if err != nil || len(chain) != 1 || !chain[0].Equal(leaf) {
		t.Fatalf("NodeChain() = %v, %v; want the written leaf", chain, err)
	}
	k, err := d.NodeKey()
	if err != nil || !k.Public().(*ecdsa.PublicKey).Equal(nodeKey.Public()) {
		t.Fatalf("NodeKey() = %v; want the written key", err)
	}
	entries, _ := os.ReadDir(string(d))
	if len(entries) != 3 {
		t.Errorf("the directory holds %d entries, want 3 (no temporary files left)", len(entries))
	}

	// Refusals change nothing.
	other, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err := d.WriteNode(other, []*x509.Certificate{leaf}); err == nil {
		t.Error("WriteNode accepted a key that does not match the certificate")
	}
	if err := d.WriteNode(nodeKey, nil); err == nil {
		t.Error("WriteNode accepted an empty chain")
	}
	if err := d.WriteRoot([]byte("not a certificate")); err == nil {
		t.Error("WriteRoot accepted garbage")
	}
	if k, err := d.NodeKey(); err != nil || !k.Public().(*ecdsa.PublicKey).Equal(nodeKey.Public()) {
		t.Error("a refused write changed the node key")
	}
	if _, got, _ := d.Root(); string(got) != string(rootPEM) {
		t.Error("a refused write changed the root bundle")
	}
}

func TestReadMissing(t *testing.T) {
	d := In(t.TempDir())
	if _, _, err := d.Root(); err == nil {
		t.Error("Root() of an empty directory succeeded")
	}
	if _, err := d.NodeChain(); err == nil {
		t.Error("NodeChain() of an empty directory succeeded")
	}
	if _, err := d.NodeKey(); err == nil {
		t.Error("NodeKey() of an empty directory succeeded")
	}
}
