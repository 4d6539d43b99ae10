package stepca

import (
	"bytes"
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/chancery-pki/chancery/ca"
)

// This file is chancery's client of step-ca's HTTP API: net/http and JSON,
// with the root pinned by its fingerprint as `step ca bootstrap` pins it.

// Defaults of Config.
const (
	// DefaultTimeout bounds each request to step-ca.
	DefaultTimeout = 10 * time.Second
	// DefaultMaxResponseBytes caps an answer's size.
	DefaultMaxResponseBytes = 1 << 20
)

// RemoteError is step-ca's refusal of a request, or an answer that is not
// step-ca's: the URL, the HTTP status and step-ca's own message.
type RemoteError struct {
	URL     string
	Status  int
	Message string
}

func (e *RemoteError) Error() string {
	return fmt.Sprintf("stepca: %s answered %d %s: %s", e.URL, e.Status, http.StatusText(e.Status), e.Message)
}

// TransportError means step-ca could not be reached or did not answer.
type TransportError struct {
	URL string
	Err error
}

func (e *TransportError) Error() string {
	return fmt.Sprintf("stepca: no answer from %s (is step-ca running there?): %v", e.URL, e.Err)
}

func (e *TransportError) Unwrap() error { return e.Err }

// FingerprintError means step-ca does not serve the root whose fingerprint
// was pinned: it is another CA, or the fingerprint is wrong.
type FingerprintError struct {
	URL         string
	Fingerprint string
	// Got is the fingerprint of the root the server sent, if any.
	Got string
}

func (e *FingerprintError) Error() string {
	if e.Got == "" {
		return fmt.Sprintf("stepca: %s has no root with the fingerprint %s: check --stepca-root-fingerprint (`step certificate fingerprint root_ca.crt` prints it)", e.URL, e.Fingerprint)
	}
	return fmt.Sprintf("stepca: %s sent a root whose fingerprint is %s, not the pinned %s: refusing to trust it", e.URL, e.Got, e.Fingerprint)
}

// client talks to one step-ca.
type client struct {
	base     string // https://host:port, no trailing slash
	http     *http.Client
	maxBytes int64
}

// ParseFingerprint normalises a root fingerprint: the SHA-256 of the root
// certificate's DER, in hex (64 digits), with or without colons and an
// optional "sha256:" prefix, any case.
func ParseFingerprint(s string) (string, error) {
	f := strings.ToLower(strings.TrimSpace(s))
	f = strings.TrimPrefix(f, "sha256:")
	f = strings.ReplaceAll(f, ":", "")
	if b, err := hex.DecodeString(f); err != nil || len(b) != sha256.Size {
		return "", fmt.Errorf("stepca: the root fingerprint %q is not a SHA-256 fingerprint (64 hex digits)", s)
	}
	return f, nil
}

// ParseURL checks step-ca's URL: https, a host, no user, query or fragment,
// no path but "/". It returns it without a trailing slash.
func ParseURL(s string) (string, error) {
	u, err := url.Parse(strings.TrimSpace(s))
	switch {
	case err != nil:
		return "", fmt.Errorf("stepca: the URL %q does not parse: %v", s, err)
	case u.Scheme != "https":
		return "", fmt.Errorf("stepca: the URL %q is not https://HOST:PORT (step-ca serves TLS only)", s)
	case u.Host == "" || u.Hostname() == "":
		return "", fmt.Errorf("stepca: the URL %q has no host", s)
	case u.User != nil, u.RawQuery != "", u.Fragment != "", u.Path != "" && u.Path != "/":
		return "", fmt.Errorf("stepca: the URL %q must be https://HOST[:PORT] alone, without a user, path, query or fragment", s)
	}
	return "https://" + u.Host, nil
}

func fingerprintOf(c *x509.Certificate) string {
	sum := sha256.Sum256(c.Raw)
	return hex.EncodeToString(sum[:])
}

