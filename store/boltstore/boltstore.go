// Package boltstore is the embedded store.Store of a single chancery manager:
// one bbolt file, readable only by its owner and locked against a second
// process, holding JSON records.
//
// The file has five buckets: "meta" (key "schema", the format version, and
// "audit_head", the audit log's head), "cluster" (key "cluster"), "nodes"
// (by node ID), "certs" (by serial) and "audit" (audit entries by sequence
// number, 8 bytes big-endian, appended in the transaction of the change they
// record).
//
// The cluster record is one JSON value, its root history and rotation
// included; a record written before those fields existed reads as a cluster
// with one root, current since CreatedAt. CreateCluster and UpdateCluster
// refuse what store.ValidateCluster refuses.
package boltstore

import (
	"cmp"
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"os"
	"slices"
	"strconv"
	"time"

	"go.etcd.io/bbolt"
	bolterrors "go.etcd.io/bbolt/errors"

	"github.com/chancery-pki/chancery/audit"
	"github.com/chancery-pki/chancery/store"
)

// ErrLocked is matched (with errors.Is) by the error Open returns when another
// process holds the database open.
var ErrLocked = errors.New("boltstore: database is locked")

// batchDelay is how long RecordIssuance waits for others to share its
// transaction. bbolt's default, 10ms, is many times a commit's fsync: it
// held a lone issuance to ~80/s and 16 concurrent writers to a sixth of what
// 1ms allows (BenchmarkRecordIssuance). A full batch (1000) starts at once.
const batchDelay = time.Millisecond

// schemaVersion is the newest format this package reads and the one it writes.
const schemaVersion = 1

var (
	bucketMeta    = []byte("meta")
	bucketCluster = []byte("cluster")
	bucketNodes   = []byte("nodes")
	bucketCerts   = []byte("certs")
	bucketAudit   = []byte("audit")
	keySchema     = []byte("schema")
	keyAuditHead  = []byte("audit_head")
	keyCluster    = []byte("cluster")
)

var _ store.Store = (*Store)(nil)

// Options tune Open. The zero value is ready to use.
type Options struct {
	// Timeout is how long Open waits for another process to release the
	// database before failing with ErrLocked. Default 1s.
	Timeout time.Duration
	// Now is the clock for the timestamps the store sets. Default time.Now.
	Now func() time.Time
}

// Store is a store.Store in a bbolt file. It is safe for concurrent use.
type Store struct {
	db  *bbolt.DB
	now func() time.Time
	// clusters keeps the cluster record decoded last.
	clusters store.ClusterCache
}

