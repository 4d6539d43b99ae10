package etcdstore

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"

	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/chancery-pki/chancery/store"
)

var (
	_ store.SeenSharer = (*Store)(nil)
	_ store.SeenPruner = (*Store)(nil)
)

// seenPerTxn is how many heartbeat records one transaction writes (etcd
// allows 128 operations by default).
const seenPerTxn = 100

func (s *Store) seenPrefix() string { return s.prefix + "seen/" }

// PutSeen implements store.SeenSharer: records under PREFIX/seen/<node>,
// seenPerTxn a transaction, each under the call timeout.
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
		if err := s.roundTrip(ctx, func(ctx context.Context) error {
			_, err := s.c.Txn(ctx).Then(ops...).Commit()
			return wrap("record heartbeats", err)
		}); err != nil {
			return err
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

// seenPrunePage is how many heartbeat records one step of PruneSeen
// examines: it reads their nodes in one transaction, and deletes in
// another that compares them (etcd allows 128 operations by default).
const seenPrunePage = 50

// PruneSeen implements store.SeenPruner: page by page, it reads the nodes
// of the heartbeat records and deletes the records of removed or absent
// nodes in a transaction that commits only while those nodes are as read;
// each round trip under the call timeout.
func (s *Store) PruneSeen(ctx context.Context) (int, error) {
	end, err := s.begin(ctx)
	if err != nil {
		return 0, err
	}
	defer end()
	pruned := 0
	from, rangeEnd := s.seenPrefix(), clientv3.GetPrefixRangeEnd(s.seenPrefix())
	for {
		var resp *clientv3.GetResponse
		if err := s.roundTrip(ctx, func(ctx context.Context) (err error) {
			resp, err = s.c.Get(ctx, from, clientv3.WithRange(rangeEnd), clientv3.WithKeysOnly(), clientv3.WithLimit(seenPrunePage),
				clientv3.WithSort(clientv3.SortByKey, clientv3.SortAscend))
			return wrap("list heartbeats", err)
		}); err != nil {
			return pruned, err
		}
		if len(resp.Kvs) == 0 {
			return pruned, nil
		}
		ids := make([]string, len(resp.Kvs))
		gets := make([]clientv3.Op, len(resp.Kvs))
		for i, kv := range resp.Kvs {
			ids[i] = strings.TrimPrefix(string(kv.Key), s.seenPrefix())
			gets[i] = clientv3.OpGet(s.nodeKey(ids[i]))
		}
		var nodes *clientv3.TxnResponse
		if err := s.roundTrip(ctx, func(ctx context.Context) (err error) {
			nodes, err = s.c.Txn(ctx).Then(gets...).Commit()
			return wrap("read the nodes of heartbeats", err)
		}); err != nil {
			return pruned, err
		}
		var cmps []clientv3.Cmp
		var dels []clientv3.Op
		for i, r := range nodes.Responses {
			key := s.nodeKey(ids[i])
			kvs := r.GetResponseRange().Kvs
			if len(kvs) == 0 {
				cmps = append(cmps, clientv3.Compare(clientv3.CreateRevision(key), "=", 0))
				dels = append(dels, clientv3.OpDelete(s.seenPrefix()+ids[i]))
				continue
			}
			n, err := decode[store.Node](key, kvs[0].Value)
			if err != nil {
				return pruned, err
			}
			if n.State == store.StateRemoved {
				cmps = append(cmps, clientv3.Compare(clientv3.ModRevision(key), "=", kvs[0].ModRevision))
				dels = append(dels, clientv3.OpDelete(s.seenPrefix()+ids[i]))
			}
		}
		if len(dels) > 0 {
			// A node that changed meanwhile is looked at again at the next
			// prune.
			var del *clientv3.TxnResponse
			if err := s.roundTrip(ctx, func(ctx context.Context) (err error) {
				del, err = s.c.Txn(ctx).If(cmps...).Then(dels...).Commit()
				return wrap("prune heartbeats", err)
			}); err != nil {
				return pruned, err
			}
			if del.Succeeded {
				pruned += len(dels)
			}
		}
		if !resp.More {
			return pruned, nil
		}
		from = string(resp.Kvs[len(resp.Kvs)-1].Key) + "\x00"
	}
}
