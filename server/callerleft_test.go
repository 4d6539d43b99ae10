package server

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

// TestCallerLeftIsNotAnError: a store or signer call that ends because the
// caller went away is counted apart and logged at debug level only, so an
// overloaded manager whose callers give up does not flood its log with
// errors; a real internal failure still logs an error.
func TestCallerLeftIsNotAnError(t *testing.T) {
	e := newEnv(t, envOptions{})
	canceled, cancel := context.WithCancel(context.Background())
	cancel()
	expired, cancel2 := context.WithTimeout(context.Background(), -1)
	defer cancel2()
	for _, tc := range []struct {
		name      string
		ctx       context.Context
		err       error
		wantError bool
		wantCode  int
	}{
		{"canceled", canceled, fmt.Errorf("reading the node: %w", context.Canceled), false, http.StatusServiceUnavailable},
		{"deadline", expired, context.DeadlineExceeded, false, http.StatusServiceUnavailable},
		// The request is alive: a canceled context deeper down is the
		// manager's own failure.
		{"live request", context.Background(), context.Canceled, true, http.StatusInternalServerError},
		{"store failure", canceled, errors.New("disk full"), true, http.StatusInternalServerError},
	} {
		t.Run(tc.name, func(t *testing.T) {
			before := strings.Count(e.logs.String(), "internal error")
			w := httptest.NewRecorder()
			r := httptest.NewRequestWithContext(tc.ctx, http.MethodPost, "/v1/renew", nil)
			e.srv.internal(w, r, tc.err)
			if w.Code != tc.wantCode {
				t.Errorf("status %d, want %d", w.Code, tc.wantCode)
			}
			if got := strings.Count(e.logs.String(), "internal error") > before; got != tc.wantError {
				t.Errorf("logged an internal error: %v, want %v", got, tc.wantError)
			}
		})
	}
	status, body := e.socketGet(t, "/metrics")
	if status != http.StatusOK {
		t.Fatalf("/metrics: %d", status)
	}
	for _, want := range []string{`chancery_failures_total{reason="caller_left"} 2`, `chancery_failures_total{reason="internal"} 2`} {
		if !strings.Contains(body, want) {
			t.Errorf("/metrics lacks %q", want)
		}
	}
}
