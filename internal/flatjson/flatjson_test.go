package flatjson

import (
	"encoding/json"
	"testing"
	"time"
)

// TestReader reads documents value by value: what it reads is what
// encoding/json reads, and what it does not read fails it.
func TestReader(t *testing.T) {
	tests := []struct {
		in   string
		read func(r *Reader) any
		ok   bool
	}{
		{`"abc"`, func(r *Reader) any { return r.String() }, true},
		{` "a b" `, func(r *Reader) any { return r.String() }, true},
		{`"a\"b"`, func(r *Reader) any { return r.String() }, false},
		{"\"\xc3\xa9\"", func(r *Reader) any { return r.String() }, false},
		{`"abc`, func(r *Reader) any { return r.String() }, false},
		{`"abc"x`, func(r *Reader) any { return r.String() }, false},
		{`null`, func(r *Reader) any { return r.String() }, false},
		{`"Leader"`, func(r *Reader) any { return r.Enum("Ready", "Leader") }, true},
		{`"Other"`, func(r *Reader) any { return r.Enum("Ready", "Leader") }, true},
		{`"2026-12-05T12:00:00.5+01:00"`, func(r *Reader) any { return r.Time() }, true},
		{`"2026-12-05"`, func(r *Reader) any { return r.Time() }, false},
		{`0`, func(r *Reader) any { return r.Float() }, true},
		{`-0.25e+2`, func(r *Reader) any { return r.Float() }, true},
		{`12E3`, func(r *Reader) any { return r.Float() }, true},
		{`1.`, func(r *Reader) any { return r.Float() }, false},
		{`.1`, func(r *Reader) any { return r.Float() }, false},
		{`01`, func(r *Reader) any { return r.Float() }, false},
		{`1e`, func(r *Reader) any { return r.Float() }, false},
		{`-`, func(r *Reader) any { return r.Float() }, false},
		{`1e400`, func(r *Reader) any { return r.Float() }, false},
	}
	for _, tt := range tests {
		r := NewReader([]byte(tt.in))
		got := tt.read(&r)
		if ok := r.Done(); ok != tt.ok {
			t.Errorf("%s: read %v, want %v", tt.in, ok, tt.ok)
			continue
		}
		if !tt.ok {
			continue
		}
		// encoding/json, into a value of the same type.
		var want any
		switch got.(type) {
		case string:
			var s string
			err := json.Unmarshal([]byte(tt.in), &s)
			want = s
			if err != nil {
				t.Errorf("%s: encoding/json: %v", tt.in, err)
			}
		case time.Time:
			var v time.Time
			err := json.Unmarshal([]byte(tt.in), &v)
			if err != nil {
				t.Errorf("%s: encoding/json: %v", tt.in, err)
			}
			if !v.Equal(got.(time.Time)) {
				t.Errorf("%s: read %v, encoding/json %v", tt.in, got, v)
			}
			continue
		case float64:
			var f float64
			err := json.Unmarshal([]byte(tt.in), &f)
			want = f
			if err != nil {
				t.Errorf("%s: encoding/json: %v", tt.in, err)
			}
		}
		if got != want {
			t.Errorf("%s: read %v, encoding/json %v", tt.in, got, want)
		}
	}
}

// TestNext reads objects and arrays, and fails on their syntax errors.
func TestNext(t *testing.T) {
	tests := []struct {
		in   string
		want []string
		ok   bool
	}{
		{`{}`, nil, true},
		{`{"a":"1","b":"2"}`, []string{"a=1", "b=2"}, true},
		{` { "a" : "1" } `, []string{"a=1"}, true},
		{`{"a":"1",}`, []string{"a=1"}, false},
		{`{,"a":"1"}`, nil, false},
		{`{"a":"1" "b":"2"}`, []string{"a=1"}, false},
		{`{"a" "1"}`, nil, false},
		{`{"a":"1"`, []string{"a=1"}, false},
		{`{"a":"1"}}`, []string{"a=1"}, false},
	}
	for _, tt := range tests {
		r := NewReader([]byte(tt.in))
		var got []string
		r.Open('{')
		for i := 0; r.Next('}', i); i++ {
			k := string(r.Key())
			v := r.String()
			if !r.Failed() {
				got = append(got, k+"="+v)
			}
		}
		if ok := r.Done(); ok != tt.ok || len(got) != len(tt.want) {
			t.Errorf("%s: read %q (%v), want %q (%v)", tt.in, got, ok, tt.want, tt.ok)
			continue
		}
		for i := range got {
			if got[i] != tt.want[i] {
				t.Errorf("%s: read %q, want %q", tt.in, got, tt.want)
			}
		}
	}
}
