package etcdstore

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/chancery-pki/chancery/store"
)

// DefaultClaimTTL is the TTL of an import's claim when Options.ClaimTTL is
// zero: a claim whose process stopped lapses within it.
const DefaultClaimTTL = 10 * time.Second

// An import's claim is two keys, written in one transaction only while
// nothing at all is stored under the prefix:
//
//   - PREFIX/import/lock holds the import's random ID, under a lease the
//     importing process keeps alive: every import transaction requires
//     it, so that a second import is refused, and an import whose lease
//     lapsed (its process stopped or was cut off) writes nothing more;
//   - PREFIX/import/claim, without a lease, says which cluster is being
//     imported, from where and since when: with the lock gone and no
//     cluster record, it marks an abandoned import, which an import of
//     the same cluster deletes and replaces.
//
// The transaction that writes the cluster record deletes both.
func (s *Store) lockKey() string  { return s.prefix + "import/lock" }
func (s *Store) claimKey() string { return s.prefix + "import/claim" }

// claimInfo is the value of the claim key.
type claimInfo struct {
	Source  string    `json:"source_cluster"`
	Host    string    `json:"host"`
	PID     int       `json:"pid"`
	Started time.Time `json:"started"`
	// TTL is the claim's lease TTL in seconds.
	TTL int64 `json:"ttl"`
}

func (ci claimInfo) String() string {
	return fmt.Sprintf("an import of cluster %s by process %d on %s, started %s; if that process has stopped, its claim lapses within %d s of its last renewal",
		ci.Source, ci.PID, ci.Host, ci.Started.Format(time.RFC3339), ci.TTL)
}

// importClaim is the claim this Store holds.
type importClaim struct {
	id    string
	lease clientv3.LeaseID
	stop  context.CancelFunc
}

// Claim implements store.Importer.
func (s *Store) Claim(ctx context.Context, source string) (err error) {
	ctx, done, err := s.call(ctx)
	if err != nil {
		return err
	}
	defer done(&err)
	s.claimMu.Lock()
	defer s.claimMu.Unlock()
	if s.claim != nil {
		return errors.New("etcdstore: this store holds an import claim already")
	}
	ttl := s.claimTTL
	if ttl <= 0 {
		ttl = DefaultClaimTTL
	}
	secs := int64((ttl + time.Second - 1) / time.Second)
	lease, err := s.c.Grant(ctx, secs)
	if err != nil {
		return wrap("claim the store for an import", err)
	}
	ok := false
	defer func() {
		if !ok {
			s.revoke(lease.ID)
		}
	}()
	b := make([]byte, 16)
	rand.Read(b)
	id := hex.EncodeToString(b)
	host, _ := os.Hostname()
	info, _ := json.Marshal(claimInfo{Source: source, Host: host, PID: os.Getpid(), Started: s.timestamp(), TTL: secs})
	puts := []clientv3.Op{clientv3.OpPut(s.lockKey(), id, clientv3.WithLease(lease.ID)), clientv3.OpPut(s.claimKey(), string(info))}
	// At most twice: the second time after deleting an abandoned import.
	for attempt := 0; ; attempt++ {
		resp, err := s.c.Txn(ctx).If(clientv3.Compare(clientv3.CreateRevision(s.prefix), "=", 0).WithPrefix()).
			Then(puts...).Else(clientv3.OpGet(s.lockKey()), clientv3.OpGet(s.claimKey())).Commit()
		if err != nil {
			return wrap("claim the store for an import", err)
		}
		if resp.Succeeded {
			break
		}
		lock, claim := resp.Responses[0].GetResponseRange().Kvs, resp.Responses[1].GetResponseRange().Kvs
		var other claimInfo
		if len(claim) == 1 {
			json.Unmarshal(claim[0].Value, &other)
		}
		switch {
		case len(lock) == 1:
			return fmt.Errorf("etcdstore: %w: %s", store.ErrImportClaimed, other)
		case len(claim) == 0 || other.Source != source || attempt > 0:
			return fmt.Errorf("etcdstore: %w: keys are stored under %q", store.ErrNotEmpty, s.prefix)
		}
		// An abandoned import of this cluster: delete it, while it is
		// still abandoned and not a cluster yet.
		del, err := s.c.Txn(ctx).If(
			clientv3.Compare(clientv3.CreateRevision(s.lockKey()), "=", 0),
			clientv3.Compare(clientv3.CreateRevision(s.kCluster), "=", 0),
			clientv3.Compare(clientv3.ModRevision(s.claimKey()), "=", claim[0].ModRevision),
		).Then(clientv3.OpDelete(s.prefix, clientv3.WithPrefix())).Commit()
		if err != nil {
			return wrap("delete an abandoned import", err)
		}
		if !del.Succeeded {
			return fmt.Errorf("etcdstore: %w: the abandoned import (%s) was taken over meanwhile", store.ErrImportClaimed, other)
		}
	}
	kctx, stop := context.WithCancel(context.Background())
	ch, err := s.c.KeepAlive(kctx, lease.ID)
	if err != nil {
		stop()
		return wrap("keep the import's claim", err)
	}
	go func() {
		for range ch {
		}
	}()
	s.claim = &importClaim{id: id, lease: lease.ID, stop: stop}
	ok = true
	return nil
}

// claimed is the comparison an import transaction requires: this Store's
// claim holds. claimMu must be held.
func (s *Store) claimed() (clientv3.Cmp, error) {
	if s.claim == nil {
		return clientv3.Cmp{}, errors.New("etcdstore: import: the store was not claimed for an import (Claim)")
	}
	return clientv3.Compare(clientv3.Value(s.lockKey()), "=", s.claim.id), nil
}

// release stops keeping the claim and revokes its lease. claimMu must be
// held.
func (s *Store) release() {
	if s.claim == nil {
		return
	}
	s.claim.stop()
	s.revoke(s.claim.lease)
	s.claim = nil
}

func (s *Store) revoke(id clientv3.LeaseID) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	s.c.Revoke(ctx, id)
}
