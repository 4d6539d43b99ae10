package store_test

import (
	"errors"
	"strings"
	"testing"

	"github.com/chancery-pki/chancery/store"
)

func TestParseListOptions(t *testing.T) {
	tests := []struct {
		name      string
		opts      store.ListOptions
		wantAfter string
		wantLimit int
		wantErr   error
	}{
		{"first page", store.ListOptions{}, "", store.DefaultPageLimit, nil},
		{"limit", store.ListOptions{Limit: 7}, "", 7, nil},
		{"limit above the maximum", store.ListOptions{Limit: store.MaxPageLimit + 1}, "", store.MaxPageLimit, nil},
		{"cursor", store.ListOptions{After: store.NodeCursor("node-a/b\x00c"), Limit: 3}, "node-a/b\x00c", 3, nil},
		{"negative limit", store.ListOptions{Limit: -1}, "", 0, store.ErrInvalidListOptions},
		{"certificate cursor", store.ListOptions{After: store.CertificateCursor("0a")}, "", 0, store.ErrInvalidCursor},
		{"not a cursor", store.ListOptions{After: "node-a"}, "", 0, store.ErrInvalidCursor},
		{"padding", store.ListOptions{After: "n1.bm9kZQ=="}, "", 0, store.ErrInvalidCursor},
		{"too long", store.ListOptions{After: store.NodeCursor(strings.Repeat("a", 4000))}, "", 0, store.ErrInvalidCursor},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			after, limit, err := store.ParseNodeListOptions(tt.opts)
			if !errors.Is(err, tt.wantErr) || (tt.wantErr == nil && err != nil) {
				t.Fatalf("ParseNodeListOptions(%+v) error %v, want %v", tt.opts, err, tt.wantErr)
			}
			if after != tt.wantAfter || limit != tt.wantLimit {
				t.Errorf("ParseNodeListOptions(%+v) = %q, %d; want %q, %d", tt.opts, after, limit, tt.wantAfter, tt.wantLimit)
			}
		})
	}
}

// FuzzParseCursor checks that any cursor parses or is refused as invalid,
// and that a cursor made from a key parses back to it.
func FuzzParseCursor(f *testing.F) {
	for _, s := range []string{"", "n1.", "n1.bm9kZQ", store.NodeCursor("x"), store.CertificateCursor("0a"), "c1.!!"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		after, _, err := store.ParseNodeListOptions(store.ListOptions{After: s})
		if err != nil && !errors.Is(err, store.ErrInvalidCursor) {
			t.Fatalf("cursor %q: error %v is not ErrInvalidCursor", s, err)
		}
		if err == nil && s != "" && store.NodeCursor(after) != s {
			t.Fatalf("cursor %q parses to %q, which makes %q", s, after, store.NodeCursor(after))
		}
		if s == "" || len(s) > 1000 {
			return
		}
		got, _, err := store.ParseCertificateListOptions(store.ListOptions{After: store.CertificateCursor(s)})
		if err != nil || got != s {
			t.Fatalf("CertificateCursor(%q) parses to (%q, %v)", s, got, err)
		}
	})
}
