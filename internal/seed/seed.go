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
	ids := make([]string, n)
	for i := range ids {
		id, err := ca.NewID(rand.Reader)
		if err != nil {
			return nil, err
		}
		ids[i] = id
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var (
		wg       sync.WaitGroup
		mu       sync.Mutex
		firstErr error
		next     = make(chan int)
	)
	for range min(opts.Concurrency, max(n, 1)) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range next {
				if err := record(ctx, st, i, ids[i], opts); err != nil {
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
		return nil, firstErr
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	return ids, nil
}

// record records node i.
func record(ctx context.Context, st store.Store, i int, id string, opts Options) error {
	var b [16]byte
	if _, err := rand.Read(b[:]); err != nil {
		return err
	}
	role := ca.RoleWorker
	if opts.ManagerEvery > 0 && i%opts.ManagerEvery == 0 {
		role = ca.RoleManager
	}
	// Issued at a point spread over the last half of the lifetime.
	age := time.Duration(uint64(b[0])<<8|uint64(b[1])) * (opts.Lifetime / 2 / 65536)
	issued := opts.Now.Add(-age)
	c := store.IssuedCertificate{
		Serial: hex.EncodeToString(b[:]), NodeID: id, Role: string(role),
		NotBefore: issued.Add(-time.Hour), NotAfter: issued.Add(opts.Lifetime),
		IssuerKeyID: "5eed", IssuedAt: issued,
	}
	node := store.Node{
		ID: id, Hostname: opts.Hostname(i), Role: c.Role, State: store.StateReady,
		CertSerial: c.Serial, CertNotAfter: c.NotAfter, CertIssuerKeyID: c.IssuerKeyID,
	}
	if err := st.RecordIssuance(ctx, node, c); err != nil {
		return fmt.Errorf("seed: node %d: %w", i, err)
	}
	return nil
}
