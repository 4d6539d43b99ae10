package signer

import (
	"context"
	"crypto"
	"io"
)

// ContextSigner is a crypto.Signer whose signatures are made elsewhere, over
// a network (a key in Vault's transit engine): SignContext takes the
// caller's context, so that a signature honours the request's deadline and
// cancellation. The local issuer uses SignContext when its key has it.
type ContextSigner interface {
	crypto.Signer
	// SignContext signs digest as crypto.Signer.Sign does, within ctx.
	SignContext(ctx context.Context, rand io.Reader, digest []byte, opts crypto.SignerOpts) ([]byte, error)
}

// WithContext returns key bound to ctx: when key is a ContextSigner, the
// returned crypto.Signer signs with SignContext(ctx, ...); otherwise it is
// key itself. Use it to hand a ContextSigner to functions that take a
// crypto.Signer, such as x509.CreateCertificate and SelfSign.
func WithContext(ctx context.Context, key crypto.Signer) crypto.Signer {
	if cs, ok := key.(ContextSigner); ok {
		return boundSigner{ctx: ctx, key: cs}
	}
	return key
}

// boundSigner is a ContextSigner bound to one context.
type boundSigner struct {
	ctx context.Context
	key ContextSigner
}

func (b boundSigner) Public() crypto.PublicKey { return b.key.Public() }

func (b boundSigner) Sign(rand io.Reader, digest []byte, opts crypto.SignerOpts) ([]byte, error) {
	return b.key.SignContext(b.ctx, rand, digest, opts)
}
