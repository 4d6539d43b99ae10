package extca

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"net/http"
	"sort"
	"sync"
	"time"

	"github.com/chancery-pki/chancery/audit"
)

// This file is the replay defence of /authsign. CFSSL's token is an HMAC of
// the request alone: the timestamp beside it is not covered, and CFSSL
// itself ignores it. So a captured authsign request verifies forever, with
// any timestamp. The endpoint therefore remembers the tokens of the
// requests it has issued a certificate for, and refuses them again.
//
// A token is spent only by success. A request that was refused, or that
// failed in the CA, leaves its token unspent, so that a client that retries
// the same request after a failure (CFSSL's client and chancery's do, with
// the same token) gets its certificate. While a request is in progress its
// token is reserved, and the same token is answered 503 (retry later): if
// the first attempt fails, the retry is served; if it succeeds, the retry
// is refused as a replay. A client whose answer was lost after the
// certificate was issued is refused on retry too, and must send a new
// request (a new CSR): the endpoint cannot tell it from an attacker.

// replayCache remembers spent tokens for ttl, up to max tokens (spent and
// in progress). When it is full of tokens younger than ttl it refuses new
// requests (503) rather than forget a token early.
type replayCache struct {
	mu       sync.Mutex
	ttl      time.Duration
	max      int
	spent    map[[32]byte]time.Time
	queue    []spentToken // in spending order, for expiry
	inFlight map[[32]byte]bool
}

type spentToken struct {
	token [32]byte
	at    time.Time
}

func newReplayCache(ttl time.Duration, max int) *replayCache {
	return &replayCache{ttl: ttl, max: max, spent: map[[32]byte]time.Time{}, inFlight: map[[32]byte]bool{}}
}

// reserve marks token in progress, or refuses it: spent (a replay), in
// progress, or no room.
func (c *replayCache) reserve(token [32]byte, now time.Time) *Refusal {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.expire(now)
	if at, ok := c.spent[token]; ok {
		return badRequest(reasonReplayed,
			"replayed authsign request: this token was already used for a certificate at %s; CFSSL's token covers only the request, so send a new request (a new CSR)",
			at.UTC().Format(time.RFC3339))
	}
	if c.inFlight[token] {
		return &Refusal{Status: http.StatusServiceUnavailable, Code: http.StatusServiceUnavailable, Reason: reasonInFlight,
			Message: "the same authsign request is being served; retry in a moment"}
	}
	if len(c.spent)+len(c.inFlight) >= c.max {
		return &Refusal{Status: http.StatusServiceUnavailable, Code: http.StatusServiceUnavailable, Reason: reasonReplayFull,
			Message: fmt.Sprintf("the replay cache holds %d authsign tokens from the last %s and takes no more; retry later", c.max, c.ttl)}
	}
	c.inFlight[token] = true
	return nil
}

// spend records that token got a certificate at now.
func (c *replayCache) spend(token [32]byte, now time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	delete(c.inFlight, token)
	c.spent[token] = now
	c.queue = append(c.queue, spentToken{token: token, at: now})
}

// release forgets a reservation whose request got no certificate.
func (c *replayCache) release(token [32]byte) {
	c.mu.Lock()
	defer c.mu.Unlock()
	delete(c.inFlight, token)
}

// expire forgets tokens spent ttl or more before now. Tokens are queued in
// spending order; a clock that moved back only delays their expiry.
func (c *replayCache) expire(now time.Time) {
	n := 0
	for n < len(c.queue) && !now.Before(c.queue[n].at.Add(c.ttl)) {
		delete(c.spent, c.queue[n].token)
		n++
	}
	if n > 0 {
		c.queue = append(c.queue[:0:0], c.queue[n:]...)
	}
}

// len returns how many tokens are spent and in progress.
func (c *replayCache) len() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.spent) + len(c.inFlight)
}

// DetailAuthSignToken is the audit detail of a certificate issued through
// /authsign that holds the SHA-256, in hex, of the request's token: the
// token is spent. At start the endpoint reads the entries of the last
// Config.ReplayTTL back into its replay cache (recoverReplays), so that a
// restart does not make a captured request good again. The token itself
// is never recorded.
const DetailAuthSignToken = "authsign_token_sha256"

// AuditReader reads the audit log back. When Config.Audit implements it
// (store.Store does), New recovers the replay cache from it.
type AuditReader interface {
	AuditHead(ctx context.Context) (audit.Head, error)
	AuditRecords(ctx context.Context, from uint64, limit int) ([]audit.Record, error)
}

// recoverPage is how many audit records recoverReplays reads at a time.
const recoverPage = 1000

// recoverReplays puts back into the cache the tokens that the audit log
// says were spent within ttl before now. Entries are appended in time
// order, so the first one young enough is found by bisection, and only the
// log's tail is read; an hour of slack covers a clock that stepped back.
// It returns how many tokens it recovered.
func (c *replayCache) recoverReplays(ctx context.Context, log AuditReader, now time.Time) (int, error) {
	head, err := log.AuditHead(ctx)
	if err != nil || head.Seq == 0 {
		return 0, err
	}
	cutoff := now.Add(-c.ttl - time.Hour)
	entryAt := func(seq uint64) (audit.Entry, error) {
		recs, err := log.AuditRecords(ctx, seq, 1)
		if err != nil {
			return audit.Entry{}, err
		}
		if len(recs) == 0 {
			return audit.Entry{}, fmt.Errorf("extca: audit entry %d is missing", seq)
		}
		return audit.Unmarshal(recs[0].Data)
	}
	lo, hi := uint64(1), head.Seq+1
	for lo < hi {
		mid := lo + (hi-lo)/2
		e, err := entryAt(mid)
		if err != nil {
			return 0, err
		}
		if e.Time.Before(cutoff) {
			lo = mid + 1
		} else {
			hi = mid
		}
	}
	var spent []spentToken
	for from := lo; from <= head.Seq; {
		recs, err := log.AuditRecords(ctx, from, recoverPage)
		if err != nil {
			return 0, err
		}
		if len(recs) == 0 {
			break
		}
		for _, r := range recs {
			e, err := audit.Unmarshal(r.Data)
			if err != nil {
				return 0, err
			}
			h := e.Details[DetailAuthSignToken]
			if e.Action != audit.ActionIssued || h == "" || !now.Before(e.Time.Add(c.ttl)) {
				continue
			}
			var tok [sha256.Size]byte
			if b, err := hex.DecodeString(h); err == nil && len(b) == len(tok) {
				copy(tok[:], b)
				spent = append(spent, spentToken{token: tok, at: e.Time})
			}
		}
		from = recs[len(recs)-1].Key + 1
	}
	// The newest fill the cache when there are more than it holds.
	sort.SliceStable(spent, func(i, j int) bool { return spent[i].at.Before(spent[j].at) })
	if len(spent) > c.max {
		spent = spent[len(spent)-c.max:]
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, st := range spent {
		if _, ok := c.spent[st.token]; !ok {
			c.spent[st.token] = st.at
			c.queue = append(c.queue, st)
		}
	}
	sort.SliceStable(c.queue, func(i, j int) bool { return c.queue[i].at.Before(c.queue[j].at) })
	return len(spent), nil
}
