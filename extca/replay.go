package extca

import (
	"fmt"
	"net/http"
	"sync"
	"time"
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
