package vault

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"math/rand/v2"
	"net/http"
	"strings"
	"time"

	"github.com/hashicorp/go-cleanhttp"
	"github.com/hashicorp/vault/api"

	"github.com/chancery-pki/chancery/hint"
	"github.com/chancery-pki/chancery/secretfile"
)

// conn is an authenticated connection to Vault: the API client, the
// authentication that keeps its token valid, and the retry policy.
type conn struct {
	cfg    Config
	client *api.Client
	auth   *authenticator
}

// maxIdleConns bounds the idle keep-alive connections kept to Vault, enough
// for the concurrency of a busy manager. The API client's default (GOMAXPROCS
// + 1) makes concurrent signers open a new connection for most requests.
const maxIdleConns = 64

// dial builds the API client from cfg (which check has filled) and
// authenticates. Nothing but the token and the AppRole credentials is read
// from the environment: VAULT_ADDR, VAULT_NAMESPACE and the like are ignored
// in favour of the settings.
func dial(ctx context.Context, cfg Config) (*conn, error) {
	transport := cleanhttp.DefaultPooledTransport()
	transport.MaxIdleConns = maxIdleConns
	transport.MaxIdleConnsPerHost = maxIdleConns
	transport.TLSHandshakeTimeout = 10 * time.Second
	transport.TLSClientConfig = &tls.Config{MinVersion: tls.VersionTLS12}
	ac := &api.Config{
		Address:    cfg.Address,
		HttpClient: &http.Client{Transport: transport},
		Timeout:    60 * time.Second,
		// Retries are ours (see conn.call), so that "sealed" is reported at
		// once and only transient failures are tried again.
		MaxRetries: 0,
	}
	ac.HttpClient.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	if cfg.CACert != "" || cfg.ClientCert != "" || cfg.TLSServerName != "" {
		if cfg.ClientKey != "" {
			// As every secret file: the user's own, 0600 or 0400. The
			// Vault client reads it next.
			f, err := secretfile.Open(cfg.ClientKey)
			if err != nil {
				return nil, &Error{Kind: ErrConfig, Detail: fmt.Sprintf("the TLS client key file: %v", err), Err: err}
			}
			f.Close()
		}
		if err := ac.ConfigureTLS(&api.TLSConfig{
			CACert: cfg.CACert, ClientCert: cfg.ClientCert, ClientKey: cfg.ClientKey, TLSServerName: cfg.TLSServerName,
		}); err != nil {
			return nil, configError("TLS settings: %v", err)
		}
	}
	client, err := api.NewClient(ac)
	if err != nil {
		return nil, configError("%v", err)
	}
	client.ClearToken() // NewClient reads VAULT_TOKEN; the authenticator decides
	if cfg.Namespace != "" {
		client.SetNamespace(cfg.Namespace)
	} else {
		client.ClearNamespace()
	}
	c := &conn{cfg: cfg, client: client}
	c.auth = newAuthenticator(c)
	if err := c.auth.login(ctx); err != nil {
		return nil, err
	}
	c.auth.start()
	return c, nil
}

// close stops token renewal.
func (c *conn) close() { c.auth.close() }

// request is one Vault API call.
type request struct {
	// op says what chancery is doing, for errors.
	op string
	// method is GET, POST, LIST or DELETE.
	method string
	// path is the API path without /v1/.
	path string
	// data is the JSON body of a POST.
	data map[string]any
	// once marks a call that must not be sent twice (it creates something),
	// so that it is retried only when it surely never reached Vault.
	once bool
	// mountPath marks a path under the PKI mount, for telling a missing
	// mount from a denied path.
	mountPath bool
}

// call runs r, retrying transient failures with backoff, logging in again
// once when an AppRole token turns out to be invalid, and turning errors
// into *Error.
func (c *conn) call(ctx context.Context, r request) (*api.Secret, error) {
	relogged := false
	for attempt := 1; ; attempt++ {
		if err := ctx.Err(); err != nil {
			return nil, fmt.Errorf("vault: %s: %w", r.op, err)
		}
		gen := c.auth.generation()
		s, err := c.do(ctx, r)
		if err == nil {
			return s, nil
		}
		if ctxErr := ctx.Err(); ctxErr != nil {
			return nil, fmt.Errorf("vault: %s: %w", r.op, ctxErr)
		}
		e := classify(err, r.op, r.path, c.auth.redactor())
		switch {
		case e.Kind == ErrTokenInvalid && !relogged && c.auth.canRelogin():
			relogged = true
			c.cfg.Logger.Info("vault: token refused, authenticating again", "op", r.op)
			if lerr := c.auth.relogin(ctx, gen); lerr != nil {
				return nil, lerr
			}
			attempt--
			continue
		case r.mountPath && (e.Kind == ErrPermissionDenied || e.Kind == ErrMountNotFound ||
			e.Status == http.StatusNotFound && c.cfg.Engine == EngineTransit):
			if d := c.mountMissing(ctx); d != "" {
				e.Kind, e.Advice, e.Detail = ErrMountNotFound, hints[ErrMountNotFound], d
			}
			return nil, e
		case !e.transient() || attempt >= c.cfg.Retry.Attempts:
			return nil, e
		case r.once && !neverSent(err):
			list := "/issuers"
			if c.cfg.Engine == EngineTransit {
				list = "/keys"
			}
			e.Advice = hintMayHaveActed + ": check the mount (`vault list " + c.cfg.Mount + list + "`) before trying again"
			return nil, e
		}
		wait := backoff(c.cfg.Retry, attempt)
		c.cfg.Logger.Warn("vault: transient failure, retrying", "op", r.op, "attempt", attempt, "wait", wait, "error", e.Error(), hint.Attr(e))
		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("vault: %s: %w", r.op, ctx.Err())
		case <-c.cfg.Clock.After(wait):
		}
	}
}

