// Package flatjson reads the JSON that chancery writes in bulk (stored
// node records, pages of node listings) several times faster than
// encoding/json, whose reflection and validation pass were most of the
// work of listing 100,000 nodes.
//
// It reads only the common case: objects and arrays, strings of printable
// ASCII without escapes, RFC 3339 times, and numbers. On anything else (an
// escape, a byte outside printable ASCII, null, true, false, an unknown
// key, a syntax error) the Reader fails, and its caller decodes the same
// bytes again with encoding/json into a fresh value, so that the result,
// or the error, is always encoding/json's. A decoder built on a Reader
// must therefore accept only keys that encoding/json would map exactly to
// the fields it sets, and set a field for every key it accepts.
package flatjson

import (
	"strconv"
	"time"
)

// Reader reads one JSON document from its start. Its methods do nothing
// once it has failed; check Done (or Failed) at the end.
type Reader struct {
	data []byte
	pos  int
	bad  bool
}

// NewReader returns a Reader of data.
func NewReader(data []byte) Reader { return Reader{data: data} }

// Failed reports whether the reader met something it does not read.
func (r *Reader) Failed() bool { return r.bad }

// Fail marks the reader failed: its caller met a key or a value it does
// not decode.
func (r *Reader) Fail() { r.bad = true }

// Done reports whether the whole document was read without failing: only
// white space may follow the value read.
func (r *Reader) Done() bool {
	r.space()
	return !r.bad && r.pos == len(r.data)
}

func (r *Reader) space() {
	for r.pos < len(r.data) {
		switch r.data[r.pos] {
		case ' ', '\t', '\n', '\r':
			r.pos++
		default:
			return
		}
	}
}

// expect consumes c after white space, or fails.
func (r *Reader) expect(c byte) {
	if r.bad {
		return
	}
	r.space()
	if r.pos < len(r.data) && r.data[r.pos] == c {
		r.pos++
		return
	}
	r.bad = true
}

// Open consumes the '{' of an object or the '[' of an array.
func (r *Reader) Open(c byte) { r.expect(c) }

// Next reports whether the object or array opened with Open has another
// member, consuming the comma before it; i counts the members read so
// far. It consumes the closing c ('}' or ']') and returns false at the
// end, or when the reader failed.
//
//	r.Open('{')
//	for i := 0; r.Next('}', i); i++ {
//		switch string(r.Key()) { ... }
//	}
func (r *Reader) Next(c byte, i int) bool {
	if r.bad {
		return false
	}
	r.space()
	if r.pos < len(r.data) && r.data[r.pos] == c {
		r.pos++
		return false
	}
	if i > 0 {
		r.expect(',')
	}
	return !r.bad
}

// Key reads an object member's key and the colon after it. The bytes
// alias the document: compare them (switch string(r.Key())), do not keep
// them.
func (r *Reader) Key() []byte {
	k := r.raw()
	r.expect(':')
	return k
}

// raw reads a string of printable ASCII without escapes and returns its
// bytes, which alias the document.
func (r *Reader) raw() []byte {
	r.expect('"')
	if r.bad {
		return nil
	}
	start := r.pos
	for ; r.pos < len(r.data); r.pos++ {
		switch c := r.data[r.pos]; {
		case c == '"':
			r.pos++
			return r.data[start : r.pos-1]
		case c < 0x20 || c > 0x7e || c == '\\':
			r.bad = true
			return nil
		}
	}
	r.bad = true
	return nil
}

// String reads a string value.
func (r *Reader) String() string {
	return string(r.raw())
}

// Enum reads a string value, and returns the element of values it equals
// without allocating, or a new string if none does.
func (r *Reader) Enum(values ...string) string {
	b := r.raw()
	for _, v := range values {
		if string(b) == v {
			return v
		}
	}
	return string(b)
}

// Time reads a time as time.Time's UnmarshalJSON does (RFC 3339).
func (r *Reader) Time() time.Time {
	b := r.raw()
	var t time.Time
	if r.bad {
		return t
	}
	if err := t.UnmarshalText(b); err != nil {
		r.bad = true
	}
	return t
}

// Float reads a number as encoding/json decodes it into a float64.
func (r *Reader) Float() float64 {
	if r.bad {
		return 0
	}
	r.space()
	start := r.pos
	if !r.number() {
		r.bad = true
		return 0
	}
	f, err := strconv.ParseFloat(string(r.data[start:r.pos]), 64)
	if err != nil {
		r.bad = true
	}
	return f
}

// number consumes a number of JSON's grammar:
// -?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?
func (r *Reader) number() bool {
	d := r.data
	if r.pos < len(d) && d[r.pos] == '-' {
		r.pos++
	}
	switch {
	case r.pos < len(d) && d[r.pos] == '0':
		r.pos++
	case r.digits() == 0:
		return false
	}
	if r.pos < len(d) && d[r.pos] == '.' {
		r.pos++
		if r.digits() == 0 {
			return false
		}
	}
	if r.pos < len(d) && (d[r.pos] == 'e' || d[r.pos] == 'E') {
		r.pos++
		if r.pos < len(d) && (d[r.pos] == '+' || d[r.pos] == '-') {
			r.pos++
		}
		if r.digits() == 0 {
			return false
		}
	}
	return true
}

func (r *Reader) digits() int {
	n := 0
	for r.pos < len(r.data) && r.data[r.pos] >= '0' && r.data[r.pos] <= '9' {
		r.pos++
		n++
	}
	return n
}
