package etcdstore

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/chancery-pki/chancery/audit"
	"github.com/chancery-pki/chancery/store"
)

// maxTxnOps is the most operations of one kind (comparisons, or writes)
// that a transaction of RecordIssuance's batches holds: etcd's default
// --max-txn-ops, 128, less a margin.
const maxTxnOps = 120

// issuance is one RecordIssuance waiting for its batch.
type issuance struct {
	ctx      context.Context
	n        store.Node
	cert     store.IssuedCertificate
	certData string
	events   []audit.Event
	done     chan error // buffered
	// deadline is the call timeout after the issuance was queued: its
	// batch waits for etcd until the first of its issuances' deadlines.
	deadline time.Time
}

// writes is how many keys the issuance writes: the certificate, its copy
// by node, the node, and its audit entries.
func (r *issuance) writes() int { return 3 + len(r.events) }

// RecordIssuance implements store.Store. Issuances that arrive while
// another transaction of this Store commits wait for it, and then share
// one transaction (as many as fit in etcd's limit on a transaction's
// operations); each is checked on its own, so one refused (a duplicate
// serial, a removed node) does not refuse the others. Once queued, an
// issuance commits or fails with its batch, even if ctx ends meanwhile;
// it fails with ErrNoAnswer when etcd has not answered within the call
// timeout after it was queued.
func (s *Store) RecordIssuance(ctx context.Context, n store.Node, cert store.IssuedCertificate, events ...audit.Event) error {
	end, err := s.begin(ctx)
	if err != nil {
		return err
	}
	defer end()
	if err := store.ValidateIssuance(n, cert); err != nil {
		return err
	}
	if cert.IssuedAt.IsZero() {
		cert.IssuedAt = s.timestamp()
	}
	certData, err := encode(s.certKey(cert.Serial), cert)
	if err != nil {
		return err
	}
	r := &issuance{ctx: ctx, n: n, cert: cert, certData: certData, events: events, done: make(chan error, 1),
		deadline: time.Now().Add(s.callTimeout)}
	s.batchMu.Lock()
	s.pending = append(s.pending, r)
	if !s.flushing {
		s.flushing = true
		go s.flush()
	}
	s.batchMu.Unlock()
	return <-r.done
}

// flush commits the pending issuances, a batch at a time, until none is
// left.
func (s *Store) flush() {
	for {
		s.batchMu.Lock()
		if len(s.pending) == 0 {
			s.flushing = false
			s.batchMu.Unlock()
			return
		}
		k, writes := 0, 1 // the audit head
		for k < len(s.pending) && (k == 0 || (writes+s.pending[k].writes() <= maxTxnOps && 2*(k+1)+1 <= maxTxnOps)) {
			writes += s.pending[k].writes()
			k++
		}
		batch := append([]*issuance(nil), s.pending[:k]...)
		s.pending = append(s.pending[:0], s.pending[k:]...)
		s.batchMu.Unlock()
		s.commitBatch(batch)
	}
}

// commitBatch records a batch of issuances in one transaction, against
// the revisions of the certificates, nodes and audit head it read, and
// tells each its outcome.
func (s *Store) commitBatch(batch []*issuance) {
	live := batch[:0]
	for _, r := range batch {
		if err := r.ctx.Err(); err != nil {
			r.done <- err
			continue
		}
		live = append(live, r)
	}
	if len(live) == 0 {
		return
	}
	// The batch waits for etcd (and for this Store's other writes) until
	// its first issuance's call timeout; the issuances were queued in
	// order.
	ctx, cancel := context.WithDeadlineCause(context.Background(), live[0].deadline, ErrNoAnswer)
	defer cancel()
	s.writeMu.Lock()
	defer s.writeMu.Unlock()

	seen := map[string]bool{}
	keys := []string{s.kHead}
	for _, r := range live {
		for _, k := range []string{s.certKey(r.cert.Serial), s.nodeKey(r.n.ID)} {
			if !seen[k] {
				seen[k] = true
				keys = append(keys, k)
			}
		}
	}
	results := make([]error, len(live))
	for range maxAttempts {
		snap, err := s.read(ctx, keys...)
		if err != nil {
			s.finish(live, nil, s.noAnswer(ctx, wrap("record an issuance", err)))
			return
		}
		ops, err := s.planBatch(snap, live, results)
		if err != nil {
			s.finish(live, nil, err)
			return
		}
		if len(ops) == 0 {
			s.finish(live, results, nil)
			return
		}
		cmps := make([]clientv3.Cmp, 0, len(keys))
		for _, k := range keys {
			cmps = append(cmps, snap.unchanged(k))
		}
		resp, err := s.c.Txn(ctx).If(cmps...).Then(ops...).Commit()
		if err != nil {
			// The transaction may have committed (a member died, the
			// leader changed): the records it wrote say.
			committed, rerr := s.batchCommitted(ctx, live, results)
			switch {
			case rerr != nil:
				s.finish(live, nil, s.noAnswer(ctx, wrap("record an issuance", err)))
				return
			case committed:
				s.finish(live, results, nil)
				return
			}
			continue // it did not: try again
		}
		if resp.Succeeded {
			s.finish(live, results, nil)
			return
		}
		// Another process wrote what we read: read again.
	}
	s.finish(live, nil, fmt.Errorf("%w (record an issuance)", ErrContended))
}

