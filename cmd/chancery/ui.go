package main

// Output rules: results (what a command was asked to produce) go to
// stdout; errors go to stderr as "chancery: error: ..." followed by any
// "hint: ..." lines that say what to type instead: the hints of every
// error in the chain (package hint), whichever package or backend it comes
// from. Nothing secret is printed except a join token that the user asked
// for.

import (
	"fmt"
	"io"

	"github.com/chancery-pki/chancery/hint"
)

// printError writes err and its hints to w.
func printError(w io.Writer, err error) {
	fmt.Fprintf(w, "chancery: error: %v\n", err)
	for _, h := range hint.All(err) {
		fmt.Fprintf(w, "hint: %s\n", h)
	}
}
