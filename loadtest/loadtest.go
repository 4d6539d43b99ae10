// Package loadtest drives simulated nodes against a manager: each joins with
// a token, then renews over mutual TLS, as a real node does, and the run
// reports certificates per second, latency percentiles, errors and
// duplicate serials. `chancery bench` and the manager's benchmarks use it.
package loadtest

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/chancery-pki/chancery/api"
	"github.com/chancery-pki/chancery/ca"
	"github.com/chancery-pki/chancery/client"
)

// Config is a load run.
type Config struct {
	// Addr is the manager's API address; Token a join token.
	Addr, Token string
	// Addrs, when set, are several managers' API addresses: node i joins
	// and renews through Addrs[i%len(Addrs)]. Addr may then be empty.
	Addrs []string
	// Nodes is how many nodes join; Concurrency how many clients run at
	// once; Renewals how many times each node renews after joining.
	Nodes, Concurrency, Renewals int
}

// Phase is the outcome of one kind of call.
type Phase struct {
	Count, Errors int
	Elapsed       time.Duration
	P50, P99, Max time.Duration
	// FirstError is the first failure's message.
	FirstError string
}

// PerSecond is successful calls per second.
func (p Phase) PerSecond() float64 {
	if p.Elapsed <= 0 {
		return 0
	}
	return float64(p.Count-p.Errors) / p.Elapsed.Seconds()
}

// Result is a load run's outcome.
type Result struct {
	Config           Config
	Joins, Renewals  Phase
	DuplicateSerials int
}

// String formats r for people.
func (r Result) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "nodes %d, concurrency %d, renewals per node %d\n", r.Config.Nodes, r.Config.Concurrency, r.Config.Renewals)
	for _, p := range []struct {
		name string
		ph   Phase
	}{{"join", r.Joins}, {"renew", r.Renewals}} {
		if p.ph.Count == 0 {
			continue
		}
		fmt.Fprintf(&b, "%-6s %6d calls  %8.1f certs/s  p50 %-10s p99 %-10s max %-10s errors %d\n", p.name, p.ph.Count,
			p.ph.PerSecond(), p.ph.P50.Round(time.Microsecond), p.ph.P99.Round(time.Microsecond), p.ph.Max.Round(time.Microsecond), p.ph.Errors)
		if p.ph.FirstError != "" {
			fmt.Fprintf(&b, "       first error: %s\n", p.ph.FirstError)
		}
	}
	fmt.Fprintf(&b, "duplicate serials: %d\n", r.DuplicateSerials)
	return b.String()
}

type node struct {
	cert *tls.Certificate
}

