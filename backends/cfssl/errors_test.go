package cfssl

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/chancery-pki/chancery/hint"
)

// TestErrorMessages pins the messages of the package's errors: "cfssl: "
// once, also when allFailed gathers the errors of several CAs, and the
// advice of a mismatch as its Hint, not in its message.
func TestErrorMessages(t *testing.T) {
	const u1, u2 = "https://ca1:8888/api/v1/cfssl/sign", "https://ca2:8888/api/v1/cfssl/sign"
	pemErr := errors.New("ca: no certificate in PEM data")
	foreign := errors.New("signer: the issued certificate differs from the request")
	for _, tc := range []struct {
		name string
		err  error
		want string
		hint string
	}{
		{"Remote", &RemoteError{URL: u1, StatusCode: 503},
			"cfssl: the CA at " + u1 + " answered HTTP 503 Service Unavailable", ""},
		{"RemoteRefused", &RemoteError{URL: u1, StatusCode: 200, Errors: []Message{{Code: 1000, Message: "bad\nrequest"}}},
			"cfssl: the CA at " + u1 + " refused the request: bad request (code 1000)", ""},
		{"Transport", &TransportError{URL: u2, Timeout: 2 * time.Second},
			"cfssl: the CA at " + u2 + " did not answer within 2s", ""},
		{"Answer", &AnswerError{URL: u1, Reason: "has no certificate in its result"},
			"cfssl: the answer from " + u1 + " has no certificate in its result", ""},
		{"AnswerWithCause", &AnswerError{URL: u1, Reason: "has no usable certificate", Err: pemErr},
			"cfssl: the answer from " + u1 + " has no usable certificate: ca: no certificate in PEM data", ""},
		{"Mismatch", &MismatchError{URL: u1, Field: "key usage", Got: "a", Want: "b", Advice: hints["key usage"]},
			"cfssl: the certificate from " + u1 + " differs from the request in its key usage: got a, want b; it was discarded", hints["key usage"]},
		{"AllFailed", allFailed{
			&RemoteError{URL: u1, StatusCode: 503},
			&retriedError{err: &TransportError{URL: u2, Timeout: 2 * time.Second}, attempts: 3},
		}, "cfssl: none of the 2 external CAs answered: the CA at " + u1 + " answered HTTP 503 Service Unavailable; " +
			"the CA at " + u2 + " did not answer within 2s (after 3 attempts)", ""},
		{"AllFailedForeign", allFailed{&AnswerError{URL: u1, Reason: "has no usable certificate", Err: pemErr}, foreign},
			"cfssl: none of the 2 external CAs answered: the answer from " + u1 + " has no usable certificate: ca: no certificate in PEM data; " +
				"signer: the issued certificate differs from the request", ""},
		{"Retried", &retriedError{err: &RemoteError{URL: u1, StatusCode: 502}, attempts: 2},
			"cfssl: the CA at " + u1 + " answered HTTP 502 Bad Gateway (after 2 attempts)", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := tc.err.Error(); got != tc.want {
				t.Errorf("Error() = %q\nwant      %q", got, tc.want)
			}
			var want []string
			if tc.hint != "" {
				want = []string{tc.hint}
			}
			if got := hint.All(fmt.Errorf("signing: %w", tc.err)); !slices.Equal(got, want) {
				t.Errorf("hints %q, want %q", got, want)
			}
		})
	}
	if ae := (&AnswerError{URL: u1, Reason: "r", Err: pemErr}); !errors.Is(ae, pemErr) {
		t.Error("an AnswerError does not unwrap to its cause")
	}
}

// TestEachCanceled pins the error of a request canceled while the CAs
// fail: the context's error, and the last CA error without a second
// "cfssl: ".
func TestEachCanceled(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	c := &client{remotes: []*remote{{}}, maxAttempts: 1}
	err := c.each(ctx, func(context.Context, *remote) error {
		cancel()
		return &RemoteError{URL: "https://ca1/sign", StatusCode: 503}
	})
	want := "cfssl: context canceled (last error: the CA at https://ca1/sign answered HTTP 503 Service Unavailable)"
	if err == nil || err.Error() != want || !errors.Is(err, context.Canceled) {
		t.Errorf("each = %v, want %q", err, want)
	}
}
