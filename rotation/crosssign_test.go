package rotation

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
	"errors"
	"math/big"
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

func newRSAKey(t testing.TB) *rsa.PrivateKey {
	t.Helper()
	k, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

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
	return localRootWith(t, newKey(t), now)
}

// localRootWith is a fresh root of key held by the local issuer.
func localRootWith(t testing.TB, key crypto.Signer, now time.Time) *signer.LocalIssuer {
	t.Helper()
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
	signed bool
	sawCSR bool
	mutate func(*x509.Certificate) *x509.Certificate
}

func (c *csrOnly) Capabilities() signer.Capabilities { return signer.Capabilities{NeedsCSR: true} }

func (c *csrOnly) Describe() signer.Description { return signer.Description{Backend: "cfssl"} }

func (c *csrOnly) Sign(ctx context.Context, req *signer.Request) (*x509.Certificate, error) {
	c.signed = true
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
// with the appendix CrossSign returned, verifies against the old root now,
// for server and client authentication, as swarm's nodes use it; and
// against the new root.
func checkRotation(t *testing.T, old, next signer.Signer, appendix []*x509.Certificate, now time.Time) {
	t.Helper()
	leaf := leafOf(t, next, now)
	oldRoot := old.Chain()[len(old.Chain())-1]
	if err := verifiesUnder(append([]*x509.Certificate{leaf}, appendix...), oldRoot, now); err != nil {
		t.Errorf("a leaf of the new root, with the appendix, does not verify against the old root: %v", err)
	}
	if err := ca.VerifyChain(append([]*x509.Certificate{leaf}, appendix...), []*x509.Certificate{oldRoot}, now); err != nil {
		t.Errorf("VerifyChain against the old root: %v", err)
	}
	if err := verifiesUnder([]*x509.Certificate{leaf}, next.Chain()[0], now); err != nil {
		t.Errorf("a leaf of the new root does not verify against the new root: %v", err)
	}
	if err := ca.VerifyChain([]*x509.Certificate{leaf, appendix[0]}, next.Chain(), now); err != nil {
		t.Errorf("a leaf with the cross-signed certificate appended does not verify against the new root: %v", err)
	}
}

func TestCrossSignPaths(t *testing.T) {
	now := time.Now()
	t.Run("PublicKey", func(t *testing.T) {
		old, next := localRoot(t, now), localRoot(t, now)
		if p := ChoosePath(old, next); p != PathPublicKey {
			t.Fatalf("ChoosePath = %v, want %v", p, PathPublicKey)
		}
		appendix, err := CrossSign(context.Background(), old, next, Options{Now: now})
		if err != nil {
			t.Fatal(err)
		}
		checkRotation(t, old, next, appendix, now)
	})
	t.Run("CSR", func(t *testing.T) {
		old, next := &csrOnly{LocalIssuer: localRoot(t, now)}, localRoot(t, now)
		if p := ChoosePath(old, next); p != PathCSR {
			t.Fatalf("ChoosePath = %v, want %v", p, PathCSR)
		}
		appendix, err := CrossSign(context.Background(), old, next, Options{Now: now})
		if err != nil {
			t.Fatal(err)
		}
		if !old.sawCSR {
			t.Error("the old CA signed no CSR")
		}
		checkRotation(t, old, next, appendix, now)
	})
	t.Run("RSA", func(t *testing.T) {
		rsaOld, rsaNext := localRootWith(t, newRSAKey(t), now), localRootWith(t, newRSAKey(t), now)
		for _, pair := range [][2]signer.Signer{
			{rsaOld, rsaNext}, {localRoot(t, now), rsaNext}, {rsaOld, localRoot(t, now)},
			{&csrOnly{LocalIssuer: rsaOld}, rsaNext},
		} {
			appendix, err := CrossSign(context.Background(), pair[0], pair[1], Options{Now: now})
			if err != nil {
				t.Fatal(err)
			}
			checkRotation(t, pair[0], pair[1], appendix, now)
		}
	})
	t.Run("CurrentIsAnIntermediate", func(t *testing.T) {
		// The current CA is an intermediate under the root the nodes
		// trust, as with an external CA that signs with one.
		root := localRoot(t, now)
		interKey := newKey(t)
		inter := reissueWith(t, &x509.Certificate{
			SerialNumber: big.NewInt(7), Subject: pkix.Name{CommonName: "intermediate"},
			NotBefore: now.Add(-time.Hour), NotAfter: now.Add(5 * 365 * 24 * time.Hour),
			IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign,
		}, root.Chain()[0], testKeys[root], interKey.Public(), nil)
		old, err := signer.NewLocalIssuer(signer.LocalConfig{Key: interKey, Chain: []*x509.Certificate{inter, root.Chain()[0]}})
		if err != nil {
			t.Fatal(err)
		}
		next := localRoot(t, now)
		appendix, err := CrossSign(context.Background(), old, next, Options{Now: now})
		if err != nil {
			t.Fatal(err)
		}
		if len(appendix) != 2 || appendix[1] != inter {
			t.Fatalf("appendix of %d certificates, want the cross-signed one and the intermediate", len(appendix))
		}
		checkRotation(t, old, next, appendix, now)
	})
	t.Run("Bridge", func(t *testing.T) {
		// From a CA that signs only CSRs to a root whose backend cannot make
		// one: a one-time bridge key in between.
		old, next := &csrOnly{LocalIssuer: localRoot(t, now)}, keyOnly{localRoot(t, now)}
		if p := ChoosePath(old, next); p != PathBridge {
			t.Fatalf("ChoosePath = %v, want %v", p, PathBridge)
		}
		// Not without the caller's consent, and nothing is signed then.
		if _, err := CrossSign(context.Background(), old, next, Options{Now: now}); !errors.Is(err, ErrNeedsBridge) || old.signed {
			t.Fatalf("without AllowBridge: %v (signed: %v), want ErrNeedsBridge and nothing signed", err, old.signed)
		}
		appendix, err := CrossSign(context.Background(), old, next, Options{Now: now, AllowBridge: true})
		if err != nil {
			t.Fatal(err)
		}
		if len(appendix) != 2 || !old.sawCSR {
			t.Fatalf("appendix of %d certificates (CSR signed: %v), want the cross-signed one and the bridge's", len(appendix), old.sawCSR)
		}
		cross, bridge := appendix[0], appendix[1]
		wantOU := "bridge to root " + hex.EncodeToString(next.Chain()[0].SubjectKeyId)
		if !strings.HasPrefix(bridge.Subject.CommonName, "chancery-rotation-bridge-") || len(bridge.Subject.OrganizationalUnit) != 1 ||
			bridge.Subject.OrganizationalUnit[0] != wantOU || !bytes.Equal(cross.RawIssuer, bridge.RawSubject) {
			t.Errorf("bridge %q, cross-signed by %q", bridge.Subject, cross.Issuer)
		}
		checkRotation(t, old, next, appendix, now)

		// A bridge certificate the old CA spoils is refused.
		spoiled := &csrOnly{LocalIssuer: old.LocalIssuer, mutate: func(c *x509.Certificate) *x509.Certificate {
			return reissue(t, c, old.LocalIssuer, func(x *x509.Certificate) { x.MaxPathLen, x.MaxPathLenZero = 0, true })
		}}
		_, err = CrossSign(context.Background(), spoiled, next, Options{Now: now, AllowBridge: true})
		if !errors.Is(err, ErrBadCrossSign) || !strings.Contains(err.Error(), "bridge") {
			t.Errorf("a bridge with a path length of 0: %v", err)
		}
	})
}

// TestCrossSignValidity: the cross-signed certificate is valid while both
// roots are.
func TestCrossSignValidity(t *testing.T) {
	now := time.Now().Truncate(time.Second)
	old := localRoot(t, now.Add(-48*time.Hour))
	next := localRoot(t, now)
	appendix, err := CrossSign(context.Background(), old, next, Options{Now: now})
	if err != nil {
		t.Fatal(err)
	}
	cross := appendix[0]
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
	// faulty is the old root answering with a spoiled certificate.
	faulty := func(edit func(*x509.Certificate)) signer.Signer {
		return &csrOnly{LocalIssuer: old, mutate: func(c *x509.Certificate) *x509.Certificate { return reissue(t, c, old, edit) }}
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
		{"NewRootWithAChain", old, fixedChain{next, []*x509.Certificate{next.Chain()[0], old.Chain()[0]}}, nil, "not a chain of 2"},
		{"ExpiredNewRoot", old, localRoot(t, now.Add(-30*365*24*time.Hour)), ca.ErrRootExpiresTooSoon, "the new root"},
		{"FutureNewRoot", old, localRoot(t, now.Add(2*time.Hour)), ca.ErrRootNotYetValid, "the new root"},
		{"ExpiredCurrentRoot", localRoot(t, now.Add(-30*365*24*time.Hour)), next, nil, "is not valid now"},
		{"FutureCurrentRoot", localRoot(t, now.Add(2*time.Hour)), next, nil, "is not valid now"},
		{"CreateCSRFails", &csrOnly{LocalIssuer: old}, failingCSR{next}, nil, "a CSR for the new root's key: the token is gone"},
		{"CSRForAnotherKey", &csrOnly{LocalIssuer: old}, otherKeyCSR{next, otherKey}, nil, "a CSR for another key"},
		{"OtherSubject", faulty(func(x *x509.Certificate) { x.RawSubject = nil; x.Subject = pkix.Name{CommonName: "other"} }), next, ErrBadCrossSign, "subject"},
		{"OtherKey", &csrOnly{LocalIssuer: old, mutate: func(c *x509.Certificate) *x509.Certificate {
			return reissueFor(t, c, old, otherKey.Public(), nil)
		}}, next, ErrBadCrossSign, "public key"},
		{"OtherIssuerName", &csrOnly{LocalIssuer: old, mutate: func(c *x509.Certificate) *x509.Certificate {
			other, err := signer.SelfSign(nil, otherKey, ca.NewRootTemplate("other-ca", now))
			if err != nil {
				t.Fatal(err)
			}
			return reissueBy(t, c, other, otherKey)
		}}, next, ErrBadCrossSign, "issuer"},
		{"PathLengthZero", faulty(func(x *x509.Certificate) { x.MaxPathLen, x.MaxPathLenZero = 0, true }), next, ErrBadCrossSign, "path length"},
		{"PathLengthOne", faulty(func(x *x509.Certificate) { x.MaxPathLen = 1 }), next, ErrBadCrossSign, "path length to 1"},
		{"NotCA", faulty(func(x *x509.Certificate) { x.IsCA = false; x.KeyUsage = x509.KeyUsageDigitalSignature }), next, ErrBadCrossSign, "CA:TRUE"},
		{"NoCertSign", faulty(func(x *x509.Certificate) { x.KeyUsage = x509.KeyUsageCRLSign }), next, ErrBadCrossSign, "certificate signing"},
		{"ServerAuthOnly", faulty(func(x *x509.Certificate) { x.ExtKeyUsage = []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth} }), next, ErrBadCrossSign, "extended key usages"},
		{"NameConstraints", faulty(func(x *x509.Certificate) { x.PermittedDNSDomains = []string{"example.com"} }), next, ErrBadCrossSign, "name constraints"},
		{"OtherKeyID", faulty(func(x *x509.Certificate) { x.SubjectKeyId = []byte{1, 2, 3} }), next, ErrBadCrossSign, "key ID"},
		{"NotYetValid", faulty(func(x *x509.Certificate) { x.NotBefore = now.Add(time.Hour) }), next, ErrBadCrossSign, "valid only from"},
		{"ShortLived", faulty(func(x *x509.Certificate) { x.NotAfter = now.Add(7 * 24 * time.Hour) }), next, ErrBadCrossSign, "the rotation could outlast it"},
		{"SignedByAnother", &csrOnly{LocalIssuer: old, mutate: func(c *x509.Certificate) *x509.Certificate {
			return reissueBy(t, c, impostor, otherKey)
		}}, next, ErrBadCrossSign, "signature"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := CrossSign(context.Background(), tc.old, tc.next, Options{Now: now})
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

// TestCrossSignMinLifetime: a cross-signed certificate that would not
// outlast the rotation is refused; a shorter rotation accepts it.
func TestCrossSignMinLifetime(t *testing.T) {
	now := time.Now()
	old, next := localRoot(t, now), localRoot(t, now)
	short := &csrOnly{LocalIssuer: old, mutate: func(c *x509.Certificate) *x509.Certificate {
		return reissue(t, c, old, func(x *x509.Certificate) { x.NotAfter = now.Add(10 * 24 * time.Hour) })
	}}
	if _, err := CrossSign(context.Background(), short, next, Options{Now: now}); !errors.Is(err, ErrBadCrossSign) {
		t.Errorf("a 10-day cross-signed certificate for a rotation of ca.DefaultCertExpiry: %v", err)
	}
	if _, err := CrossSign(context.Background(), short, next, Options{Now: now, MinLifetime: 7 * 24 * time.Hour}); err != nil {
		t.Errorf("a 10-day cross-signed certificate for a 7-day rotation: %v", err)
	}
}

// failingCSR is a new root whose backend cannot make its CSR now.
type failingCSR struct{ *signer.LocalIssuer }

func (failingCSR) CreateCSR(context.Context, *x509.CertificateRequest) ([]byte, error) {
	return nil, errors.New("the token is gone")
}

// otherKeyCSR is a new root whose backend makes a CSR for another key.
type otherKeyCSR struct {
	*signer.LocalIssuer
	key crypto.Signer
}

func (o otherKeyCSR) CreateCSR(_ context.Context, tmpl *x509.CertificateRequest) ([]byte, error) {
	return x509.CreateCertificateRequest(rand.Reader, tmpl, o.key)
}

// TestCrossSignPathLengthBudget: a current CA whose path length limit
// leaves no room for the certificates the rotation puts below it is refused
// before anything is signed.
func TestCrossSignPathLengthBudget(t *testing.T) {
	now := time.Now()
	root := localRoot(t, now)
	intermediate := func(maxPathLen int) *signer.LocalIssuer {
		key := newKey(t)
		cert := reissueWith(t, &x509.Certificate{
			SerialNumber: big.NewInt(9), Subject: pkix.Name{CommonName: "intermediate"},
			NotBefore: now.Add(-time.Hour), NotAfter: now.Add(5 * 365 * 24 * time.Hour),
			IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign,
			MaxPathLen: maxPathLen, MaxPathLenZero: maxPathLen == 0,
		}, root.Chain()[0], testKeys[root], key.Public(), nil)
		iss, err := signer.NewLocalIssuer(signer.LocalConfig{Key: key, Chain: []*x509.Certificate{cert, root.Chain()[0]}})
		if err != nil {
			t.Fatal(err)
		}
		return iss
	}
	for _, tc := range []struct {
		name       string
		maxPathLen int
		bridge     bool
		ok         bool
	}{
		{"ZeroDirect", 0, false, false},
		{"OneDirect", 1, false, true},
		{"OneBridge", 1, true, false},
		{"TwoBridge", 2, true, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			inter := intermediate(tc.maxPathLen)
			var old signer.Signer = inter
			var next signer.Signer = localRoot(t, now)
			if tc.bridge {
				old, next = &csrOnly{LocalIssuer: inter}, keyOnly{next}
			}
			appendix, err := CrossSign(context.Background(), old, next, Options{Now: now, AllowBridge: true})
			if tc.ok {
				if err != nil {
					t.Fatal(err)
				}
				checkRotation(t, old, next, appendix, now)
				return
			}
			if err == nil || !strings.Contains(err.Error(), "limits the path length") {
				t.Fatalf("error %v, want a path length refusal", err)
			}
			if c, ok := old.(*csrOnly); ok && c.signed {
				t.Error("the current CA signed before the refusal")
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

// noCrossSign is a Signer whose CA says it does not sign CA certificates.
type noCrossSign struct{ *signer.LocalIssuer }

var errNoCA = errors.New("this CA issues no CA certificates")

func (noCrossSign) CanCrossSign() error { return errNoCA }

// TestCrossSignRefusedByChecker: a current CA that says it cannot
// cross-sign (CrossSignChecker) is not asked to.
func TestCrossSignRefusedByChecker(t *testing.T) {
	now := time.Now()
	old, next := noCrossSign{localRoot(t, now)}, localRoot(t, now)
	if err := CheckCanCrossSign(old); !errors.Is(err, errNoCA) {
		t.Errorf("CheckCanCrossSign = %v", err)
	}
	if err := CheckCanCrossSign(next); err != nil {
		t.Errorf("CheckCanCrossSign of a local issuer = %v", err)
	}
	if _, err := CrossSign(context.Background(), old, next, Options{Now: now}); !errors.Is(err, errNoCA) {
		t.Errorf("CrossSign = %v, want the checker's refusal", err)
	}
}
