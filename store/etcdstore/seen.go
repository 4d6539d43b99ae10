package etcdstore

import (
	"context"
	"encoding/json"
	"fmt"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/chancery-pki/chancery/store"
)

var _ store.SeenSharer = (*Store)(nil)

// seenPerTxn is how many heartbeat records one transaction writes (etcd
// allows 128 operations by default).
const seenPerTxn = 100

func (s *Store) seenPrefix() string { return s.prefix + "seen/" }

// PutSeen implements store.SeenSharer: records under PREFIX/seen/<node>,
// seenPerTxn a transaction.
func (s *Store) PutSeen(ctx context.Context, recs []store.Seen) error {
	end, err := s.begin(ctx)
	if err != nil {
		return err
	}
	defer end()
	for len(recs) > 0 {
		n := min(len(recs), seenPerTxn)
		ops := make([]clientv3.Op, 0, n)
		for _, r := range recs[:n] {
			data, err := json.Marshal(r)
			if err != nil {
				return fmt.Errorf("etcdstore: encode a heartbeat: %w", err)
			}
			ops = append(ops, clientv3.OpPut(s.seenPrefix()+r.NodeID, string(data)))
		}
		if _, err := s.c.Txn(ctx).Then(ops...).Commit(); err != nil {
			return wrap("record heartbeats", err)
		}
		recs = recs[n:]
	}
	return nil
}

// WatchSeen implements store.SeenSharer.
func (s *Store) WatchSeen(ctx context.Context, fn func(store.Seen)) error {
	resp, err := s.c.Get(ctx, s.seenPrefix(), clientv3.WithPrefix())
	if err != nil {
		return wrap("read heartbeats", err)
	}
	emit := func(key, value []byte) {
		var r store.Seen
		if json.Unmarshal(value, &r) == nil && s.seenPrefix()+r.NodeID == string(key) {
			fn(r)
		}
	}
	for _, kv := range resp.Kvs {
		emit(kv.Key, kv.Value)
	}
	wch := s.c.Watch(clientv3.WithRequireLeader(ctx), s.seenPrefix(), clientv3.WithPrefix(), clientv3.WithRev(resp.Header.Revision+1))
	for wr := range wch {
		if err := wr.Err(); err != nil {
			return wrap("watch heartbeats", err)
		}
		for _, ev := range wr.Events {
			if ev.Type == clientv3.EventTypePut {
				emit(ev.Kv.Key, ev.Kv.Value)
			}
		}
	}
	return ctx.Err()
}