// finish tells each issuance its result, or err if it is not nil.
func (s *Store) finish(batch []*issuance, results []error, err error) {
	for i, r := range batch {
		if err != nil {
			r.done <- err
		} else {
			r.done <- results[i]
		}
	}
}

// planBatch returns the writes of the issuances of batch that snap allows,
// in order, each seeing the ones before it (a node renewed twice, a serial
// given twice), and sets results[i] to the refusal of each other one.
func (s *Store) planBatch(snap snapshot, batch []*issuance, results []error) ([]clientv3.Op, error) {
	head := audit.Genesis
	if h, ok := snap.kvs[s.kHead]; ok {
		var err error
		if head, err = decode[audit.Head](s.kHead, h.value); err != nil {
			return nil, err
		}
	}
	now := s.timestamp()
	nodes := map[string]*store.Node{} // as the batch leaves them
	var order []string                // nodes written, in order
	serials := map[string]bool{}
	var ops []clientv3.Op
	sealed := false
	for i, r := range batch {
		results[i] = nil
		certKey, nodeKey := s.certKey(r.cert.Serial), s.nodeKey(r.n.ID)
		if _, ok := snap.kvs[certKey]; ok || serials[r.cert.Serial] {
			results[i] = store.AlreadyExists("certificate " + r.cert.Serial)
			continue
		}
		old, ok := nodes[r.n.ID]
		if !ok {
			if cur, found := snap.kvs[nodeKey]; found {
				n, err := decode[store.Node](nodeKey, cur.value)
				if err != nil {
					results[i] = err
					continue
				}
				old = &n
			}
		}
		node := r.n
		if old != nil {
			if old.State == store.StateRemoved {
				results[i] = store.Conflict(fmt.Sprintf("node %q", node.ID), "it was removed")
				continue
			}
			if old.Role != "" && node.Role != old.Role {
				results[i] = store.Conflict(fmt.Sprintf("node %q", node.ID), fmt.Sprintf("it is now %s, not %s", old.Role, node.Role))
				continue
			}
			node.CreatedAt = old.CreatedAt
			if node.State == "" {
				node.State = old.State
			}
			if node.Hostname == "" {
				node.Hostname = old.Hostname
			}
		} else {
			if node.CreatedAt.IsZero() {
				node.CreatedAt = now
			}
			if node.State == "" {
				node.State = store.StateReady
			}
		}
		node.UpdatedAt = now
		if _, ok := nodes[node.ID]; !ok {
			order = append(order, node.ID)
		}
		nodes[node.ID] = &node
		serials[r.cert.Serial] = true
		ops = append(ops,
			clientv3.OpPut(certKey, r.certData),
			clientv3.OpPut(s.byNodePrefix(node.ID)+r.cert.Serial, r.certData))
		for _, ev := range r.events {
			e := audit.Seal(head, now, ev)
			ops = append(ops, clientv3.OpPut(s.auditKey(e.Seq), string(e.Marshal())))
			head = e.Head()
			sealed = true
		}
	}
	if len(ops) == 0 {
		return nil, nil
	}
	// A transaction writes a key once: each node's last state.
	for _, id := range order {
		data, err := encode(s.nodeKey(id), nodes[id])
		if err != nil {
			return nil, err
		}
		ops = append(ops, clientv3.OpPut(s.nodeKey(id), data))
	}
	if sealed {
		data, _ := json.Marshal(head)
		ops = append(ops, clientv3.OpPut(s.kHead, string(data)))
	}
	return ops, nil
}

// batchCommitted tells, after a transaction whose outcome is unknown,
// whether it committed: whether the certificate records it wrote are
// there, as it wrote them (serials are unique, and a transaction commits
// whole).
func (s *Store) batchCommitted(ctx context.Context, batch []*issuance, results []error) (bool, error) {
	var keys []string
	var want []string
	for i, r := range batch {
		if results[i] == nil {
			keys = append(keys, s.certKey(r.cert.Serial))
			want = append(want, r.certData)
		}
	}
	snap, err := s.read(ctx, keys...)
	if err != nil {
		return false, err
	}
	found := 0
	for i, k := range keys {
		if kv, ok := snap.kvs[k]; ok && string(kv.value) == want[i] {
			found++
		}
	}
	switch found {
	case len(keys):
		return true, nil
	case 0:
		return false, nil
	}
	return false, fmt.Errorf("etcdstore: %d of %d records of one transaction found after it failed", found, len(keys))
}
