package main

// Output rules: results (what a command was asked to produce) go to
// stdout; errors go to stderr as "chancery: error: ..." followed by any
// "hint: ..." lines that say what to type instead. Nothing secret is printed
// except a join token that the user asked for.

import (
	"errors"
	"fmt"
	"io"

	"github.com/chancery-pki/chancery/backends"
)

// hintError is an error with advice on what to do about it.
type hintError struct {
	err   error
	hints []string
}

func (e *hintError) Error() string { return e.err.Error() }
func (e *hintError) Unwrap() error { return e.err }

// withHint attaches hints to err.
func withHint(err error, hints ...string) error {
	if err == nil {
		return nil
	}
	return &hintError{err: err, hints: hints}
}

// printError writes err and its hints to w.
func printError(w io.Writer, err error) {
	fmt.Fprintf(w, "chancery: error: %v\n", err)
	var h *hintError
	if errors.As(err, &h) {
		for _, hint := range h.hints {
			fmt.Fprintf(w, "hint: %s\n", hint)
		}
	}
	var f *backends.FlagError
	if errors.As(err, &f) && f.Hint != "" {
		fmt.Fprintf(w, "hint: %s\n", f.Hint)
	}
}