// Open opens the database at path, creating it with mode 0600 if absent. An
// existing file readable by group or others is first made 0600. It fails
// with ErrLocked if another process has the database open, and refuses a
// database written by a newer chancery.
func Open(path string, opts Options) (*Store, error) {
	if opts.Timeout <= 0 {
		opts.Timeout = time.Second
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if fi, err := os.Stat(path); err == nil && fi.Mode().Perm()&0o077 != 0 {
		if err := os.Chmod(path, 0o600); err != nil {
			return nil, fmt.Errorf("boltstore: %s holds secrets but is readable by others, and making it 0600 failed: %w", path, err)
		}
	}
	db, err := bbolt.Open(path, 0o600, &bbolt.Options{Timeout: opts.Timeout})
	if errors.Is(err, bolterrors.ErrTimeout) {
		return nil, &lockedError{path: path}
	}
	if err != nil {
		return nil, fmt.Errorf("boltstore: open %s: %w", path, err)
	}
	if err := db.Update(initSchema); err != nil {
		db.Close()
		return nil, fmt.Errorf("boltstore: %s: %w", path, err)
	}
	db.MaxBatchDelay = batchDelay
	return &Store{db: db, now: opts.Now}, nil
}

// lockedError is the error of an Open that found the file locked.
type lockedError struct{ path string }

func (e *lockedError) Error() string {
	return fmt.Sprintf("boltstore: the database %s is in use by another chancery process; stop it or use another data directory", e.path)
}

func (e *lockedError) Is(target error) bool { return target == ErrLocked }

// initSchema checks the format version of an existing database, or stamps a
// new one, and creates the buckets. Its own errors have no prefix: Open
// says "boltstore: " and the file before them.
func initSchema(tx *bbolt.Tx) error {
	if meta := tx.Bucket(bucketMeta); meta != nil {
		if v := meta.Get(keySchema); v != nil {
			n, err := strconv.Atoi(string(v))
			if err != nil || n < 1 {
				return fmt.Errorf("corrupt record %q: %q is not a schema version", "meta/schema", v)
			}
			if n > schemaVersion {
				return fmt.Errorf("the database has schema version %d, newer than version %d which this chancery supports; run a newer chancery", n, schemaVersion)
			}
		}
	}
	meta, err := tx.CreateBucketIfNotExists(bucketMeta)
	if err != nil {
		return err
	}
	if meta.Get(keySchema) == nil {
		if err := meta.Put(keySchema, []byte(strconv.Itoa(schemaVersion))); err != nil {
			return err
		}
	}
	for _, name := range [][]byte{bucketCluster, bucketNodes, bucketCerts, bucketAudit} {
		if _, err := tx.CreateBucketIfNotExists(name); err != nil {
			return err
		}
	}
	return nil
}

// get decodes the record at bucket/key; ok is false if there is none.
func get[T any](tx *bbolt.Tx, bucket, key []byte) (v T, ok bool, err error) {
	data := tx.Bucket(bucket).Get(key)
	if data == nil {
		return v, false, nil
	}
	if err := decode(data, &v); err != nil {
		return v, false, corrupt(bucket, key, err)
	}
	return v, true, nil
}

// decode decodes a stored record as json.Unmarshal does: node records
// through store.DecodeNode, which is several times faster.
func decode[T any](data []byte, v *T) error {
	if n, ok := any(v).(*store.Node); ok {
		var err error
		*n, err = store.DecodeNode(data)
		return err
	}
	return json.Unmarshal(data, v)
}

// all decodes every record of bucket, in key order.
func all[T any](tx *bbolt.Tx, bucket []byte) ([]T, error) {
	var out []T
	err := tx.Bucket(bucket).ForEach(func(k, data []byte) error {
		var v T
		if err := decode(data, &v); err != nil {
			return corrupt(bucket, k, err)
		}
		out = append(out, v)
		return nil
	})
	return out, err
}

// put stores v as JSON at bucket/key.
func put(tx *bbolt.Tx, bucket, key []byte, v any) error {
	data, err := json.Marshal(v)
	if err != nil {
		return fmt.Errorf("boltstore: encode record %q: %w", string(bucket)+"/"+string(key), err)
	}
	return tx.Bucket(bucket).Put(key, data)
}

// corrupt reports an undecodable record. JSON errors name fields and types,
// not values, so no token leaks through them.
func corrupt(bucket, key []byte, err error) error {
	return fmt.Errorf("boltstore: corrupt record %q: %w", string(bucket)+"/"+string(key), err)
}

// timestamp is the store's clock without a monotonic reading, so values
// returned equal values read back.
func (s *Store) timestamp() time.Time { return s.now().Round(0) }

// CreateCluster implements store.Store.
func (s *Store) CreateCluster(ctx context.Context, c store.Cluster, events ...audit.Event) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if c.CreatedAt.IsZero() {
		c.CreatedAt = s.timestamp()
	}
	if err := store.ValidateCluster(c); err != nil {
		return err
	}
	c.Version = 1
	return s.db.Update(func(tx *bbolt.Tx) error {
		if tx.Bucket(bucketCluster).Get(keyCluster) != nil {
			return store.AlreadyExists("cluster")
		}
		if err := put(tx, bucketCluster, keyCluster, c); err != nil {
			return err
		}
		_, err := s.appendAudit(tx, events)
		return err
	})
}

