package cfssl

import (
	"bytes"
	"context"
	"crypto/sha256"
	"crypto/x509"
	"encoding/asn1"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/chancery-pki/chancery/ca"
	"github.com/chancery-pki/chancery/internal/cfsslwire"
	"github.com/chancery-pki/chancery/signer"
)

// Defaults of Config.
const (
	// DefaultTimeout bounds each request to a CA, as swarm bounds it.
	DefaultTimeout = 5 * time.Second
	// DefaultMaxAttempts is how many times a CA is asked when it does not
	// answer or answers with a server error.
	DefaultMaxAttempts = 3
	// DefaultBackoff is the wait before the second round of attempts; it
	// doubles for each further round, up to 5s.
	DefaultBackoff = 500 * time.Millisecond
	// DefaultMaxResponseBytes caps an answer's size, as swarm caps it.
	DefaultMaxResponseBytes = 256 << 10
)

// maxSerialDraws is how many certificates are asked of a CA for one request
// while the ones it returns have serials shorter than signer.SerialBytes.
const maxSerialDraws = 4

// maxChainLength bounds the chain built from /info and the CA bundles.
const maxChainLength = 8

// maxCACertFileSize bounds a cacert bundle.
const maxCACertFileSize = 1 << 20

// Config configures New.
type Config struct {
	// CAs are the external CAs, asked in order. They must all be the same
	// CA (the same signing certificate); each certificate is checked
	// against the chain New fetched.
	CAs []ExternalCA
	// AuthKey, when set, authenticates requests with CFSSL's authsign
	// (HMAC-SHA-256): every certificate is asked of /authsign, and the CA's
	// profiles must name the same key. Nil means /sign.
	AuthKey *AuthKey
	// AuthKeySource says where AuthKey came from ("file /path" or
	// "$VARIABLE"), for Describe. It never holds the key.
	AuthKeySource string
	// Chain, when set, is the chain the cluster record holds (its last
	// certificate is the cluster's root): the chain the CA reports must end
	// in the same root, and its certificates help complete that chain.
	Chain []*x509.Certificate
	// Timeout bounds each request; zero means DefaultTimeout.
	Timeout time.Duration
	// MaxAttempts bounds how many times a CA is asked; zero means
	// DefaultMaxAttempts.
	MaxAttempts int
	// Backoff is the first wait between attempts; zero means
	// DefaultBackoff.
	Backoff time.Duration
	// MaxResponseBytes caps an answer's size; zero means
	// DefaultMaxResponseBytes.
	MaxResponseBytes int64
	// Now is the clock, for checking the validity of returned
	// certificates; nil means time.Now.
	Now func() time.Time
}

// Signer asks an external CFSSL CA to sign. See the package documentation.
type Signer struct {
	client    *client
	chain     []*x509.Certificate
	authKey   *AuthKey
	authFrom  string
	expiry    string
	now       func() time.Time
	closeOnce sync.Once
}

var (
	_ signer.Signer             = (*Signer)(nil)
	_ signer.CapabilityReporter = (*Signer)(nil)
	_ signer.Describer          = (*Signer)(nil)
)

