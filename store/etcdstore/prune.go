package etcdstore

import (
	"context"
	"encoding/json"
	"maps"
	"strconv"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/chancery-pki/chancery/audit"
	"github.com/chancery-pki/chancery/store"
)

var _ store.Pruner = (*Store)(nil)

// maxPruneScan is the most records a step examines, whatever
// PruneRequest.Scan asks: a step deletes two keys a record (the record
// and its copy by node) in one transaction, which etcd's default
// --max-txn-ops of 128 bounds.
const maxPruneScan = 50

// PruneIssuedCertificates implements store.Pruner: each step is one
// transaction over at most 50 records (fewer than req.Scan asks when it is
// larger), compared against the revisions of the nodes whose current
// certificate it checked and of the audit head.
func (s *Store) PruneIssuedCertificates(ctx context.Context, req store.PruneRequest) (_ store.PruneResult, err error) {
	ctx, done, err := s.call(ctx)
	if err != nil {
		return store.PruneResult{}, err
	}
	defer done(&err)
	if req, err = store.CheckPruneRequest(req); err != nil {
		return store.PruneResult{}, err
	}
	// Certificate records never change once written, and only a prune
	// deletes them, so the page is read once; the nodes it checks are
	// compared in the transaction.
	type rec struct {
		Serial   string    `json:"serial"`
		NodeID   string    `json:"node_id"`
		NotAfter time.Time `json:"not_after"`
	}
	recs, more, _, err := page[rec](ctx, s, s.pCerts, req.After, min(req.Scan, maxPruneScan), 0)
	if err != nil {
		return store.PruneResult{}, wrap("prune", err)
	}
	res := store.PruneResult{Examined: len(recs)}
	if more && len(recs) > 0 {
		res.Next = recs[len(recs)-1].Serial
	}
	var expired []rec
	var nodeKeys []string
	seen := map[string]bool{}
	for _, r := range recs {
		if !r.NotAfter.Before(req.ExpiredBefore) {
			continue
		}
		expired = append(expired, r)
		if k := s.nodeKey(r.NodeID); !seen[k] && r.NodeID != "" {
			seen[k] = true
			nodeKeys = append(nodeKeys, k)
		}
	}
	if len(expired) == 0 {
		return res, nil
	}
	ev := req.Event
	var deleted int
	_, err = s.changeEvents(ctx, "prune", nodeKeys, func(snap snapshot) ([]clientv3.Op, []audit.Event, error) {
		var ops []clientv3.Op
		for _, r := range expired {
			// A node's current certificate stays, expired or not.
			if cur, ok := snap.kvs[s.nodeKey(r.NodeID)]; ok {
				var n struct {
					CertSerial string `json:"cert_serial"`
				}
				if err := json.Unmarshal(cur.value, &n); err != nil {
					return nil, nil, corrupt(s.nodeKey(r.NodeID), err)
				}
				if n.CertSerial == r.Serial {
					continue
				}
			}
			ops = append(ops, clientv3.OpDelete(s.certKey(r.Serial)), clientv3.OpDelete(s.byNodePrefix(r.NodeID)+r.Serial))
		}
		deleted = len(ops) / 2
		if deleted == 0 {
			return nil, nil, nil
		}
		e := ev
		e.Details = maps.Clone(ev.Details)
		if e.Details == nil {
			e.Details = map[string]string{}
		}
		e.Details[store.DetailPruned] = strconv.Itoa(deleted)
		e.Details[store.DetailExpiredBefore] = req.ExpiredBefore.UTC().Format(time.RFC3339)
		return ops, []audit.Event{e}, nil
	})
	if err != nil {
		return store.PruneResult{}, err
	}
	res.Deleted = deleted
	return res, nil
}
