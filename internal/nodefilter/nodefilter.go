// Package nodefilter parses and applies the filters of `chancery node ls
// --filter`, as docker's `node ls` takes them: KEY=VALUE, where values of
// one key are alternatives (any matches) and different keys must all match.
//
// Keys: id (a prefix of the node ID), name (a prefix of the host name), role
// (manager or worker), membership (accepted; chancery has no pending nodes)
// and state (ready or down).
package nodefilter

import (
	"fmt"
	"slices"
	"strings"

	"github.com/chancery-pki/chancery/api"
	"github.com/chancery-pki/chancery/ca"
)

// Keys are the filter keys, in the order errors list them.
var Keys = []string{"id", "name", "role", "membership", "state"}

// maxFilters bounds how many filters one listing takes.
const maxFilters = 32

// Filter is a parsed set of filters. The zero Filter matches every node.
type Filter struct {
	values map[string][]string
}

// Parse parses filters given as KEY=VALUE. It refuses an unknown key, an
// empty value where one is needed, and a value a key does not take.
func Parse(filters []string) (Filter, error) {
	f := Filter{values: map[string][]string{}}
	if len(filters) > maxFilters {
		return Filter{}, fmt.Errorf("%d filters: at most %d", len(filters), maxFilters)
	}
	for _, s := range filters {
		key, value, ok := strings.Cut(s, "=")
		key = strings.ToLower(strings.TrimSpace(key))
		if !ok {
			return Filter{}, fmt.Errorf("filter %q: want KEY=VALUE, with KEY one of %s", clip(s), strings.Join(Keys, ", "))
		}
		if len(value) > 256 {
			return Filter{}, fmt.Errorf("filter %s: the value is longer than 256 bytes", key)
		}
		switch key {
		case "id", "name":
		case "role":
			r, err := ca.ParseRole(strings.ToLower(value))
			if err != nil {
				return Filter{}, fmt.Errorf("filter role=%q: want manager or worker", clip(value))
			}
			value = r.Short()
		case "membership":
			value = strings.ToLower(value)
			if value != "accepted" && value != "pending" {
				return Filter{}, fmt.Errorf("filter membership=%q: want accepted or pending", clip(value))
			}
		case "state":
			value = strings.ToLower(value)
			if value != "ready" && value != "down" {
				return Filter{}, fmt.Errorf("filter state=%q: want ready or down", clip(value))
			}
		default:
			return Filter{}, fmt.Errorf("filter %q: unknown key %q; the keys are %s", clip(s), clip(key), strings.Join(Keys, ", "))
		}
		if !slices.Contains(f.values[key], value) {
			f.values[key] = append(f.values[key], value)
		}
	}
	return f, nil
}

// clip shortens outside input quoted in an error.
func clip(s string) string {
	if len(s) > 64 {
		return s[:64] + "..."
	}
	return s
}

// Empty reports whether f matches every node.
func (f Filter) Empty() bool { return len(f.values) == 0 }

// Match reports whether n passes every key of f.
func (f Filter) Match(n api.Node) bool {
	for key, values := range f.values {
		if !slices.ContainsFunc(values, func(v string) bool { return matches(key, v, n) }) {
			return false
		}
	}
	return true
}

func matches(key, value string, n api.Node) bool {
	switch key {
	case "id":
		return strings.HasPrefix(n.ID, value)
	case "name":
		return strings.HasPrefix(n.Hostname, value)
	case "role":
		return ca.Role(n.Role).Short() == value
	case "membership":
		// Every node that is listed was accepted when it joined with a
		// token; chancery has no pending nodes.
		return value == "accepted"
	case "state":
		return strings.EqualFold(n.Status, value)
	}
	return false
}
