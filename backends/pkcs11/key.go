//go:build cgo

package pkcs11

import (
	"bytes"
	"crypto"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/ThalesIgnite/crypto11"

	"github.com/chancery-pki/chancery/signer"
)

// conn is what a Key signs through: a key found in an open token.
type conn interface {
	crypto.Signer
	// Close closes the token the key was found in.
	Close() error
}

// tokenKey is a conn on a real token.
type tokenKey struct {
	tc  *tokenConn
	key crypto11.Signer
}

func (t *tokenKey) Public() crypto.PublicKey { return t.key.Public() }
func (t *tokenKey) Sign(r io.Reader, digest []byte, opts crypto.SignerOpts) ([]byte, error) {
	return t.key.Sign(r, digest, opts)
}
func (t *tokenKey) Close() error { return t.tc.close() }

// Key is a private key in a PKCS#11 token, as a crypto.Signer that is safe
// for concurrent use. Signing goes through crypto11's session pool, bounded
// by Config.MaxSessions. When the sessions are lost (the token was removed
// and re-inserted, the sessions were closed, the user logged out, the
// module was finalized), Sign closes the token, opens it again, logs in,
// finds the key again by its id and label, checks that it is the same key,
// and retries, up to Config.Retries times with a short backoff.
//
// Close releases the token's sessions.
type Key struct {
	uri         *URI // with the key's label and id, without pin-value
	pin         secret
	from        pinFrom
	maxSessions int
	retries     int
	log         *slog.Logger
	pub         crypto.PublicKey
	open        func() (conn, KeyInfo, error)
	sleep       func(time.Duration)
	reopened    atomic.Int64

	mu     sync.RWMutex
	conn   conn // nil after the sessions were lost, until reopened
	info   KeyInfo
	gen    uint64 // counts the conns installed
	closed bool
}

var _ crypto.Signer = (*Key)(nil)

func newKey(p *prepared, c conn, info KeyInfo) *Key {
	u := p.uri.WithoutPINValue()
	// Pin the exact key: a key found by label alone is found again by its
	// id as well, and the other way round.
	if len(u.ID) == 0 {
		u.ID = bytes.Clone(info.ID)
	}
	if u.Object == "" {
		u.Object = info.Label
	}
	k := &Key{
		uri:         u,
		pin:         secret(p.pin),
		from:        p.from,
		maxSessions: p.cfg.MaxSessions,
		retries:     max(p.cfg.Retries, 0),
		log:         p.cfg.Logger,
		pub:         c.Public(),
		sleep:       time.Sleep,
		conn:        c,
		info:        info,
		gen:         1,
	}
	k.open = func() (conn, KeyInfo, error) { return openConn(k.uri, string(k.pin), k.from, k.maxSessions) }
	return k
}

// Public returns the key's public half.
func (k *Key) Public() crypto.PublicKey { return k.pub }

// Info returns what the token said about the key when it was last opened.
func (k *Key) Info() KeyInfo {
	k.mu.RLock()
	defer k.mu.RUnlock()
	return k.info
}

// URI returns the URI that finds this key again: the given URI with the
// key's label and id filled in, without pin-value.
func (k *Key) URI() *URI { return k.uri.WithoutPINValue() }

// String names the key and its token; it never includes the PIN.
func (k *Key) String() string {
	return fmt.Sprintf("pkcs11 key %q (id %x) in token %q", k.uri.Object, k.uri.ID, k.Info().TokenLabel)
}

// Reopened returns how many times the key has reopened its token after
// losing its sessions.
func (k *Key) Reopened() int64 { return k.reopened.Load() }

// Sign signs digest with the key in the token; rand is ignored, as the
// token draws its own randomness. It is safe for concurrent use. When the
// token's sessions were lost, it reopens the token and retries, up to the
// configured number of times, then fails with an error that wraps the last
// cause.
func (k *Key) Sign(r io.Reader, digest []byte, opts crypto.SignerOpts) ([]byte, error) {
	var last error
	for attempt := 0; attempt <= k.retries; attempt++ {
		if attempt > 0 {
			k.sleep(backoff(attempt))
		}
		c, gen, err := k.current()
		if err != nil {
			if errors.Is(err, ErrClosed) || !reopenable(err) {
				return nil, redact(err, string(k.pin))
			}
			last = err
			continue
		}
		sig, err := c.Sign(r, digest, opts)
		if err == nil {
			return sig, nil
		}
		if !sessionLost(err) && !k.replacedSince(gen) {
			return nil, redact(&Error{Msg: fmt.Sprintf("failed to sign with key %q in token %q", k.uri.Object, k.Info().TokenLabel), Err: err}, string(k.pin))
		}
		last = err
		k.invalidate(gen, err)
	}
	return nil, redact(&Error{
		Msg:    fmt.Sprintf("signing with key %q in token %q failed after %d attempts to reopen the token", k.uri.Object, k.Info().TokenLabel, k.retries),
		Err:    last,
		Advice: "check that the token is present and its PIN unchanged; the next signature tries to reopen it again"}, string(k.pin))
}

