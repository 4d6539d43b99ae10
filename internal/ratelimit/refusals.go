package ratelimit

import (
	"cmp"
	"slices"
	"sync"
	"time"

	"golang.org/x/time/rate"
)

// Refusals limits what is written about refused requests (audit entries,
// log lines), per source (a remote address, a node ID) and reason, so that
// nobody's flood can hide somebody else's refusal:
//
//   - each (source, reason) has a bucket of Burst, one more every Interval;
//   - beyond the first of each Interval, all sources share a bucket of
//     GlobalBurst refilled at GlobalRate a second, which bounds the volume
//     a flood from many sources writes;
//   - the first refusal of a (source, reason) in each Interval is always
//     admitted, whatever the others did: with at most MaxKeys pairs kept,
//     that is at most MaxKeys admissions per Interval.
//
// What is left out is counted per (source, reason) and handed to the next
// admitted refusal of the same pair (Verdict.Suppressed); counts of pairs
// that went quiet are handed, at most once per Interval, to whichever
// refusal is admitted next (Verdict.Elsewhere), and those of pairs
// forgotten to make room are summed (Verdict.Forgotten).
//
// The zero value is not usable; call NewRefusals.
type Refusals struct {
	cfg    RefusalsConfig
	keys   *Keyed[refusalState]
	global *rate.Limiter

	mu        sync.Mutex
	forgotten int
	lastSweep time.Time
}

// RefusalsConfig configures Refusals. Zero fields take the defaults in
// DefaultRefusals.
type RefusalsConfig struct {
	Interval    time.Duration
	Burst       int
	GlobalRate  float64
	GlobalBurst int
	MaxKeys     int
}

// DefaultRefusals is the default RefusalsConfig: per source and reason, 5
// at once and one more every 10 seconds; 10 a second for everyone beyond
// the first of each interval, 50 at once.
var DefaultRefusals = RefusalsConfig{Interval: 10 * time.Second, Burst: 5, GlobalRate: 10, GlobalBurst: 50, MaxKeys: DefaultMaxKeys}

// MaxElsewhere bounds how many quiet pairs one Verdict lists.
const MaxElsewhere = 16

// Count is how many refusals of a source and reason were left out.
type Count struct {
	Source, Reason string
	N              int
}

// Verdict is Refusals.Allow's answer.
type Verdict struct {
	// OK says the refusal may be written.
	OK bool
	// Suppressed is how many refusals of the same source and reason were
	// left out since the last one written (when OK).
	Suppressed int
	// Elsewhere are the counts of other pairs, quiet for an Interval, that
	// no refusal of theirs reported (when OK), at most MaxElsewhere, the
	// largest first; the rest are added to Forgotten.
	Elsewhere []Count
	// Forgotten is the sum of the counts of pairs forgotten or left out
	// of Elsewhere since the last Verdict that reported it (when OK).
	Forgotten int
}

type refusalState struct {
	source, reason string
	lastAdmitted   time.Time
	suppressed     int
}

// NewRefusals returns a Refusals limiter.
func NewRefusals(cfg RefusalsConfig) *Refusals {
	d := DefaultRefusals
	if cfg.Interval <= 0 {
		cfg.Interval = d.Interval
	}
	if cfg.Burst <= 0 {
		cfg.Burst = d.Burst
	}
	if cfg.GlobalRate <= 0 {
		cfg.GlobalRate = d.GlobalRate
	}
	if cfg.GlobalBurst <= 0 {
		cfg.GlobalBurst = d.GlobalBurst
	}
	if cfg.MaxKeys <= 0 {
		cfg.MaxKeys = d.MaxKeys
	}
	r := &Refusals{cfg: cfg, global: rate.NewLimiter(rate.Limit(cfg.GlobalRate), cfg.GlobalBurst)}
	r.keys = New(Config[refusalState]{
		Every: cfg.Interval, Burst: cfg.Burst, MaxKeys: cfg.MaxKeys,
		OnEvict: func(_ string, st *refusalState) {
			// Called under the keys' lock, never under r.mu's.
			r.mu.Lock()
			r.forgotten += st.suppressed
			r.mu.Unlock()
		},
	})
	return r
}

// Allow decides whether a refusal of reason from source, at now, may be
// written.
func (r *Refusals) Allow(now time.Time, source, reason string) Verdict {
	var v Verdict
	r.keys.Take(source+"\x00"+reason, now, func(st *refusalState, ok bool) {
		st.source, st.reason = source, reason
		first := st.lastAdmitted.IsZero() || now.Sub(st.lastAdmitted) >= r.cfg.Interval
		if !first && (!ok || !r.global.AllowN(now, 1)) {
			st.suppressed++
			return
		}
		v.OK, v.Suppressed = true, st.suppressed
		st.lastAdmitted, st.suppressed = now, 0
	})
	if !v.OK {
		return v
	}
	r.mu.Lock()
	sweep := now.Sub(r.lastSweep) >= r.cfg.Interval
	if sweep {
		r.lastSweep = now
	}
	r.mu.Unlock()
	if sweep {
		r.keys.Each(func(_ string, st *refusalState) {
			if st.suppressed > 0 && now.Sub(st.lastAdmitted) >= r.cfg.Interval {
				v.Elsewhere = append(v.Elsewhere, Count{Source: st.source, Reason: st.reason, N: st.suppressed})
				st.suppressed = 0
			}
		})
	}
	slices.SortFunc(v.Elsewhere, func(a, b Count) int {
		return cmp.Or(cmp.Compare(b.N, a.N), cmp.Compare(a.Source, b.Source), cmp.Compare(a.Reason, b.Reason))
	})
	r.mu.Lock()
	defer r.mu.Unlock()
	if len(v.Elsewhere) > MaxElsewhere {
		for _, c := range v.Elsewhere[MaxElsewhere:] {
			r.forgotten += c.N
		}
		v.Elsewhere = v.Elsewhere[:MaxElsewhere]
	}
	v.Forgotten, r.forgotten = r.forgotten, 0
	return v
}
