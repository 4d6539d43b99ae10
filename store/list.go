package store

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"strings"
)

// This file pages the listings of nodes and issued certificates. A page is
// a run of records in key order (node ID, certificate serial) and its
// cursor names the last key listed, so the next page starts after it: a
// record created between two pages is listed once if its key sorts after
// the cursor and not at all otherwise, and a record that exists for the
// whole listing is listed exactly once.

// DefaultPageLimit is the size of a page when ListOptions.Limit is 0.
const DefaultPageLimit = 500

// MaxPageLimit is the largest page a store returns; a larger
// ListOptions.Limit is lowered to it.
const MaxPageLimit = 5000

// ErrInvalidCursor is matched by the error of a listing given a cursor that
// no listing of that kind returned. Test for it with errors.Is.
var ErrInvalidCursor = errors.New("store: invalid cursor")

// ErrInvalidListOptions is matched by the error of a listing given
// ListOptions it refuses, such as a negative limit.
var ErrInvalidListOptions = errors.New("store: invalid list options")

// ListOptions ask for one page of a listing.
type ListOptions struct {
	// After is the cursor of the previous page (its Next), or "" for the
	// first page. Cursors are opaque: pass back what a listing returned.
	After string
	// Limit is the most records the page holds: 0 means DefaultPageLimit,
	// more than MaxPageLimit means MaxPageLimit, and less than 0 is refused.
	Limit int
}

// NodePage is one page of nodes, sorted by ID.
type NodePage struct {
	// Nodes are the page's nodes, sorted by ID.
	Nodes []Node
	// Next is the cursor of the next page (ListOptions.After), or "" when
	// no node sorted after this page's last when the page was read.
	Next string
}

// CertificatePage is one page of issued certificates, sorted by serial.
type CertificatePage struct {
	// Certificates are the page's records, sorted by serial (as strings).
	Certificates []IssuedCertificate
	// Next is the cursor of the next page, or "" when this page is the
	// last.
	Next string
}

// Cursor kinds: a cursor of one listing is refused by the other.
const (
	cursorNodes = "n"
	cursorCerts = "c"
)

// NodeCursor returns the cursor of a node listing whose last node is id,
// for stores to return as NodePage.Next.
func NodeCursor(id string) string { return encodeCursor(cursorNodes, id) }

// CertificateCursor returns the cursor of a certificate listing whose last
// certificate has the given serial, for stores to return as
// CertificatePage.Next.
func CertificateCursor(serial string) string { return encodeCursor(cursorCerts, serial) }

func encodeCursor(kind, key string) string {
	return kind + "1." + base64.RawURLEncoding.EncodeToString([]byte(key))
}

// ParseNodeListOptions checks the options of a node listing, so every store
// refuses the same input: it returns the ID after which the page starts
// ("" for the first page) and the page's size.
func ParseNodeListOptions(o ListOptions) (after string, limit int, err error) {
	return parseListOptions(cursorNodes, "node", o)
}

// ParseCertificateListOptions checks the options of a certificate listing:
// it returns the serial after which the page starts ("" for the first page)
// and the page's size.
func ParseCertificateListOptions(o ListOptions) (after string, limit int, err error) {
	return parseListOptions(cursorCerts, "certificate", o)
}

func parseListOptions(kind, what string, o ListOptions) (string, int, error) {
	limit := o.Limit
	switch {
	case limit < 0:
		return "", 0, fmt.Errorf("%w: the %s listing's limit %d is negative", ErrInvalidListOptions, what, limit)
	case limit == 0:
		limit = DefaultPageLimit
	case limit > MaxPageLimit:
		limit = MaxPageLimit
	}
	if o.After == "" {
		return "", limit, nil
	}
	// The cursor is outside input (a client passes it back): its content is
	// never echoed, only its length.
	enc, ok := strings.CutPrefix(o.After, kind+"1.")
	if !ok || len(o.After) > 4096 {
		return "", 0, fmt.Errorf("%w: a cursor of %d bytes that is not a %s listing's", ErrInvalidCursor, len(o.After), what)
	}
	key, err := base64.RawURLEncoding.Strict().DecodeString(enc)
	if err != nil || len(key) == 0 {
		return "", 0, fmt.Errorf("%w: a %s listing's cursor of %d bytes that does not decode", ErrInvalidCursor, what, len(o.After))
	}
	return string(key), limit, nil
}

// AllNodes reads every page of list (a Store's ListNodes) and returns the
// nodes, sorted by ID. Each page is read on its own, so the result is not
// one snapshot: a node created meanwhile may or may not be in it.
func AllNodes(ctx context.Context, list func(context.Context, ListOptions) (NodePage, error)) ([]Node, error) {
	var out []Node
	opts := ListOptions{Limit: MaxPageLimit}
	for {
		p, err := list(ctx, opts)
		if err != nil {
			return nil, err
		}
		out = append(out, p.Nodes...)
		if p.Next == "" {
			return out, nil
		}
		opts.After = p.Next
	}
}

// AllIssuedCertificates reads every page of list (a Store's
// ListIssuedCertificates) for nodeID ("" for every node) and returns the
// records sorted by serial.
func AllIssuedCertificates(ctx context.Context, nodeID string, list func(context.Context, string, ListOptions) (CertificatePage, error)) ([]IssuedCertificate, error) {
	var out []IssuedCertificate
	opts := ListOptions{Limit: MaxPageLimit}
	for {
		p, err := list(ctx, nodeID, opts)
		if err != nil {
			return nil, err
		}
		out = append(out, p.Certificates...)
		if p.Next == "" {
			return out, nil
		}
		opts.After = p.Next
	}
}
