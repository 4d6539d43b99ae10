package certdir

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"encoding/pem"
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

// A crash between WriteNode's key and certificate renames leaves a new key
// beside the old certificate and the staged new one; LoadNode finishes the
// swap, so the pair always matches.
func TestLoadNodeFinishesInterruptedSwap(t *testing.T) {
	now := time.Now()
	rootKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	root, _ := signer.SelfSign(rand.Reader, rootKey, ca.NewRootTemplate("", now))
	iss, _ := signer.NewLocalIssuer(signer.LocalConfig{Key: rootKey, Chain: []*x509.Certificate{root}})
	issue := func() (*ecdsa.PrivateKey, *x509.Certificate) {
		k, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		csr, _ := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{}, k)
		req, err := ca.NodeCertificateRequest(ca.NodeRequest{ClusterID: "ohgi9ctpbev24dl6daf7insou", NodeID: "kgwuvt1oqhqjsht0qcsq67rvu",
			Role: ca.RoleWorker, CSR: csr, Now: now}, root)
		if err != nil {
			t.Fatal(err)
		}
		c, err := iss.Sign(t.Context(), req)
		if err != nil {
			t.Fatal(err)
		}
		return k, c
	}
	d := In(t.TempDir())
	oldKey, oldCert := issue()
	if err := d.WriteNode(oldKey, []*x509.Certificate{oldCert}); err != nil {
		t.Fatal(err)
	}
	newKey, newCert := issue()
	// Simulate the crash: the staged certificate and the new key are in
	// place, the old certificate is still swarm-node.crt.
	if err := d.write(pendingCert, ca.EncodeCertificatesPEM(newCert), 0o644); err != nil {
		t.Fatal(err)
	}
	der, _ := x509.MarshalPKCS8PrivateKey(newKey)
	if err := d.write(NodeKeyFile, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	k, chain, err := d.LoadNode()
	if err != nil {
		t.Fatal(err)
	}
	if !k.Public().(*ecdsa.PublicKey).Equal(newKey.Public()) || !chain[0].Equal(newCert) {
		t.Error("LoadNode did not finish the swap to the new pair")
	}
	if _, err := os.Stat(d.Path(pendingCert)); !os.IsNotExist(err) {
		t.Error("the staged certificate is still there")
	}
	// A mismatch with nothing staged is an error, not a guess.
	if err := d.write(NodeCertFile, ca.EncodeCertificatesPEM(oldCert), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, _, err := d.LoadNode(); err == nil {
		t.Error("LoadNode accepted a key and certificate that do not match")
	}
}
