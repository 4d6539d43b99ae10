package issuer_test

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/chancery-pki/chancery/ca"
	"github.com/chancery-pki/chancery/issuer"
	"github.com/chancery-pki/chancery/rotation"
	"github.com/chancery-pki/chancery/signer"
)

func newKey(t testing.TB) *ecdsa.PrivateKey {
	t.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

// localRoot is a file-backend-like root: a self-signed CA and its key.
func localRoot(t testing.TB, cn string) *signer.LocalIssuer {
	t.Helper()
	key := newKey(t)
	root, err := signer.SelfSign(nil, key, ca.NewRootTemplate(cn, time.Now()))
	if err != nil {
		t.Fatal(err)
	}
	li, err := signer.NewLocalIssuer(signer.LocalConfig{Key: key, Chain: []*x509.Certificate{root}})
	if err != nil {
		t.Fatal(err)
	}
	return li
}

// intermediate is a CA under parent, and its key, issuing as a Signer whose
// chain is the intermediate then parent's chain.
func intermediate(t testing.TB, parent signer.Signer) *signer.LocalIssuer {
	t.Helper()
	key := newKey(t)
	now := time.Now()
	tmpl := ca.NewRootTemplate("swarm-intermediate", now)
	tmpl.NotAfter = parent.Chain()[0].NotAfter
	tmpl.NotBefore = parent.Chain()[0].NotBefore
	subject, _ := signer.SubjectKeyID(key.Public())
	tmpl.SubjectKeyId = subject
	cert, err := parent.Sign(context.Background(), &signer.Request{PublicKey: key.Public(), Template: tmpl, Profile: signer.ProfileCA})
	if err != nil {
		t.Fatal(err)
	}
	li, err := signer.NewLocalIssuer(signer.LocalConfig{Key: key, Chain: append([]*x509.Certificate{cert}, parent.Chain()...)})
	if err != nil {
		t.Fatal(err)
	}
	return li
}

// nodeRequest asks for a worker certificate for a fresh key under caCert.
func nodeRequest(t testing.TB, caCert *x509.Certificate) (*signer.Request, crypto.PublicKey) {
	t.Helper()
	key := newKey(t)
	csr, err := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{}, key)
	if err != nil {
		t.Fatal(err)
	}
	id, err := ca.NewID(nil)
	if err != nil {
		t.Fatal(err)
	}
	clusterID, err := ca.NewID(nil)
	if err != nil {
		t.Fatal(err)
	}
	req, err := ca.NodeCertificateRequest(ca.NodeRequest{
		ClusterID: clusterID, NodeID: id, Role: ca.RoleWorker, CSR: csr,
		Expiry: ca.DefaultCertExpiry, Now: time.Now(),
	}, caCert)
	if err != nil {
		t.Fatal(err)
	}
	return req, key.Public()
}

// verify checks chain as a node that trusts root does, for client and
// server authentication.
func verify(chain []*x509.Certificate, root *x509.Certificate) error {
	roots, inter := x509.NewCertPool(), x509.NewCertPool()
	roots.AddCert(root)
	for _, c := range chain[1:] {
		inter.AddCert(c)
	}
	for _, u := range []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth} {
		if _, err := chain[0].Verify(x509.VerifyOptions{Roots: roots, Intermediates: inter, KeyUsages: []x509.ExtKeyUsage{u}}); err != nil {
			return err
		}
	}
	return nil
}

func TestChainHandedOut(t *testing.T) {
	root := localRoot(t, "swarm-ca")
	inter := intermediate(t, root)
	next := localRoot(t, "swarm-ca")
	appendix, err := rotation.CrossSign(context.Background(), root, next, rotation.Options{})
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name     string
		s        signer.Signer
		appendix []*x509.Certificate
		want     []*x509.Certificate // after the leaf
		trust    *x509.Certificate
	}{
		{"Root", root, nil, nil, root.Chain()[0]},
		{"Intermediate", inter, nil, inter.Chain()[:1], root.Chain()[0]},
		{"Appendix", next, appendix, appendix, root.Chain()[0]},
	} {
		t.Run(tc.name, func(t *testing.T) {
			iss, err := issuer.New(tc.s, issuer.Options{Appendix: tc.appendix})
			if err != nil {
				t.Fatal(err)
			}
			req, pub := nodeRequest(t, iss.CA())
			out, err := iss.Issue(context.Background(), req)
			if err != nil {
				t.Fatal(err)
			}
			if !signer.SamePublicKey(out.Certificate.PublicKey, pub) {
				t.Error("the leaf is not for the request's key")
			}
			if len(out.Chain) != 1+len(tc.want) || out.Chain[0] != out.Certificate {
				t.Fatalf("chain of %d certificates, want the leaf and %d", len(out.Chain), len(tc.want))
			}
			for i, c := range tc.want {
				if !out.Chain[1+i].Equal(c) {
					t.Errorf("certificate %d after the leaf is %q, want %q", i+1, out.Chain[1+i].Subject, c.Subject)
				}
			}
			if err := verify(out.Chain, tc.trust); err != nil {
				t.Errorf("the chain handed out does not verify under %q: %v", tc.trust.Subject, err)
			}
			if got := iss.Backend(); got != "" {
				t.Errorf("Backend() = %q for a signer that does not describe itself", got)
			}
		})
	}
}

