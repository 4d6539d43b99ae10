package vault

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/hashicorp/vault/api"

	"github.com/chancery-pki/chancery/hint"
	"github.com/chancery-pki/chancery/secretfile"
)

// authenticator obtains the Vault token (from a file, the environment, or an
// AppRole login) and keeps it valid for a long-running manager: it renews a
// renewable token at two thirds of its TTL, and when Vault caps the renewal
// at the token's max TTL, logs in again with AppRole before the token
// expires. Time comes from the Config's clock, so tests drive it.
type authenticator struct {
	c *conn

	mu       sync.Mutex
	secrets  redactor      // the token, role ID and secret ID, for redaction
	ttl      time.Duration // the token's TTL when last obtained or renewed; 0: never expires
	initial  time.Duration // the TTL the token was issued with: the renewal increment
	renew    bool          // the token is renewable
	capped   bool          // the last renewal was cut short by the max TTL
	gen      uint64        // incremented by each login
	logins   int           // completed logins, for tests
	renewals int           // completed renewals, for tests

	loginMu sync.Mutex // one login at a time

	stop     chan struct{}
	done     chan struct{}
	stopOnce sync.Once
}

func newAuthenticator(c *conn) *authenticator {
	return &authenticator{c: c, stop: make(chan struct{}), done: make(chan struct{})}
}

// canRelogin reports whether a refused token can be replaced: AppRole logs
// in again, and a token file is read again (an agent may have rotated it).
func (a *authenticator) canRelogin() bool {
	return a.c.cfg.AppRoleRoleIDFile != "" || a.c.cfg.TokenFile != ""
}

// redactor returns the secrets to remove from error text.
func (a *authenticator) redactor() redactor {
	a.mu.Lock()
	defer a.mu.Unlock()
	return append(redactor(nil), a.secrets...)
}

// remember adds secrets for redaction, keeping the last few.
func (a *authenticator) remember(s ...string) {
	a.mu.Lock()
	defer a.mu.Unlock()
	for _, v := range s {
		if v != "" {
			a.secrets = append(a.secrets, v)
		}
	}
	if n := len(a.secrets); n > 16 {
		a.secrets = append(redactor(nil), a.secrets[n-16:]...)
	}
}

// maxSecretFileBytes bounds a token or secret ID file.
const maxSecretFileBytes = 16 << 10

// readSecret reads a secret from a file, trimmed. The file must be a
// regular file owned by the user running chancery, mode 0600 or 0400
// (secretfile.Open); a file others may read gives an ErrConfig error that
// also matches secretfile.ErrUnsafe. Errors name the file, never its
// content.
func readSecret(what, path string) (string, error) {
	f, err := secretfile.Open(path)
	if errors.Is(err, secretfile.ErrUnsafe) {
		advice := fmt.Sprintf("the %s file must be owned by the user running chancery and readable by no one else (mode 0600 or 0400)", what)
		if what == "Vault token" {
			advice += "; a Vault Agent file sink writes 0640 unless its mode is set to 0600"
		}
		return "", &Error{Kind: ErrConfig, Detail: fmt.Sprintf("refusing the %s file: %v", what, err), Err: err, Advice: advice}
	}
	if err != nil {
		return "", &Error{Kind: ErrConfig, Detail: fmt.Sprintf("failed to read the %s file %s: %v", what, path, unwrapPathError(err)), Err: err}
	}
	defer f.Close()
	// Bounded, also for a file whose size says nothing (a FIFO, a device).
	b, err := io.ReadAll(io.LimitReader(f, maxSecretFileBytes+1))
	if err != nil {
		return "", &Error{Kind: ErrConfig, Detail: fmt.Sprintf("failed to read the %s file %s: %v", what, path, unwrapPathError(err))}
	}
	if len(b) > maxSecretFileBytes {
		return "", &Error{Kind: ErrConfig, Detail: fmt.Sprintf("the %s file %s is larger than %d bytes", what, path, maxSecretFileBytes)}
	}
	s := strings.TrimSpace(string(b))
	if s == "" {
		return "", &Error{Kind: ErrConfig, Detail: fmt.Sprintf("the %s file %s is empty", what, path)}
	}
	return s, nil
}