func transport(tlsCfg *tls.Config) *http.Transport {
	return &http.Transport{
		Proxy:               nil,
		DialContext:         (&net.Dialer{Timeout: 5 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
		TLSClientConfig:     tlsCfg,
		TLSHandshakeTimeout: 5 * time.Second,
		MaxIdleConns:        64,
		MaxIdleConnsPerHost: 64,
		IdleConnTimeout:     90 * time.Second,
		ForceAttemptHTTP2:   true,
	}
}

func noRedirect(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }

// bootstrap fetches the root whose fingerprint is pinned, as `step ca
// bootstrap` does: over a connection whose certificate is not yet checked,
// the root is asked by its fingerprint and kept only if its SHA-256 is that
// fingerprint. Every later request is made over TLS that verifies step-ca's
// certificate under that root.
func bootstrap(ctx context.Context, base, fingerprint string, timeout time.Duration, maxBytes int64) (*client, *x509.Certificate, error) {
	insecure := &client{base: base, maxBytes: maxBytes, http: &http.Client{
		Timeout:       timeout,
		CheckRedirect: noRedirect,
		// Only the root is fetched this way, and it is checked against the
		// pinned fingerprint before anything trusts it.
		Transport: transport(&tls.Config{MinVersion: tls.VersionTLS12, InsecureSkipVerify: true}), //nolint:gosec
	}}
	defer insecure.http.CloseIdleConnections()
	var root struct {
		CA string `json:"ca"`
	}
	if err := insecure.get(ctx, "/root/"+fingerprint, &root); err != nil {
		var re *RemoteError
		if errors.As(err, &re) && re.Status == http.StatusNotFound {
			return nil, nil, &FingerprintError{URL: base, Fingerprint: fingerprint}
		}
		return nil, nil, err
	}
	certs, err := ca.ParseCertificatesPEM([]byte(root.CA))
	if err != nil || len(certs) != 1 {
		return nil, nil, &RemoteError{URL: base + "/root/" + fingerprint, Status: http.StatusOK, Message: "the answer holds no single root certificate"}
	}
	got := fingerprintOf(certs[0])
	if subtle.ConstantTimeCompare([]byte(got), []byte(fingerprint)) != 1 {
		return nil, nil, &FingerprintError{URL: base, Fingerprint: fingerprint, Got: got}
	}
	pool := x509.NewCertPool()
	pool.AddCert(certs[0])
	c := &client{base: base, maxBytes: maxBytes, http: &http.Client{
		Timeout:       timeout,
		CheckRedirect: noRedirect,
		Transport:     transport(&tls.Config{MinVersion: tls.VersionTLS12, RootCAs: pool}),
	}}
	return c, certs[0], nil
}

// get GETs path and decodes the JSON answer into out.
func (c *client) get(ctx context.Context, path string, out any) error {
	return c.do(ctx, http.MethodGet, path, nil, out)
}

// post POSTs body as JSON to path and decodes the JSON answer into out.
func (c *client) post(ctx context.Context, path string, body, out any) error {
	data, err := json.Marshal(body)
	if err != nil {
		return fmt.Errorf("stepca: failed to encode the request: %w", err)
	}
	return c.do(ctx, http.MethodPost, path, data, out)
}

func (c *client) do(ctx context.Context, method, path string, body []byte, out any) error {
	u := c.base + path
	var r io.Reader
	if body != nil {
		r = bytes.NewReader(body)
	}
	req, err := http.NewRequestWithContext(ctx, method, u, r)
	if err != nil {
		return fmt.Errorf("stepca: %w", err)
	}
	req.Header.Set("Accept", "application/json")
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	res, err := c.http.Do(req)
	if err != nil {
		if ctx.Err() != nil {
			return fmt.Errorf("stepca: %s: %w", u, ctx.Err())
		}
		return &TransportError{URL: u, Err: err}
	}
	defer res.Body.Close()
	data, err := io.ReadAll(io.LimitReader(res.Body, c.maxBytes+1))
	if err != nil {
		return &TransportError{URL: u, Err: err}
	}
	if int64(len(data)) > c.maxBytes {
		return &RemoteError{URL: u, Status: res.StatusCode, Message: fmt.Sprintf("the answer is larger than %d bytes", c.maxBytes)}
	}
	if res.StatusCode/100 != 2 {
		var e struct {
			Message string `json:"message"`
		}
		msg := strings.TrimSpace(string(data))
		if json.Unmarshal(data, &e) == nil && e.Message != "" {
			msg = e.Message
		}
		if len(msg) > 300 {
			msg = msg[:300] + "..."
		}
		return &RemoteError{URL: u, Status: res.StatusCode, Message: msg}
	}
	if err := json.Unmarshal(data, out); err != nil {
		return &RemoteError{URL: u, Status: res.StatusCode, Message: "the answer is not step-ca's JSON: " + err.Error()}
	}
	return nil
}

func (c *client) close() { c.http.CloseIdleConnections() }
