package server

import (
	"sync"
	"time"
)

// liveness remembers when each node last reported. It is in memory only:
// after a restart every node is down until it reports again.
type liveness struct {
	mu       sync.Mutex
	seen     map[string]time.Time
	trusted  map[string]string // node ID: fingerprint of the root it reports
	self     string
	deadline time.Duration
}

func newLiveness(self string, period time.Duration) *liveness {
	return &liveness{seen: map[string]time.Time{}, trusted: map[string]string{}, self: self, deadline: 3 * period}
}

// reportTrust records a heartbeat and the root the node says it trusts
// (ignored when empty, as from an agent that does not say).
func (l *liveness) reportTrust(id string, now time.Time, fingerprint string) {
	l.mu.Lock()
	l.seen[id] = now
	if fingerprint != "" {
		l.trusted[id] = fingerprint
	}
	l.mu.Unlock()
}

// trust returns when id last reported and the root it last said it trusts.
func (l *liveness) trust(id string) (time.Time, string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.seen[id], l.trusted[id]
}

func (l *liveness) report(id string, now time.Time) {
	l.mu.Lock()
	l.seen[id] = now
	l.mu.Unlock()
}

func (l *liveness) lastSeen(id string) time.Time {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.seen[id]
}

// ready reports whether id has reported within the deadline; the manager
// itself is always ready.
func (l *liveness) ready(id string, now time.Time) bool {
	if id == l.self {
		return true
	}
	t := l.lastSeen(id)
	return !t.IsZero() && now.Sub(t) <= l.deadline
}