// New reads the CAs' cacert bundles, asks the CAs in order for their
// signing certificate (/info) and returns the Signer that issues under it.
// The chain is that certificate followed by the certificates, from the
// asking CA's cacert bundle and from cfg.Chain, that lead from it to a
// self-signed root. A CA that does not answer is retried like a sign
// request; New fails if none answers.
func New(ctx context.Context, cfg Config) (*Signer, error) {
	if len(cfg.CAs) == 0 {
		return nil, errors.New("cfssl: no external CA given (want --external-ca protocol=cfssl,url=https://HOST:PORT/api/v1/cfssl/sign)")
	}
	if cfg.Timeout < 0 || cfg.MaxAttempts < 0 || cfg.Backoff < 0 || cfg.MaxResponseBytes < 0 {
		return nil, errors.New("cfssl: negative timeout, attempts, backoff or response size")
	}
	c := &client{
		timeout:     orDefault(cfg.Timeout, DefaultTimeout),
		maxAttempts: orDefault(cfg.MaxAttempts, DefaultMaxAttempts),
		backoff:     orDefault(cfg.Backoff, DefaultBackoff),
		maxBytes:    orDefault(cfg.MaxResponseBytes, DefaultMaxResponseBytes),
	}
	for _, ext := range cfg.CAs {
		if reason := checkURL(ext.URL); reason != "" {
			return nil, &SpecError{Spec: ext.String(), Reason: fmt.Sprintf("url %q %s", ext.URL, reason)}
		}
		var bundle []*x509.Certificate
		if ext.CACertFile != "" {
			var err error
			if bundle, err = readBundle(ext.CACertFile); err != nil {
				return nil, err
			}
		}
		c.remotes = append(c.remotes, newRemote(ext, bundle))
	}
	s := &Signer{client: c, authKey: cfg.AuthKey, authFrom: cfg.AuthKeySource, now: cfg.Now}
	if s.now == nil {
		s.now = time.Now
	}
	if err := s.fetchChain(ctx, cfg.Chain); err != nil {
		s.Close()
		return nil, err
	}
	return s, nil
}

func orDefault[T comparable](v, def T) T {
	var zero T
	if v == zero {
		return def
	}
	return v
}

// readBundle reads a PEM bundle of CA certificates.
func readBundle(path string) ([]*x509.Certificate, error) {
	st, err := os.Stat(path)
	if err != nil {
		return nil, fmt.Errorf("cfssl: failed to read the cacert bundle: %w", err)
	}
	if st.Size() > maxCACertFileSize {
		return nil, fmt.Errorf("cfssl: the cacert bundle %s is larger than %d bytes", path, maxCACertFileSize)
	}
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("cfssl: failed to read the cacert bundle: %w", err)
	}
	certs, err := ca.ParseCertificatesPEM(data)
	if err != nil {
		return nil, fmt.Errorf("the cacert bundle %s: %w", path, err)
	}
	return certs, nil
}

// fetchChain asks the CAs for their certificate and builds the chain.
func (s *Signer) fetchChain(ctx context.Context, recorded []*x509.Certificate) error {
	var (
		info cfsslwire.InfoResult
		from *remote
	)
	err := s.client.each(ctx, func(ctx context.Context, r *remote) error {
		res, err := s.client.post(ctx, r, "info", []byte("{}"))
		if err != nil {
			return err
		}
		u := r.ext.endpoint("info")
		var got cfsslwire.InfoResult
		if err := json.Unmarshal(res, &got); err != nil || got.Certificate == "" {
			return &AnswerError{URL: u, Reason: "has no certificate in its result"}
		}
		if _, err := ca.ParseCertificatesPEM([]byte(got.Certificate)); err != nil {
			return &AnswerError{URL: u, Reason: "has no usable certificate", Err: err}
		}
		info, from = got, r
		return nil
	})
	if err != nil {
		return err
	}
	certs, _ := ca.ParseCertificatesPEM([]byte(info.Certificate))
	issuer := certs[0]
	u := from.ext.endpoint("info")
	if !issuer.IsCA || !issuer.BasicConstraintsValid {
		return fmt.Errorf("cfssl: the certificate %q reported by %s is not a CA (CA:TRUE is missing)", issuer.Subject, u)
	}
	if issuer.KeyUsage != 0 && issuer.KeyUsage&x509.KeyUsageCertSign == 0 {
		return fmt.Errorf("cfssl: the CA certificate %q reported by %s lacks the certificate signing key usage", issuer.Subject, u)
	}
	candidates := append(append(append([]*x509.Certificate(nil), certs[1:]...), from.bundle...), recorded...)
	chain, err := buildChain(issuer, candidates)
	if err != nil {
		return fmt.Errorf("cfssl: the CA certificate %q reported by %s: %w", issuer.Subject, u, err)
	}
	if len(recorded) > 0 {
		want, got := recorded[len(recorded)-1], chain[len(chain)-1]
		if !bytes.Equal(want.Raw, got.Raw) {
			return fmt.Errorf("cfssl: the external CA at %s issues under the root %q (%s), not under the cluster's root %q (%s)",
				u, got.Subject, fingerprint(got), want.Subject, fingerprint(want))
		}
	}
	s.chain = chain
	s.expiry = info.Expiry
	return nil
}

