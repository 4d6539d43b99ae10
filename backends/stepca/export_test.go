package stepca

import (
	"context"
	"crypto/x509"
	"time"

	"github.com/chancery-pki/chancery/ca"
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

// RawSign is the benchmarks' reference: step-ca's /1.0/sign asked with the
// Signer's HTTP client and a token from MintToken, the answer's certificate
// parsed, nothing checked.
func (s *Signer) RawSign(ctx context.Context, csrPEM, ott string, req *signer.Request) error {
	var res struct {
		Crt string `json:"crt"`
	}
	body := map[string]any{
		"csr": csrPEM, "ott": ott,
		"notBefore": req.Template.NotBefore.UTC().Format(time.RFC3339),
		"notAfter":  req.Template.NotAfter.UTC().Format(time.RFC3339),
	}
	if err := s.client.post(ctx, "/1.0/sign", body, &res); err != nil {
		return err
	}
	_, err := ca.ParseCertificatesPEM([]byte(res.Crt))
	return err
}