// Run joins cfg.Nodes nodes, then renews each cfg.Renewals times, each phase
// with cfg.Concurrency clients.
func Run(ctx context.Context, cfg Config) (*Result, error) {
	if cfg.Nodes <= 0 || cfg.Concurrency <= 0 || cfg.Renewals < 0 {
		return nil, errors.New("loadtest: nodes and concurrency must be positive, renewals not negative")
	}
	addrs := cfg.Addrs
	if len(addrs) == 0 {
		addrs = []string{cfg.Addr}
	}
	tok, err := ca.ParseJoinToken(cfg.Token)
	if err != nil {
		return nil, err
	}
	rootPEM, err := client.New(addrs[0], nil, nil).FetchRoot(ctx)
	if err != nil {
		return nil, err
	}
	if err := tok.CheckRoot(rootPEM); err != nil {
		return nil, err
	}
	roots, err := ca.ParseCertificatesPEM(rootPEM)
	if err != nil {
		return nil, err
	}
	pool := x509.NewCertPool()
	for _, r := range roots {
		pool.AddCert(r)
	}
	res := &Result{Config: cfg}
	var (
		mu      sync.Mutex
		serials = map[string]int{}
		nodes   = make([]*node, cfg.Nodes)
	)
	record := func(pem string) {
		certs, err := ca.ParseCertificatesPEM([]byte(pem))
		if err != nil {
			return
		}
		mu.Lock()
		serials[certs[0].SerialNumber.String()]++
		mu.Unlock()
	}
	joiners := make([]*client.Client, len(addrs))
	for i, a := range addrs {
		joiners[i] = client.New(a, pool, nil)
		defer joiners[i].Close()
	}
	res.Joins = phase(ctx, cfg.Nodes, cfg.Concurrency, func(i int) error {
		key, csr, err := newCSR()
		if err != nil {
			return err
		}
		out, err := joiners[i%len(joiners)].Join(ctx, api.JoinRequest{Token: cfg.Token, CSR: string(csr), Hostname: fmt.Sprintf("sim-%d", i)})
		if err != nil {
			return err
		}
		record(out.CertificatePEM)
		cert, err := tlsCert(key, out.CertificatePEM)
		if err != nil {
			return err
		}
		nodes[i] = &node{cert: cert}
		return nil
	})
	if cfg.Renewals > 0 {
		clients := make([]*client.Client, cfg.Nodes)
		for i, n := range nodes {
			if n == nil {
				continue
			}
			c := n
			clients[i] = client.New(addrs[i%len(addrs)], pool, func() *tls.Certificate { return c.cert })
			defer clients[i].Close()
		}
		res.Renewals = phase(ctx, cfg.Nodes*cfg.Renewals, cfg.Concurrency, func(i int) error {
			n, c := nodes[i%cfg.Nodes], clients[i%cfg.Nodes]
			if n == nil {
				return errors.New("the node did not join")
			}
			_, csr, err := newCSR()
			if err != nil {
				return err
			}
			out, err := c.Renew(ctx, api.RenewRequest{CSR: string(csr)})
			if err != nil {
				return err
			}
			record(out.CertificatePEM)
			return nil
		})
	}
	for _, n := range serials {
		if n > 1 {
			res.DuplicateSerials += n - 1
		}
	}
	return res, nil
}

// phase runs n calls of f on c workers and times them.
func phase(ctx context.Context, n, c int, f func(i int) error) Phase {
	lat := make([]time.Duration, n)
	errs := make([]error, n)
	next := make(chan int)
	var wg sync.WaitGroup
	start := time.Now()
	for w := 0; w < c; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range next {
				t := time.Now()
				errs[i] = f(i)
				lat[i] = time.Since(t)
			}
		}()
	}
	sent := 0
	for ; sent < n && ctx.Err() == nil; sent++ {
		next <- sent
	}
	close(next)
	wg.Wait()
	// Calls never dispatched (the run was canceled) count neither as
	// successes nor in the latencies.
	lat, errs = lat[:sent], errs[:sent]
	p := Phase{Count: sent, Elapsed: time.Since(start)}
	if sent == 0 {
		return p
	}
	n = sent
	for _, err := range errs {
		if err != nil {
			if p.Errors == 0 {
				p.FirstError = err.Error()
			}
			p.Errors++
		}
	}
	sorted := append([]time.Duration(nil), lat...)
	sort.Slice(sorted, func(i, j int) bool { return sorted[i] < sorted[j] })
	p.P50 = sorted[n/2]
	p.P99 = sorted[(n*99)/100]
	p.Max = sorted[n-1]
	return p
}

func newCSR() (*ecdsa.PrivateKey, []byte, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, nil, err
	}
	der, err := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{}, key)
	if err != nil {
		return nil, nil, err
	}
	return key, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE REQUEST", Bytes: der}), nil
}

func tlsCert(key *ecdsa.PrivateKey, chainPEM string) (*tls.Certificate, error) {
	chain, err := ca.ParseCertificatesPEM([]byte(chainPEM))
	if err != nil {
		return nil, err
	}
	c := &tls.Certificate{PrivateKey: key, Leaf: chain[0]}
	for _, x := range chain {
		c.Certificate = append(c.Certificate, x.Raw)
	}
	return c, nil
}