// backoff is the wait before the attempt-th retry: 20ms, 40ms, 80ms, ...
// capped at 1s.
func backoff(attempt int) time.Duration {
	return min(20*time.Millisecond<<(attempt-1), time.Second)
}

// reopenable reports whether an error from reopening the token may go away
// on its own: a token being re-inserted, a module being re-initialized. A
// wrong PIN, a missing module or a missing key will not.
func reopenable(err error) bool {
	for _, permanent := range []error{ErrModuleNotFound, ErrWrongPIN, ErrNoPIN, ErrKeyNotFound, ErrAmbiguous, ErrKeyRefused, ErrInvalidURI, errKeyChanged} {
		if errors.Is(err, permanent) {
			return false
		}
	}
	return true
}

var errKeyChanged = errors.New("pkcs11: the key found after reopening the token is not the key in use")

// current returns the conn to sign through, reopening the token if the
// last one was invalidated, and its generation.
func (k *Key) current() (conn, uint64, error) {
	k.mu.RLock()
	c, gen, closed := k.conn, k.gen, k.closed
	k.mu.RUnlock()
	if closed {
		return nil, 0, ErrClosed
	}
	if c != nil {
		return c, gen, nil
	}
	k.mu.Lock()
	defer k.mu.Unlock()
	if k.closed {
		return nil, 0, ErrClosed
	}
	if k.conn != nil {
		return k.conn, k.gen, nil
	}
	c, info, err := k.open()
	if err != nil {
		return nil, 0, err
	}
	if !signer.SamePublicKey(c.Public(), k.pub) {
		c.Close()
		return nil, 0, &Error{Kind: errKeyChanged,
			Msg:    fmt.Sprintf("the key with label %q and id %x in token %q is not the key this CA was opened with", k.uri.Object, k.uri.ID, info.TokenLabel),
			Advice: "the key was replaced in the token; restore it or reconfigure the backend"}
	}
	k.conn, k.info = c, info
	k.gen++
	k.reopened.Add(1)
	k.log.Info("pkcs11: reopened the token", "token", info.TokenLabel, "object", k.uri.Object)
	return c, k.gen, nil
}

// replacedSince reports whether the conn of generation gen was closed or
// replaced, so that an error from it may be an effect of that.
func (k *Key) replacedSince(gen uint64) bool {
	k.mu.RLock()
	defer k.mu.RUnlock()
	return k.gen != gen || k.conn == nil
}

// invalidate closes the conn of generation gen after it lost its sessions,
// unless another signer did so already. The next current reopens the token.
func (k *Key) invalidate(gen uint64, cause error) {
	k.mu.Lock()
	defer k.mu.Unlock()
	if k.gen != gen || k.conn == nil {
		return
	}
	k.log.Warn("pkcs11: lost the token's sessions; reopening it",
		"token", k.info.TokenLabel, "object", k.uri.Object, "error", redact(cause, string(k.pin)).Error())
	// Close waits for the signers still using the old sessions; they fail
	// fast, as the sessions are gone.
	k.conn.Close()
	k.conn = nil
}

// Close closes the key's token sessions. Sign fails with ErrClosed after
// it.
func (k *Key) Close() error {
	k.mu.Lock()
	defer k.mu.Unlock()
	if k.closed {
		return nil
	}
	k.closed = true
	if k.conn == nil {
		return nil
	}
	err := k.conn.Close()
	k.conn = nil
	return redact(err, string(k.pin))
}

// destroy deletes the key pair, private and public, from the token. The
// key stays open; close it after.
func (k *Key) destroy() error {
	k.mu.Lock()
	defer k.mu.Unlock()
	if k.closed {
		return ErrClosed
	}
	if k.conn == nil {
		c, _, err := k.open()
		if err != nil {
			return redact(err, string(k.pin))
		}
		k.conn = c
	}
	tk, ok := k.conn.(*tokenKey)
	if !ok {
		return errors.New("pkcs11: this key cannot be destroyed")
	}
	if err := tk.key.Delete(); err != nil {
		return redact(&Error{Msg: fmt.Sprintf("failed to destroy key %q in token %q", k.uri.Object, k.info.TokenLabel), Err: err}, string(k.pin))
	}
	return nil
}