func TestNewRefuses(t *testing.T) {
	root := localRoot(t, "swarm-ca")
	for _, tc := range []struct {
		name string
		s    signer.Signer
		opts issuer.Options
	}{
		{"NoSigner", nil, issuer.Options{}},
		{"EmptyChain", emptyChain{root}, issuer.Options{}},
		{"NilInAppendix", root, issuer.Options{Appendix: []*x509.Certificate{nil}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if iss, err := issuer.New(tc.s, tc.opts); err == nil {
				t.Fatalf("New = %v, want an error", iss)
			}
		})
	}
}

type emptyChain struct{ signer.Signer }

func (emptyChain) Chain() []*x509.Certificate { return nil }

// spoiling is a Signer whose CA returns a certificate that differs from
// the request, signed by the CA's key.
type spoiling struct {
	*signer.LocalIssuer
	key  crypto.Signer
	edit func(*x509.Certificate)
}

func (s spoiling) Sign(ctx context.Context, req *signer.Request) (*x509.Certificate, error) {
	c, err := s.LocalIssuer.Sign(ctx, req)
	if err != nil {
		return nil, err
	}
	s.edit(c)
	der, err := x509.CreateCertificate(rand.Reader, c, s.Chain()[0], c.PublicKey, s.key)
	if err != nil {
		return nil, err
	}
	return x509.ParseCertificate(der)
}

func TestIssueWithholdsWhatDiffers(t *testing.T) {
	key := newKey(t)
	rootCert, err := signer.SelfSign(nil, key, ca.NewRootTemplate("swarm-ca", time.Now()))
	if err != nil {
		t.Fatal(err)
	}
	li, err := signer.NewLocalIssuer(signer.LocalConfig{Key: key, Chain: []*x509.Certificate{rootCert}})
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name  string
		edit  func(*x509.Certificate)
		field string
	}{
		{"OtherCN", func(c *x509.Certificate) { c.RawSubject = nil; c.Subject.CommonName = "someone-else" }, "subject"},
		{"ManagerOU", func(c *x509.Certificate) {
			c.RawSubject = nil
			c.Subject.OrganizationalUnit = []string{string(ca.RoleManager)}
		}, "subject"},
		{"ExtraDNSName", func(c *x509.Certificate) { c.DNSNames = append(c.DNSNames, "swarm-ca") }, "dns names"},
		{"DNSNamesReordered", func(c *x509.Certificate) { c.DNSNames[0], c.DNSNames[1] = c.DNSNames[1], c.DNSNames[0] }, "dns names"},
		{"CA", func(c *x509.Certificate) { c.IsCA = true }, "basic constraints"},
		{"ServerAuthOnly", func(c *x509.Certificate) { c.ExtKeyUsage = []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth} }, "extended key usage"},
		{"Longer", func(c *x509.Certificate) { c.NotAfter = c.NotAfter.Add(time.Hour) }, "validity"},
		{"OCSPURL", func(c *x509.Certificate) { c.OCSPServer = []string{"http://ocsp.example"} }, "extensions"},
		{"OtherName", func(c *x509.Certificate) {
			c.Subject = pkix.Name{CommonName: "x"}
			c.RawSubject = nil
		}, "subject"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			iss, err := issuer.New(spoiling{LocalIssuer: li, key: key, edit: tc.edit}, issuer.Options{})
			if err != nil {
				t.Fatal(err)
			}
			req, _ := nodeRequest(t, iss.CA())
			out, err := iss.Issue(context.Background(), req)
			if err == nil {
				t.Fatalf("Issue handed out %q, which differs from the request", out.Certificate.Subject)
			}
			var ie *signer.IssuedError
			if !errors.As(err, &ie) || !errors.Is(err, signer.ErrIssuedMismatch) {
				t.Fatalf("error %v is not a signer.IssuedError", err)
			}
			if ie.Field != tc.field {
				t.Errorf("field %q, want %q (%v)", ie.Field, tc.field, err)
			}
		})
	}
	t.Run("Unchanged", func(t *testing.T) {
		iss, err := issuer.New(spoiling{LocalIssuer: li, key: key, edit: func(*x509.Certificate) {}}, issuer.Options{})
		if err != nil {
			t.Fatal(err)
		}
		req, _ := nodeRequest(t, iss.CA())
		if _, err := iss.Issue(context.Background(), req); err != nil {
			t.Fatalf("the re-signed but unchanged certificate was refused: %v", err)
		}
	})
}

