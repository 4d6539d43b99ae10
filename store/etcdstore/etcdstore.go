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
// Every call that reaches etcd has a deadline of its own, the store's call
// timeout (Options.CallTimeout), besides the caller's: a Store cut off from
// etcd fails its calls with an error that wraps ErrNoAnswer (and matches
// store.ErrUnavailable) within that timeout, rather than waiting for etcd
// for as long as its caller would. A call that etcd or the client fails as
// unavailable before that (no leader, a connection lost under a write)
// fails with an error that wraps ErrUnavailable, which matches
// store.ErrUnavailable too. Calls that read every page of a range
// (Nodes, IssuedCertificates, AuditRecords, PruneSeen) and Import have the
// timeout per round trip, so that a long read that goes on answering is
// not cut short; watches (WatchSeen) and Destroy, whose single delete of a
// whole store may take long, have none.
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
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

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

// DefaultCallTimeout is the call timeout of a store whose options give
// none: how long a call waits for etcd before it fails with ErrNoAnswer.
const DefaultCallTimeout = 10 * time.Second

// ErrNoAnswer is matched by the error of a call that etcd did not answer
// within the store's call timeout: etcd is down, has no quorum, or this
// process is cut off from it. It matches store.ErrUnavailable too. The
// error says the timeout and the endpoints.
var ErrNoAnswer error = noAnswer{}

type noAnswer struct{}

func (noAnswer) Error() string        { return "etcdstore: etcd did not answer within the call timeout" }
func (noAnswer) Is(target error) bool { return target == store.ErrUnavailable }

// ErrUnavailable is matched by the error of a call that etcd, or the
// client, failed as unavailable before the call timeout: etcd has no
// leader (lost quorum) and timed the request out, a connection was lost
// under a write, no endpoint can be reached, or the client's own context
// ended. It matches store.ErrUnavailable too. The error says the
// endpoints, without user information.
var ErrUnavailable error = unavailable{}

type unavailable struct{}

func (unavailable) Error() string        { return "etcdstore: etcd is unavailable" }
func (unavailable) Is(target error) bool { return target == store.ErrUnavailable }

