package cluster

import (
	"errors"
	"testing"
	"time"

	"github.com/chancery-pki/chancery/store"
)

func TestRenewalLimitTake(t *testing.T) {
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	const life = 100 * time.Hour // one renewal back every 10h
	l := DefaultRenewalLimit
	for _, tc := range []struct {
		name      string
		node      store.Node
		now       time.Time
		wantErr   bool
		wantRetry time.Duration
		wantLeft  float64
	}{
		{"Fresh", store.Node{}, t0, false, 0, 4},
		{"Empty", store.Node{RenewalTokens: 0.25, RenewalTokensAt: t0}, t0, true, 7*time.Hour + 30*time.Minute, 0},
		{"Refilled", store.Node{RenewalTokens: 0, RenewalTokensAt: t0}, t0.Add(10 * time.Hour), false, 0, 0},
		{"Capped", store.Node{RenewalTokens: 1, RenewalTokensAt: t0}, t0.Add(1000 * time.Hour), false, 0, 4},
		{"ClockBack", store.Node{RenewalTokens: 0.5, RenewalTokensAt: t0}, t0.Add(-time.Hour), true, 5 * time.Hour, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			n := tc.node
			err := l.take(&n, life, tc.now)
			var lerr *RenewalLimitError
			if tc.wantErr {
				if !errors.As(err, &lerr) || lerr.RetryAfter != tc.wantRetry {
					t.Fatalf("err %v, want a RenewalLimitError with RetryAfter %s", err, tc.wantRetry)
				}
				if n != tc.node {
					t.Errorf("a refusal changed the node: %+v", n)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if n.RenewalTokens != tc.wantLeft || !n.RenewalTokensAt.Equal(tc.now) {
				t.Errorf("left %v at %s, want %v at %s", n.RenewalTokens, n.RenewalTokensAt, tc.wantLeft, tc.now)
			}
		})
	}
}
