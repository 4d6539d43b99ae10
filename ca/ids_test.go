package ca

import (
	"bytes"
	"crypto/rand"
	"strings"
	"testing"
)

func TestNewID(t *testing.T) {
	tests := []struct {
		name string
		rand []byte
		want string
	}{
		{"zero", make([]byte, 16), strings.Repeat("0", 25)},
		{"one", append(make([]byte, 15), 1), "0000000000000000000000001"},
		{"max", bytes.Repeat([]byte{0xff}, 16), "f5lxx1zz5pnorynqglhzmsp33"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := NewID(bytes.NewReader(tt.rand))
			if err != nil {
				t.Fatal(err)
			}
			if got != tt.want {
				t.Errorf("NewID = %q, want %q", got, tt.want)
			}
			if !ValidID(got) {
				t.Errorf("ValidID(%q) = false", got)
			}
		})
	}
}

func TestNewIDRandom(t *testing.T) {
	seen := map[string]bool{}
	for range 1000 {
		id, err := NewID(rand.Reader)
		if err != nil {
			t.Fatal(err)
		}
		if !ValidID(id) {
			t.Fatalf("ValidID(%q) = false", id)
		}
		if seen[id] {
			t.Fatalf("duplicate id %q", id)
		}
		seen[id] = true
	}
}

func TestNewIDShortRead(t *testing.T) {
	_, err := NewID(bytes.NewReader(make([]byte, 15)))
	if err == nil || !strings.HasPrefix(err.Error(), "ca: ") {
		t.Fatalf("NewID on a short reader: err = %v, want a ca: error", err)
	}
}

func TestValidID(t *testing.T) {
	tests := []struct {
		id   string
		want bool
	}{
		{"f5lxx1zz5pnorynqglhzmsp33", true},
		{strings.Repeat("0", 25), true},
		{"", false},
		{"f5lxx1zz5pnorynqglhzmsp3", false},
		{"f5lxx1zz5pnorynqglhzmsp333", false},
		{"F5lxx1zz5pnorynqglhzmsp33", false},
		{"f5lxx1zz5pnorynqglhzmsp3-", false},
		{"f5lxx1zz5pnorynqglhzmsp3 ", false},
	}
	for _, tt := range tests {
		if got := ValidID(tt.id); got != tt.want {
			t.Errorf("ValidID(%q) = %v, want %v", tt.id, got, tt.want)
		}
	}
}