func unwrapPathError(err error) error {
	var pe *os.PathError
	if errors.As(err, &pe) {
		return pe.Err
	}
	return err
}

// generation identifies the current token: it changes with each login.
func (a *authenticator) generation() uint64 {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.gen
}

// login obtains a token and learns its TTL: it logs in with AppRole, or
// reads the token (file or environment) and looks it up.
func (a *authenticator) login(ctx context.Context) error {
	a.loginMu.Lock()
	defer a.loginMu.Unlock()
	return a.loginLocked(ctx)
}

// relogin logs in again unless another caller already has since the
// token of generation seen was refused.
func (a *authenticator) relogin(ctx context.Context, seen uint64) error {
	a.loginMu.Lock()
	defer a.loginMu.Unlock()
	if a.generation() != seen {
		return nil
	}
	return a.loginLocked(ctx)
}

func (a *authenticator) loginLocked(ctx context.Context) error {
	cfg := a.c.cfg
	var (
		token     string
		ttl       time.Duration
		renewable bool
	)
	switch {
	case cfg.AppRoleRoleIDFile != "":
		roleID, err := readSecret("AppRole role ID", cfg.AppRoleRoleIDFile)
		if err != nil {
			return err
		}
		secretID, err := readSecret("AppRole secret ID", cfg.AppRoleSecretIDFile)
		if err != nil {
			return err
		}
		a.remember(roleID, secretID)
		path := "auth/" + cfg.AppRoleMount + "/login"
		s, err := a.send(ctx, request{op: "log in with AppRole", method: http.MethodPost, path: path,
			data: map[string]any{"role_id": roleID, "secret_id": secretID}})
		if err != nil {
			return err
		}
		if s == nil || s.Auth == nil || s.Auth.ClientToken == "" {
			return &Error{Kind: ErrVault, Op: "log in with AppRole", Path: path, Detail: "Vault returned no token"}
		}
		token, ttl, renewable = s.Auth.ClientToken, time.Duration(s.Auth.LeaseDuration)*time.Second, s.Auth.Renewable
		a.remember(token)
		a.c.client.SetToken(token)
	default:
		if cfg.TokenFile != "" {
			t, err := readSecret("Vault token", cfg.TokenFile)
			if err != nil {
				return err
			}
			token = t
		} else {
			token = strings.TrimSpace(os.Getenv(cfg.TokenEnv))
			if token == "" {
				return configError("no Vault token: set %s, or use --vault-token-file or AppRole (--vault-approle-role-id-file)", cfg.TokenEnv)
			}
		}
		a.remember(token)
		a.c.client.SetToken(token)
		s, err := a.send(ctx, request{op: "look up the Vault token", method: http.MethodGet, path: "auth/token/lookup-self"})
		if err != nil {
			return err
		}
		if s != nil {
			if v, ok := s.Data["ttl"].(json.Number); ok {
				if n, err := v.Int64(); err == nil {
					ttl = time.Duration(n) * time.Second
				}
			}
			renewable, _ = s.Data["renewable"].(bool)
		}
	}
	a.mu.Lock()
	a.ttl, a.initial, a.renew, a.capped = ttl, ttl, renewable, false
	a.gen++
	a.logins++
	a.mu.Unlock()
	return nil
}

