package audit

import (
	"testing"
	"time"
)

func TestRefusalLimiter(t *testing.T) {
	var l RefusalLimiter
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	ev := func() *Event { return &Event{Details: map[string]string{}} }
	admitted := 0
	for i := 0; i < 200; i++ {
		if l.Admit(t0, ev()) {
			admitted++
		}
	}
	if admitted != RefusalBurst {
		t.Errorf("a burst of 200 admitted %d, want %d", admitted, RefusalBurst)
	}
	// A second later, RefusalRate more are admitted, the first of them
	// counting what was left out.
	e := ev()
	if !l.Admit(t0.Add(time.Second), e) {
		t.Fatal("not admitted after the bucket refilled")
	}
	if got := e.Details["suppressed_before"]; got != "150" {
		t.Errorf("suppressed_before = %q, want 150", got)
	}
	for i := 1; i < RefusalRate; i++ {
		if !l.Admit(t0.Add(time.Second), ev()) {
			t.Fatalf("refusal %d of the refilled second not admitted", i)
		}
	}
	if l.Admit(t0.Add(time.Second), ev()) {
		t.Error("admitted more than the refill")
	}
}
