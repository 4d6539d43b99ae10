package loadtest

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"errors"
	"fmt"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"time"

	"github.com/chancery-pki/chancery/api"
	"github.com/chancery-pki/chancery/ca"
	"github.com/chancery-pki/chancery/client"
	"github.com/chancery-pki/chancery/signer"
)

// Fleet is a set of light simulated nodes that joined a manager and keep
// behaving as node agents do, without files: a heartbeat at the period the
// manager gives, with the fingerprint of the root they trust and the
// serial of the certificate they present; a renewal when the manager asks
// for one (a root rotation); the new root taken when the manager gives it.
// A root rotation's benchmark drives thousands.
type Fleet struct {
	addr  string
	nodes []*simNode
	// Renewals counts renewals made; Errors failed calls; Reported the
	// nodes that have reported at least once.
	Renewals, Errors, Reported atomic.Int64
	errMu                      sync.Mutex
	firstErr                   string
}

// simNode is one simulated node.
type simNode struct {
	mu      sync.Mutex
	key     *ecdsa.PrivateKey
	cert    *tls.Certificate
	rootPEM []byte
	trusted string
	client  *client.Client
	closed  bool
	// reported is set once the node has reported.
	reported bool
}

// JoinFleet joins n simulated nodes to the manager at addr with token, c
// at a time.
func JoinFleet(ctx context.Context, addr, token string, n, c int) (*Fleet, error) {
	if n <= 0 || c <= 0 {
		return nil, errors.New("loadtest: nodes and concurrency must be positive")
	}
	tok, err := ca.ParseJoinToken(token)
	if err != nil {
		return nil, err
	}
	rootPEM, err := client.New(addr, nil, nil).FetchRoot(ctx)
	if err != nil {
		return nil, err
	}
	if err := tok.CheckRoot(rootPEM); err != nil {
		return nil, err
	}
	pool, err := poolOf(rootPEM)
	if err != nil {
		return nil, err
	}
	f := &Fleet{addr: addr, nodes: make([]*simNode, n)}
	joiner := client.New(addr, pool, nil)
	defer joiner.Close()
	p := phase(ctx, n, c, func(i int) error {
		key, csr, err := newCSR()
		if err != nil {
			return err
		}
		out, err := joiner.Join(ctx, api.JoinRequest{Token: token, CSR: string(csr), Hostname: fmt.Sprintf("sim-%d", i)})
		if err != nil {
			return err
		}
		cert, err := tlsCert(key, out.CertificatePEM)
		if err != nil {
			return err
		}
		sn := &simNode{key: key, cert: cert}
		if err := sn.trust(addr, rootPEM); err != nil {
			return err
		}
		f.nodes[i] = sn
		return nil
	})
	if p.Errors > 0 {
		f.Close()
		return nil, fmt.Errorf("loadtest: %d of %d joins failed; the first: %s", p.Errors, n, p.FirstError)
	}
	return f, nil
}

// Close releases the nodes' connections.
func (f *Fleet) Close() {
	for _, n := range f.nodes {
		if n != nil {
			n.mu.Lock()
			n.closed = true
			if n.client != nil {
				n.client.Close()
			}
			n.mu.Unlock()
		}
	}
}

// Run runs every node until ctx ends: each reports at the period the
// manager gives (starting at a random point of the first period), renews
// when asked, and takes a new root when given one.
func (f *Fleet) Run(ctx context.Context, period time.Duration) {
	var wg sync.WaitGroup
	for _, n := range f.nodes {
		wg.Add(1)
		go func() {
			defer wg.Done()
			f.runNode(ctx, n, period)
		}()
	}
	wg.Wait()
}

func (f *Fleet) runNode(ctx context.Context, n *simNode, period time.Duration) {
	wait := time.Duration(rand.Int64N(int64(period)))
	for {
		select {
		case <-ctx.Done():
			return
		case <-time.After(wait):
		}
		wait = period
		n.mu.Lock()
		c, trusted, serial := n.client, n.trusted, signer.SerialHex(n.cert.Leaf.SerialNumber)
		n.mu.Unlock()
		st, err := c.Status(ctx, api.StatusRequest{TrustedRoot: trusted, CertSerial: serial})
		if err != nil {
			if ctx.Err() == nil {
				f.fail(err)
			}
			continue
		}
		if !n.reported {
			n.reported = true
			f.Reported.Add(1)
		}
		if st.HeartbeatPeriod > 0 {
			period = st.HeartbeatPeriod
		}
		if st.RootCAPEM != "" && !bytes.Equal([]byte(st.RootCAPEM), n.rootPEM) {
			if err := n.setRoots([]byte(st.RootCAPEM)); err != nil {
				f.fail(err)
			} else {
				// Report at once, as an agent does.
				wait = 0
			}
		}
		if st.RenewNow {
			if err := f.renew(ctx, n); err != nil && ctx.Err() == nil {
				f.fail(err)
			} else if err == nil {
				// Report at once, as an agent does: a root rotation counts
				// the node as holding its new certificate once it says so.
				wait = 0
			}
		}
	}
}