// buildChain returns leaf followed by certificates from candidates, each
// signing the one before, up to a self-signed root.
func buildChain(leaf *x509.Certificate, candidates []*x509.Certificate) ([]*x509.Certificate, error) {
	chain := []*x509.Certificate{leaf}
	for len(chain) <= maxChainLength {
		cur := chain[len(chain)-1]
		if bytes.Equal(cur.RawIssuer, cur.RawSubject) && cur.CheckSignatureFrom(cur) == nil {
			return chain, nil
		}
		var next *x509.Certificate
		for _, c := range candidates {
			if !bytes.Equal(c.Raw, cur.Raw) && bytes.Equal(cur.RawIssuer, c.RawSubject) && cur.CheckSignatureFrom(c) == nil {
				next = c
				break
			}
		}
		if next == nil {
			return nil, fmt.Errorf("it is not a self-signed root, and no certificate given leads from it to one: give its intermediates and root in the external CA's cacert=FILE bundle (issuer %q)", cur.Issuer)
		}
		chain = append(chain, next)
	}
	return nil, fmt.Errorf("its chain is longer than %d certificates", maxChainLength)
}

// Chain returns the CA's certificate, as /info reported it, followed by the
// certificates up to the root.
func (s *Signer) Chain() []*x509.Certificate { return s.chain }

// Capabilities reports that CFSSL signs only CSRs: NeedsCSR.
func (s *Signer) Capabilities() signer.Capabilities {
	return signer.Capabilities{NeedsCSR: true}
}

// Describe names the CAs, the endpoint used, and where validity comes from.
// It never includes the auth key.
func (s *Signer) Describe() signer.Description {
	urls := make([]string, len(s.client.remotes))
	for i, r := range s.client.remotes {
		urls[i] = r.ext.URL
	}
	endpoint := "sign"
	if s.authKey != nil {
		endpoint = "authsign (HMAC-SHA-256 key from " + s.authFrom + ")"
	}
	validity := "set by the CA's profiles, not by chancery's cert-expiry"
	if s.expiry != "" {
		validity += " (default profile: " + s.expiry + ")"
	}
	return signer.Description{Backend: Name, Details: [][2]string{
		{"external_ca", strings.Join(urls, " ")},
		{"endpoint", endpoint},
		{"ca_certificate", s.chain[0].Subject.String()},
		{"validity", validity},
	}}
}

// Close releases the Signer's idle connections.
func (s *Signer) Close() error {
	s.closeOnce.Do(func() {
		for _, r := range s.client.remotes {
			r.close()
		}
	})
	return nil
}

