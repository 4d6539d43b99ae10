package audit

import (
	"strconv"
	"sync"
	"time"
)

// Refusal entries are limited so that a flood of bad tokens or anonymous
// calls cannot fill the disk or hold the store's write lock: a token bucket
// of RefusalBurst entries refilled at RefusalRate per second. Refusals over
// the limit are counted, and the next entry written says how many were left
// out ("suppressed_before" in its details), so the record still shows them.
const (
	RefusalRate  = 10
	RefusalBurst = 50
)

// RefusalLimiter limits how many refusal entries a server writes. The zero
// value is ready to use; it is safe for concurrent use.
type RefusalLimiter struct {
	mu         sync.Mutex
	tokens     float64
	last       time.Time
	suppressed int
}

// Admit reports whether a refusal entry may be written now, and adds to
// ev.Details (which must not be nil) how many were left out since the last
// one written.
func (l *RefusalLimiter) Admit(now time.Time, ev *Event) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.last.IsZero() {
		l.tokens = RefusalBurst
	} else {
		l.tokens += now.Sub(l.last).Seconds() * RefusalRate
		if l.tokens > RefusalBurst {
			l.tokens = RefusalBurst
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