// Cluster implements store.Store.
func (s *Store) Cluster(ctx context.Context) (store.Cluster, error) {
	if err := ctx.Err(); err != nil {
		return store.Cluster{}, err
	}
	var c store.Cluster
	err := s.db.View(func(tx *bbolt.Tx) error {
		data := tx.Bucket(bucketCluster).Get(keyCluster)
		if data == nil {
			return store.NotFound("cluster")
		}
		var err error
		if c, err = s.clusters.Decode(data); err != nil {
			return corrupt(bucketCluster, keyCluster, err)
		}
		return nil
	})
	if err != nil {
		return store.Cluster{}, err
	}
	return c, nil
}

// UpdateCluster implements store.Store.
func (s *Store) UpdateCluster(ctx context.Context, fn func(*store.Cluster) error, events ...audit.Event) (store.Cluster, error) {
	if err := ctx.Err(); err != nil {
		return store.Cluster{}, err
	}
	var c store.Cluster
	err := s.db.Update(func(tx *bbolt.Tx) error {
		var ok bool
		var err error
		if c, ok, err = get[store.Cluster](tx, bucketCluster, keyCluster); err != nil {
			return err
		} else if !ok {
			return store.NotFound("cluster")
		}
		id, version := c.ID, c.Version
		if err := fn(&c); err != nil {
			return err
		}
		if c.ID != id {
			return fmt.Errorf("store: update cluster: the cluster ID cannot change (from %q to %q)", id, c.ID)
		}
		if err := store.ValidateCluster(c); err != nil {
			return err
		}
		c.Version = version + 1
		if err := put(tx, bucketCluster, keyCluster, c); err != nil {
			return err
		}
		_, err = s.appendAudit(tx, events)
		return err
	})
	if err != nil {
		return store.Cluster{}, err
	}
	return c, nil
}

// Node implements store.Store.
func (s *Store) Node(ctx context.Context, id string) (store.Node, error) {
	if err := ctx.Err(); err != nil {
		return store.Node{}, err
	}
	var n store.Node
	err := s.db.View(func(tx *bbolt.Tx) error {
		var ok bool
		var err error
		n, ok, err = get[store.Node](tx, bucketNodes, []byte(id))
		if err == nil && !ok {
			err = store.NotFound(fmt.Sprintf("node %q", id))
		}
		return err
	})
	if err != nil {
		return store.Node{}, err
	}
	return n, nil
}

// Nodes implements store.Store.
func (s *Store) Nodes(ctx context.Context) ([]store.Node, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	var nodes []store.Node
	err := s.db.View(func(tx *bbolt.Tx) error {
		var err error
		nodes, err = all[store.Node](tx, bucketNodes) // keys are IDs, so sorted
		return err
	})
	return nodes, err
}

// ListNodes implements store.Store. A page is read in one transaction.
func (s *Store) ListNodes(ctx context.Context, opts store.ListOptions) (store.NodePage, error) {
	if err := ctx.Err(); err != nil {
		return store.NodePage{}, err
	}
	after, limit, err := store.ParseNodeListOptions(opts)
	if err != nil {
		return store.NodePage{}, err
	}
	var page store.NodePage
	err = s.db.View(func(tx *bbolt.Tx) error {
		var more bool
		var err error
		page.Nodes, more, err = scanAfter[store.Node](tx, bucketNodes, after, limit, nil)
		if more {
			page.Next = store.NodeCursor(page.Nodes[len(page.Nodes)-1].ID)
		}
		return err
	})
	if err != nil {
		return store.NodePage{}, err
	}
	return page, nil
}

