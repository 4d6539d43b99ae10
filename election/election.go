package election

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.etcd.io/etcd/client/v3/concurrency"

	"github.com/chancery-pki/chancery/store"
)

// ErrLeadershipLost is matched by the cause of a leader context that ended
// while its holder ran: the lease was lost, or the leader key went.
var ErrLeadershipLost = errors.New("election: leadership lost")

// Config configures an Election.
type Config struct {
	// Client reaches etcd.
	Client *clientv3.Client
	// Prefix is the election's key prefix, such as the store's prefix
	// followed by "leader/".
	Prefix string
	// ID is this candidate's value under its key (the manager's node ID).
	ID string
	// TTL is the campaign lease's TTL; default DefaultTTL, MinTTL at least.
	// A leader cut off from etcd stops leading within it.
	TTL time.Duration
	// Logger defaults to slog.Default().
	Logger *slog.Logger
}

// Election elects one leader among candidates sharing a prefix.
type Election struct {
	cfg Config
}

// New returns an Election.
func New(cfg Config) (*Election, error) {
	if cfg.Client == nil || cfg.Prefix == "" || cfg.ID == "" {
		return nil, errors.New("election: a client, a key prefix and a candidate ID are required")
	}
	if cfg.TTL == 0 {
		cfg.TTL = DefaultTTL
	}
	if cfg.TTL < MinTTL {
		return nil, fmt.Errorf("election: a lease TTL of %s is too short; the minimum is %s", cfg.TTL, MinTTL)
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	return &Election{cfg: cfg}, nil
}

// Campaign blocks until this candidate leads, or ctx ends. It returns a
// context that ends when leadership ends (at the latest when ctx does; its
// cause matches ErrLeadershipLost when leadership was lost) and that
// carries the fence of the leader key (store.FenceFrom). Leadership ends
// when the campaign's lease is lost (before etcd can expire it, so before
// anyone else can win) or when the leader key is deleted, and when ctx
// ends, which also resigns.
func (e *Election) Campaign(ctx context.Context) (context.Context, error) {
	for {
		lctx, err := e.campaignOnce(ctx)
		if err == nil || ctx.Err() != nil {
			return lctx, err
		}
		e.cfg.Logger.Warn("leader election: campaign failed; trying again", "err", err)
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(time.Second):
		}
	}
}

func (e *Election) campaignOnce(ctx context.Context) (context.Context, error) {
	lease, err := Grant(ctx, e.cfg.Client, e.cfg.TTL, e.cfg.Logger)
	if err != nil {
		return nil, err
	}
	ok := false
	defer func() {
		if !ok {
			lease.Close()
		}
	}()
	sess, err := concurrency.NewSession(e.cfg.Client, concurrency.WithLease(lease.ID()), concurrency.WithContext(lease.Context()))
	if err != nil {
		return nil, fmt.Errorf("election: %w", err)
	}
	el := concurrency.NewElection(sess, e.cfg.Prefix)
	if err := el.Campaign(lease.Context(), e.cfg.ID); err != nil {
		if cause := lease.Err(); cause != nil && ctx.Err() == nil {
			return nil, cause
		}
		return nil, fmt.Errorf("election: campaign: %w", err)
	}
	// Campaign may return after the lease expired (its key then went with
	// it, which is what Campaign waited for): check, at one revision, that
	// the key is still ours and the first of the prefix.
	fence := store.Fence{Key: el.Key(), Revision: el.Rev()}
	resp, err := e.cfg.Client.Txn(lease.Context()).Then(
		clientv3.OpGet(fence.Key),
		clientv3.OpGet(e.cfg.Prefix, clientv3.WithFirstCreate()...),
	).Commit()
	if err != nil {
		return nil, fmt.Errorf("election: checking the leader key: %w", err)
	}
	own, first := resp.Responses[0].GetResponseRange().Kvs, resp.Responses[1].GetResponseRange().Kvs
	if len(own) != 1 || own[0].CreateRevision != fence.Revision || clientv3.LeaseID(own[0].Lease) != lease.ID() ||
		len(first) != 1 || string(first[0].Key) != fence.Key {
		return nil, fmt.Errorf("%w: the leader key went while campaigning", ErrLeadershipLost)
	}
	if err := lease.Err(); err != nil {
		return nil, err
	}

	// Leadership lasts while the lease holds and the key stays.
	lctx, cancel := context.WithCancelCause(lease.Context())
	go func() {
		defer lease.Close()
		defer cancel(nil)
		if cause := e.watchKey(lctx, ctx, fence, resp.Header.Revision+1); cause != nil {
			cancel(cause)
		}
	}()
	ok = true
	e.cfg.Logger.Info("leader election: this manager leads", "key", fence.Key, "revision", fence.Revision, "ttl", lease.TTL())
	return store.WithFence(lctx, fence), nil
}

