// Package seed fills a store.Store with many nodes quickly, through the
// store's own RecordIssuance, for benchmarks and tests that need a large
// cluster without joining every node through the API.
package seed

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"sync"
	"time"

	"github.com/chancery-pki/chancery/ca"
	"github.com/chancery-pki/chancery/store"
)

// Options say what Nodes records. The zero value records workers whose
// certificates expire spread over the next 90 days.
type Options struct {
	// Now is the time of issuance; zero means time.Now().
	Now time.Time
	// ManagerEvery makes every ManagerEvery-th node a manager; 0 means none.
	ManagerEvery int
	// Lifetime is the certificates' lifetime; default 90 days. Each node's
	// certificate was issued at a point spread over the last half of it, so
	// the expiries spread too.
	Lifetime time.Duration
	// Concurrency is how many RecordIssuance calls run at once, so that a
	// store that batches them (bbolt) shares its commits; default 256.
	Concurrency int
	// Hostname, when set, names node i; default "host-<i>".
	Hostname func(i int) string
}

// Nodes records n new nodes in st, each with one issued certificate, and
// returns their IDs in the order they were made. It stops at the first
// error.
func Nodes(ctx context.Context, st store.Store, n int, opts Options) ([]string, error) {
	if opts.Now.IsZero() {
		opts.Now = time.Now()
	}
	if opts.Lifetime <= 0 {
		opts.Lifetime = 90 * 24 * time.Hour
	}
	if opts.Concurrency <= 0 {
		opts.Concurrency = 256
	}
	if opts.Hostname == nil {
		opts.Hostname = func(i int) string { return fmt.Sprintf("host-%d", i) }
	}
	const spread = true
	ids := make([]string, n)
	for i := range ids {
		id, err := ca.NewID(rand.Reader)
		if err != nil {
			return nil, err
		}
		ids[i] = id
	}
	if err := run(ctx, n, opts.Concurrency, func(ctx context.Context, i int) error {
		return record(ctx, st, i, ids[i], opts, spread)
	}); err != nil {
		return nil, err
	}
	return ids, nil
}

// Renew records a renewal of each node of ids (as Nodes returned them, with
// the same ManagerEvery): a new certificate issued at opts.Now (default
// time.Now()) for opts.Lifetime, which becomes the node's current one.
func Renew(ctx context.Context, st store.Store, ids []string, opts Options) error {
	if opts.Now.IsZero() {
		opts.Now = time.Now()
	}
	if opts.Lifetime <= 0 {
		opts.Lifetime = 90 * 24 * time.Hour
	}
	if opts.Concurrency <= 0 {
		opts.Concurrency = 256
	}
	return run(ctx, len(ids), opts.Concurrency, func(ctx context.Context, i int) error {
		return record(ctx, st, i, ids[i], opts, false)
	})
}

// run calls f for 0..n-1 on concurrency goroutines, and returns the first
// error, after which it starts no more calls.
func run(ctx context.Context, n, concurrency int, f func(ctx context.Context, i int) error) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var (
		wg       sync.WaitGroup
		mu       sync.Mutex
		firstErr error
		next     = make(chan int)
	)
	for range min(concurrency, max(n, 1)) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range next {
				if err := f(ctx, i); err != nil {
					mu.Lock()
					if firstErr == nil {
						firstErr = err
						cancel()
					}
					mu.Unlock()
				}
			}
		}()
	}
feed:
	for i := range n {
		select {
		case next <- i:
		case <-ctx.Done():
			break feed
		}
	}
	close(next)
	wg.Wait()
	if firstErr != nil {
		return firstErr
	}
	return ctx.Err()
}

// record records a certificate of node i, issued at opts.Now or, with
// spread, at a random point of the last half of its lifetime before it.
func record(ctx context.Context, st store.Store, i int, id string, opts Options, spread bool) error {
	var b [16]byte
	if _, err := rand.Read(b[:]); err != nil {
		return err
	}
	role := ca.RoleWorker
	if opts.ManagerEvery > 0 && i%opts.ManagerEvery == 0 {
		role = ca.RoleManager
	}
	issued := opts.Now
	if spread {
		issued = issued.Add(-time.Duration(uint64(b[0])<<8|uint64(b[1])) * (opts.Lifetime / 2 / 65536))
	}
	c := store.IssuedCertificate{
		Serial: hex.EncodeToString(b[:]), NodeID: id, Role: string(role),
		NotBefore: issued.Add(-time.Hour), NotAfter: issued.Add(opts.Lifetime),
		IssuerKeyID: "5eed", IssuedAt: issued,
	}
	node := store.Node{
		ID: id, Role: c.Role, State: store.StateReady,
		CertSerial: c.Serial, CertNotAfter: c.NotAfter, CertIssuerKeyID: c.IssuerKeyID,
	}
	if opts.Hostname != nil {
		node.Hostname = opts.Hostname(i)
	}
	if err := st.RecordIssuance(ctx, node, c); err != nil {
		return fmt.Errorf("seed: node %d: %w", i, err)
	}
	return nil
}
