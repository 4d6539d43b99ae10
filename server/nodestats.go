package server

import (
	"context"
	"slices"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"github.com/chancery-pki/chancery/ca"
	"github.com/chancery-pki/chancery/clock"
	"github.com/chancery-pki/chancery/store"
)

// DefaultNodeStatsInterval is how old the node counts and expiries that a
// metrics scrape reports may be: reading every node of a large cluster
// takes a while (about half a second at 100,000 nodes), so a scrape reads
// a copy made at most this long ago instead.
const DefaultNodeStatsInterval = 30 * time.Second

// expiryBuckets are the upper bounds, in seconds, of the buckets of
// chancery_node_certificate_expiry_seconds: expired, then one hour up to a
// year.
var expiryBuckets = []float64{
	0, time.Hour.Seconds(), 24 * time.Hour.Seconds(), 7 * 24 * time.Hour.Seconds(),
	30 * 24 * time.Hour.Seconds(), 60 * 24 * time.Hour.Seconds(), 90 * 24 * time.Hour.Seconds(),
	365 * 24 * time.Hour.Seconds(),
}

// nodeStats is what the metrics say about the nodes, read from the store at
// one time.
type nodeStats struct {
	// at is when the store was read.
	at time.Time
	// expiries holds, by role ("manager", "worker"), the sorted expiry
	// times (Unix milliseconds) of the current certificates of the nodes
	// that are not removed, so that a scrape counts them against its own
	// clock with a binary search per bucket.
	expiries map[string][]int64
	// sums holds the sum of each role's expiries.
	sums map[string]int64
	// states counts the nodes by state: ready, down, removed.
	states map[string]int
}

// roleExpiry is one role's certificates' time to expiry at a scrape.
type roleExpiry struct {
	count   uint64
	sum     float64            // seconds
	buckets map[float64]uint64 // cumulative, by upper bound in seconds
	soonest float64            // seconds; meaningful when count > 0
}

// expiry returns role's time-to-expiry histogram at now.
func (s *nodeStats) expiry(role string, now time.Time) roleExpiry {
	xs := s.expiries[role]
	nowMs := now.UnixMilli()
	out := roleExpiry{count: uint64(len(xs)), buckets: make(map[float64]uint64, len(expiryBuckets))}
	out.sum = float64(s.sums[role]-int64(len(xs))*nowMs) / 1000
	for _, b := range expiryBuckets {
		limit := nowMs + int64(b*1000)
		// Certificates that expire at or before now+b.
		out.buckets[b] = uint64(sort.Search(len(xs), func(i int) bool { return xs[i] > limit }))
	}
	if len(xs) > 0 {
		out.soonest = float64(xs[0]-nowMs) / 1000
	}
	return out
}

// readNodeStats reads every node from st, a page at a time so that only
// a page of records is in memory at once; live says which are ready.
func readNodeStats(ctx context.Context, st store.Store, live *liveness, now time.Time) (*nodeStats, error) {
	s := &nodeStats{
		at:       now,
		expiries: map[string][]int64{"manager": nil, "worker": nil},
		sums:     map[string]int64{},
		states:   map[string]int{"ready": 0, "down": 0, "removed": 0},
	}
	opts := store.ListOptions{Limit: store.MaxPageLimit}
	for {
		page, err := st.ListNodes(ctx, opts)
		if err != nil {
			return nil, err
		}
		for _, n := range page.Nodes {
			if n.State == store.StateRemoved {
				s.states["removed"]++
				continue
			}
			if live.ready(n.ID, now) {
				s.states["ready"]++
			} else {
				s.states["down"]++
			}
			role := ca.Role(n.Role).Short()
			ms := n.CertNotAfter.UnixMilli()
			s.expiries[role] = append(s.expiries[role], ms)
			s.sums[role] += ms
		}
		if page.Next == "" {
			break
		}
		opts.After = page.Next
	}
	for _, xs := range s.expiries {
		slices.Sort(xs)
	}
	return s, nil
}

// nodeStatsCache keeps the last nodeStats and reads the store again, in the
// background, when a caller finds it older than interval: a scrape never
// waits for the store but the first.
type nodeStatsCache struct {
	store    store.Store
	live     *liveness
	clock    clock.Clock
	interval time.Duration

	mu         sync.Mutex // held by the first, synchronous read
	cur        atomic.Pointer[nodeStats]
	refreshing atomic.Bool
	// refreshed, if set, is called after each background read (tests).
	refreshed func()
}

// get returns the cached stats, reading the store first if there are none,
// and starting a background read if they are older than the interval.
func (c *nodeStatsCache) get(ctx context.Context) (*nodeStats, error) {
	cur := c.cur.Load()
	if cur == nil {
		c.mu.Lock()
		defer c.mu.Unlock()
		if cur = c.cur.Load(); cur == nil {
			s, err := c.refresh(ctx)
			if err != nil {
				return nil, err
			}
			return s, nil
		}
	}
	if c.clock.Now().Sub(cur.at) >= c.interval && c.refreshing.CompareAndSwap(false, true) {
		go func() {
			defer c.refreshing.Store(false)
			ctx, cancel := context.WithTimeout(context.Background(), max(c.interval, 30*time.Second))
			defer cancel()
			c.refresh(ctx) // on error the old stats stay, and the next scrape tries again
			if c.refreshed != nil {
				c.refreshed()
			}
		}()
	}
	return cur, nil
}

// refresh reads the store now and caches the result.
func (c *nodeStatsCache) refresh(ctx context.Context) (*nodeStats, error) {
	s, err := readNodeStats(ctx, c.store, c.live, c.clock.Now())
	if err != nil {
		return nil, err
	}
	c.cur.Store(s)
	return s, nil
}
