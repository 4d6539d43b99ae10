package cfssl

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"time"

	"github.com/chancery-pki/chancery/internal/cfsslwire"
)

// This file is the HTTP side: one TLS client per external CA, one POST with
// a timeout and a size cap, and the loop that tries the CAs in order and
// retries with backoff.

// maxBackoff caps the wait between two rounds of retries.
const maxBackoff = 5 * time.Second

// remote is one external CA.
type remote struct {
	ext ExternalCA
	// bundle holds the certificates of ext.CACertFile, if any.
	bundle []*x509.Certificate
	http   *http.Client
}

func newRemote(ext ExternalCA, bundle []*x509.Certificate) *remote {
	tlsConfig := &tls.Config{MinVersion: tls.VersionTLS12}
	if len(bundle) > 0 {
		tlsConfig.RootCAs = x509.NewCertPool()
		for _, c := range bundle {
			tlsConfig.RootCAs.AddCert(c)
		}
	}
	return &remote{
		ext:    ext,
		bundle: bundle,
		http: &http.Client{
			// No proxy: the CA is reached directly, as swarm reaches it.
			Transport: &http.Transport{
				TLSClientConfig:     tlsConfig,
				ForceAttemptHTTP2:   true,
				MaxIdleConnsPerHost: 16,
				IdleConnTimeout:     90 * time.Second,
				TLSHandshakeTimeout: 10 * time.Second,
			},
			// Redirects are not followed: the URL given is the one
			// trusted. A redirect is an answer other than 200.
			CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
		},
	}
}

func (r *remote) close() {
	r.http.CloseIdleConnections()
}

// client holds the CAs and the request policy.
type client struct {
	remotes     []*remote
	timeout     time.Duration
	maxAttempts int
	backoff     time.Duration
	maxBytes    int64
}

// post sends body to the CA's endpoint once and returns the result of a
// successful answer. Its errors are *TransportError, *RemoteError or
// *AnswerError.
func (c *client) post(ctx context.Context, r *remote, endpoint string, body []byte) (json.RawMessage, error) {
	u := r.ext.endpoint(endpoint)
	ctx, cancel := context.WithTimeout(ctx, c.timeout)
	defer cancel()
	hreq, err := http.NewRequestWithContext(ctx, http.MethodPost, u, bytes.NewReader(body))
	if err != nil {
		return nil, &TransportError{URL: u, Err: err}
	}
	hreq.Header.Set("Content-Type", "application/json")
	resp, err := r.http.Do(hreq)
	if err != nil {
		return nil, c.transportError(ctx, u, err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, c.maxBytes+1))
	if err != nil {
		return nil, c.transportError(ctx, u, err)
	}
	if int64(len(data)) > c.maxBytes {
		return nil, &AnswerError{URL: u, Reason: fmt.Sprintf("is larger than %d bytes (HTTP %d)", c.maxBytes, resp.StatusCode)}
	}
	var env cfsslwire.Response
	jerr := json.Unmarshal(data, &env)
	if resp.StatusCode != http.StatusOK {
		re := &RemoteError{URL: u, StatusCode: resp.StatusCode}
		if jerr == nil {
			re.Errors = env.Errors
		}
		return nil, re
	}
	if jerr != nil {
		return nil, &AnswerError{URL: u, Reason: "is not a CFSSL answer (not JSON of the form {success, result, errors})"}
	}
	if !env.Success {
		return nil, &RemoteError{URL: u, StatusCode: resp.StatusCode, Errors: env.Errors}
	}
	return env.Result, nil
}

// transportError describes a failed exchange with u, telling a timeout of
// this request from other failures.
func (c *client) transportError(ctx context.Context, u string, err error) error {
	var ue *url.Error
	if errors.As(err, &ue) {
		err = ue.Err
	}
	te := &TransportError{URL: u, Err: err}
	if errors.Is(ctx.Err(), context.DeadlineExceeded) {
		te.Timeout = c.timeout
	}
	return te
}

// each calls try with each CA in order until one succeeds. A CA whose error
// is retryable is asked again in the next round, after a wait that doubles
// from c.backoff, for at most c.maxAttempts rounds; one whose error is not
// is left out. A fatal error (a certificate that differs from the request)
// ends it at once. It returns nil on success, else the last error of each
// CA.
func (c *client) each(ctx context.Context, try func(ctx context.Context, r *remote) error) error {
	errs := make([]error, len(c.remotes))
	attempts := make([]int, len(c.remotes))
	pending := make([]int, len(c.remotes))
	for i := range pending {
		pending[i] = i
	}
	wait := c.backoff
	for round := 1; ; round++ {
		var again []int
		for _, i := range pending {
			if err := ctx.Err(); err != nil {
				return fmt.Errorf("cfssl: %w", err)
			}
			attempts[i]++
			err := try(ctx, c.remotes[i])
			if err == nil {
				return nil
			}
			if ctxErr := ctx.Err(); ctxErr != nil {
				return fmt.Errorf("cfssl: %w (last error: %s)", ctxErr, describe(err))
			}
			if fatal(err) {
				return err
			}
			errs[i] = err
			if retryable(err) {
				again = append(again, i)
			}
		}
		if len(again) == 0 || round >= c.maxAttempts {
			break
		}
		if err := sleep(ctx, wait); err != nil {
			return fmt.Errorf("cfssl: %w", err)
		}
		wait = min(2*wait, maxBackoff)
		pending = again
	}
	for i, err := range errs {
		if attempts[i] > 1 {
			errs[i] = &retriedError{err: err, attempts: attempts[i]}
		}
	}
	if len(errs) == 1 {
		return errs[0]
	}
	return allFailed(errs)
}

// retriedError is the last error of a CA that was asked several times.
type retriedError struct {
	err      error
	attempts int
}

func (e *retriedError) Error() string {
	return fmt.Sprintf("%v (after %d attempts)", e.err, e.attempts)
}

func (e *retriedError) describe() string {
	return fmt.Sprintf("%s (after %d attempts)", describe(e.err), e.attempts)
}

func (e *retriedError) Unwrap() error { return e.err }

func sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}
