package extca

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/hex"
	"fmt"
	"time"

	"github.com/chancery-pki/chancery/audit"
	"github.com/chancery-pki/chancery/ca"
	"github.com/chancery-pki/chancery/hint"
	"github.com/chancery-pki/chancery/signer"
)

// This file is the endpoint's own TLS certificate: a fresh P-256 key, a
// certificate for the configured names issued through the same Signer (so
// that it chains to the root clients trust, as swarm requires), and its
// renewal.

// renewRetry is the wait after a failed renewal.
const renewRetry = time.Minute

// issueTLSCert issues a certificate for the configured names: subject CN
// the first of them; the SANs; digital signature and key encipherment;
// server and client authentication (the node certificate shape, which
// every backend can issue); valid from now backdated for TLSCertExpiry,
// cut to the signing CA's validity. It is recorded in the audit log.
func (s *Server) issueTLSCert(ctx context.Context) (*tls.Certificate, error) {
	r := s.cfg.Rand
	if r == nil {
		r = rand.Reader
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), r)
	if err != nil {
		return nil, fmt.Errorf("extca: failed to make the TLS key: %w", err)
	}
	cn := ""
	if len(s.cfg.DNSNames) > 0 {
		cn = s.cfg.DNSNames[0]
	} else {
		cn = s.cfg.IPAddresses[0].String()
	}
	subject := pkix.Name{CommonName: cn}
	csrDER, err := x509.CreateCertificateRequest(r, &x509.CertificateRequest{Subject: subject}, key)
	if err != nil {
		return nil, fmt.Errorf("extca: failed to make the TLS CSR: %w", err)
	}
	csr, err := x509.ParseCertificateRequest(csrDER)
	if err != nil {
		return nil, fmt.Errorf("extca: failed to parse the TLS CSR: %w", err)
	}
	iss, err := s.issuer(ctx)
	if err != nil {
		return nil, err
	}
	issuerCA := iss.CA()
	now := s.cfg.Clock.Now()
	notBefore, notAfter := validity(now, s.cfg.TLSCertExpiry, issuerCA)
	if !notAfter.After(now) {
		return nil, fmt.Errorf("extca: the CA certificate %q has expired: no TLS certificate can be issued under it", issuerCA.Subject)
	}
	out, err := iss.Issue(ctx, &signer.Request{
		PublicKey: key.Public(),
		CSR:       csr,
		Profile:   signer.ProfileNode,
		Template: &x509.Certificate{
			Subject:               subject,
			DNSNames:              s.cfg.DNSNames,
			IPAddresses:           s.cfg.IPAddresses,
			NotBefore:             notBefore,
			NotAfter:              notAfter,
			KeyUsage:              x509.KeyUsageDigitalSignature | x509.KeyUsageKeyEncipherment,
			ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
			BasicConstraintsValid: true,
		},
	})
	if err != nil {
		return nil, fmt.Errorf("failed to issue the TLS certificate of the external CA endpoint: %w", err)
	}
	cert, presented := out.Certificate, out.Chain
	if err := ca.VerifyChain(presented, []*x509.Certificate{iss.Root()}, now); err != nil {
		return nil, fmt.Errorf("the TLS certificate of the external CA endpoint does not chain to the root: %w", err)
	}
	for _, n := range s.cfg.DNSNames {
		if err := cert.VerifyHostname(n); err != nil {
			return nil, fmt.Errorf("extca: the TLS certificate the signer returned: %w", err)
		}
	}
	for _, ip := range s.cfg.IPAddresses {
		if err := cert.VerifyHostname(ip.String()); err != nil {
			return nil, fmt.Errorf("extca: the TLS certificate the signer returned: %w", err)
		}
	}
	if s.cfg.Audit != nil {
		ev := s.event(audit.ActionIssued, "", nil)
		ev.Serial = hex.EncodeToString(cert.SerialNumber.Bytes())
		ev.NotAfter = cert.NotAfter
		ev.IssuerKeyID = hex.EncodeToString(cert.AuthorityKeyId)
		ev.Details["purpose"] = "external CA TLS certificate"
		ev.Details["subject"] = cert.Subject.String()
		if _, err := s.cfg.Audit.AppendAudit(ctx, ev); err != nil {
			return nil, fmt.Errorf("the TLS certificate of the external CA endpoint was issued but not recorded in the audit log, so it is not used: %w", err)
		}
	}
	tc := &tls.Certificate{PrivateKey: key, Leaf: cert}
	for _, c := range presented {
		tc.Certificate = append(tc.Certificate, c.Raw)
	}
	return tc, nil
}

// renewAt is when a certificate is renewed: at two thirds of its
// lifetime.
func renewAt(c *x509.Certificate) time.Time {
	return c.NotBefore.Add(c.NotAfter.Sub(c.NotBefore) * 2 / 3)
}

// renewTLSCert renews the TLS certificate at two thirds of its lifetime
// until ctx is done. A failed renewal is logged and tried again after
// renewRetry; the old certificate is served meanwhile.
func (s *Server) renewTLSCert(ctx context.Context) {
	for {
		cur := s.cert.Load().Leaf
		wait := renewAt(cur).Sub(s.cfg.Clock.Now())
		if wait < 0 {
			wait = 0
		}
		select {
		case <-ctx.Done():
			return
		case <-s.cfg.Clock.After(wait):
		}
		for {
			c, err := s.issueTLSCert(ctx)
			if err == nil {
				s.cert.Store(c)
				s.log.Info("external CA TLS certificate renewed", "not_after", c.Leaf.NotAfter)
				break
			}
			if ctx.Err() != nil {
				return
			}
			s.log.Error("external CA TLS certificate renewal failed; retrying", "err", err, hint.Attr(err), "retry_in", renewRetry, "expires", cur.NotAfter)
			select {
			case <-ctx.Done():
				return
			case <-s.cfg.Clock.After(renewRetry):
			}
		}
	}
}
