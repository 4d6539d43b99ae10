package ratelimit

import (
	"fmt"
	"testing"
	"time"
)

// A flood from one source leaves room for every other source and reason,
// and its own first refusal of each interval.
func TestRefusalsFloodHidesNoOther(t *testing.T) {
	r := NewRefusals(RefusalsConfig{Interval: 10 * time.Second, Burst: 5, GlobalRate: 10, GlobalBurst: 50})
	admitted := 0
	for i := range 10000 {
		if r.Allow(t0.Add(time.Duration(i)*time.Millisecond), "198.51.100.1", "invalid_token").OK {
			admitted++
		}
	}
	// Under 10 s of flood: the burst only.
	if admitted != 5 {
		t.Errorf("a flood of 10,000 refusals in 10s admitted %d, want 5", admitted)
	}
	now := t0.Add(10 * time.Second)
	for _, tc := range []struct{ source, reason string }{
		{"node1", "not_manager"},
		{"198.51.100.2", "invalid_token"},
		{"198.51.100.1", "bad_json"},
	} {
		if !r.Allow(now, tc.source, tc.reason).OK {
			t.Errorf("%s %s refused during the flood", tc.source, tc.reason)
		}
	}
	v := r.Allow(t0.Add(20*time.Second), "198.51.100.1", "invalid_token")
	if !v.OK || v.Suppressed != 10000-5 {
		t.Errorf("after the interval: %+v, want admitted with %d suppressed", v, 10000-5)
	}
}

// Many sources at once share the global bucket beyond each one's first
// refusal of the interval.
func TestRefusalsManySources(t *testing.T) {
	r := NewRefusals(RefusalsConfig{Interval: 10 * time.Second, Burst: 5, GlobalRate: 10, GlobalBurst: 50})
	admitted := 0
	for round := range 5 {
		for i := range 100 {
			if r.Allow(t0, fmt.Sprintf("192.0.2.%d", i), "invalid_token").OK {
				admitted++
			}
			_ = round
		}
	}
	// Each of the 100 sources' first, then 50 from the global burst.
	if admitted != 100+50 {
		t.Errorf("admitted %d, want 150", admitted)
	}
}

// Counts of sources that went quiet are reported by the next admitted
// refusal of another source; those of forgotten sources are summed.
func TestRefusalsElsewhereAndForgotten(t *testing.T) {
	r := NewRefusals(RefusalsConfig{Interval: 10 * time.Second, Burst: 1, GlobalRate: 1, GlobalBurst: 1, MaxKeys: 2})
	for range 4 {
		r.Allow(t0, "a", "invalid_token") // 1 admitted, 3 suppressed
	}
	v := r.Allow(t0.Add(11*time.Second), "b", "unauthenticated")
	if !v.OK || len(v.Elsewhere) != 1 || v.Elsewhere[0] != (Count{Source: "a", Reason: "invalid_token", N: 3}) {
		t.Errorf("verdict %+v, want a's 3 suppressed elsewhere", v)
	}

	r = NewRefusals(RefusalsConfig{Interval: 10 * time.Second, Burst: 1, GlobalRate: 1, GlobalBurst: 1, MaxKeys: 2})
	for range 4 {
		r.Allow(t0, "a", "invalid_token") // 1 admitted, 3 suppressed
	}
	r.Allow(t0.Add(time.Second/2), "b", "invalid_token")
	// A third key pushes a out, the one seen longest ago: its count is
	// forgotten, not lost.
	v = r.Allow(t0.Add(time.Second), "c", "invalid_token")
	if !v.OK || v.Forgotten != 3 {
		t.Errorf("verdict %+v, want 3 forgotten refusals", v)
	}
}