func TestHolder(t *testing.T) {
	var h issuer.Holder
	if h.Load() != nil {
		t.Fatal("the zero Holder holds an Issuer")
	}
	if _, err := h.Current(); !errors.Is(err, issuer.ErrNoIssuer) {
		t.Fatalf("Current() on the zero Holder: %v, want ErrNoIssuer", err)
	}
	held, err := issuer.Hold(localRoot(t, "swarm-ca"), issuer.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if cur, err := held.Current(); err != nil || cur != held.Load() {
		t.Fatalf("Current() = %v, %v", cur, err)
	}
	held.Store(nil)
	if _, err := held.Current(); !errors.Is(err, issuer.ErrNoIssuer) {
		t.Fatalf("Current() after Store(nil): %v, want ErrNoIssuer", err)
	}
}

// TestSwapUnderConcurrentIssuance replaces the Issuer in force, as a root
// rotation does (the old root; the new key with the cross-signed appendix;
// back), while certificates are issued concurrently. Each certificate
// verifies under the Issuer that signed it, every chain handed out verifies
// under the old root that nodes trust, and none fails.
func TestSwapUnderConcurrentIssuance(t *testing.T) {
	old := localRoot(t, "swarm-ca")
	next := localRoot(t, "swarm-ca")
	appendix, err := rotation.CrossSign(context.Background(), old, next, rotation.Options{})
	if err != nil {
		t.Fatal(err)
	}
	before, err := issuer.New(old, issuer.Options{})
	if err != nil {
		t.Fatal(err)
	}
	during, err := issuer.New(next, issuer.Options{Appendix: appendix})
	if err != nil {
		t.Fatal(err)
	}
	h := issuer.NewHolder(before)

	const workers, perWorker = 8, 40
	var (
		stop     = make(chan struct{})
		swapped  atomic.Int64
		wg       sync.WaitGroup
		bySigner = map[*issuer.Issuer]*atomic.Int64{before: {}, during: {}}
	)
	go func() {
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			default:
			}
			if i%2 == 0 {
				h.Store(during)
			} else {
				h.Store(before)
			}
			swapped.Add(1)
			time.Sleep(200 * time.Microsecond)
		}
	}()
	errs := make(chan error, workers*perWorker)
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range perWorker {
				iss, err := h.Current()
				if err != nil {
					errs <- err
					return
				}
				req, _ := nodeRequest(t, iss.CA())
				out, err := iss.Issue(context.Background(), req)
				if err != nil {
					errs <- err
					continue
				}
				bySigner[iss].Add(1)
				if err := out.Certificate.CheckSignatureFrom(iss.CA()); err != nil {
					errs <- err
				}
				if err := verify(out.Chain, old.Chain()[0]); err != nil {
					errs <- err
				}
				if iss == during {
					if err := verify(out.Chain, next.Chain()[0]); err != nil {
						errs <- err
					}
				}
			}
		}()
	}
	wg.Wait()
	close(stop)
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if bySigner[before].Load() == 0 || bySigner[during].Load() == 0 || swapped.Load() < 2 {
		t.Errorf("issued %d by the old key and %d by the new one across %d swaps: both should have issued",
			bySigner[before].Load(), bySigner[during].Load(), swapped.Load())
	}
	t.Logf("%d certificates by the old key, %d by the new one, %d swaps", bySigner[before].Load(), bySigner[during].Load(), swapped.Load())
}