// scanAfter decodes the records of bucket whose keys sort after after, in
// key order, and returns the first limit of them that keep keeps (nil
// keeps all). more reports whether another record after them is kept.
func scanAfter[T any](tx *bbolt.Tx, bucket []byte, after string, limit int, keep func(*T) bool) (out []T, more bool, err error) {
	c := tx.Bucket(bucket).Cursor()
	k, data := c.First()
	if after != "" {
		k, data = c.Seek([]byte(after))
		if k != nil && string(k) == after {
			k, data = c.Next()
		}
	}
	if keep == nil {
		out = make([]T, 0, limit)
	}
	for ; k != nil; k, data = c.Next() {
		var v T
		if err := decode(data, &v); err != nil {
			return nil, false, corrupt(bucket, k, err)
		}
		if keep != nil && !keep(&v) {
			continue
		}
		if len(out) == limit {
			return out, true, nil
		}
		out = append(out, v)
	}
	return out, false, nil
}

// UpdateNode implements store.Store.
func (s *Store) UpdateNode(ctx context.Context, id string, fn func(*store.Node) error, events ...audit.Event) (store.Node, error) {
	if err := ctx.Err(); err != nil {
		return store.Node{}, err
	}
	var n store.Node
	err := s.db.Update(func(tx *bbolt.Tx) error {
		var ok bool
		var err error
		if n, ok, err = get[store.Node](tx, bucketNodes, []byte(id)); err != nil {
			return err
		} else if !ok {
			return store.NotFound(fmt.Sprintf("node %q", id))
		}
		if err := fn(&n); err != nil {
			return err
		}
		if n.ID != id {
			return fmt.Errorf("store: update node %q: the node ID cannot change (to %q)", id, n.ID)
		}
		n.UpdatedAt = s.timestamp()
		if err := put(tx, bucketNodes, []byte(id), n); err != nil {
			return err
		}
		_, err = s.appendAudit(tx, events)
		return err
	})
	if err != nil {
		return store.Node{}, err
	}
	return n, nil
}

