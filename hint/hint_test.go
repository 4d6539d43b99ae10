package hint

import (
	"bytes"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"testing"
)

// advised is an error type of its own that carries advice, as a backend's
// errors do.
type advised struct{ msg, advice string }

func (e *advised) Error() string { return e.msg }
func (e *advised) Hint() string  { return e.advice }

func TestAll(t *testing.T) {
	base := errors.New("vault: Vault is sealed")
	sealed := &advised{msg: "vault: Vault is sealed", advice: "unseal Vault"}
	for _, tc := range []struct {
		name string
		err  error
		want []string
	}{
		{"Nil", nil, nil},
		{"None", fmt.Errorf("context: %w", base), nil},
		{"With", With(base, "unseal Vault"), []string{"unseal Vault"}},
		{"WithNil", With(nil, "unseal Vault"), nil},
		{"OwnType", fmt.Errorf("opening the root: %w", sealed), []string{"unseal Vault"}},
		{"OutermostFirst", With(fmt.Errorf("ctx: %w", sealed), "run chancery again"), []string{"run chancery again", "unseal Vault"}},
		{"Once", With(sealed, "unseal Vault"), []string{"unseal Vault"}},
		{"EmptySkipped", &advised{msg: "x"}, nil},
		{"Joined", errors.Join(sealed, With(base, "check --vault-addr")), []string{"unseal Vault", "check --vault-addr"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := All(tc.err); !slices.Equal(got, tc.want) {
				t.Errorf("All = %q, want %q", got, tc.want)
			}
		})
	}
}

func TestWith(t *testing.T) {
	base := errors.New("file: the root key is encrypted")
	err := With(base, "give --ca-passphrase-file")
	if err.Error() != base.Error() || !errors.Is(err, base) {
		t.Errorf("With: %q, Is %v; want the message and chain of %q", err, errors.Is(err, base), base)
	}
	var h Hinter
	if !errors.As(fmt.Errorf("ctx: %w", err), &h) || h.Hint() != "give --ca-passphrase-file" {
		t.Errorf("errors.As found no Hinter with the advice")
	}
}

func TestAttr(t *testing.T) {
	var buf bytes.Buffer
	log := slog.New(slog.NewTextHandler(&buf, &slog.HandlerOptions{ReplaceAttr: func(_ []string, a slog.Attr) slog.Attr {
		if a.Key == slog.TimeKey {
			return slog.Attr{}
		}
		return a
	}}))
	plain := errors.New("boom")
	log.Info("none", "err", plain, Attr(plain))
	log.Info("two", "err", plain, Attr(With(With(plain, "b"), "a")))
	want := "level=INFO msg=none err=boom\nlevel=INFO msg=two err=boom hint=\"a; b\"\n"
	if got := buf.String(); got != want {
		t.Errorf("log:\n%s\nwant:\n%s", got, want)
	}
	if strings.Contains(buf.String(), "hint=\"\"") {
		t.Error("an error without hints logged an empty hint")
	}
}
