package extca

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/hex"
	"fmt"
	"slices"
	"time"

	"github.com/chancery-pki/chancery/audit"
	"github.com/chancery-pki/chancery/ca"
	"github.com/chancery-pki/chancery/issuer"
	"github.com/chancery-pki/chancery/signer"
)

// IntermediatePathLen is the path length of the endpoint's intermediate: one
// CA below it, the swarm root it cross-signs during a swarm's rotation.
const IntermediatePathLen = 1

// The endpoint's own Issuer is an intermediate CA made under the cluster's
// Issuer in force, whose key is held in memory only and is used by nothing
// but the endpoint. It is made at the first use and made again, under the
// new Issuer, whenever the Issuer in force changes (a root rotation's phase,
// a change of leader); a new endpoint (a new leader) always makes a new one.
// The cluster's nodes refuse a manager certificate that chains through it
// (ca.IsExternalCA), so that what the endpoint issues for a swarm can never
// pass for one of the cluster's managers.

// madeIssuer is an endpoint Issuer and the cluster Issuer it was made under.
type madeIssuer struct {
	base *issuer.Issuer
	iss  *issuer.Issuer
}

// issuer returns the endpoint's Issuer for the cluster Issuer in force,
// making its intermediate when that Issuer changed. It returns
// issuer.ErrNoIssuer when no cluster Issuer is in force.
func (s *Server) issuer(ctx context.Context) (*issuer.Issuer, error) {
	base, err := s.cfg.Issuers.Current()
	if err != nil {
		return nil, err
	}
	if m := s.ext.Load(); m != nil && m.base == base {
		return m.iss, nil
	}
	s.extMu.Lock()
	defer s.extMu.Unlock()
	if m := s.ext.Load(); m != nil && m.base == base {
		return m.iss, nil
	}
	iss, err := s.makeIntermediate(ctx, base)
	if err != nil {
		return nil, err
	}
	s.ext.Store(&madeIssuer{base: base, iss: iss})
	s.log.Info("external CA endpoint: issuing intermediate made under the cluster's issuer in force",
		"subject", iss.CA().Subject.String(), "issuer", base.CA().Subject.String(), "not_after", iss.CA().NotAfter)
	return iss, nil
}

// loadedIssuer returns the endpoint's Issuer last made, or nil; it never
// makes one (for audit details).
func (s *Server) loadedIssuer() *issuer.Issuer {
	if m := s.ext.Load(); m != nil {
		return m.iss
	}
	return nil
}

// Intermediate returns the endpoint's issuing CA certificate for the
// cluster Issuer in force, making it if needed: every certificate the
// endpoint issues chains to the root through it.
func (s *Server) Intermediate(ctx context.Context) (*x509.Certificate, error) {
	iss, err := s.issuer(ctx)
	if err != nil {
		return nil, err
	}
	return iss.CA(), nil
}

// makeIntermediate generates a key and has base sign a CA certificate for
// it: CA:TRUE, path length IntermediatePathLen, subject CN=chancery external
// CA, OU=chancery-external-ca, O=the cluster ID, valid from now (backdated)
// to base's CA's end.
func (s *Server) makeIntermediate(ctx context.Context, base *issuer.Issuer) (*issuer.Issuer, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("extca: failed to generate the intermediate's key: %w", err)
	}
	subject := pkix.Name{CommonName: ca.ExternalCACommonName, OrganizationalUnit: []string{ca.ExternalCAUnit}}
	if s.cfg.ClusterID != "" {
		subject.Organization = []string{s.cfg.ClusterID}
	}
	csrDER, err := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{Subject: subject}, key)
	if err != nil {
		return nil, fmt.Errorf("extca: failed to make the intermediate's CSR: %w", err)
	}
	csr, err := x509.ParseCertificateRequest(csrDER)
	if err != nil {
		return nil, fmt.Errorf("extca: failed to parse the intermediate's CSR: %w", err)
	}
	baseCA := base.CA()
	now := s.cfg.Clock.Now()
	notBefore := now.Add(-ca.CertBackdate).Truncate(time.Second)
	if notBefore.Before(baseCA.NotBefore) {
		notBefore = baseCA.NotBefore
	}
	notAfter := baseCA.NotAfter
	if !notAfter.After(now) {
		return nil, fmt.Errorf("extca: the CA certificate %q has expired: the endpoint's intermediate cannot be made under it", baseCA.Subject)
	}
	ski, err := signer.SubjectKeyID(key.Public())
	if err != nil {
		return nil, err
	}
	out, err := base.Issue(ctx, &signer.Request{
		PublicKey: key.Public(),
		CSR:       csr,
		Profile:   signer.ProfileCA,
		Template: &x509.Certificate{
			Subject:               subject,
			NotBefore:             notBefore,
			NotAfter:              notAfter,
			KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign | x509.KeyUsageDigitalSignature,
			BasicConstraintsValid: true,
			IsCA:                  true,
			MaxPathLen:            IntermediatePathLen,
			SubjectKeyId:          ski,
		},
	})
	if err != nil {
		return nil, fmt.Errorf("extca: the cluster's issuer did not make the endpoint's intermediate (it needs the CA profile): %w", err)
	}
	// The intermediate's chain: itself, then the cluster issuer's chain up
	// to the root; what is handed out after each leaf is the intermediate,
	// the cluster's intermediates, then the cluster issuer's appendix (the
	// cross-signed new root during a rotation).
	cert := out.Certificate
	if err := ca.VerifyChain(out.Chain, []*x509.Certificate{base.Root()}, now); err != nil {
		return nil, fmt.Errorf("extca: the endpoint's intermediate does not chain to the root: %w", err)
	}
	if s.cfg.Audit != nil {
		ev := audit.Event{Action: audit.ActionIssued, Actor: s.cfg.Actor, Backend: base.Backend(),
			Serial: hex.EncodeToString(cert.SerialNumber.Bytes()), NotAfter: cert.NotAfter,
			IssuerKeyID: hex.EncodeToString(cert.AuthorityKeyId),
			Details:     map[string]string{"via": "external-ca", "purpose": "external CA intermediate", "subject": cert.Subject.String(), "profile": "CA"}}
		if _, err := s.cfg.Audit.AppendAudit(ctx, ev); err != nil {
			return nil, fmt.Errorf("the intermediate of the external CA endpoint was issued but not recorded in the audit log, so it is not used: %w", err)
		}
	}
	baseChain := base.Signer().Chain()
	local, err := signer.NewLocalIssuer(signer.LocalConfig{
		Key:         key,
		Chain:       slices.Concat([]*x509.Certificate{cert}, baseChain),
		Description: signer.Description{Backend: base.Backend(), Details: [][2]string{{"intermediate", "external CA endpoint, key in memory"}}},
	})
	if err != nil {
		return nil, fmt.Errorf("extca: %w", err)
	}
	appendix := base.After()[len(baseChain)-1:]
	var sg signer.Signer = local
	if s.cfg.wrapIntermediate != nil {
		sg = s.cfg.wrapIntermediate(local)
	}
	return issuer.New(sg, issuer.Options{Appendix: appendix, Now: s.cfg.Clock.Now})
}