// watchKey watches the leader key from rev until lctx ends (nil) or ctx
// ends or the key goes (the cause to end lctx with). A watch that ends
// (etcd without a leader closes a WithRequireLeader watch; a watch that
// resumes, after its connection dropped, from a revision etcd has compacted
// meanwhile is cancelled with ErrCompacted) is followed by a read of the
// key at the current revision and a new watch from there: watching the
// compacted revision again would fail again, and the key's deletion would
// go unseen.
func (e *Election) watchKey(lctx, ctx context.Context, fence store.Fence, rev int64) error {
	for {
		wctx, stop := context.WithCancel(lctx)
		wch := e.cfg.Client.Watch(clientv3.WithRequireLeader(wctx), fence.Key, clientv3.WithRev(rev))
		done, cause := e.follow(lctx, ctx, wch, fence)
		stop()
		if done {
			return cause
		}
		// Re-read the key before watching again, a little later, so that a
		// watch that cannot be held does not spin.
		for {
			select {
			case <-lctx.Done():
				return nil
			case <-ctx.Done():
				return ctx.Err()
			case <-time.After(100 * time.Millisecond):
			}
			resp, err := e.cfg.Client.Get(lctx, fence.Key)
			if err != nil {
				continue
			}
			if len(resp.Kvs) != 1 || resp.Kvs[0].CreateRevision != fence.Revision {
				return fmt.Errorf("%w: the leader key %s went (seen when watching it again)", ErrLeadershipLost, fence.Key)
			}
			rev = resp.Header.Revision + 1
			break
		}
	}
}

// follow reads wch until the key is deleted (done, and the cause), lctx
// or ctx ends (done), or the watch ends (not done: watch again).
func (e *Election) follow(lctx, ctx context.Context, wch clientv3.WatchChan, fence store.Fence) (bool, error) {
	for {
		select {
		case <-lctx.Done():
			return true, nil
		case <-ctx.Done():
			return true, ctx.Err()
		case wr, open := <-wch:
			if !open || wr.Canceled {
				if wr.CompactRevision != 0 {
					e.cfg.Logger.Info("leader election: the watch of the leader key was compacted; reading the key and watching again",
						"key", fence.Key, "compact_revision", wr.CompactRevision)
				}
				return false, nil
			}
			for _, ev := range wr.Events {
				if ev.Type == clientv3.EventTypeDelete {
					return true, fmt.Errorf("%w: the leader key %s was deleted", ErrLeadershipLost, fence.Key)
				}
			}
		}
	}
}

// Cause returns why a leader context from Campaign ended (matching
// ErrLeadershipLost when leadership was lost), or nil while it lasts.
func Cause(lctx context.Context) error {
	if lctx.Err() == nil {
		return nil
	}
	cause := context.Cause(lctx)
	if errors.Is(cause, ErrLeaseLost) {
		return fmt.Errorf("%w: %w", ErrLeadershipLost, cause)
	}
	return cause
}

// Leader returns the ID of the candidate that leads now, or "" when none
// does.
func (e *Election) Leader(ctx context.Context) (string, error) {
	return LeaderOf(ctx, e.cfg.Client, e.cfg.Prefix)
}

// StoreKey is where, under the key prefix of a store in etcd, the managers
// that share it campaign: their election's Prefix is the store's prefix
// followed by StoreKey.
const StoreKey = "leader/"

// LeaderOf returns the ID of the candidate that leads the election under
// prefix now, or "" when none does, without campaigning.
func LeaderOf(ctx context.Context, client *clientv3.Client, prefix string) (string, error) {
	resp, err := client.Get(ctx, prefix, clientv3.WithFirstCreate()...)
	if err != nil {
		return "", fmt.Errorf("election: reading the leader: %w", err)
	}
	if len(resp.Kvs) == 0 {
		return "", nil
	}
	return string(resp.Kvs[0].Value), nil
}