// isUnavailable reports whether err is etcd's or gRPC's unavailability
// (codes.Unavailable: rpctypes.ErrNoLeader, ErrTimeout and their kind, a
// connection refused or closed), or a context error that callerCtx, the
// call's context, does not explain: the client's own.
func isUnavailable(callerCtx context.Context, err error) bool {
	var ee rpctypes.EtcdError
	if errors.As(err, &ee) {
		return ee.Code() == codes.Unavailable
	}
	if st, ok := status.FromError(err); ok {
		switch st.Code() {
		case codes.Unavailable:
			return true
		case codes.Canceled, codes.DeadlineExceeded:
			return callerCtx.Err() == nil
		}
	}
	return (errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded)) && callerCtx.Err() == nil
}

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
	// CallTimeout bounds how long a call waits for etcd (see the package
	// doc); default DefaultCallTimeout.
	CallTimeout time.Duration
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

	// callTimeout bounds each call's wait for etcd (call, roundTrip).
	callTimeout time.Duration

	// clusters keeps the cluster record decoded last.
	clusters store.ClusterCache
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
	if opts.CallTimeout < 0 {
		return nil, fmt.Errorf("etcdstore: a negative call timeout (%s)", opts.CallTimeout)
	}
	if opts.CallTimeout == 0 {
		opts.CallTimeout = DefaultCallTimeout
	}
	p := opts.Prefix
	s := &Store{
		c: c, now: opts.Now, closeC: opts.CloseClient, prefix: p, claimTTL: opts.ClaimTTL, callTimeout: opts.CallTimeout,
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

// CallTimeout returns the store's call timeout (Options.CallTimeout).
func (s *Store) CallTimeout() time.Duration { return s.callTimeout }

// call starts a call as begin does, under a context that also ends at the
// call timeout, with ErrNoAnswer as its cause. done(&err) ends the call,
// after turning err into an error that wraps ErrNoAnswer when the call
// failed because the call timeout passed (not the caller's own deadline).
func (s *Store) call(ctx context.Context) (cctx context.Context, done func(*error), err error) {
	end, err := s.begin(ctx)
	if err != nil {
		return nil, nil, err
	}
	cctx, cancel := context.WithTimeoutCause(ctx, s.callTimeout, ErrNoAnswer)
	return cctx, func(errp *error) {
		*errp = s.noAnswer(cctx, *errp)
		cancel()
		end()
	}, nil
}

// Bounded runs f, a call to etcd that uses the store's client outside the
// store (the election's read of the leader), as the store's own calls
// run: under the call timeout, with an error that wraps ErrNoAnswer when
// that passed, or ErrUnavailable when etcd or the client failed it as
// unavailable (both match store.ErrUnavailable).
func (s *Store) Bounded(ctx context.Context, f func(context.Context) error) (err error) {
	ctx, done, err := s.call(ctx)
	if err != nil {
		return err
	}
	defer done(&err)
	return f(ctx)
}

// roundTrip runs f, one round trip to etcd within a longer call, under
// the call timeout: for calls whose length grows with what they read.
func (s *Store) roundTrip(ctx context.Context, f func(context.Context) error) error {
	cctx, cancel := context.WithTimeoutCause(ctx, s.callTimeout, ErrNoAnswer)
	defer cancel()
	return s.noAnswer(cctx, f(cctx))
}

// noAnswer returns err, or, when err is a failure because ctx's call
// timeout passed, an error that wraps ErrNoAnswer and says the timeout and
// the endpoints, or, when etcd or the client failed it as unavailable
// before (isUnavailable), one that wraps ErrUnavailable and says the
// endpoints. Any other error (a record not found, a conflict, the caller's
// own deadline) stays as it is, whenever it came.
func (s *Store) noAnswer(ctx context.Context, err error) error {
	if err == nil || errors.Is(err, store.ErrUnavailable) {
		return err
	}
	if context.Cause(ctx) == ErrNoAnswer && errors.Is(err, context.DeadlineExceeded) {
		return fmt.Errorf("%w (%s; endpoints %s): %s", ErrNoAnswer, s.callTimeout, strings.Join(s.endpoints(), ","),
			s.redact(strings.TrimPrefix(err.Error(), "etcdstore: ")))
	}
	if isUnavailable(ctx, err) {
		return fmt.Errorf("%w (endpoints %s): %s", ErrUnavailable, strings.Join(s.endpoints(), ","),
			s.redact(strings.TrimPrefix(err.Error(), "etcdstore: ")))
	}
	return err
}

// redact removes the endpoints' user information, if any, from msg.
func (s *Store) redact(msg string) string {
	for _, e := range s.c.Endpoints() {
		if u, err := url.Parse(e); err == nil && u.User != nil {
			msg = strings.ReplaceAll(msg, u.User.String()+"@", "")
			if p, ok := u.User.Password(); ok && p != "" {
				msg = strings.ReplaceAll(msg, p, "[redacted]")
			}
		}
	}
	return msg
}

// endpoints returns the client's endpoints, without any user information
// (ParseOptions refuses it; a client made elsewhere might hold some).
func (s *Store) endpoints() []string {
	eps := slices.Clone(s.c.Endpoints())
	for i, e := range eps {
		if u, err := url.Parse(e); err == nil && u.User != nil {
			u.User = nil
			eps[i] = u.String()
		}
	}
	return eps
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
func (s *Store) CreateCluster(ctx context.Context, c store.Cluster, events ...audit.Event) (err error) {
	ctx, done, err := s.call(ctx)
	if err != nil {
		return err
	}
	defer done(&err)
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
func (s *Store) Cluster(ctx context.Context) (_ store.Cluster, err error) {
	ctx, done, err := s.call(ctx)
	if err != nil {
		return store.Cluster{}, err
	}
	defer done(&err)
	resp, err := s.c.Get(ctx, s.kCluster)
	if err != nil {
		return store.Cluster{}, wrap("read the cluster", err)
	}
	if len(resp.Kvs) == 0 {
		return store.Cluster{}, store.NotFound("cluster")
	}
	c, err := s.clusters.Decode(resp.Kvs[0].Value)
	if err != nil {
		return store.Cluster{}, corrupt(s.kCluster, err)
	}
	return c, nil
}

// UpdateCluster implements store.Store. fn may be called more than once
// (see the package doc).
func (s *Store) UpdateCluster(ctx context.Context, fn func(*store.Cluster) error, events ...audit.Event) (_ store.Cluster, err error) {
	ctx, done, err := s.call(ctx)
	if err != nil {
		return store.Cluster{}, err
	}
	defer done(&err)
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
func (s *Store) Node(ctx context.Context, id string) (_ store.Node, err error) {
	ctx, done, err := s.call(ctx)
	if err != nil {
		return store.Node{}, err
	}
	defer done(&err)
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
func (s *Store) UpdateNode(ctx context.Context, id string, fn func(*store.Node) error, events ...audit.Event) (_ store.Node, err error) {
	ctx, done, err := s.call(ctx)
	if err != nil {
		return store.Node{}, err
	}
	defer done(&err)
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
func (s *Store) IssuedCertificate(ctx context.Context, serial string) (_ store.IssuedCertificate, err error) {
	ctx, done, err := s.call(ctx)
	if err != nil {
		return store.IssuedCertificate{}, err
	}
	defer done(&err)
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
func (s *Store) ListNodes(ctx context.Context, opts store.ListOptions) (_ store.NodePage, err error) {
	ctx, done, err := s.call(ctx)
	if err != nil {
		return store.NodePage{}, err
	}
	defer done(&err)
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
		var nodes []store.Node
		var more bool
		var r int64
		err := s.roundTrip(ctx, func(ctx context.Context) (err error) {
			nodes, more, r, err = page[store.Node](ctx, s, s.pNodes, after, store.MaxPageLimit, rev)
			return wrap("list nodes", err)
		})
		if err != nil {
			return nil, err
		}
		all, rev = append(all, nodes...), r
		if !more || len(nodes) == 0 {
			return all, nil
		}
		after = nodes[len(nodes)-1].ID
	}
}

// ListIssuedCertificates implements store.Store.
func (s *Store) ListIssuedCertificates(ctx context.Context, nodeID string, opts store.ListOptions) (_ store.CertificatePage, err error) {
	ctx, done, err := s.call(ctx)
	if err != nil {
		return store.CertificatePage{}, err
	}
	defer done(&err)
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
		var certs []store.IssuedCertificate
		var more bool
		var r int64
		err := s.roundTrip(ctx, func(ctx context.Context) (err error) {
			certs, more, r, err = page[store.IssuedCertificate](ctx, s, prefix, after, store.MaxPageLimit, rev)
			return wrap("list certificates", err)
		})
		if err != nil {
			return nil, err
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
func (s *Store) AppendAudit(ctx context.Context, events ...audit.Event) (_ []audit.Entry, err error) {
	ctx, done, err := s.call(ctx)
	if err != nil {
		return nil, err
	}
	defer done(&err)
	if len(events) == 0 {
		return nil, nil
	}
	return s.change(ctx, "append to the audit log", nil, events, func(snapshot) ([]clientv3.Op, error) { return nil, nil })
}

// AuditHead implements store.Store.
func (s *Store) AuditHead(ctx context.Context) (_ audit.Head, err error) {
	ctx, done, err := s.call(ctx)
	if err != nil {
		return audit.Head{}, err
	}
	defer done(&err)
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
		var resp *clientv3.GetResponse
		err := s.roundTrip(ctx, func(ctx context.Context) (err error) {
			resp, err = s.c.Get(ctx, key, opts...)
			return wrap("read the audit log", err)
		})
		if err != nil {
			return nil, err
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