// Sign checks req with signer.CheckRequest, refuses it without a CSR, and
// asks the CAs in order to sign it: profile "" for node certificates, "CA"
// for CA certificates. It checks the certificate returned against the
// request (see the package documentation) and returns it only if it
// matches.
func (s *Signer) Sign(ctx context.Context, req *signer.Request) (*x509.Certificate, error) {
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("cfssl: %w", err)
	}
	issuer := s.chain[0]
	if err := signer.CheckRequest(req, issuer); err != nil {
		return nil, err
	}
	if req.CSR == nil {
		return nil, &signer.RequestError{Field: "csr", Reason: "missing: CFSSL signs only certificate requests, so the cfssl backend needs the subject's CSR"}
	}
	wire, wantSubject, err := buildRequest(req)
	if err != nil {
		return nil, err
	}
	body, err := json.Marshal(wire)
	if err != nil {
		return nil, fmt.Errorf("cfssl: failed to encode the sign request: %w", err)
	}
	var cert *x509.Certificate
	err = s.client.each(ctx, func(ctx context.Context, r *remote) error {
		for draw := 1; ; draw++ {
			c, err := s.signOnce(ctx, r, body)
			if err != nil {
				return err
			}
			u := r.ext.endpoint(s.endpoint())
			if err := checkIssued(u, req, c, issuer, wantSubject, s.now()); err != nil {
				return err
			}
			if n := len(c.SerialNumber.Bytes()); c.SerialNumber.Sign() <= 0 || n != signer.SerialBytes {
				// CFSSL draws 20 random bytes and clears the top bit, so
				// one serial in 128 is shorter: ask again.
				if draw < maxSerialDraws {
					continue
				}
				return &AnswerError{URL: u, Reason: fmt.Sprintf("gave %d certificates in a row whose serial is not a positive number of %d bytes", draw, signer.SerialBytes)}
			}
			cert = c
			return nil
		}
	})
	if err != nil {
		var re *RemoteError
		if req.Profile == signer.ProfileNode && csrAsksCA(req.CSR) && errors.As(err, &re) {
			return nil, fmt.Errorf("%w (the CSR asks for CA:TRUE in a basic constraints extension: CFSSL reads it, and refuses to sign it with a profile that is not a CA's; make the CSR without that extension)", err)
		}
		return nil, err
	}
	return cert, nil
}

// csrAsksCA reports whether csr carries a basic constraints extension with
// CA:TRUE.
func csrAsksCA(csr *x509.CertificateRequest) bool {
	for _, ext := range csr.Extensions {
		if !ext.Id.Equal(oidBasicConstraints) {
			continue
		}
		var bc struct {
			IsCA       bool `asn1:"optional"`
			MaxPathLen int  `asn1:"optional,default:-1"`
		}
		if _, err := asn1.Unmarshal(ext.Value, &bc); err == nil && bc.IsCA {
			return true
		}
	}
	return false
}

func (s *Signer) endpoint() string {
	if s.authKey != nil {
		return "authsign"
	}
	return "sign"
}

// signOnce posts the sign request once, through /authsign when there is
// an auth key, and parses the certificate.
func (s *Signer) signOnce(ctx context.Context, r *remote, body []byte) (*x509.Certificate, error) {
	payload := body
	if s.authKey != nil {
		var err error
		payload, err = json.Marshal(cfsslwire.AuthRequest{Timestamp: s.now().Unix(), Token: s.authKey.Token(body), Request: body})
		if err != nil {
			return nil, fmt.Errorf("cfssl: failed to encode the authsign request: %w", err)
		}
	}
	endpoint := s.endpoint()
	res, err := s.client.post(ctx, r, endpoint, payload)
	if err != nil {
		return nil, err
	}
	u := r.ext.endpoint(endpoint)
	var got cfsslwire.SignResult
	if err := json.Unmarshal(res, &got); err != nil || got.Certificate == "" {
		return nil, &AnswerError{URL: u, Reason: "has no certificate in its result"}
	}
	// Intermediates after the certificate are accepted and ignored, as
	// swarm accepts them: Chain() is what the certificate is issued under.
	certs, err := ca.ParseCertificatesPEM([]byte(got.Certificate))
	if err != nil {
		return nil, &AnswerError{URL: u, Reason: "has no usable certificate", Err: err}
	}
	return certs[0], nil
}

// fingerprint is c's SHA-256 fingerprint, as `chancery info` shows roots.
func fingerprint(c *x509.Certificate) string {
	sum := sha256.Sum256(c.Raw)
	return "sha256:" + hex.EncodeToString(sum[:])
}
