package extca

import (
	"context"
	"crypto/x509"
	"io"
	"log/slog"
	"net"
	"slices"
	"testing"
	"time"

	"github.com/chancery-pki/chancery/ca"
	"github.com/chancery-pki/chancery/issuer"
	"github.com/chancery-pki/chancery/signer"
)

// TestIntermediate: the endpoint issues through an intermediate of its
// own, made by the cluster's Signer (CA:TRUE, path length 1 for a swarm's
// cross-signed root, its own subject): its certificates verify under the
// root through it, never directly under the root, and the cluster's nodes
// refuse them as managers' (ca.CheckNotExternal).
func TestIntermediate(t *testing.T) {
	env := startEnv(t, envOptions{Config: func(c *Config) { c.ClusterID = testCluster }})
	inter, err := env.Server.Intermediate(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	root := env.Issuer.Chain()[0]
	if !inter.IsCA || inter.MaxPathLen != IntermediatePathLen || inter.MaxPathLenZero ||
		inter.Subject.CommonName != ca.ExternalCACommonName || !slices.Equal(inter.Subject.Organization, []string{testCluster}) {
		t.Errorf("intermediate: CA %v, path length %d, subject %s", inter.IsCA, inter.MaxPathLen, inter.Subject)
	}
	if inter.CheckSignatureFrom(root) != nil || inter.Equal(root) || signer.SamePublicKey(inter.PublicKey, root.PublicKey) {
		t.Error("the intermediate is not a new key signed by the root")
	}
	if !ca.IsExternalCA(inter) || ca.IsExternalCA(root) {
		t.Error("IsExternalCA does not tell the intermediate from the root")
	}
	for _, role := range []ca.Role{ca.RoleManager, ca.RoleWorker} {
		a := post(t, env.client(t, env.Manager), env.URL+PathSign, nodeRequestJSON(t, csrPEM(t, newKey(t), pkixName()), testCluster, testNode, role))
		certs := a.certificates(t)
		leaf := certs[0]
		if leaf.CheckSignatureFrom(root) == nil {
			t.Errorf("%s: the root signed the endpoint's certificate directly", role)
		}
		if len(certs) != 2 || !certs[1].Equal(inter) {
			t.Fatalf("%s: chain of %d certificates, want the leaf and the intermediate", role, len(certs))
		}
		pool := x509.NewCertPool()
		pool.AddCert(root)
		inters := x509.NewCertPool()
		inters.AddCert(certs[1])
		chains, err := leaf.Verify(x509.VerifyOptions{Roots: pool, Intermediates: inters, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}})
		if err != nil {
			t.Fatalf("%s: does not verify under the root through the intermediate: %v", role, err)
		}
		if err := ca.CheckNotExternal(chains); err == nil {
			t.Errorf("%s: CheckNotExternal accepted a certificate of the endpoint", role)
		}
		if _, err := leaf.Verify(x509.VerifyOptions{Roots: pool}); err == nil {
			t.Errorf("%s: verifies under the root without the intermediate", role)
		}
	}
}

// TestIntermediateFollowsIssuer: when the cluster's Issuer in force
// changes (a root rotation's phase, a new leader), the endpoint makes a new
// intermediate under the new Issuer's key, and issues through it.
func TestIntermediateFollowsIssuer(t *testing.T) {
	oldRoot, _ := newIssuer(t, "chancery-root")
	newRoot, _ := newIssuer(t, "chancery-root-2")
	h, err := issuer.Hold(oldRoot, issuer.Options{})
	if err != nil {
		t.Fatal(err)
	}
	pol, err := ParsePolicy([]byte("allow cert OU=swarm-manager clusters=own\n"), "policy", "")
	if err != nil {
		t.Fatal(err)
	}
	srv, err := New(context.Background(), Config{Issuers: h, Policy: pol, ClientCAs: x509.NewCertPool(),
		IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)}, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Fatal(err)
	}
	first, err := srv.Intermediate(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if again, _ := srv.Intermediate(context.Background()); !again.Equal(first) {
		t.Error("a new intermediate was made while the Issuer in force stayed the same")
	}
	next, err := issuer.New(newRoot, issuer.Options{})
	if err != nil {
		t.Fatal(err)
	}
	h.Store(next)
	second, err := srv.Intermediate(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if second.Equal(first) || second.CheckSignatureFrom(newRoot.Chain()[0]) != nil {
		t.Error("the intermediate did not follow the new Issuer")
	}
	if err := ca.VerifyChain([]*x509.Certificate{second}, newRoot.Chain(), time.Now()); err != nil {
		t.Error(err)
	}
	h.Store(nil)
	if _, err := srv.Intermediate(context.Background()); err == nil {
		t.Error("an intermediate with no Issuer in force")
	}
}
