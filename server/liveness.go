package server

import (
	"context"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/chancery-pki/chancery/store"
)

// liveness remembers when each node last reported. Alone, it is in memory
// only: after a restart every node is down until it reports again. With a
// store several managers share (share), heartbeats go through the store
// and the maps hold what the store says, so that who is down is the same
// answer on every manager.
type liveness struct {
	mu       sync.Mutex
	seen     map[string]time.Time
	trusted  map[string]string // node ID: fingerprint of the root it reports
	serials  map[string]string // node ID: serial of the certificate it reports presenting
	self     string
	deadline time.Duration

	// With a shared store: what this manager last wrote of each node, and
	// what waits for the next flush. A node's heartbeat is written when
	// what it says changes, or when the last one written is writeEvery
	// old: every second heartbeat, so that the record is never older than
	// two periods, within the deadline of three.
	shared     store.SeenSharer
	writeEvery time.Duration
	written    map[string]store.Seen
	pending    map[string]store.Seen
	// records and txns count what was written, for the write-load figure.
	records, flushes atomic.Int64
}

func newLiveness(self string, period time.Duration) *liveness {
	return &liveness{seen: map[string]time.Time{}, trusted: map[string]string{}, serials: map[string]string{}, self: self,
		deadline: 3 * period, writeEvery: 3 * period / 2}
}

// share makes l keep its answers in sh; run then writes and watches.
func (l *liveness) share(sh store.SeenSharer) {
	l.shared, l.written, l.pending = sh, map[string]store.Seen{}, map[string]store.Seen{}
}

// flushEvery is how often heartbeats waiting are written together.
const flushEvery = 200 * time.Millisecond

// run, with a shared store, writes the heartbeats waiting every flushEvery
// and applies what the store says, until ctx ends.
func (l *liveness) run(ctx context.Context, log *slog.Logger) {
	if l.shared == nil {
		return
	}
	go func() {
		for ctx.Err() == nil {
			if err := l.shared.WatchSeen(ctx, l.apply); err != nil && ctx.Err() == nil {
				log.Warn("watching the nodes' heartbeats failed; watching again", "err", err)
			}
			select {
			case <-ctx.Done():
			case <-time.After(time.Second):
			}
		}
	}()
	for {
		select {
		case <-ctx.Done():
			return
		case <-time.After(flushEvery):
		}
		if err := l.flush(ctx); err != nil && ctx.Err() == nil {
			log.Warn("recording the nodes' heartbeats failed; trying again", "err", err)
		}
	}
}

// flush writes the heartbeats waiting; those that fail wait again, unless
// a newer one took their place.
func (l *liveness) flush(ctx context.Context) error {
	l.mu.Lock()
	if len(l.pending) == 0 {
		l.mu.Unlock()
		return nil
	}
	recs := make([]store.Seen, 0, len(l.pending))
	for _, r := range l.pending {
		recs = append(recs, r)
	}
	l.pending = map[string]store.Seen{}
	l.mu.Unlock()
	err := l.shared.PutSeen(ctx, recs)
	if err != nil {
		l.mu.Lock()
		for _, r := range recs {
			if _, newer := l.pending[r.NodeID]; !newer {
				l.pending[r.NodeID] = r
			}
		}
		l.mu.Unlock()
		return err
	}
	l.records.Add(int64(len(recs)))
	l.flushes.Add(1)
	return nil
}

// apply takes a heartbeat record from the store.
func (l *liveness) apply(r store.Seen) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.applyLocked(r)
}

func (l *liveness) applyLocked(r store.Seen) {
	if !r.At.After(l.seen[r.NodeID]) {
		return
	}
	l.seen[r.NodeID] = r.At
	if r.Trusted != "" {
		l.trusted[r.NodeID] = r.Trusted
	}
	if r.Serial != "" {
		l.serials[r.NodeID] = r.Serial
	}
}

// reportTrust records a heartbeat, the root the node says it trusts and
// the serial of the certificate it says it presents (each ignored when
// empty, as from an agent that does not say).
func (l *liveness) reportTrust(id string, now time.Time, fingerprint, serial string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.shared != nil {
		last := l.written[id]
		r := store.Seen{NodeID: id, At: now, Trusted: last.Trusted, Serial: last.Serial}
		if fingerprint != "" {
			r.Trusted = fingerprint
		}
		if serial != "" {
			r.Serial = serial
		}
		if last.At.IsZero() || now.Sub(last.At) >= l.writeEvery || r.Trusted != last.Trusted || r.Serial != last.Serial {
			l.written[id], l.pending[id] = r, r
			// What is written is what every manager will answer from;
			// this one answers from it at once.
			l.applyLocked(r)
		}
		return
	}
	l.seen[id] = now
	if fingerprint != "" {
		l.trusted[id] = fingerprint
	}
	if serial != "" {
		l.serials[id] = serial
	}
}

// presents reports whether id last said it presents the certificate of
// serial.
func (l *liveness) presents(id, serial string) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	return serial != "" && l.serials[id] == serial
}

// trust returns when id last reported and the root it last said it trusts.
func (l *liveness) trust(id string) (time.Time, string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.seen[id], l.trusted[id]
}

func (l *liveness) report(id string, now time.Time) {
	l.reportTrust(id, now, "", "")
}

func (l *liveness) lastSeen(id string) time.Time {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.seen[id]
}

// ready reports whether id has reported within the deadline; the manager
// itself is always ready.
func (l *liveness) ready(id string, now time.Time) bool {
	if id == l.self {
		return true
	}
	t := l.lastSeen(id)
	return !t.IsZero() && now.Sub(t) <= l.deadline
}
