package signer_test

import (
	"context"
	"crypto"
	"crypto/x509"
	"errors"
	"io"
	"testing"

	"github.com/chancery-pki/chancery/signer"
)

type ctxKey struct{}

// remoteKey is a ContextSigner that records the context of each signature
// and refuses to sign once that context is done, as a network key does.
type remoteKey struct {
	crypto.Signer
	seen []any
}

func (k *remoteKey) Sign(io.Reader, []byte, crypto.SignerOpts) ([]byte, error) {
	return nil, errors.New("Sign without a context")
}

func (k *remoteKey) SignContext(ctx context.Context, r io.Reader, digest []byte, opts crypto.SignerOpts) ([]byte, error) {
	k.seen = append(k.seen, ctx.Value(ctxKey{}))
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	return k.Signer.Sign(r, digest, opts)
}

// TestLocalIssuerGivesItsContextToTheKey checks that certificates and CSRs
// are signed within the caller's context when the key is a ContextSigner.
func TestLocalIssuerGivesItsContextToTheKey(t *testing.T) {
	key, root := newRoot(t)
	rk := &remoteKey{Signer: key}
	iss, err := signer.NewLocalIssuer(signer.LocalConfig{Key: rk, Chain: []*x509.Certificate{root}})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.WithValue(context.Background(), ctxKey{}, "request-1")
	if _, err := iss.Sign(ctx, nodeRequest(t, root)); err != nil {
		t.Fatalf("Sign: %v", err)
	}
	if _, err := iss.CreateCSR(ctx, &x509.CertificateRequest{RawSubject: root.RawSubject}); err != nil {
		t.Fatalf("CreateCSR: %v", err)
	}
	if len(rk.seen) != 2 || rk.seen[0] != "request-1" || rk.seen[1] != "request-1" {
		t.Errorf("the key saw contexts %v, want the caller's twice", rk.seen)
	}

	// A key that is not a ContextSigner is used as it is.
	if got := signer.WithContext(ctx, key); got != crypto.Signer(key) {
		t.Errorf("WithContext wrapped a plain key")
	}
	// A signature whose context ends is not made: the key sees the end.
	cancelled, cancel := context.WithCancel(ctx)
	cancel()
	bound := signer.WithContext(cancelled, rk)
	if _, err := bound.Sign(nil, make([]byte, 32), crypto.SHA256); !errors.Is(err, context.Canceled) {
		t.Errorf("Sign with a cancelled context: %v, want context.Canceled", err)
	}
	if !bound.Public().(interface{ Equal(crypto.PublicKey) bool }).Equal(key.Public()) {
		t.Error("the bound key's public key differs")
	}
}
