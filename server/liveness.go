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
	self     string
	deadline time.Duration
}

func newLiveness(self string, period time.Duration) *liveness {
	return &liveness{seen: map[string]time.Time{}, self: self, deadline: 3 * period}
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
