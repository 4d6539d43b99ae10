// Package election elects one leader among the managers that share an etcd
// store, and keeps the etcd leases a manager's standing depends on.
//
// A Lease is kept alive by this process, which counts it lost before etcd
// can expire it: its deadline is the granted TTL (less a margin) after the
// moment the last renewal that etcd confirmed was sent, so that the
// context of a lost lease ends before any other manager can take what the
// lease held. An Election campaigns with a lease of its own
// (go.etcd.io/etcd/client/v3/concurrency), checks that it still holds the
// leader key after Campaign returns, and hands out a context that ends
// when the lease is lost or the key goes, and that carries the leader
// key's fence (store.WithFence) for the writes only the leader may make.
package election

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"
)

// MinTTL is the shortest lease TTL accepted. etcd raises shorter TTLs to
// its own minimum (1.5 election timeouts, 2 s by default) and counts them
// in whole seconds; a TTL near the time a renewal takes to go round would
// be lost between two renewals.
const MinTTL = 2 * time.Second

// DefaultTTL is the TTL of a lease when none is given.
const DefaultTTL = 10 * time.Second

// ErrLeaseLost is matched by the cause of a lost lease's context.
var ErrLeaseLost = errors.New("election: the etcd lease was lost")

// errLeaseClosed is the cause of a lease's context after Close.
var errLeaseClosed = errors.New("election: the lease was released")

// Lease is an etcd lease this process keeps alive.
type Lease struct {
	c      *clientv3.Client
	id     clientv3.LeaseID
	ttl    time.Duration
	ctx    context.Context
	cancel context.CancelCauseFunc
	log    *slog.Logger

	mu       sync.Mutex
	deadline time.Time
	timer    *time.Timer
	done     chan struct{}
}

// Grant grants a lease of ttl (MinTTL at least, rounded up to whole
// seconds) and keeps it alive until it is lost or Close is called. Its
// context (Context) is a child of ctx.
func Grant(ctx context.Context, c *clientv3.Client, ttl time.Duration, log *slog.Logger) (*Lease, error) {
	if ttl == 0 {
		ttl = DefaultTTL
	}
	if ttl < MinTTL {
		return nil, fmt.Errorf("election: a lease TTL of %s is too short; the minimum is %s", ttl, MinTTL)
	}
	if log == nil {
		log = slog.Default()
	}
	secs := int64((ttl + time.Second - 1) / time.Second)
	sent := time.Now()
	resp, err := c.Grant(ctx, secs)
	if err != nil {
		return nil, fmt.Errorf("election: granting a lease: %w", err)
	}
	lctx, cancel := context.WithCancelCause(ctx)
	l := &Lease{c: c, id: resp.ID, ttl: time.Duration(resp.TTL) * time.Second, ctx: lctx, cancel: cancel, log: log, done: make(chan struct{})}
	l.deadline = sent.Add(l.ttl - margin(l.ttl))
	l.timer = time.AfterFunc(time.Until(l.deadline), func() {
		l.lose(fmt.Errorf("%w: etcd confirmed no renewal of lease %x within its TTL of %s", ErrLeaseLost, int64(l.id), l.ttl))
	})
	go l.keepAlive()
	return l, nil
}

// margin is how long before etcd could expire a lease its holder counts it
// lost: a tenth of the TTL, 200 ms at least.
func margin(ttl time.Duration) time.Duration {
	return max(ttl/10, 200*time.Millisecond)
}

// ID returns the lease's ID.
func (l *Lease) ID() clientv3.LeaseID { return l.id }

// TTL returns the lease's TTL as etcd granted it.
func (l *Lease) TTL() time.Duration { return l.ttl }

// Context returns a context that ends when the lease is lost or closed;
// context.Cause says which (a loss matches ErrLeaseLost).
func (l *Lease) Context() context.Context { return l.ctx }

// Err returns why the lease ended, or nil while it holds.
func (l *Lease) Err() error {
	if l.ctx.Err() == nil {
		return nil
	}
	return context.Cause(l.ctx)
}

func (l *Lease) lose(cause error) {
	if l.ctx.Err() != nil {
		return
	}
	l.cancel(cause)
	if !errors.Is(cause, errLeaseClosed) {
		l.log.Error("etcd lease lost", "lease", fmt.Sprintf("%x", int64(l.id)), "err", cause)
	}
}

// keepAlive renews the lease every third of its TTL (a tenth after a
// failure) until its context ends. Each renewal that etcd confirms moves the deadline to the TTL
// after the renewal was sent: etcd expires the lease no sooner.
func (l *Lease) keepAlive() {
	defer close(l.done)
	every := l.ttl / 3
	// After a failed renewal, the next comes sooner: two slow renewals a
	// third of the TTL apart could otherwise lose a lease etcd still holds.
	retry := max(l.ttl/10, 100*time.Millisecond)
	var lastErr error
	for {
		wait := every
		if lastErr != nil {
			wait = retry
		}
		select {
		case <-l.ctx.Done():
			return
		case <-time.After(wait):
		}
		l.mu.Lock()
		deadline := l.deadline
		l.mu.Unlock()
		sent := time.Now()
		rctx, cancel := context.WithDeadline(l.ctx, deadline)
		resp, err := l.c.KeepAliveOnce(rctx, l.id)
		cancel()
		switch {
		case errors.Is(err, rpctypes.ErrLeaseNotFound):
			l.lose(fmt.Errorf("%w: etcd says lease %x expired", ErrLeaseLost, int64(l.id)))
			return
		case err != nil:
			if l.ctx.Err() != nil {
				return
			}
			if lastErr == nil {
				l.log.Warn("etcd lease renewal failed; trying again", "lease", fmt.Sprintf("%x", int64(l.id)), "err", err, "lost_at", deadline)
			}
			lastErr = err
			continue
		}
		lastErr = nil
		next := sent.Add(time.Duration(resp.TTL)*time.Second - margin(l.ttl))
		l.mu.Lock()
		if l.timer.Stop() {
			l.deadline = next
			l.timer.Reset(time.Until(next))
		}
		l.mu.Unlock()
	}
}

// Close stops renewing the lease and revokes it (waiting at most a
// second), so that what it held goes at once rather than at its expiry.
func (l *Lease) Close() {
	l.mu.Lock()
	l.timer.Stop()
	l.mu.Unlock()
	l.lose(errLeaseClosed)
	<-l.done
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	l.c.Revoke(ctx, l.id)
}
