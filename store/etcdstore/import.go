package etcdstore

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/chancery-pki/chancery/store"
)

var _ store.Importer = (*Store)(nil)

// maxImportBytes bounds the size of one import transaction: etcd's
// default --max-request-bytes is 1.5 MiB.
const maxImportBytes = 1 << 20

// Empty implements store.Importer: nothing at all is stored under the
// prefix.
func (s *Store) Empty(ctx context.Context) (_ bool, err error) {
	ctx, done, err := s.call(ctx)
	if err != nil {
		return false, err
	}
	defer done(&err)
	ok, err := s.exists(ctx)
	return !ok, err
}

// Import implements store.Importer. Each transaction holds at most
// maxTxnOps writes and about maxImportBytes, and commits only while the
// store holds no cluster record; the cluster record, the format version and
// the audit head go last, in one transaction.
func (s *Store) Import(ctx context.Context, b store.ImportBatch) error {
	end, err := s.begin(ctx)
	if err != nil {
		return err
	}
	defer end()
	s.writeMu.Lock()
	defer s.writeMu.Unlock()
	s.claimMu.Lock()
	defer s.claimMu.Unlock()
	held, err := s.claimed()
	if err != nil {
		return err
	}

	var ops []clientv3.Op
	size := 0
	flush := func() error {
		if len(ops) == 0 {
			return nil
		}
		err := s.importTxn(ctx, held, ops)
		ops, size = nil, 0
		return err
	}
	put := func(key, value string) error {
		if len(ops) >= maxTxnOps || (size+len(key)+len(value) > maxImportBytes && len(ops) > 0) {
			if err := flush(); err != nil {
				return err
			}
		}
		ops = append(ops, clientv3.OpPut(key, value))
		size += len(key) + len(value)
		return nil
	}
	for _, n := range b.Nodes {
		if n.ID == "" {
			return errors.New("etcdstore: import: a node has no ID")
		}
		data, err := encode(s.nodeKey(n.ID), n)
		if err != nil {
			return err
		}
		if err := put(s.nodeKey(n.ID), data); err != nil {
			return err
		}
	}
	for _, c := range b.Certificates {
		if c.Serial == "" || strings.Trim(c.Serial, "0123456789abcdef") != "" || c.NodeID == "" {
			return fmt.Errorf("etcdstore: import: certificate %q has no lower case hex serial or no node", c.Serial)
		}
		data, err := encode(s.certKey(c.Serial), c)
		if err != nil {
			return err
		}
		if err := put(s.certKey(c.Serial), data); err != nil {
			return err
		}
		if err := put(s.byNodePrefix(c.NodeID)+c.Serial, data); err != nil {
			return err
		}
	}
	for _, r := range b.Audit {
		if r.Key == 0 {
			return errors.New("etcdstore: import: an audit record has sequence number 0")
		}
		if err := put(s.auditKey(r.Key), string(r.Data)); err != nil {
			return err
		}
	}
	if err := flush(); err != nil {
		return err
	}
	if b.Cluster == nil {
		return nil
	}
	if err := store.ValidateCluster(*b.Cluster); err != nil {
		return err
	}
	cdata, err := encode(s.kCluster, *b.Cluster)
	if err != nil {
		return err
	}
	head, _ := json.Marshal(b.Head)
	if err := s.importTxn(ctx, held, []clientv3.Op{
		clientv3.OpPut(s.kSchema, strconv.Itoa(schemaVersion)),
		clientv3.OpPut(s.kHead, string(head)),
		clientv3.OpPut(s.kCluster, cdata),
		clientv3.OpDelete(s.lockKey()),
		clientv3.OpDelete(s.claimKey()),
	}); err != nil {
		return err
	}
	// The import is whole: its claim ends with it.
	s.release()
	return nil
}

// importTxn commits ops if the store holds no cluster record and this
// import's claim (held) holds.
// Each is a round trip under the call timeout.
func (s *Store) importTxn(ctx context.Context, held clientv3.Cmp, ops []clientv3.Op) error {
	var resp *clientv3.TxnResponse
	err := s.roundTrip(ctx, func(ctx context.Context) (err error) {
		resp, err = s.c.Txn(ctx).If(clientv3.Compare(clientv3.CreateRevision(s.kCluster), "=", 0), held).Then(ops...).
			Else(clientv3.OpGet(s.kCluster, clientv3.WithCountOnly())).Commit()
		return wrap("import", err)
	})
	if err != nil {
		return err
	}
	if !resp.Succeeded {
		if resp.Responses[0].GetResponseRange().Count > 0 {
			return fmt.Errorf("etcdstore: import: %w: the store holds a cluster record already", store.ErrExists)
		}
		return fmt.Errorf("etcdstore: import: %w: this import's claim lapsed (its lease was not renewed in time)", store.ErrImportClaimed)
	}
	return nil
}
