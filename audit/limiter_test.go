package audit

import (
	"testing"
	"time"
)

// The limiter fills in the details that say what was left out, per source
// and reason.
func TestRefusalLimiter(t *testing.T) {
	var l RefusalLimiter
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	ev := func(reason string) *Event { return &Event{Reason: reason, Details: map[string]string{}} }
	admitted := 0
	for range 200 {
		if l.Admit(t0, "192.0.2.1", ev("invalid_token")) {
			admitted++
		}
	}
	if admitted != 5 {
		t.Errorf("a burst of 200 from one source admitted %d, want 5", admitted)
	}
	other := ev("not_manager")
	if !l.Admit(t0, "node1", other) {
		t.Fatal("another source's refusal was not admitted during the flood")
	}
	if other.Details["source"] != "node1" || other.Details["suppressed_before"] != "" {
		t.Errorf("details %v, want source node1 and nothing suppressed", other.Details)
	}
	e := ev("invalid_token")
	if !l.Admit(t0.Add(RefusalInterval), "192.0.2.1", e) {
		t.Fatal("the flooding source's first refusal of the next interval was not admitted")
	}
	if got := e.Details["suppressed_before"]; got != "195" {
		t.Errorf("suppressed_before = %q, want 195", got)
	}
}
