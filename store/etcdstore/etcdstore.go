// Package etcdstore is a store.Store in etcd v3, shared by every manager
// that reaches the same etcd cluster and key prefix.
//
// Keys, under the prefix (default "/chancery/"):
//
//	schema                     the format version, "1"
//	cluster                    the cluster record (JSON, as store.Cluster)
//	nodes/<id>                 a node (JSON, as store.Node)
//	certs/<serial>             an issued certificate (JSON)
//	certs-by-node/<hex id>/<serial>
//	                           the same record again, so that a node's
//	                           certificates are one range (records never change)
//	audit/<seq, 16 hex digits> an audit entry (audit.Entry.Marshal)
//	audit-head                 the audit log's head (JSON, as audit.Head)
//
// Every change is one etcd transaction that compares the revisions of what
// it read (the record it changes, and the audit head when it appends), so
// that it commits only if nothing it read changed meanwhile, and is tried
// again otherwise. An audit append commits in the transaction of the change
// it records, against the head's revision: writers in several processes
// never fork the chain. Within one Store, writes are serialized, so that
// its own goroutines do not make each other try again, and issuances that
// arrive while a transaction commits share the next one (RecordIssuance).
//
// A change under a context that carries a leader's fence (store.WithFence)
// also compares the leader key's create revision in its transaction, and
// fails with store.ErrFenced, writing nothing, when the key is gone or was
// made again.
//
// Because transactions are optimistic, the fn of UpdateCluster and
// UpdateNode may be called more than once, each time with a fresh copy of
// the record; it must have no other effect than on that copy.
package etcdstore

import (
	"cmp"
	"context"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"sync"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/chancery-pki/chancery/audit"
	"github.com/chancery-pki/chancery/store"
)

// DefaultPrefix is the key prefix of a store whose options name none.
const DefaultPrefix = "/chancery/"

// schemaVersion is the newest format this package reads and the one it
// writes.
const schemaVersion = 1

// maxAttempts bounds how often a change is tried against writers in other
// processes before it gives up.
const maxAttempts = 100

// ErrContended is matched by the error of a change that lost to other
// writers maxAttempts times in a row.
var ErrContended = errors.New("etcdstore: too many concurrent writers; try again")

var _ store.Store = (*Store)(nil)

// Options tune New.
type Options struct {
	// Prefix is the key prefix of the store's keys. Default DefaultPrefix.
	Prefix string
	// Now is the clock for the timestamps the store sets. Default
	// time.Now.
	Now func() time.Time
	// CloseClient makes Close close the client too.
	CloseClient bool
	// ClaimTTL is the TTL of an import's claim (Claim); default
	// DefaultClaimTTL.
	ClaimTTL time.Duration
}

// Store is a store.Store in etcd. It is safe for concurrent use.
type Store struct {
	c      *clientv3.Client
	now    func() time.Time
	closeC bool

	// Keys.
	prefix, kSchema, kCluster, kHead, pNodes, pCerts, pByNode, pAudit string

	// writeMu serializes this Store's changes (see the package doc).
	writeMu sync.Mutex
	// batchMu guards the issuances waiting for a transaction (batch.go).
	batchMu  sync.Mutex
	pending  []*issuance
	flushing bool
	closeMu  sync.RWMutex
	closed   bool

	// claimMu guards the import claim this Store holds (claim.go).
	claimMu  sync.Mutex
	claim    *importClaim
	claimTTL time.Duration
}

