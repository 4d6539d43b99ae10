package etcdstore

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"

	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
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

// WatchSeen implements store.SeenSharer. A watch that etcd refuses as
// compacted (it resumed, after a dropped connection, from a revision etcd
// has compacted meanwhile) does not end it: the records are read again,
// each passed to fn (fn keeps the newest of each node's), and the watch
// goes on from that read.
func (s *Store) WatchSeen(ctx context.Context, fn func(store.Seen)) error {
	emit := func(key, value []byte) {
		var r store.Seen
		if json.Unmarshal(value, &r) == nil && s.seenPrefix()+r.NodeID == string(key) {
			fn(r)
		}
	}
	for {
		resp, err := s.c.Get(ctx, s.seenPrefix(), clientv3.WithPrefix())
		if err != nil {
			return wrap("read heartbeats", err)
		}
		for _, kv := range resp.Kvs {
			emit(kv.Key, kv.Value)
		}
		wctx, cancel := context.WithCancel(ctx)
		err = s.watchSeen(wctx, resp.Header.Revision+1, emit)
		cancel()
		if !errors.Is(err, rpctypes.ErrCompacted) {
			return err
		}
	}
}

// watchSeen passes the records written from rev to emit until ctx ends or
// the watch fails (rpctypes.ErrCompacted when rev was compacted).
func (s *Store) watchSeen(ctx context.Context, rev int64, emit func(key, value []byte)) error {
	wch := s.c.Watch(clientv3.WithRequireLeader(ctx), s.seenPrefix(), clientv3.WithPrefix(), clientv3.WithRev(rev))
	for wr := range wch {
		if wr.CompactRevision != 0 {
			return rpctypes.ErrCompacted
		}
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
