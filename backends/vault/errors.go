package vault

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"net/url"
	"slices"
	"strings"
	"syscall"

	"github.com/hashicorp/vault/api"

	"github.com/chancery-pki/chancery/hint"
)

// Errors that callers may match with errors.Is. Every error the backend
// returns about Vault is an *Error whose Kind is one of these.
var (
	// ErrSealed means Vault is sealed: an operator must unseal it.
	ErrSealed = errors.New("vault: Vault is sealed")
	// ErrUnreachable means no answer came from Vault's address, after
	// retries.
	ErrUnreachable = errors.New("vault: Vault is unreachable")
	// ErrPermissionDenied means Vault refused the request: the token's
	// policies do not allow the path, or the token is no longer valid
	// (ErrTokenInvalid, which also matches this).
	ErrPermissionDenied = errors.New("vault: permission denied")
	// ErrTokenInvalid means the Vault token is expired, revoked or unknown,
	// or the AppRole credentials were refused. It matches
	// ErrPermissionDenied too.
	ErrTokenInvalid = errors.New("vault: the Vault token is invalid, expired or revoked")
	// ErrMountNotFound means no secrets engine of the configured kind (PKI
	// or transit) is mounted at the configured path.
	ErrMountNotFound = errors.New("vault: secrets engine mount not found")
	// ErrIssuerNotFound means the mount holds no issuer with the configured
	// reference.
	ErrIssuerNotFound = errors.New("vault: issuer not found")
	// ErrUnsupported means the request asks for a certificate that Vault's
	// PKI engine cannot issue exactly; nothing was sent to Vault.
	ErrUnsupported = errors.New("vault: Vault cannot issue this certificate exactly")
	// ErrMismatch means Vault issued a certificate that differs from the
	// request in a way the package documentation does not allow; the
	// certificate was dropped.
	ErrMismatch = errors.New("vault: Vault's certificate differs from the request")
	// ErrConfig means the backend's settings are incomplete or invalid.
	ErrConfig = errors.New("vault: invalid configuration")
	// ErrVault is any other error Vault answered with.
	ErrVault = errors.New("vault: request failed")
)

// Error is an error about a Vault operation. It names the operation and
// Vault path, never a token or secret ID. Its message says what failed;
// Advice, what to do about it, is its Hint (hint.Hinter), which a command
// line prints on a line of its own.
type Error struct {
	// Kind is one of the package's sentinel errors.
	Kind error
	// Op says what chancery was doing ("sign a node certificate").
	Op string
	// Path is the Vault API path, without the /v1/ prefix.
	Path string
	// Status is the HTTP status code Vault answered with, or 0.
	Status int
	// Detail is Vault's own messages, or the network error, with any secret
	// the backend knows removed.
	Detail string
	// Advice says what to do about it; it may be empty.
	Advice string
	// Err is the underlying error, for errors.Is and errors.As (such as
	// secretfile.ErrUnsafe for a secret file others may read), or nil. Its
	// text is already in Detail.
	Err error
}

func (e *Error) Error() string {
	var b strings.Builder
	b.WriteString(e.Kind.Error())
	if e.Op != "" {
		b.WriteString(": ")
		b.WriteString(e.Op)
	}
	if e.Path != "" {
		fmt.Fprintf(&b, " (%s)", e.Path)
	}
	if e.Status != 0 {
		fmt.Fprintf(&b, ": HTTP %d", e.Status)
	}
	if e.Detail != "" {
		b.WriteString(": ")
		b.WriteString(e.Detail)
	}
	return b.String()
}

// Hint returns Advice.
func (e *Error) Hint() string { return e.Advice }

var _ hint.Hinter = (*Error)(nil)

// Is reports whether target is e's kind; ErrTokenInvalid also matches
// ErrPermissionDenied.
func (e *Error) Is(target error) bool {
	return target == e.Kind || (e.Kind == ErrTokenInvalid && target == ErrPermissionDenied)
}

// Unwrap returns the underlying error, if any.
func (e *Error) Unwrap() error { return e.Err }

// hints for each kind, saying what to do.
var hints = map[error]string{
	ErrSealed:           "unseal Vault (`vault operator unseal`) and try again",
	ErrUnreachable:      "check the Vault address (--vault-addr), that Vault is running, and the network between them",
	ErrPermissionDenied: "attach the policy `chancery vault policy` prints to chancery's token or AppRole",
	ErrTokenInvalid:     "give chancery a valid token (--vault-token-file or the token environment variable), or check the AppRole role ID and secret ID",
	ErrMountNotFound:    "enable the secrets engine there (`vault secrets enable -path=MOUNT pki`, or `transit` with --vault-engine transit) or fix --vault-mount",
	ErrIssuerNotFound:   "check --vault-issuer against `vault list MOUNT/issuers`",
}

