package rotation

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/chancery-pki/chancery/ca"
	"github.com/chancery-pki/chancery/signer"
)

const (
	testClusterID = "4h5log5xpip966c6c0000z2cy"
	testNodeID    = "kgwuvt1oqhqjsht0qcsq67rvu"
)

func newKey(t testing.TB) *ecdsa.PrivateKey {
	t.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

// localRoot is a fresh P-256 root held by the local issuer.
func localRoot(t testing.TB, now time.Time) *signer.LocalIssuer {
	t.Helper()
	key := newKey(t)
	root, err := signer.SelfSign(nil, key, ca.NewRootTemplate("swarm-ca", now))
	if err != nil {
		t.Fatal(err)
	}
	iss, err := signer.NewLocalIssuer(signer.LocalConfig{Key: key, Chain: []*x509.Certificate{root},
		Description: signer.Description{Backend: "file"}})
	if err != nil {
		t.Fatal(err)
	}
	testKeys[iss] = key
	return iss
}

// testKeys are the keys of the roots localRoot made, for tests that play a
// faulty CA.
var testKeys = map[*signer.LocalIssuer]crypto.Signer{}

// csrOnly is a CA that signs only CSRs, as an external CFSSL CA does: it
// reports NeedsCSR without SignsPublicKey, and refuses a request without a
// CSR for the request's key. mutate, when set, spoils what it returns.
type csrOnly struct {
	*signer.LocalIssuer
	sawCSR bool
	mutate func(*x509.Certificate) *x509.Certificate
}

func (c *csrOnly) Capabilities() signer.Capabilities { return signer.Capabilities{NeedsCSR: true} }

func (c *csrOnly) Describe() signer.Description { return signer.Description{Backend: "cfssl"} }

func (c *csrOnly) Sign(ctx context.Context, req *signer.Request) (*x509.Certificate, error) {
	if req.CSR == nil || !signer.SamePublicKey(req.CSR.PublicKey, req.PublicKey) {
		return nil, errors.New("csrOnly: a CSR for the request's key is needed")
	}
	if err := req.CSR.CheckSignature(); err != nil {
		return nil, err
	}
	c.sawCSR = true
	cert, err := c.LocalIssuer.Sign(ctx, req)
	if err == nil && c.mutate != nil {
		cert = c.mutate(cert)
	}
	return cert, err
}

// keyOnly is a root whose backend cannot make CSRs.
type keyOnly struct{ signer.Signer }

func (keyOnly) Capabilities() signer.Capabilities { return signer.Capabilities{NeedsCSR: true} }

// leafOf issues a worker certificate from s.
func leafOf(t *testing.T, s signer.Signer, now time.Time) *x509.Certificate {
	t.Helper()
	csr, err := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{}, newKey(t))
	if err != nil {
		t.Fatal(err)
	}
	req, err := ca.NodeCertificateRequest(ca.NodeRequest{ClusterID: testClusterID, NodeID: testNodeID, Role: ca.RoleWorker,
		CSR: csr, Expiry: ca.DefaultCertExpiry, Now: now}, s.Chain()[0])
	if err != nil {
		t.Fatal(err)
	}
	leaf, err := s.Sign(context.Background(), req)
	if err != nil {
		t.Fatalf("a leaf from the new root: %v", err)
	}
	return leaf
}

// checkRotation checks what a rotation relies on: a leaf of the new root,
// with the cross-signed certificate appended, verifies against the old
// root, and against the new root.
func checkRotation(t *testing.T, old, next signer.Signer, cross *x509.Certificate, now time.Time) {
	t.Helper()
	leaf := leafOf(t, next, now)
	at := leaf.NotBefore.Add(time.Minute)
	oldRoots := old.Chain()[len(old.Chain())-1:]
	chain := append([]*x509.Certificate{leaf, cross}, old.Chain()[:len(old.Chain())-1]...)
	if err := ca.VerifyChain(chain, oldRoots, at); err != nil {
		t.Errorf("a leaf of the new root does not verify against the old root through the cross-signed certificate: %v", err)
	}
	if err := ca.VerifyChain([]*x509.Certificate{leaf, cross}, next.Chain(), at); err != nil {
		t.Errorf("a leaf with the cross-signed certificate appended does not verify against the new root: %v", err)
	}
}

func TestCrossSignPaths(t *testing.T) {
	now := time.Now()
	t.Run("PublicKey", func(t *testing.T) {
		old, next := localRoot(t, now), localRoot(t, now)
		if p, err := ChoosePath(old, next); err != nil || p != PathPublicKey {
			t.Fatalf("ChoosePath = %v, %v; want %v", p, err, PathPublicKey)
		}
		cross, err := CrossSign(context.Background(), old, next, now)
		if err != nil {
			t.Fatal(err)
		}
		checkRotation(t, old, next, cross, now)
	})
	t.Run("CSR", func(t *testing.T) {
		old, next := &csrOnly{LocalIssuer: localRoot(t, now)}, localRoot(t, now)
		if p, err := ChoosePath(old, next); err != nil || p != PathCSR {
			t.Fatalf("ChoosePath = %v, %v; want %v", p, err, PathCSR)
		}
		cross, err := CrossSign(context.Background(), old, next, now)
		if err != nil {
			t.Fatal(err)
		}
		if !old.sawCSR {
			t.Error("the old CA signed no CSR")
		}
		checkRotation(t, old, next, cross, now)
	})
	t.Run("NoPath", func(t *testing.T) {
		old, next := &csrOnly{LocalIssuer: localRoot(t, now)}, keyOnly{localRoot(t, now)}
		_, err := CrossSign(context.Background(), old, next, now)
		if !errors.Is(err, ErrNoPath) {
			t.Fatalf("error %v, want ErrNoPath", err)
		}
		for _, want := range []string{"(cfssl)", "only from a CSR", "(unknown) cannot make a CSR"} {
			if !strings.Contains(err.Error(), want) {
				t.Errorf("error %q does not say %q", err, want)
			}
		}
	})
}