// RecordIssuance implements store.Store. Concurrent calls share one
// transaction and one fsync.
func (s *Store) RecordIssuance(ctx context.Context, n store.Node, cert store.IssuedCertificate, events ...audit.Event) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if err := store.ValidateIssuance(n, cert); err != nil {
		return err
	}
	now := s.timestamp()
	if cert.IssuedAt.IsZero() {
		cert.IssuedAt = now
	}
	// Batch may run this more than once, each time in a fresh transaction:
	// it changes only its own copy of n, so every run writes the same.
	return s.db.Batch(func(tx *bbolt.Tx) error {
		if tx.Bucket(bucketCerts).Get([]byte(cert.Serial)) != nil {
			return store.AlreadyExists("certificate " + cert.Serial)
		}
		node := n
		old, ok, err := get[store.Node](tx, bucketNodes, []byte(node.ID))
		if err != nil {
			return err
		}
		if ok {
			if old.State == store.StateRemoved {
				return store.Conflict(fmt.Sprintf("node %q", node.ID), "it was removed")
			}
			if old.Role != "" && node.Role != old.Role {
				return store.Conflict(fmt.Sprintf("node %q", node.ID), fmt.Sprintf("it is now %s, not %s", old.Role, node.Role))
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
		if err := put(tx, bucketCerts, []byte(cert.Serial), cert); err != nil {
			return err
		}
		if err := put(tx, bucketNodes, []byte(node.ID), node); err != nil {
			return err
		}
		_, err = s.appendAudit(tx, events)
		return err
	})
}

// IssuedCertificate implements store.Store.
func (s *Store) IssuedCertificate(ctx context.Context, serial string) (store.IssuedCertificate, error) {
	if err := ctx.Err(); err != nil {
		return store.IssuedCertificate{}, err
	}
	var c store.IssuedCertificate
	err := s.db.View(func(tx *bbolt.Tx) error {
		var ok bool
		var err error
		c, ok, err = get[store.IssuedCertificate](tx, bucketCerts, []byte(serial))
		if err == nil && !ok {
			err = store.NotFound(fmt.Sprintf("certificate %q", serial))
		}
		return err
	})
	if err != nil {
		return store.IssuedCertificate{}, err
	}
	return c, nil
}

// IssuedCertificates implements store.Store. It reads every certificate
// record; an index by node can come with a schema change when that matters.
func (s *Store) IssuedCertificates(ctx context.Context, nodeID string) ([]store.IssuedCertificate, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	var certs []store.IssuedCertificate
	err := s.db.View(func(tx *bbolt.Tx) error {
		var err error
		certs, err = all[store.IssuedCertificate](tx, bucketCerts)
		return err
	})
	if err != nil {
		return nil, err
	}
	if nodeID != "" {
		certs = slices.DeleteFunc(certs, func(c store.IssuedCertificate) bool { return c.NodeID != nodeID })
	}
	slices.SortFunc(certs, func(a, b store.IssuedCertificate) int {
		return cmp.Or(a.IssuedAt.Compare(b.IssuedAt), cmp.Compare(a.Serial, b.Serial))
	})
	return certs, nil
}

// ListIssuedCertificates implements store.Store. A page for one node
// reads the certificate records after the cursor until it is full: there
// is no index by node yet.
func (s *Store) ListIssuedCertificates(ctx context.Context, nodeID string, opts store.ListOptions) (store.CertificatePage, error) {
	if err := ctx.Err(); err != nil {
		return store.CertificatePage{}, err
	}
	after, limit, err := store.ParseCertificateListOptions(opts)
	if err != nil {
		return store.CertificatePage{}, err
	}
	var keep func(*store.IssuedCertificate) bool
	if nodeID != "" {
		keep = func(c *store.IssuedCertificate) bool { return c.NodeID == nodeID }
	}
	var page store.CertificatePage
	err = s.db.View(func(tx *bbolt.Tx) error {
		var more bool
		var err error
		page.Certificates, more, err = scanAfter(tx, bucketCerts, after, limit, keep)
		if more {
			page.Next = store.CertificateCursor(page.Certificates[len(page.Certificates)-1].Serial)
		}
		return err
	})
	if err != nil {
		return store.CertificatePage{}, err
	}
	return page, nil
}

// Close implements store.Store.
func (s *Store) Close() error { return s.db.Close() }

// appendAudit seals events after the log's head and stores them, in tx.
func (s *Store) appendAudit(tx *bbolt.Tx, events []audit.Event) ([]audit.Entry, error) {
	if len(events) == 0 {
		return nil, nil
	}
	head, err := auditHead(tx)
	if err != nil {
		return nil, err
	}
	now := s.timestamp()
	b := tx.Bucket(bucketAudit)
	entries := make([]audit.Entry, 0, len(events))
	for _, ev := range events {
		e := audit.Seal(head, now, ev)
		if err := b.Put(seqKey(e.Seq), e.Marshal()); err != nil {
			return nil, fmt.Errorf("store: audit: %w", err)
		}
		head = e.Head()
		entries = append(entries, e)
	}
	data, _ := json.Marshal(head)
	if err := tx.Bucket(bucketMeta).Put(keyAuditHead, data); err != nil {
		return nil, fmt.Errorf("store: audit: %w", err)
	}
	return entries, nil
}

func seqKey(seq uint64) []byte {
	var k [8]byte
	binary.BigEndian.PutUint64(k[:], seq)
	return k[:]
}

// auditHead reads the head kept in meta. A missing head means an empty log.
func auditHead(tx *bbolt.Tx) (audit.Head, error) {
	data := tx.Bucket(bucketMeta).Get(keyAuditHead)
	if data == nil {
		return audit.Genesis, nil
	}
	var h audit.Head
	if err := json.Unmarshal(data, &h); err != nil {
		return h, corrupt(bucketMeta, keyAuditHead, err)
	}
	return h, nil
}

// AppendAudit implements store.Store.
func (s *Store) AppendAudit(ctx context.Context, events ...audit.Event) ([]audit.Entry, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	// Batched, so that a flood of refusals shares fsyncs; Batch may run
	// the function more than once, each run in a fresh transaction.
	var entries []audit.Entry
	err := s.db.Batch(func(tx *bbolt.Tx) error {
		var err error
		entries, err = s.appendAudit(tx, events)
		return err
	})
	return entries, err
}

// AuditHead implements store.Store.
func (s *Store) AuditHead(ctx context.Context) (audit.Head, error) {
	if err := ctx.Err(); err != nil {
		return audit.Head{}, err
	}
	var h audit.Head
	err := s.db.View(func(tx *bbolt.Tx) error {
		var err error
		h, err = auditHead(tx)
		return err
	})
	return h, err
}

// AuditRecords implements store.Store.
func (s *Store) AuditRecords(ctx context.Context, from uint64, limit int) ([]audit.Record, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	var recs []audit.Record
	err := s.db.View(func(tx *bbolt.Tx) error {
		c := tx.Bucket(bucketAudit).Cursor()
		for k, v := c.Seek(seqKey(from)); k != nil && (limit <= 0 || len(recs) < limit); k, v = c.Next() {
			if len(k) != 8 {
				recs = append(recs, audit.Record{Key: 0, Data: append([]byte(nil), v...)})
				continue
			}
			recs = append(recs, audit.Record{Key: binary.BigEndian.Uint64(k), Data: append([]byte(nil), v...)})
		}
		return nil
	})
	return recs, err
}

var _ store.Pruner = (*Store)(nil)

// PruneIssuedCertificates implements store.Pruner: each step is one write
// transaction over at most req.Scan records.
func (s *Store) PruneIssuedCertificates(ctx context.Context, req store.PruneRequest) (store.PruneResult, error) {
	if err := ctx.Err(); err != nil {
		return store.PruneResult{}, err
	}
	req, err := store.CheckPruneRequest(req)
	if err != nil {
		return store.PruneResult{}, err
	}
	var res store.PruneResult
	err = s.db.Update(func(tx *bbolt.Tx) error {
		res = store.PruneResult{}
		certs, nodes := tx.Bucket(bucketCerts), tx.Bucket(bucketNodes)
		c := certs.Cursor()
		k, data := c.First()
		if req.After != "" {
			k, data = c.Seek([]byte(req.After))
			if k != nil && string(k) == req.After {
				k, data = c.Next()
			}
		}
		var doomed [][]byte
		var last []byte
		for ; k != nil && res.Examined < req.Scan; k, data = c.Next() {
			res.Examined++
			last = k
			var rec struct {
				NodeID   string    `json:"node_id"`
				NotAfter time.Time `json:"not_after"`
			}
			if err := json.Unmarshal(data, &rec); err != nil {
				return corrupt(bucketCerts, k, err)
			}
			if !rec.NotAfter.Before(req.ExpiredBefore) {
				continue
			}
			// A node's current certificate stays, expired or not: its
			// node record names it.
			if nd := nodes.Get([]byte(rec.NodeID)); nd != nil {
				var n struct {
					CertSerial string `json:"cert_serial"`
				}
				if err := json.Unmarshal(nd, &n); err != nil {
					return corrupt(bucketNodes, []byte(rec.NodeID), err)
				}
				if n.CertSerial == string(k) {
					continue
				}
			}
			doomed = append(doomed, slices.Clone(k))
		}
		if k != nil {
			res.Next = string(last)
		}
		for _, key := range doomed {
			if err := certs.Delete(key); err != nil {
				return err
			}
		}
		res.Deleted = len(doomed)
		if res.Deleted == 0 {
			return nil
		}
		ev := req.Event
		ev.Details = maps.Clone(ev.Details)
		if ev.Details == nil {
			ev.Details = map[string]string{}
		}
		ev.Details[store.DetailPruned] = strconv.Itoa(res.Deleted)
		ev.Details[store.DetailExpiredBefore] = req.ExpiredBefore.UTC().Format(time.RFC3339)
		_, err := s.appendAudit(tx, []audit.Event{ev})
		return err
	})
	if err != nil {
		return store.PruneResult{}, err
	}
	return res, nil
}
