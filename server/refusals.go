package server

import (
	"strconv"
	"sync"
	"time"

	"github.com/chancery-pki/chancery/audit"
)

// Refusal entries are limited so that a flood of bad tokens or anonymous
// calls cannot fill the disk or hold the store's write lock: a token bucket
// of refusalBurst entries refilled at refusalRate per second. Refusals over
// the limit are counted, and the next entry written says how many were
// left out ("suppressed" in its details), so the record still shows them.
const (
	refusalRate  = 10
	refusalBurst = 50
)

type refusalLimiter struct {
	mu         sync.Mutex
	tokens     float64
	last       time.Time
	suppressed int
}

// admit reports whether a refusal entry may be written now, and adds the
// count of refusals left out since the last one written to ev.
func (l *refusalLimiter) admit(now time.Time, ev *audit.Event) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.last.IsZero() {
		l.tokens = refusalBurst
	} else {
		l.tokens += now.Sub(l.last).Seconds() * refusalRate
		if l.tokens > refusalBurst {
			l.tokens = refusalBurst
		}
	}
	l.last = now
	if l.tokens < 1 {
		l.suppressed++
		return false
	}
	l.tokens--
	if l.suppressed > 0 {
		ev.Details["suppressed_before"] = strconv.Itoa(l.suppressed)
		l.suppressed = 0
	}
	return true
}