// TestCrossSignValidity: the cross-signed certificate is valid while both
// roots are.
func TestCrossSignValidity(t *testing.T) {
	now := time.Now().Truncate(time.Second)
	old := localRoot(t, now.Add(-48*time.Hour))
	next := localRoot(t, now)
	cross, err := CrossSign(context.Background(), old, next, now)
	if err != nil {
		t.Fatal(err)
	}
	if !cross.NotBefore.Equal(next.Chain()[0].NotBefore) || !cross.NotAfter.Equal(old.Chain()[0].NotAfter) {
		t.Errorf("validity [%s, %s], want [%s, %s]", cross.NotBefore, cross.NotAfter, next.Chain()[0].NotBefore, old.Chain()[0].NotAfter)
	}
}

func TestCrossSignRefuses(t *testing.T) {
	now := time.Now()
	old := localRoot(t, now)
	next := localRoot(t, now)
	leaf := leafOf(t, next, now)
	otherKey := newKey(t)
	// Another CA of the same name: what it signs names the old root as
	// issuer, but does not verify under it.
	impostor, err := signer.SelfSign(nil, otherKey, ca.NewRootTemplate("swarm-ca", now))
	if err != nil {
		t.Fatal(err)
	}

	for _, tc := range []struct {
		name string
		old  signer.Signer
		next signer.Signer
		want error  // errors.Is target, or nil to match text only
		says string // substring of the error
	}{
		{"SameRoot", old, old, ErrSameRoot, "current root's key"},
		{"NewRootIsALeaf", old, fixedChain{next, []*x509.Certificate{leaf}}, nil, "not a self-signed root"},
		{"NewRootWithAChain", old, fixedChain{next, []*x509.Certificate{next.Chain()[0], old.Chain()[0]}}, nil, "not a self-signed root"},
		{"ExpiredNewRoot", old, localRoot(t, now.Add(-30*365*24*time.Hour)), nil, "the new root"},
		{"OtherSubject", &csrOnly{LocalIssuer: old, mutate: func(c *x509.Certificate) *x509.Certificate {
			return reissue(t, c, old, func(x *x509.Certificate) { x.RawSubject = nil; x.Subject = pkix.Name{CommonName: "other"} })
		}}, next, ErrBadCrossSign, "subject"},
		{"OtherKey", &csrOnly{LocalIssuer: old, mutate: func(c *x509.Certificate) *x509.Certificate {
			return reissueFor(t, c, old, otherKey.Public(), nil)
		}}, next, ErrBadCrossSign, "public key"},
		{"PathLengthZero", &csrOnly{LocalIssuer: old, mutate: func(c *x509.Certificate) *x509.Certificate {
			return reissue(t, c, old, func(x *x509.Certificate) { x.MaxPathLen, x.MaxPathLenZero = 0, true })
		}}, next, ErrBadCrossSign, "path length"},
		{"NotCA", &csrOnly{LocalIssuer: old, mutate: func(c *x509.Certificate) *x509.Certificate {
			return reissue(t, c, old, func(x *x509.Certificate) { x.IsCA = false; x.KeyUsage = x509.KeyUsageDigitalSignature })
		}}, next, ErrBadCrossSign, "CA:TRUE"},
		{"SignedByAnother", &csrOnly{LocalIssuer: old, mutate: func(c *x509.Certificate) *x509.Certificate {
			return reissueBy(t, c, impostor, otherKey)
		}}, next, ErrBadCrossSign, "signature"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := CrossSign(context.Background(), tc.old, tc.next, now)
			if err == nil {
				t.Fatal("no error")
			}
			if tc.want != nil && !errors.Is(err, tc.want) {
				t.Errorf("error %q does not match %q", err, tc.want)
			}
			if !strings.Contains(err.Error(), tc.says) {
				t.Errorf("error %q does not say %q", err, tc.says)
			}
		})
	}
}

// fixedChain is a Signer whose Chain is given.
type fixedChain struct {
	signer.Signer
	chain []*x509.Certificate
}

func (f fixedChain) Chain() []*x509.Certificate { return f.chain }

// reissue signs a copy of c, edited, with old's key, as a faulty CA might.
func reissue(t *testing.T, c *x509.Certificate, old signer.Signer, edit func(*x509.Certificate)) *x509.Certificate {
	return reissueFor(t, c, old, c.PublicKey, edit)
}

func reissueFor(t *testing.T, c *x509.Certificate, old signer.Signer, pub crypto.PublicKey, edit func(*x509.Certificate)) *x509.Certificate {
	t.Helper()
	li := old.(*signer.LocalIssuer)
	return reissueWith(t, c, li.Chain()[0], testKeys[li], pub, edit)
}

func reissueBy(t *testing.T, c *x509.Certificate, parent *x509.Certificate, key crypto.Signer) *x509.Certificate {
	return reissueWith(t, c, parent, key, c.PublicKey, nil)
}

func reissueWith(t *testing.T, c *x509.Certificate, parent *x509.Certificate, key crypto.Signer, pub crypto.PublicKey, edit func(*x509.Certificate)) *x509.Certificate {
	t.Helper()
	tmpl := *c
	if edit != nil {
		edit(&tmpl)
	}
	der, err := x509.CreateCertificate(rand.Reader, &tmpl, parent, pub, key)
	if err != nil {
		t.Fatal(err)
	}
	out, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return out
}
