package stepca

import (
	"context"
	"crypto/x509"

	"github.com/chancery-pki/chancery/signer"
)

// MintToken returns the one-time token Sign would send for req, and the
// serial number it asks for.
func (s *Signer) MintToken(req *signer.Request) (ott, serial string, err error) {
	c, err := s.claims(req)
	if err != nil {
		return "", "", err
	}
	ott, err = s.key.token(c, s.now())
	return ott, c.Chancery.Serial, err
}

// SignWithToken is Sign with a given token.
func (s *Signer) SignWithToken(ctx context.Context, req *signer.Request, ott, serial string) (*x509.Certificate, error) {
	return s.sign(ctx, req, ott, serial)
}