// renew gets the node a certificate for a new key, checked under the root
// it trusts.
func (f *Fleet) renew(ctx context.Context, n *simNode) error {
	key, csr, err := newCSR()
	if err != nil {
		return err
	}
	n.mu.Lock()
	c := n.client
	n.mu.Unlock()
	out, err := c.Renew(ctx, api.RenewRequest{CSR: string(csr)})
	if err != nil {
		return err
	}
	cert, err := tlsCert(key, out.CertificatePEM)
	if err != nil {
		return err
	}
	n.mu.Lock()
	pool, err := poolOf(n.rootPEM)
	n.mu.Unlock()
	if err != nil {
		return err
	}
	inter := x509.NewCertPool()
	for _, der := range cert.Certificate[1:] {
		if c, err := x509.ParseCertificate(der); err == nil {
			inter.AddCert(c)
		}
	}
	if _, err := cert.Leaf.Verify(x509.VerifyOptions{Roots: pool, Intermediates: inter, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}); err != nil {
		return fmt.Errorf("loadtest: the renewed certificate does not verify under the root the node trusts: %w", err)
	}
	n.mu.Lock()
	n.key, n.cert = key, cert
	n.mu.Unlock()
	f.Renewals.Add(1)
	return nil
}

// trust gives a new node a client of the manager at addr, and makes
// rootPEM its root.
func (n *simNode) trust(addr string, rootPEM []byte) error {
	pool, err := poolOf(rootPEM)
	if err != nil {
		return err
	}
	n.mu.Lock()
	n.client = client.New(addr, pool, func() *tls.Certificate {
		n.mu.Lock()
		defer n.mu.Unlock()
		return n.cert
	})
	n.mu.Unlock()
	return n.setRoots(rootPEM)
}

// setRoots makes rootPEM the node's root, as an agent takes a new one:
// its client verifies the manager under it on its next connections and
// keeps the one it has.
func (n *simNode) setRoots(rootPEM []byte) error {
	pool, err := poolOf(rootPEM)
	if err != nil {
		return err
	}
	roots, _ := ca.ParseCertificatesPEM(rootPEM)
	sum := sha256.Sum256(roots[0].Raw)
	n.mu.Lock()
	defer n.mu.Unlock()
	n.rootPEM, n.trusted = rootPEM, "sha256:"+hex.EncodeToString(sum[:])
	n.client.SetRoots(pool)
	return nil
}

// Counts returns how many nodes hold a certificate issued by the key of
// caCert, and how many trust the root whose fingerprint is rootFP.
func (f *Fleet) Counts(caCert *x509.Certificate, rootFP string) (converged, trusting int) {
	for _, n := range f.nodes {
		n.mu.Lock()
		if bytes.Equal(n.cert.Leaf.AuthorityKeyId, caCert.SubjectKeyId) {
			converged++
		}
		if n.trusted == rootFP {
			trusting++
		}
		n.mu.Unlock()
	}
	return converged, trusting
}

// FirstError is the first failed call's message, or "".
func (f *Fleet) FirstError() string {
	f.errMu.Lock()
	defer f.errMu.Unlock()
	return f.firstErr
}

func (f *Fleet) fail(err error) {
	if f.Errors.Add(1) == 1 {
		f.errMu.Lock()
		f.firstErr = err.Error()
		f.errMu.Unlock()
	}
}

func poolOf(rootPEM []byte) (*x509.CertPool, error) {
	roots, err := ca.ParseCertificatesPEM(rootPEM)
	if err != nil {
		return nil, err
	}
	pool := x509.NewCertPool()
	for _, r := range roots {
		pool.AddCert(r)
	}
	return pool, nil
}
