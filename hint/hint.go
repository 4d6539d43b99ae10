// Package hint lets an error carry advice apart from its message: the
// message says what went wrong, the hint what to do about it (a flag to
// give, a command to run).
//
// An error that carries advice implements Hinter (errors.As finds the
// first; All finds them all); With attaches advice to any error. Whoever
// shows the error finds every hint of its chain with All: the command line
// prints each on a "hint:" line after the message, and a log records them
// beside it (Attr). A message never repeats its hint.
package hint

import (
	"log/slog"
	"slices"
	"strings"
)

// Hinter is implemented by errors that carry advice. Hint returns it, or ""
// when there is none.
type Hinter interface {
	Hint() string
}

// With returns an error whose message is err's, which unwraps to err, and
// whose Hint is advice. It returns nil if err is nil.
func With(err error, advice string) error {
	if err == nil {
		return nil
	}
	return &hinted{err: err, advice: advice}
}

// hinted is an error with advice attached.
type hinted struct {
	err    error
	advice string
}

func (e *hinted) Error() string { return e.err.Error() }
func (e *hinted) Unwrap() error { return e.err }
func (e *hinted) Hint() string  { return e.advice }

// All returns the hints of err's chain, outermost first, each once and
// none empty. It follows Unwrap() error and Unwrap() []error, as errors.As
// does, and finds every Hinter, not the first alone.
func All(err error) []string {
	var out []string
	var walk func(error)
	walk = func(err error) {
		if err == nil {
			return
		}
		if h, ok := err.(Hinter); ok {
			if s := h.Hint(); s != "" && !slices.Contains(out, s) {
				out = append(out, s)
			}
		}
		switch u := err.(type) {
		case interface{ Unwrap() error }:
			walk(u.Unwrap())
		case interface{ Unwrap() []error }:
			for _, e := range u.Unwrap() {
				walk(e)
			}
		}
	}
	walk(err)
	return out
}

// Attr returns the log attribute "hint": err's hints joined with "; ", or
// the empty Attr, which slog's handlers leave out, when err has none.
func Attr(err error) slog.Attr {
	hints := All(err)
	if len(hints) == 0 {
		return slog.Attr{}
	}
	return slog.String("hint", strings.Join(hints, "; "))
}

var _ Hinter = (*hinted)(nil)
