package store

import (
	"bytes"
	"encoding/json"
	"maps"
	"slices"
	"sync"
)

// Clone returns a deep copy of c: no slice, map or pointer of the copy is
// shared with c.
func (c Cluster) Clone() Cluster {
	c.RootCAPEM = bytes.Clone(c.RootCAPEM)
	c.Backend = c.Backend.clone()
	c.IntermediatesPEM = bytes.Clone(c.IntermediatesPEM)
	if c.RootHistory != nil {
		h := make([]Root, len(c.RootHistory))
		for i, r := range c.RootHistory {
			h[i] = r.clone()
		}
		c.RootHistory = h
	}
	if c.Rotation != nil {
		r := *c.Rotation
		r.Target = r.Target.clone()
		r.AppendixPEM = bytes.Clone(r.AppendixPEM)
		r.ExcludedNodes = slices.Clone(r.ExcludedNodes)
		c.Rotation = &r
	}
	if c.RetiredKeys != nil {
		k := make([]RetiredKey, len(c.RetiredKeys))
		for i, rk := range c.RetiredKeys {
			rk.Root = rk.Root.clone()
			k[i] = rk
		}
		c.RetiredKeys = k
	}
	return c
}

func (r Root) clone() Root {
	r.CertPEM = bytes.Clone(r.CertPEM)
	r.IntermediatesPEM = bytes.Clone(r.IntermediatesPEM)
	r.Backend = r.Backend.clone()
	return r
}

func (b BackendConfig) clone() BackendConfig {
	b.Settings = maps.Clone(b.Settings)
	return b
}

// ClusterCache decodes stored cluster records, keeping the last one
// decoded: a store reads the cluster record on almost every call, and
// during a root rotation the record (roots, appendix, history) is large
// enough that decoding it again each time costs a good part of a
// manager's CPU. The zero value is ready to use; it is safe for concurrent
// use.
type ClusterCache struct {
	mu  sync.Mutex
	raw []byte
	c   Cluster
}

// Decode returns the cluster that raw, a stored record, encodes: a copy of
// the one kept when raw is the record decoded last.
func (cc *ClusterCache) Decode(raw []byte) (Cluster, error) {
	cc.mu.Lock()
	if cc.raw != nil && bytes.Equal(cc.raw, raw) {
		c := cc.c.Clone()
		cc.mu.Unlock()
		return c, nil
	}
	cc.mu.Unlock()
	var c Cluster
	if err := json.Unmarshal(raw, &c); err != nil {
		return Cluster{}, err
	}
	cc.mu.Lock()
	cc.raw, cc.c = bytes.Clone(raw), c.Clone()
	cc.mu.Unlock()
	return c, nil
}