// do sends r once.
func (c *conn) do(ctx context.Context, r request) (*api.Secret, error) {
	l := c.client.Logical()
	switch r.method {
	case http.MethodPost:
		return l.WriteWithContext(ctx, r.path, r.data)
	case http.MethodDelete:
		return l.DeleteWithContext(ctx, r.path)
	case "LIST":
		return l.ListWithContext(ctx, r.path)
	case http.MethodGet:
		// ReadRaw, because Read hides the errors of a 404.
		resp, err := l.ReadRawWithContext(ctx, r.path)
		if resp != nil {
			defer resp.Body.Close()
		}
		if err != nil {
			return nil, err
		}
		return api.ParseSecret(resp.Body)
	}
	return nil, fmt.Errorf("vault: unknown method %q", r.method)
}

// mountMissing reports, with a detail for the error, whether the mount is
// absent or of another engine than the configured one; "" means it is
// there. PKI answers LIST MOUNT/issuers without authentication, so a
// refusal there means no PKI engine is mounted at that path. Transit needs
// a token for everything, so the probe asks sys/internal/ui/mounts/MOUNT,
// which describes a mount to any token that has a policy on it, and
// answers 403 alike for a missing mount and one the token has no path in.
func (c *conn) mountMissing(ctx context.Context) string {
	if c.cfg.Engine == EngineTransit {
		sec, err := c.client.Logical().ReadWithContext(ctx, "sys/internal/ui/mounts/"+c.cfg.Mount)
		var re *api.ResponseError
		switch {
		case err != nil && errors.As(err, &re) && (re.StatusCode == 403 || re.StatusCode == 404):
			return fmt.Sprintf("no transit secrets engine is mounted at %q (or none this token has a policy on)", c.cfg.Mount)
		case err != nil || sec == nil || sec.Data == nil:
			return ""
		}
		// The answer is about the longest mount that prefixes the path:
		// a parent of the configured one is not it.
		if p, _ := sec.Data["path"].(string); strings.Trim(p, "/") != c.cfg.Mount {
			return fmt.Sprintf("no transit secrets engine is mounted at %q (the path is inside mount %q)", c.cfg.Mount, strings.Trim(p, "/"))
		}
		if t, _ := sec.Data["type"].(string); t != "" && t != EngineTransit {
			return fmt.Sprintf("the mount at %q is a %s secrets engine, not transit", c.cfg.Mount, t)
		}
		return ""
	}
	req := c.client.NewRequest("LIST", "/v1/"+c.cfg.Mount+"/issuers")
	req.ClientToken = "" // the probe is meaningful only without a token
	// The raw request, as the Logical API cannot send a request without the
	// client's token.
	resp, err := c.client.RawRequestWithContext(ctx, req)
	if resp != nil {
		resp.Body.Close()
	}
	var re *api.ResponseError
	if err == nil || !errors.As(err, &re) {
		return ""
	}
	text := strings.Join(re.Errors, " ")
	if re.StatusCode == 403 || strings.Contains(text, "no handler for route") {
		return fmt.Sprintf("no PKI secrets engine is mounted at %q (or none this token may see)", c.cfg.Mount)
	}
	return ""
}

// neverSent reports whether err shows that the request never reached Vault
// (the connection was refused), so that even a call that creates something
// may be sent again.
func neverSent(err error) bool {
	return strings.Contains(err.Error(), "connection refused")
}

// hintMayHaveActed starts the hint of a call that creates something and
// failed after it was sent.
const hintMayHaveActed = "Vault may have done it anyway"

// backoff is the wait before try attempt+1: exponential from r.Min, capped
// at r.Max, with jitter between half and all of it.
func backoff(r Retry, attempt int) time.Duration {
	d := r.Min
	for i := 1; i < attempt && d < r.Max; i++ {
		d *= 2
	}
	if d > r.Max {
		d = r.Max
	}
	return d/2 + time.Duration(rand.Int64N(int64(d/2)+1))
}