// New returns a store on an etcd client. It checks the format version of
// what is stored, and refuses one written by a newer chancery.
func New(ctx context.Context, c *clientv3.Client, opts Options) (*Store, error) {
	if opts.Prefix == "" {
		opts.Prefix = DefaultPrefix
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	p := opts.Prefix
	s := &Store{
		c: c, now: opts.Now, closeC: opts.CloseClient, prefix: p, claimTTL: opts.ClaimTTL,
		kSchema: p + "schema", kCluster: p + "cluster", kHead: p + "audit-head",
		pNodes: p + "nodes/", pCerts: p + "certs/", pByNode: p + "certs-by-node/", pAudit: p + "audit/",
	}
	resp, err := c.Get(ctx, s.kSchema)
	if err != nil {
		return nil, fmt.Errorf("etcdstore: reading the store's format version: %w", err)
	}
	if len(resp.Kvs) == 1 {
		n, err := strconv.Atoi(string(resp.Kvs[0].Value))
		if err != nil || n < 1 {
			return nil, fmt.Errorf("etcdstore: corrupt record %q: not a schema version", s.kSchema)
		}
		if n > schemaVersion {
			return nil, fmt.Errorf("etcdstore: the store has schema version %d, newer than version %d which this chancery supports; run a newer chancery", n, schemaVersion)
		}
	}
	return s, nil
}

// Client returns the store's etcd client.
func (s *Store) Client() *clientv3.Client { return s.c }

// Prefix returns the store's key prefix: keys of other uses of the store's
// etcd, such as the managers' election, go under it too, beside the
// store's own.
func (s *Store) Prefix() string { return s.prefix }

// ClusterKey returns the key of the cluster record, for managers that
// watch it.
func (s *Store) ClusterKey() string { return s.kCluster }

// Close implements store.Store. It closes the client if Options.CloseClient
// said so.
func (s *Store) Close() error {
	s.closeMu.Lock()
	defer s.closeMu.Unlock()
	if s.closed {
		return nil
	}
	s.closed = true
	s.claimMu.Lock()
	s.release()
	s.claimMu.Unlock()
	if s.closeC {
		return s.c.Close()
	}
	return nil
}

var errClosed = errors.New("etcdstore: the store is closed")

// begin starts a call: ctx's error, or errClosed. end must be called after
// a nil error.
func (s *Store) begin(ctx context.Context) (end func(), err error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	s.closeMu.RLock()
	if s.closed {
		s.closeMu.RUnlock()
		return nil, errClosed
	}
	return s.closeMu.RUnlock, nil
}

// timestamp is the store's clock without a monotonic reading, so values
// returned equal values read back.
func (s *Store) timestamp() time.Time { return s.now().Round(0) }

func (s *Store) nodeKey(id string) string     { return s.pNodes + id }
func (s *Store) certKey(serial string) string { return s.pCerts + serial }
func (s *Store) byNodePrefix(id string) string {
	return s.pByNode + hex.EncodeToString([]byte(id)) + "/"
}
func (s *Store) auditKey(seq uint64) string { return fmt.Sprintf("%s%016x", s.pAudit, seq) }

// wrap says which operation failed on etcd; nil when err is.
func wrap(op string, err error) error {
	if err == nil {
		return nil
	}
	return fmt.Errorf("etcdstore: %s: %w", op, err)
}

// corrupt reports an undecodable record. JSON errors name fields and types,
// not values, so no token leaks through them.
func corrupt(key string, err error) error {
	return fmt.Errorf("etcdstore: corrupt record %q: %w", key, err)
}

// decode decodes a stored record as json.Unmarshal does: node records
// through store.DecodeNode, which is several times faster.
func decode[T any](key string, data []byte) (T, error) {
	var v T
	if n, ok := any(&v).(*store.Node); ok {
		var err error
		if *n, err = store.DecodeNode(data); err != nil {
			return v, corrupt(key, err)
		}
		return v, nil
	}
	if err := json.Unmarshal(data, &v); err != nil {
		return v, corrupt(key, err)
	}
	return v, nil
}

func encode(key string, v any) (string, error) {
	data, err := json.Marshal(v)
	if err != nil {
		return "", fmt.Errorf("etcdstore: encode record %q: %w", key, err)
	}
	return string(data), nil
}

// snapshot is what a change read: records by key with their revisions.
type snapshot struct {
	kvs map[string]kv
	rev int64 // the store revision of the read
}

type kv struct {
	value  []byte
	modRev int64 // 0: absent
}

// readRetryFor is how long read tries again while etcd does not answer
// (a leader election, the client moving to another member).
const readRetryFor = 3 * time.Second

// read gets keys at one revision, in one round trip, trying again for a
// few seconds if etcd fails to answer: reads are safe to repeat.
func (s *Store) read(ctx context.Context, keys ...string) (snapshot, error) {
	ops := make([]clientv3.Op, len(keys))
	for i, k := range keys {
		ops[i] = clientv3.OpGet(k)
	}
	deadline := time.Now().Add(readRetryFor)
	for attempt := 1; ; attempt++ {
		resp, err := s.c.Txn(ctx).Then(ops...).Commit()
		if err == nil {
			snap := snapshot{kvs: map[string]kv{}, rev: resp.Header.Revision}
			for i, r := range resp.Responses {
				rr := r.GetResponseRange()
				if rr != nil && len(rr.Kvs) == 1 {
					snap.kvs[keys[i]] = kv{value: rr.Kvs[0].Value, modRev: rr.Kvs[0].ModRevision}
				}
			}
			return snap, nil
		}
		wait := time.Duration(attempt) * 50 * time.Millisecond
		if ctx.Err() != nil || time.Now().Add(wait).After(deadline) {
			return snapshot{}, err
		}
		select {
		case <-ctx.Done():
			return snapshot{}, err
		case <-time.After(wait):
		}
	}
}

// unchanged is the comparison that key still has the revision it had in
// snap (or is still absent).
func (snap snapshot) unchanged(key string) clientv3.Cmp {
	if r := snap.kvs[key].modRev; r != 0 {
		return clientv3.Compare(clientv3.ModRevision(key), "=", r)
	}
	return clientv3.Compare(clientv3.CreateRevision(key), "=", 0)
}

// change runs one optimistic change: read the keys, let plan decide what
// to write (or fail), and commit that only if every key read is unchanged.
// The audit head is read too, and events are sealed after it and written
// in the same transaction.
func (s *Store) change(ctx context.Context, op string, keys []string, events []audit.Event,
	plan func(snap snapshot) ([]clientv3.Op, error)) ([]audit.Entry, error) {
	return s.changeEvents(ctx, op, keys, func(snap snapshot) ([]clientv3.Op, []audit.Event, error) {
		ops, err := plan(snap)
		return ops, events, err
	})
}

// changeEvents is change whose plan also says which events to record; a
// plan that returns neither writes nor events commits nothing.
func (s *Store) changeEvents(ctx context.Context, op string, keys []string,
	plan func(snap snapshot) ([]clientv3.Op, []audit.Event, error)) ([]audit.Entry, error) {
	s.writeMu.Lock()
	defer s.writeMu.Unlock()
	keys = append(keys, s.kHead)
	// A change under a leader's context commits only while its fence
	// holds: the leader key still has the revision it was created at.
	fence, fenced := store.FenceFrom(ctx)
	if fenced {
		if err := fence.Validate(); err != nil {
			return nil, err
		}
	}
	for range maxAttempts {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		snap, err := s.read(ctx, keys...)
		if err != nil {
			return nil, wrap(op, err)
		}
		ops, events, err := plan(snap)
		if err != nil {
			return nil, err
		}
		if len(ops) == 0 && len(events) == 0 {
			return nil, nil
		}
		entries, auditOps, err := s.sealAudit(snap, events)
		if err != nil {
			return nil, err
		}
		cmps := make([]clientv3.Cmp, 0, len(keys))
		for _, k := range keys {
			cmps = append(cmps, snap.unchanged(k))
		}
		var orElse []clientv3.Op
		if fenced {
			cmps = append(cmps, clientv3.Compare(clientv3.CreateRevision(fence.Key), "=", fence.Revision))
			orElse = []clientv3.Op{clientv3.OpGet(fence.Key, clientv3.WithKeysOnly())}
		}
		resp, err := s.c.Txn(ctx).If(cmps...).Then(append(ops, auditOps...)...).Else(orElse...).Commit()
		if err != nil {
			// The transaction may have committed (a member died, the
			// leader changed). With audit entries, the head says: it is
			// the last entry's only if this transaction wrote it.
			if len(entries) == 0 {
				return nil, wrap(op, err)
			}
			after, rerr := s.read(ctx, s.kHead)
			if rerr != nil {
				return nil, wrap(op, err)
			}
			if h, ok := after.kvs[s.kHead]; ok {
				if head, herr := decode[audit.Head](s.kHead, h.value); herr == nil && head == entries[len(entries)-1].Head() {
					return entries, nil
				}
			}
			if after.kvs[s.kHead].modRev != snap.kvs[s.kHead].modRev {
				// Another writer moved the head: whether this change is
				// under it cannot be told cheaply; say so.
				return nil, wrap(op, err)
			}
			continue // the head is as it was: it did not commit
		}
		if resp.Succeeded {
			return entries, nil
		}
		if fenced {
			if kvs := resp.Responses[0].GetResponseRange().Kvs; len(kvs) != 1 || kvs[0].CreateRevision != fence.Revision {
				return nil, store.Fenced(op, fence)
			}
		}
		// Another writer changed what we read: read again.
	}
	return nil, fmt.Errorf("%w (%s)", ErrContended, op)
}

// sealAudit seals events after the head in snap and returns the
// operations that store them and the new head.
func (s *Store) sealAudit(snap snapshot, events []audit.Event) ([]audit.Entry, []clientv3.Op, error) {
	if len(events) == 0 {
		return nil, nil, nil
	}
	head := audit.Genesis
	if h, ok := snap.kvs[s.kHead]; ok {
		var err error
		if head, err = decode[audit.Head](s.kHead, h.value); err != nil {
			return nil, nil, err
		}
	}
	now := s.timestamp()
	entries := make([]audit.Entry, 0, len(events))
	ops := make([]clientv3.Op, 0, len(events)+1)
	for _, ev := range events {
		e := audit.Seal(head, now, ev)
		ops = append(ops, clientv3.OpPut(s.auditKey(e.Seq), string(e.Marshal())))
		head = e.Head()
		entries = append(entries, e)
	}
	data, _ := json.Marshal(head)
	ops = append(ops, clientv3.OpPut(s.kHead, string(data)))
	return entries, ops, nil
}

// CreateCluster implements store.Store.
func (s *Store) CreateCluster(ctx context.Context, c store.Cluster, events ...audit.Event) error {
	end, err := s.begin(ctx)
	if err != nil {
		return err
	}
	defer end()
	if c.CreatedAt.IsZero() {
		c.CreatedAt = s.timestamp()
	}
	if err := store.ValidateCluster(c); err != nil {
		return err
	}
	c.Version = 1
	data, err := encode(s.kCluster, c)
	if err != nil {
		return err
	}
	_, err = s.change(ctx, "create cluster", []string{s.kCluster, s.kSchema}, events, func(snap snapshot) ([]clientv3.Op, error) {
		if _, ok := snap.kvs[s.kCluster]; ok {
			return nil, store.AlreadyExists("cluster")
		}
		ops := []clientv3.Op{clientv3.OpPut(s.kCluster, data)}
		if _, ok := snap.kvs[s.kSchema]; !ok {
			ops = append(ops, clientv3.OpPut(s.kSchema, strconv.Itoa(schemaVersion)))
		}
		return ops, nil
	})
	return err
}

// Cluster implements store.Store.
func (s *Store) Cluster(ctx context.Context) (store.Cluster, error) {
	end, err := s.begin(ctx)
	if err != nil {
		return store.Cluster{}, err
	}
	defer end()
	resp, err := s.c.Get(ctx, s.kCluster)
	if err != nil {
		return store.Cluster{}, wrap("read the cluster", err)
	}
	if len(resp.Kvs) == 0 {
		return store.Cluster{}, store.NotFound("cluster")
	}
	return decode[store.Cluster](s.kCluster, resp.Kvs[0].Value)
}

// UpdateCluster implements store.Store. fn may be called more than once
// (see the package doc).
func (s *Store) UpdateCluster(ctx context.Context, fn func(*store.Cluster) error, events ...audit.Event) (store.Cluster, error) {
	end, err := s.begin(ctx)
	if err != nil {
		return store.Cluster{}, err
	}
	defer end()
	var c store.Cluster
	_, err = s.change(ctx, "update the cluster", []string{s.kCluster}, events, func(snap snapshot) ([]clientv3.Op, error) {
		cur, ok := snap.kvs[s.kCluster]
		if !ok {
			return nil, store.NotFound("cluster")
		}
		var err error
		if c, err = decode[store.Cluster](s.kCluster, cur.value); err != nil {
			return nil, err
		}
		id, version := c.ID, c.Version
		if err := fn(&c); err != nil {
			return nil, err
		}
		if c.ID != id {
			return nil, fmt.Errorf("store: update cluster: the cluster ID cannot change (from %q to %q)", id, c.ID)
		}
		if err := store.ValidateCluster(c); err != nil {
			return nil, err
		}
		c.Version = version + 1
		data, err := encode(s.kCluster, c)
		if err != nil {
			return nil, err
		}
		return []clientv3.Op{clientv3.OpPut(s.kCluster, data)}, nil
	})
	if err != nil {
		return store.Cluster{}, err
	}
	return c, nil
}

// Node implements store.Store.
func (s *Store) Node(ctx context.Context, id string) (store.Node, error) {
	end, err := s.begin(ctx)
	if err != nil {
		return store.Node{}, err
	}
	defer end()
	if id == "" {
		return store.Node{}, store.NotFound(fmt.Sprintf("node %q", id))
	}
	resp, err := s.c.Get(ctx, s.nodeKey(id))
	if err != nil {
		return store.Node{}, wrap("read a node", err)
	}
	if len(resp.Kvs) == 0 {
		return store.Node{}, store.NotFound(fmt.Sprintf("node %q", id))
	}
	return decode[store.Node](s.nodeKey(id), resp.Kvs[0].Value)
}

// UpdateNode implements store.Store. fn may be called more than once (see
// the package doc). A change that leaves the node removed deletes its
// heartbeat record in the same transaction.
func (s *Store) UpdateNode(ctx context.Context, id string, fn func(*store.Node) error, events ...audit.Event) (store.Node, error) {
	end, err := s.begin(ctx)
	if err != nil {
		return store.Node{}, err
	}
	defer end()
	if id == "" {
		return store.Node{}, store.NotFound(fmt.Sprintf("node %q", id))
	}
	key := s.nodeKey(id)
	var n store.Node
	_, err = s.change(ctx, "update a node", []string{key}, events, func(snap snapshot) ([]clientv3.Op, error) {
		cur, ok := snap.kvs[key]
		if !ok {
			return nil, store.NotFound(fmt.Sprintf("node %q", id))
		}
		var err error
		if n, err = decode[store.Node](key, cur.value); err != nil {
			return nil, err
		}
		if err := fn(&n); err != nil {
			return nil, err
		}
		if n.ID != id {
			return nil, fmt.Errorf("store: update node %q: the node ID cannot change (to %q)", id, n.ID)
		}
		n.UpdatedAt = s.timestamp()
		data, err := encode(key, n)
		if err != nil {
			return nil, err
		}
		if n.State == store.StateRemoved {
			// A removed node's heartbeat record (seen.go) goes with it.
			return []clientv3.Op{clientv3.OpPut(key, data), clientv3.OpDelete(s.seenPrefix() + id)}, nil
		}
		return []clientv3.Op{clientv3.OpPut(key, data)}, nil
	})
	if err != nil {
		return store.Node{}, err
	}
	return n, nil
}

// IssuedCertificate implements store.Store.
func (s *Store) IssuedCertificate(ctx context.Context, serial string) (store.IssuedCertificate, error) {
	end, err := s.begin(ctx)
	if err != nil {
		return store.IssuedCertificate{}, err
	}
	defer end()
	if serial == "" {
		return store.IssuedCertificate{}, store.NotFound(fmt.Sprintf("certificate %q", serial))
	}
	resp, err := s.c.Get(ctx, s.certKey(serial))
	if err != nil {
		return store.IssuedCertificate{}, wrap("read a certificate", err)
	}
	if len(resp.Kvs) == 0 {
		return store.IssuedCertificate{}, store.NotFound(fmt.Sprintf("certificate %q", serial))
	}
	return decode[store.IssuedCertificate](s.certKey(serial), resp.Kvs[0].Value)
}

// page reads at most limit records of the range [prefix+after, end of
// prefix), after excluded, at revision rev (0: the newest). more reports
// whether the range holds more.
func page[T any](ctx context.Context, s *Store, prefix, after string, limit int, rev int64) (out []T, more bool, atRev int64, err error) {
	from := prefix
	if after != "" {
		from = prefix + after + "\x00"
	}
	opts := []clientv3.OpOption{clientv3.WithRange(clientv3.GetPrefixRangeEnd(prefix)), clientv3.WithLimit(int64(limit))}
	if rev != 0 {
		opts = append(opts, clientv3.WithRev(rev))
	}
	resp, err := s.c.Get(ctx, from, opts...)
	if err != nil {
		return nil, false, 0, err
	}
	out = make([]T, 0, len(resp.Kvs))
	for _, kv := range resp.Kvs {
		v, err := decode[T](string(kv.Key), kv.Value)
		if err != nil {
			return nil, false, 0, err
		}
		out = append(out, v)
	}
	return out, resp.More, resp.Header.Revision, nil
}

// ListNodes implements store.Store.
func (s *Store) ListNodes(ctx context.Context, opts store.ListOptions) (store.NodePage, error) {
	end, err := s.begin(ctx)
	if err != nil {
		return store.NodePage{}, err
	}
	defer end()
	after, limit, err := store.ParseNodeListOptions(opts)
	if err != nil {
		return store.NodePage{}, err
	}
	nodes, more, _, err := page[store.Node](ctx, s, s.pNodes, after, limit, 0)
	if err != nil {
		return store.NodePage{}, wrap("list nodes", err)
	}
	p := store.NodePage{Nodes: nodes}
	if more && len(nodes) > 0 {
		p.Next = store.NodeCursor(nodes[len(nodes)-1].ID)
	}
	return p, nil
}

// Nodes implements store.Store: every page, read at one revision, so the
// result is one snapshot.
func (s *Store) Nodes(ctx context.Context) ([]store.Node, error) {
	end, err := s.begin(ctx)
	if err != nil {
		return nil, err
	}
	defer end()
	var all []store.Node
	after, rev := "", int64(0)
	for {
		nodes, more, r, err := page[store.Node](ctx, s, s.pNodes, after, store.MaxPageLimit, rev)
		if err != nil {
			return nil, wrap("list nodes", err)
		}
		all, rev = append(all, nodes...), r
		if !more || len(nodes) == 0 {
			return all, nil
		}
		after = nodes[len(nodes)-1].ID
	}
}

// ListIssuedCertificates implements store.Store.
func (s *Store) ListIssuedCertificates(ctx context.Context, nodeID string, opts store.ListOptions) (store.CertificatePage, error) {
	end, err := s.begin(ctx)
	if err != nil {
		return store.CertificatePage{}, err
	}
	defer end()
	after, limit, err := store.ParseCertificateListOptions(opts)
	if err != nil {
		return store.CertificatePage{}, err
	}
	prefix := s.pCerts
	if nodeID != "" {
		prefix = s.byNodePrefix(nodeID)
	}
	certs, more, _, err := page[store.IssuedCertificate](ctx, s, prefix, after, limit, 0)
	if err != nil {
		return store.CertificatePage{}, wrap("list certificates", err)
	}
	p := store.CertificatePage{Certificates: certs}
	if more && len(certs) > 0 {
		p.Next = store.CertificateCursor(certs[len(certs)-1].Serial)
	}
	return p, nil
}

// IssuedCertificates implements store.Store: every page, read at one
// revision, sorted by IssuedAt then Serial.
func (s *Store) IssuedCertificates(ctx context.Context, nodeID string) ([]store.IssuedCertificate, error) {
	end, err := s.begin(ctx)
	if err != nil {
		return nil, err
	}
	defer end()
	prefix := s.pCerts
	if nodeID != "" {
		prefix = s.byNodePrefix(nodeID)
	}
	var all []store.IssuedCertificate
	after, rev := "", int64(0)
	for {
		certs, more, r, err := page[store.IssuedCertificate](ctx, s, prefix, after, store.MaxPageLimit, rev)
		if err != nil {
			return nil, wrap("list certificates", err)
		}
		all, rev = append(all, certs...), r
		if !more || len(certs) == 0 {
			break
		}
		after = certs[len(certs)-1].Serial
	}
	slices.SortFunc(all, func(a, b store.IssuedCertificate) int {
		return cmp.Or(a.IssuedAt.Compare(b.IssuedAt), cmp.Compare(a.Serial, b.Serial))
	})
	return all, nil
}

// AppendAudit implements store.Store.
func (s *Store) AppendAudit(ctx context.Context, events ...audit.Event) ([]audit.Entry, error) {
	end, err := s.begin(ctx)
	if err != nil {
		return nil, err
	}
	defer end()
	if len(events) == 0 {
		return nil, nil
	}
	return s.change(ctx, "append to the audit log", nil, events, func(snapshot) ([]clientv3.Op, error) { return nil, nil })
}

// AuditHead implements store.Store.
func (s *Store) AuditHead(ctx context.Context) (audit.Head, error) {
	end, err := s.begin(ctx)
	if err != nil {
		return audit.Head{}, err
	}
	defer end()
	resp, err := s.c.Get(ctx, s.kHead)
	if err != nil {
		return audit.Head{}, wrap("read the audit head", err)
	}
	if len(resp.Kvs) == 0 {
		return audit.Genesis, nil
	}
	return decode[audit.Head](s.kHead, resp.Kvs[0].Value)
}

// AuditRecords implements store.Store.
func (s *Store) AuditRecords(ctx context.Context, from uint64, limit int) ([]audit.Record, error) {
	end, err := s.begin(ctx)
	if err != nil {
		return nil, err
	}
	defer end()
	var recs []audit.Record
	key, rev := s.auditKey(from), int64(0)
	rangeEnd := clientv3.GetPrefixRangeEnd(s.pAudit)
	for limit <= 0 || len(recs) < limit {
		n := store.MaxPageLimit
		if limit > 0 {
			n = min(n, limit-len(recs))
		}
		opts := []clientv3.OpOption{clientv3.WithRange(rangeEnd), clientv3.WithLimit(int64(n))}
		if rev != 0 {
			opts = append(opts, clientv3.WithRev(rev))
		}
		resp, err := s.c.Get(ctx, key, opts...)
		if err != nil {
			return nil, wrap("read the audit log", err)
		}
		rev = resp.Header.Revision
		for _, kv := range resp.Kvs {
			seq, err := strconv.ParseUint(string(kv.Key[len(s.pAudit):]), 16, 64)
			if err != nil {
				seq = 0 // as boltstore: a key that is not a sequence number reads as 0, which Verify reports
			}
			recs = append(recs, audit.Record{Key: seq, Data: kv.Value})
		}
		if !resp.More || len(resp.Kvs) == 0 {
			break
		}
		key = string(resp.Kvs[len(resp.Kvs)-1].Key) + "\x00"
	}
	return recs, nil
}
