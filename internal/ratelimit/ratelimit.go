// Package ratelimit keeps a token bucket per key (a remote address, a node
// ID, a node ID and a reason), for at most a bounded number of keys, on
// golang.org/x/time/rate.
//
// A key whose bucket is full again is idle: forgetting it changes nothing
// but the state kept beside it, so idle keys are the first to go when the
// table is full. When none is idle, the key seen longest ago goes. Either
// way OnEvict is told, so that what the state counted is not lost.
//
// Every method takes the time explicitly, so that callers with a fake clock
// and tests can drive it.
package ratelimit

import (
	"math"
	"net"
	"net/netip"
	"sync"
	"time"

	"golang.org/x/time/rate"
)

// DefaultMaxKeys is the number of keys a Keyed keeps when Config.MaxKeys is
// zero.
const DefaultMaxKeys = 4096

// Config configures a Keyed.
type Config[S any] struct {
	// Every is the time one token takes to come back; Burst is how many a
	// bucket holds, at least 1.
	Every time.Duration
	Burst int
	// MaxKeys bounds how many keys are kept; default DefaultMaxKeys.
	MaxKeys int
	// OnEvict, when set, is called with a key's state as it is forgotten,
	// with the Keyed's lock held: it must not call the Keyed.
	OnEvict func(key string, state *S)
}

// Keyed is a token bucket per key, with state S kept beside each. It is
// safe for concurrent use.
type Keyed[S any] struct {
	cfg Config[S]
	mu  sync.Mutex
	m   map[string]*entry[S]
}

type entry[S any] struct {
	lim   *rate.Limiter
	seen  time.Time
	state S
}

// New returns a Keyed.
func New[S any](cfg Config[S]) *Keyed[S] {
	if cfg.Burst < 1 {
		cfg.Burst = 1
	}
	if cfg.MaxKeys <= 0 {
		cfg.MaxKeys = DefaultMaxKeys
	}
	return &Keyed[S]{cfg: cfg, m: map[string]*entry[S]{}}
}

// Take spends a token of key's bucket at now if one is there, and reports
// whether it did. f, when not nil, is then called with key's state and
// that answer, with the lock held (it must not call the Keyed).
func (k *Keyed[S]) Take(key string, now time.Time, f func(state *S, ok bool)) bool {
	k.mu.Lock()
	defer k.mu.Unlock()
	e := k.get(key, now)
	ok := e.lim.AllowN(now, 1)
	if f != nil {
		f(&e.state, ok)
	}
	return ok
}

// Delay returns how long key must wait at now for a token: zero when one
// is there. It spends nothing.
func (k *Keyed[S]) Delay(key string, now time.Time) time.Duration {
	k.mu.Lock()
	defer k.mu.Unlock()
	e, ok := k.m[key]
	if !ok {
		return 0
	}
	e.seen = now
	tokens := e.lim.TokensAt(now)
	if tokens >= 1 {
		return 0
	}
	return time.Duration(math.Ceil((1 - tokens) * float64(k.cfg.Every)))
}

// Each calls f with every key's state, under the lock (f must not call the
// Keyed), in no particular order.
func (k *Keyed[S]) Each(f func(key string, state *S)) {
	k.mu.Lock()
	defer k.mu.Unlock()
	for key, e := range k.m {
		f(key, &e.state)
	}
}

// Len returns how many keys are kept.
func (k *Keyed[S]) Len() int {
	k.mu.Lock()
	defer k.mu.Unlock()
	return len(k.m)
}

// get returns key's entry, making one (and room for it) if needed.
func (k *Keyed[S]) get(key string, now time.Time) *entry[S] {
	if e, ok := k.m[key]; ok {
		e.seen = now
		return e
	}
	if len(k.m) >= k.cfg.MaxKeys {
		k.evict(now)
	}
	e := &entry[S]{lim: rate.NewLimiter(rate.Every(k.cfg.Every), k.cfg.Burst), seen: now}
	k.m[key] = e
	return e
}

// evict forgets every idle key; if none is, the key seen longest ago.
func (k *Keyed[S]) evict(now time.Time) {
	var oldest string
	var oldestSeen time.Time
	n := len(k.m)
	for key, e := range k.m {
		if e.lim.TokensAt(now) >= float64(k.cfg.Burst) {
			k.drop(key, e)
			continue
		}
		if oldest == "" || e.seen.Before(oldestSeen) {
			oldest, oldestSeen = key, e.seen
		}
	}
	if len(k.m) == n && oldest != "" {
		k.drop(oldest, k.m[oldest])
	}
}

func (k *Keyed[S]) drop(key string, e *entry[S]) {
	delete(k.m, key)
	if k.cfg.OnEvict != nil {
		k.cfg.OnEvict(key, &e.state)
	}
}

// Source returns the part of a remote address ("host:port", as
// http.Request.RemoteAddr) that names one caller: the IP address without
// the port, or for IPv6 its /64 prefix, which one host usually has whole.
// An address that does not parse is returned as it is.
func Source(remote string) string {
	host, _, err := net.SplitHostPort(remote)
	if err != nil {
		host = remote
	}
	addr, err := netip.ParseAddr(host)
	if err != nil {
		return remote
	}
	addr = addr.Unmap().WithZone("")
	if addr.Is6() {
		p, err := addr.Prefix(64)
		if err == nil {
			return p.String()
		}
	}
	return addr.String()
}
