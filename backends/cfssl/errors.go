package cfssl

import (
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"
	"unicode"

	"github.com/chancery-pki/chancery/hint"
	"github.com/chancery-pki/chancery/internal/cfsslwire"
)

// prefix starts the message of every error this package makes.
const prefix = "cfssl: "

// describer is an error of this package that can say what went wrong
// without the package prefix, for a message that already has it: the
// errors of each CA within allFailed's.
type describer interface {
	describe() string
}

// describe is err's message without this package's prefix if err is one
// of its own errors, else err's message.
func describe(err error) string {
	if d, ok := err.(describer); ok {
		return d.describe()
	}
	return err.Error()
}

// Message is one entry of a CFSSL answer's errors (RemoteError.Errors): the
// CA's error code (an HTTP status or a CFSSL error number such as 9002) and
// its own text.
type Message = cfsslwire.Message

// RemoteError is an answer in which a CFSSL CA refused or failed a request:
// "success": false, or an HTTP status other than 200.
type RemoteError struct {
	// URL is the endpoint that answered.
	URL string
	// StatusCode is the HTTP status of the answer.
	StatusCode int
	// Errors are the CA's own error messages, if its answer had any.
	Errors []Message
}

// maxShownMessage bounds how much of a CA's message goes into an error.
const maxShownMessage = 300

func (e *RemoteError) Error() string { return prefix + e.describe() }

func (e *RemoteError) describe() string {
	var msgs []string
	for _, m := range e.Errors {
		msgs = append(msgs, fmt.Sprintf("%s (code %d)", clean(m.Message), m.Code))
	}
	switch {
	case len(msgs) > 0 && e.StatusCode == http.StatusOK:
		return fmt.Sprintf("the CA at %s refused the request: %s", e.URL, strings.Join(msgs, "; "))
	case len(msgs) > 0:
		return fmt.Sprintf("the CA at %s answered HTTP %d: %s", e.URL, e.StatusCode, strings.Join(msgs, "; "))
	case e.StatusCode == http.StatusOK:
		return fmt.Sprintf("the CA at %s refused the request without saying why", e.URL)
	}
	return fmt.Sprintf("the CA at %s answered HTTP %d %s", e.URL, e.StatusCode, http.StatusText(e.StatusCode))
}

// Temporary reports whether the answer is worth asking again: a server
// error (5xx), 408 Request Timeout or 429 Too Many Requests. Other answers
// are the CA's decision, and asking again would get the same.
func (e *RemoteError) Temporary() bool {
	return e.StatusCode >= 500 || e.StatusCode == http.StatusRequestTimeout || e.StatusCode == http.StatusTooManyRequests
}

// clean makes a CA's message safe to show on one line: control characters
// become spaces, and it is cut at maxShownMessage bytes.
func clean(s string) string {
	s = strings.Map(func(r rune) rune {
		if unicode.IsControl(r) {
			return ' '
		}
		return r
	}, s)
	if len(s) > maxShownMessage {
		cut := maxShownMessage
		for cut > 0 && !utf8Start(s[cut]) {
			cut--
		}
		s = s[:cut] + "..."
	}
	return s
}

func utf8Start(b byte) bool { return b&0xc0 != 0x80 }

// TransportError is a request that got no answer: the connection or the TLS
// handshake failed, or the CA did not answer in time. It is retried.
type TransportError struct {
	// URL is the endpoint asked.
	URL string
	// Timeout is the per-request timeout when it expired, else zero.
	Timeout time.Duration
	// Err is the underlying error.
	Err error
}

func (e *TransportError) Error() string { return prefix + e.describe() }

func (e *TransportError) describe() string {
	if e.Timeout > 0 {
		return fmt.Sprintf("the CA at %s did not answer within %s", e.URL, e.Timeout)
	}
	return fmt.Sprintf("failed to reach the CA at %s: %v", e.URL, e.Err)
}

// Unwrap returns the underlying error.
func (e *TransportError) Unwrap() error { return e.Err }

// AnswerError is an answer that is not what CFSSL sends: too large, not
// JSON, or without a usable certificate. It is not retried on that CA.
type AnswerError struct {
	// URL is the endpoint that answered.
	URL string
	// Reason says what is wrong with the answer.
	Reason string
	// Err is the error that found it wrong, such as package ca's refusal
	// of its certificate, or nil.
	Err error
}

func (e *AnswerError) Error() string { return prefix + e.describe() }

func (e *AnswerError) describe() string {
	if e.Err != nil {
		return fmt.Sprintf("the answer from %s %s: %v", e.URL, e.Reason, e.Err)
	}
	return fmt.Sprintf("the answer from %s %s", e.URL, e.Reason)
}

// Unwrap returns Err.
func (e *AnswerError) Unwrap() error { return e.Err }

// MismatchError says that a certificate the CA returned differs from the
// request. The certificate is discarded, and no other CA is asked: a CA
// that issues something else than asked needs its configuration fixed.
type MismatchError struct {
	// URL is the endpoint that returned the certificate.
	URL string
	// Field names what differs: "issuer", "signature", "public key",
	// "subject", "dns names", "ip addresses", "sans", "key usage",
	// "extended key usage", "basic constraints", "subject key id",
	// "validity", "extensions" or "version".
	Field string
	// Got and Want describe the certificate's value and the expected one.
	Got, Want string
	// Advice, when set, says what usually causes the difference. It is the
	// error's Hint (hint.Hinter), which a command line prints on a line of
	// its own.
	Advice string
}

func (e *MismatchError) Error() string {
	return fmt.Sprintf("%sthe certificate from %s differs from the request in its %s: got %s, want %s; it was discarded", prefix, e.URL, e.Field, e.Got, e.Want)
}

// Hint returns Advice.
func (e *MismatchError) Hint() string { return e.Advice }

// retryable reports whether err is worth asking the same CA again.
func retryable(err error) bool {
	var te *TransportError
	if errors.As(err, &te) {
		return true
	}
	var re *RemoteError
	return errors.As(err, &re) && re.Temporary()
}

// fatal reports whether err stops a request at once, without asking any
// other CA.
func fatal(err error) bool {
	var me *MismatchError
	return errors.As(err, &me)
}

// allFailed is the error of a request that no CA answered: one error per
// CA, in order.
type allFailed []error

func (e allFailed) Error() string {
	msgs := make([]string, len(e))
	for i, err := range e {
		msgs[i] = describe(err)
	}
	return fmt.Sprintf("%snone of the %d external CAs answered: %s", prefix, len(e), strings.Join(msgs, "; "))
}

// Unwrap returns the errors, one per CA.
func (e allFailed) Unwrap() []error { return e }

var (
	_ describer   = (*RemoteError)(nil)
	_ describer   = (*TransportError)(nil)
	_ describer   = (*AnswerError)(nil)
	_ describer   = (*retriedError)(nil)
	_ hint.Hinter = (*MismatchError)(nil)
)