// send is conn.call without the re-login, for the authentication calls
// themselves.
func (a *authenticator) send(ctx context.Context, r request) (*api.Secret, error) {
	for attempt := 1; ; attempt++ {
		s, err := a.c.do(ctx, r)
		if err == nil {
			return s, nil
		}
		if ctxErr := ctx.Err(); ctxErr != nil {
			return nil, fmt.Errorf("vault: %s: %w", r.op, ctxErr)
		}
		e := classify(err, r.op, r.path, a.redactor())
		if e.Kind == ErrPermissionDenied && strings.HasPrefix(r.path, "auth/") && strings.HasSuffix(r.path, "/login") {
			// Vault refuses a login to an auth mount that does not exist.
			e.Kind, e.Advice = ErrTokenInvalid, "check the AppRole mount (--vault-approle-mount), role ID and secret ID"
		}
		if !e.transient() || attempt >= a.c.cfg.Retry.Attempts {
			return nil, e
		}
		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("vault: %s: %w", r.op, ctx.Err())
		case <-a.c.cfg.Clock.After(backoff(a.c.cfg.Retry, attempt)):
		}
	}
}

// start runs the renewal loop until close.
func (a *authenticator) start() { go a.run() }

// close stops the renewal loop and waits for it.
func (a *authenticator) close() {
	a.stopOnce.Do(func() { close(a.stop) })
	<-a.done
}

// minRetryWait is the shortest wait before renewing again after a failure.
const minRetryWait = 5 * time.Second

func (a *authenticator) run() {
	defer close(a.done)
	for {
		a.mu.Lock()
		ttl := a.ttl
		a.mu.Unlock()
		if ttl <= 0 {
			return // a token that never expires (a root token, say)
		}
		select {
		case <-a.stop:
			return
		case <-a.c.cfg.Clock.After(ttl * 2 / 3):
		}
		a.refresh()
	}
}

// refresh renews the token, or logs in again when it cannot be renewed any
// further. On failure it shortens the TTL it waits on, so that it tries
// again sooner, and logs the error (which never contains a secret).
func (a *authenticator) refresh() {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	go func() {
		select {
		case <-a.stop:
			cancel()
		case <-ctx.Done():
		}
	}()
	log := a.c.cfg.Logger
	a.mu.Lock()
	renewable, capped, increment, ttl := a.renew, a.capped, a.initial, a.ttl
	a.mu.Unlock()
	approle := a.c.cfg.AppRoleRoleIDFile != ""

	if renewable && !(capped && approle) {
		s, err := a.send(ctx, request{op: "renew the Vault token", method: http.MethodPost, path: "auth/token/renew-self",
			data: map[string]any{"increment": int64(increment / time.Second)}})
		if err == nil && s != nil && s.Auth != nil {
			got := time.Duration(s.Auth.LeaseDuration) * time.Second
			a.mu.Lock()
			a.ttl, a.capped = got, got < increment
			a.renewals++
			a.mu.Unlock()
			log.Debug("vault: token renewed", "ttl", got)
			if got < increment && !approle {
				log.Warn("vault: the Vault token has reached its max TTL and will expire; give chancery a new token", "expires_in", got)
			}
			return
		}
		if err != nil {
			log.Warn("vault: failed to renew the Vault token", "error", err.Error(), hint.Attr(err))
		}
	}
	if approle || a.c.cfg.TokenFile != "" {
		// AppRole logs in again; a token file is read again, in case an
		// agent has written a new token there.
		if err := a.login(ctx); err != nil {
			log.Warn("vault: failed to authenticate again", "method", a.c.cfg.authMethod(), "error", err.Error(), hint.Attr(err))
			a.retrySooner(ttl)
			return
		}
		log.Info("vault: authenticated again", "method", a.c.cfg.authMethod())
		return
	}
	log.Warn("vault: the Vault token cannot be renewed and will expire; give chancery a new token", "expires_in", ttl/3)
	a.mu.Lock()
	a.ttl = 0 // nothing more to do: stop the loop
	a.mu.Unlock()
}

// retrySooner makes the loop try again after a third of what was left,
// but not sooner than minRetryWait.
func (a *authenticator) retrySooner(ttl time.Duration) {
	left := ttl / 3
	if left*2/3 < minRetryWait {
		left = minRetryWait * 3 / 2
	}
	a.mu.Lock()
	a.ttl = left
	a.mu.Unlock()
}

// stats returns the number of logins and renewals so far, for tests.
func (a *authenticator) stats() (logins, renewals int) {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.logins, a.renewals
}
