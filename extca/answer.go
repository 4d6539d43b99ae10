package extca

import (
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"unicode"

	"github.com/chancery-pki/chancery/internal/cfsslwire"
)

// This file holds the answers: CFSSL's response envelope, the error codes
// and HTTP statuses CFSSL uses, and the refusal type every check returns.

// CFSSL's error codes (github.com/cloudflare/cfssl/errors): a category in
// the thousands and a reason. Errors that CFSSL reports as an HTTP error
// carry the HTTP status as their code instead.
const (
	// CodeUnknownProfile is CFSSL's PolicyError/InvalidPolicy ("Invalid or
	// unknown policy"), for a profile the endpoint does not have.
	CodeUnknownProfile = 5200
	// CodePolicyViolation is CFSSL's PolicyError/InvalidRequest ("Policy
	// violation request"), for a request the client's policy refuses.
	CodePolicyViolation = 5300
	// CodeCSRDecode is CFSSL's CSRError/DecodeFailed, for a CSR that is not
	// a PEM certificate request.
	CodeCSRDecode = 9002
	// CodeCSRParse is CFSSL's CSRError/ParseFailed, for a CSR that does not
	// parse, has a bad signature or an unsupported key.
	CodeCSRParse = 9003
)

// Refusal is why the endpoint refused a request: what it answers, CFSSL's
// way, and what the audit log and the server's log record.
type Refusal struct {
	// Status is the HTTP status: 400 for what the client must change (as
	// CFSSL answers every refusal), 405, 413, 500 when the CA failed, 503
	// when the same request is already in progress.
	Status int
	// Code is the CFSSL error code of the answer's errors[0].code.
	Code int
	// Reason is a short, stable name for logs, metrics and the audit log,
	// such as "bad_csr" or "replayed_token".
	Reason string
	// Message says what is wrong and what to do. It never holds a secret.
	Message string
}

func (r *Refusal) Error() string { return "extca: " + r.Message }

// refusal reasons.
const (
	reasonMalformed      = "malformed_request"
	reasonBadCSR         = "bad_csr"
	reasonUnknownProfile = "unknown_profile"
	reasonUnsupported    = "unsupported_field"
	reasonPolicy         = "policy"
	reasonNoClientCert   = "unauthenticated"
	reasonUnknownClient  = "unknown_client"
	reasonInvalidToken   = "invalid_token"
	reasonReplayed       = "replayed_token"
	reasonInFlight       = "token_in_flight"
	reasonReplayFull     = "replay_cache_full"
	reasonStaleTimestamp = "timestamp_out_of_window"
	reasonTooLarge       = "body_too_large"
	reasonMethod         = "method_not_allowed"
	reasonNotFound       = "not_found"
	reasonInternal       = "internal"
)

// badRequest is a 400 whose code is the status, as CFSSL's
// NewBadRequestString answers.
func badRequest(reason, format string, args ...any) *Refusal {
	return &Refusal{Status: http.StatusBadRequest, Code: http.StatusBadRequest, Reason: reason, Message: fmt.Sprintf(format, args...)}
}

// withCode is a 400 with a CFSSL error number, as CFSSL answers its own
// errors.
func withCode(code int, reason, format string, args ...any) *Refusal {
	return &Refusal{Status: http.StatusBadRequest, Code: code, Reason: reason, Message: fmt.Sprintf(format, args...)}
}

func policyRefusal(format string, args ...any) *Refusal {
	return withCode(CodePolicyViolation, reasonPolicy, format, args...)
}

func malformed(format string, args ...any) *Refusal {
	return badRequest(reasonMalformed, "malformed sign request: "+format, args...)
}

// successBody is CFSSL's answer to a request that succeeded.
func successBody(result any) ([]byte, error) {
	raw, err := json.Marshal(result)
	if err != nil {
		return nil, err
	}
	return json.Marshal(cfsslwire.Response{Success: true, Result: raw, Errors: []cfsslwire.Message{}, Messages: []cfsslwire.Message{}})
}

// writeSuccess answers 200 with result in CFSSL's envelope.
func writeSuccess(w http.ResponseWriter, result any) error {
	body, err := successBody(result)
	if err != nil {
		return err
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(http.StatusOK)
	_, err = w.Write(append(body, '\n'))
	return err
}

// jsonContentType is the Content-Type of every answer, shared: net/http
// only reads header values.
var jsonContentType = []string{"application/json"}

// writeCertificate answers 200 with CFSSL's sign result for certs, PEM:
// {"success":true,"result":{"certificate":"..."},"errors":[],"messages":[]}.
// It writes the envelope and the PEM, JSON-escaped, straight into one
// buffer: this is the hot path. (PEM is base64, dashes, spaces and
// newlines, so only the newlines need escaping.)
func writeCertificate(w http.ResponseWriter, certs []*x509.Certificate) error {
	const (
		head  = `{"success":true,"result":{"certificate":"`
		tail  = `"},"errors":[],"messages":[]}` + "\n"
		begin = `-----BEGIN CERTIFICATE-----\n`
		end   = `-----END CERTIFICATE-----\n`
	)
	size := len(head) + len(tail)
	for _, c := range certs {
		n := base64.StdEncoding.EncodedLen(len(c.Raw))
		size += len(begin) + len(end) + n + (n+63)/64*2
	}
	body := make([]byte, 0, size)
	body = append(body, head...)
	for _, c := range certs {
		body = append(body, begin...)
		for der := c.Raw; len(der) > 0; {
			line := der[:min(48, len(der))] // 48 bytes: one 64-character line
			der = der[len(line):]
			body = base64.StdEncoding.AppendEncode(body, line)
			body = append(body, `\n`...)
		}
		body = append(body, end...)
	}
	body = append(body, tail...)
	h := w.Header()
	h["Content-Type"] = jsonContentType
	h["Content-Length"] = []string{strconv.Itoa(len(body))}
	w.WriteHeader(http.StatusOK)
	_, err := w.Write(body)
	return err
}

// writeRefusal answers r in CFSSL's envelope: success false, result null,
// one error.
func writeRefusal(w http.ResponseWriter, r *Refusal) {
	body, _ := json.Marshal(cfsslwire.Response{
		Success:  false,
		Result:   json.RawMessage("null"),
		Errors:   []cfsslwire.Message{{Code: r.Code, Message: r.Message}},
		Messages: []cfsslwire.Message{},
	})
	h := w.Header()
	h.Set("Content-Type", "application/json")
	h.Set("X-Content-Type-Options", "nosniff")
	switch r.Status {
	case http.StatusMethodNotAllowed:
		h.Set("Allow", http.MethodPost)
	case http.StatusServiceUnavailable:
		h.Set("Retry-After", "1")
	}
	w.WriteHeader(r.Status)
	w.Write(append(body, '\n'))
}

// maxQuoted bounds how much of a client's value a message quotes.
const maxQuoted = 80

// quote quotes a value from the request for a message: control
// characters escaped by %q, cut at maxQuoted bytes.
func quote(s string) string {
	if len(s) > maxQuoted {
		cut := maxQuoted
		for cut > 0 && s[cut]&0xc0 == 0x80 {
			cut--
		}
		return fmt.Sprintf("%q...", s[:cut])
	}
	return fmt.Sprintf("%q", s)
}

// oneLine keeps a library error's text to one printable line.
func oneLine(s string) string {
	s = strings.Map(func(r rune) rune {
		if unicode.IsControl(r) {
			return ' '
		}
		return r
	}, s)
	if len(s) > 300 {
		s = s[:300] + "..."
	}
	return strings.ToValidUTF8(s, "?")
}
