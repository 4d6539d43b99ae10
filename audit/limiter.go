package audit

import (
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/chancery-pki/chancery/internal/ratelimit"
)

// Refusal entries are limited so that a flood of bad tokens or anonymous
// calls can neither fill the disk, nor hold the store's write lock, nor
// hide other refusals: limits apply per source (a remote address, or the
// node ID of an authenticated caller) and reason, as ratelimit.Refusals
// describes, with its defaults (ratelimit.DefaultRefusals): 5 entries at
// once per source and reason and one more every RefusalInterval; beyond
// the first of each interval, 10 a second for all sources together.
// Whatever the others do, every source and reason gets at least one entry
// per RefusalInterval.
//
// What is left out is counted, per source and reason, and an entry written
// says it in its details: "suppressed_before" (refusals of the same source
// and reason left out since its previous entry), "suppressed_elsewhere"
// (other sources' counts that no entry of theirs reported, "SOURCE
// REASON=N" separated by "; "), "suppressed_forgotten" (counts of sources
// forgotten to keep the table bounded).
const RefusalInterval = 10 * time.Second

// RefusalLimiter limits how many refusal entries a server writes. The zero
// value is ready to use; it is safe for concurrent use.
type RefusalLimiter struct {
	once sync.Once
	r    *ratelimit.Refusals
}

// Admit reports whether the refusal ev (its Reason) of source may be
// recorded now, and if so adds to ev.Details (which must not be nil) the
// counts of what was left out. source names the caller: the node ID of an
// authenticated one, else ratelimit.Source of its remote address.
func (l *RefusalLimiter) Admit(now time.Time, source string, ev *Event) bool {
	l.once.Do(func() { l.r = ratelimit.NewRefusals(ratelimit.RefusalsConfig{Interval: RefusalInterval}) })
	v := l.r.Allow(now, source, ev.Reason)
	if !v.OK {
		return false
	}
	ev.Details["source"] = source
	if v.Suppressed > 0 {
		ev.Details["suppressed_before"] = strconv.Itoa(v.Suppressed)
	}
	if len(v.Elsewhere) > 0 {
		parts := make([]string, len(v.Elsewhere))
		for i, c := range v.Elsewhere {
			parts[i] = c.Source + " " + c.Reason + "=" + strconv.Itoa(c.N)
		}
		ev.Details["suppressed_elsewhere"] = strings.Join(parts, "; ")
	}
	if v.Forgotten > 0 {
		ev.Details["suppressed_forgotten"] = strconv.Itoa(v.Forgotten)
	}
	return true
}
