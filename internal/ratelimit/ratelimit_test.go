package ratelimit

import (
	"fmt"
	"testing"
	"time"
)

var t0 = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)

func TestKeyedBurstRefillDelay(t *testing.T) {
	k := New(Config[int]{Every: time.Second, Burst: 3})
	for i := range 3 {
		if !k.Take("a", t0, nil) {
			t.Fatalf("take %d of the burst refused", i)
		}
	}
	if k.Take("a", t0, nil) {
		t.Error("a fourth take at once allowed")
	}
	if d := k.Delay("a", t0); d != time.Second {
		t.Errorf("Delay = %v, want 1s", d)
	}
	if d := k.Delay("a", t0.Add(400*time.Millisecond)); d != 600*time.Millisecond {
		t.Errorf("Delay after 400ms = %v, want 600ms", d)
	}
	if !k.Take("b", t0, nil) {
		t.Error("another key is limited by the first one")
	}
	if d := k.Delay("unknown", t0); d != 0 {
		t.Errorf("Delay of an unknown key = %v, want 0", d)
	}
	if !k.Take("a", t0.Add(time.Second), nil) {
		t.Error("a take after the refill refused")
	}
	var seen []bool
	k.Take("a", t0.Add(time.Second), func(n *int, ok bool) { *n++; seen = append(seen, ok) })
	if len(seen) != 1 || seen[0] {
		t.Errorf("f saw %v, want one refusal", seen)
	}
}

// The table never holds more than MaxKeys keys: idle ones go first, then
// the one seen longest ago, and OnEvict sees each.
func TestKeyedEviction(t *testing.T) {
	var evicted []string
	k := New(Config[int]{Every: time.Minute, Burst: 2, MaxKeys: 3,
		OnEvict: func(key string, _ *int) { evicted = append(evicted, key) }})
	k.Take("busy1", t0, nil)
	k.Take("busy2", t0.Add(time.Second), nil)
	k.Take("idle", t0.Add(2*time.Second), nil)
	// idle is full again two minutes later; busy1 and busy2 too, so all go.
	k.Take("new", t0.Add(3*time.Minute), nil)
	if k.Len() != 1 || len(evicted) != 3 {
		t.Errorf("after refill: %d keys, evicted %v; want 1 key, 3 evicted", k.Len(), evicted)
	}
	evicted = nil
	k.Take("x", t0.Add(3*time.Minute+time.Second), nil)
	k.Take("y", t0.Add(3*time.Minute+2*time.Second), nil)
	k.Take("z", t0.Add(3*time.Minute+3*time.Second), nil)
	if len(evicted) != 1 || evicted[0] != "new" {
		t.Errorf("evicted %v, want the one seen longest ago, new", evicted)
	}
	for i := range 100 {
		k.Take(fmt.Sprint(i), t0.Add(4*time.Minute), nil)
		if k.Len() > 3 {
			t.Fatalf("%d keys, want at most 3", k.Len())
		}
	}
}

func TestSource(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"192.0.2.1:1234", "192.0.2.1"},
		{"192.0.2.1", "192.0.2.1"},
		{"[2001:db8:1:2:3:4:5:6]:443", "2001:db8:1:2::/64"},
		{"[2001:db8:1:2:ffff::1]:1", "2001:db8:1:2::/64"},
		{"[::ffff:192.0.2.7]:80", "192.0.2.7"},
		{"[fe80::1%eth0]:80", "fe80::/64"},
		{"@", "@"},
		{"", ""},
	} {
		if got := Source(tc.in); got != tc.want {
			t.Errorf("Source(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}