// redactor removes known secrets from text.
type redactor []string

func (r redactor) redact(s string) string {
	for _, secret := range r {
		if len(secret) >= 4 {
			s = strings.ReplaceAll(s, secret, "[redacted]")
		}
	}
	return s
}

// classify turns the error of a Vault API call into an *Error.
func classify(err error, op, path string, r redactor) *Error {
	e := &Error{Kind: ErrVault, Op: op, Path: path}
	var re *api.ResponseError
	switch {
	case errors.As(err, &re):
		e.Status = re.StatusCode
		e.Detail = r.redact(cleanMessages(re.Errors))
		e.Kind = kindOf(re.StatusCode, re.Errors)
	case isTLSTrustError(err):
		e.Kind = ErrConfig
		e.Detail = r.redact(netDetail(err))
		e.Advice = "Vault's TLS certificate is not trusted: give its CA with --vault-ca-cert (and --vault-tls-server-name if the name differs)"
		return e
	case isNetError(err):
		e.Kind = ErrUnreachable
		e.Detail = r.redact(netDetail(err))
	default:
		e.Detail = r.redact(err.Error())
	}
	e.Advice = hints[e.Kind]
	return e
}

// cleanMessages joins Vault's error messages on one line, unfolding the
// "2 errors occurred:\n\t* a\n\t* b" lists Vault's multierror writes.
func cleanMessages(msgs []string) string {
	var out []string
	for _, m := range msgs {
		for _, line := range strings.Split(m, "\n") {
			line = strings.TrimSpace(strings.TrimPrefix(strings.TrimSpace(line), "* "))
			if line == "" || strings.HasSuffix(line, "error occurred:") || strings.HasSuffix(line, "errors occurred:") {
				continue
			}
			if !slices.Contains(out, line) {
				out = append(out, line)
			}
		}
	}
	return strings.Join(out, "; ")
}

// kindOf maps Vault's status code and messages to a kind.
func kindOf(status int, msgs []string) error {
	text := strings.ToLower(strings.Join(msgs, "; "))
	switch {
	case status == 503 && strings.Contains(text, "sealed"):
		return ErrSealed
	case strings.Contains(text, "invalid token") || strings.Contains(text, "token is expired") ||
		strings.Contains(text, "invalid role or secret id") || strings.Contains(text, "invalid secret id") ||
		strings.Contains(text, "invalid role id"):
		return ErrTokenInvalid
	case status == 403:
		return ErrPermissionDenied
	case strings.Contains(text, "no handler for route"):
		return ErrMountNotFound
	case strings.Contains(text, "unable to find pki issuer") || strings.Contains(text, "issuer not found") ||
		strings.Contains(text, "unable to find issuer"):
		return ErrIssuerNotFound
	}
	return ErrVault
}

// isTLSTrustError reports whether err is Vault's TLS certificate failing
// verification, which no retry cures.
func isTLSTrustError(err error) bool {
	var cv *tls.CertificateVerificationError
	var ua x509.UnknownAuthorityError
	var hn x509.HostnameError
	return errors.As(err, &cv) || errors.As(err, &ua) || errors.As(err, &hn)
}

// isNetError reports whether err means the request got no answer.
func isNetError(err error) bool {
	var ne net.Error
	var ue *url.Error
	var oe *net.OpError
	return errors.As(err, &oe) || errors.As(err, &ne) || errors.As(err, &ue) ||
		errors.Is(err, syscall.ECONNREFUSED) || errors.Is(err, syscall.ECONNRESET)
}

// netDetail shortens a network error to its cause, without the URL.
func netDetail(err error) string {
	var oe *net.OpError
	if errors.As(err, &oe) {
		return oe.Error()
	}
	var ue *url.Error
	if errors.As(err, &ue) {
		return ue.Err.Error()
	}
	return err.Error()
}

// transient reports whether a failed call may succeed if tried again:
// Vault unreachable, or a 5xx answer other than "sealed" and "not
// implemented", or 429 (rate limited).
func (e *Error) transient() bool {
	switch {
	case e.Kind == ErrUnreachable:
		return true
	case e.Kind != ErrVault:
		return false // sealed, denied, missing: trying again changes nothing
	case e.Status == 429 || e.Status == 412:
		return true
	case e.Status >= 500 && e.Status != 501:
		return true
	}
	return false
}

// configError returns an ErrConfig error.
func configError(format string, args ...any) error {
	return &Error{Kind: ErrConfig, Detail: fmt.Sprintf(format, args...)}
}
