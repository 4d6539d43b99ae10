package extca

import (
	"context"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"encoding/hex"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strconv"
	"time"

	"github.com/chancery-pki/chancery/ca"
	"github.com/chancery-pki/chancery/hint"
	"github.com/chancery-pki/chancery/signer"
)

// This file turns a checked sign request into a signer.Request, has the
// Issuer in force issue it (which checks what comes back against the
// request before it leaves), and answers the Issuer's errors.

// issued is a certificate the Issuer returned, with the chain the answer
// carries after it.
type issued struct {
	cert  *x509.Certificate
	chain []*x509.Certificate
}

// issue signs req under the Issuer in force at now.
func (s *Server) issue(ctx context.Context, req *signRequest, now time.Time) (*issued, *Refusal) {
	iss, err := s.issuer(ctx)
	if err != nil {
		s.log.Warn("external CA endpoint: no issuer", "err", err)
		return nil, unavailable()
	}
	caCert := iss.CA()
	var (
		sreq *signer.Request
		r    *Refusal
	)
	if req.profile == ProfileCA {
		sreq, r = s.caRequest(req, caCert, now)
	} else {
		sreq, r = s.nodeRequest(req, caCert, now)
	}
	if r != nil {
		return nil, r
	}
	out, err := iss.Issue(ctx, sreq)
	if err != nil {
		return nil, s.signRefusal(err)
	}
	return &issued{cert: out.Certificate, chain: out.Chain}, nil
}

// nodeRequest applies the node certificate contract (ca.NodeCertificateRequest)
// with the configured cert-expiry.
func (s *Server) nodeRequest(req *signRequest, issuer *x509.Certificate, now time.Time) (*signer.Request, *Refusal) {
	sreq, err := ca.NodeCertificateRequest(ca.NodeRequest{
		ClusterID: req.clusterID, NodeID: req.nodeID, Role: req.role,
		CSR: req.csrDER, Expiry: s.cfg.CertExpiry, Now: now,
	}, issuer)
	switch {
	case errors.Is(err, ca.ErrInvalidCSR):
		return nil, csrRefusal(err)
	case err != nil:
		s.log.Error("cannot build a node certificate request", "err", err)
		return nil, internal("the CA cannot issue node certificates now: see the CA's log")
	}
	return sreq, nil
}

// caRequest builds a cross-signed CA certificate: the CSR's subject byte
// for byte and its public key, CA:TRUE with the request's path length,
// certificate and CRL signing, the request's subject key ID or else the
// SHA-1 one that swarm's and CFSSL's roots carry, valid from now
// backdated for CAExpiry.
func (s *Server) caRequest(req *signRequest, issuer *x509.Certificate, now time.Time) (*signer.Request, *Refusal) {
	csr, err := ca.ParseCSR(req.csrDER)
	if err != nil {
		return nil, csrRefusal(err)
	}
	var rdns pkix.RDNSequence
	if rest, err := asn1.Unmarshal(csr.RawSubject, &rdns); err != nil || len(rest) != 0 || len(rdns) == 0 {
		return nil, policyRefusal("the CSR's subject is empty: a cross-signed certificate carries the subject of the CA whose key made the CSR")
	}
	if r := subjectAgrees(req, csr); r != nil {
		return nil, r
	}
	skid := req.skid
	if skid == nil {
		if skid, err = signer.SubjectKeyID(csr.PublicKey); err != nil {
			return nil, csrRefusal(err)
		}
	}
	notBefore, notAfter := validity(now, s.cfg.CAExpiry, issuer)
	if !notAfter.After(now) {
		return nil, internal("the CA's certificate has expired: it cannot cross-sign")
	}
	t := &x509.Certificate{
		RawSubject:            csr.RawSubject,
		Subject:               csr.Subject,
		NotBefore:             notBefore,
		NotAfter:              notAfter,
		IsCA:                  true,
		BasicConstraintsValid: true,
		MaxPathLen:            req.maxPathLen,
		MaxPathLenZero:        req.maxPathLen == 0,
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
		SubjectKeyId:          skid,
	}
	return &signer.Request{PublicKey: csr.PublicKey, CSR: csr, Template: t, Profile: signer.ProfileCA}, nil
}

// subjectAgrees checks that the request's subject, when given, says what
// the CSR's does: its CN, and each name value present in the CSR's subject.
// The certificate carries the CSR's subject byte for byte either way.
func subjectAgrees(req *signRequest, csr *x509.CertificateRequest) *Refusal {
	s := req.subject
	if s == nil {
		return nil
	}
	ok := s.CN == "" || s.CN == csr.Subject.CommonName
	for _, n := range s.Names {
		for _, kv := range []struct {
			v   string
			set []string
		}{
			{n.C, csr.Subject.Country}, {n.ST, csr.Subject.Province}, {n.L, csr.Subject.Locality},
			{n.O, csr.Subject.Organization}, {n.OU, csr.Subject.OrganizationalUnit},
		} {
			if kv.v != "" && !slices.Contains(kv.set, kv.v) {
				ok = false
			}
		}
	}
	if !ok {
		return policyRefusal("subject: the request's subject differs from the CSR's (%s): a cross-signed certificate carries the CSR's subject byte for byte, so send the same or leave subject out",
			quote(csr.Subject.String()))
	}
	return nil
}

// validity is now backdated by ca.CertBackdate to now+lifetime, in whole
// seconds, cut to the issuer's validity.
func validity(now time.Time, lifetime time.Duration, issuer *x509.Certificate) (notBefore, notAfter time.Time) {
	notBefore = now.Add(-ca.CertBackdate).Truncate(time.Second)
	notAfter = now.Add(lifetime).Truncate(time.Second)
	if notBefore.Before(issuer.NotBefore) {
		notBefore = issuer.NotBefore
	}
	if notAfter.After(issuer.NotAfter) {
		notAfter = issuer.NotAfter
	}
	return notBefore, notAfter
}

// signRefusal answers a Signer's error: a refused CSR is the client's, any
// other failure the CA's, logged and not shown.
func (s *Server) signRefusal(err error) *Refusal {
	var re *signer.RequestError
	if errors.As(err, &re) && (re.Field == "csr" || re.Field == "public key") {
		return csrRefusal(err)
	}
	var ie *signer.IssuedError
	if errors.As(err, &ie) {
		s.log.Error("the signer returned a certificate that differs from the request; it was withheld", "field", ie.Field, "err", err, hint.Attr(err))
		return internal(fmt.Sprintf("the CA returned a certificate whose %s differs from the request; it was withheld: see the CA's log", ie.Field))
	}
	s.log.Error("the signer failed", "err", err, hint.Attr(err))
	return internal("the CA failed to sign: see the CA's log; try again later")
}

// unavailable answers a request while no Issuer is in force (the manager
// is not the leader, or is stopping).
func unavailable() *Refusal {
	return &Refusal{Status: http.StatusServiceUnavailable, Code: http.StatusServiceUnavailable, Reason: reasonInternal,
		Message: "the CA does not issue certificates now; try again later"}
}

// csrRefusal refuses a request whose CSR package ca or the Signer refused:
// it says what is wrong with the CSR, from the refusal's fields.
func csrRefusal(err error) *Refusal {
	msg := err.Error()
	var ce *ca.CSRError
	var re *signer.RequestError
	switch {
	case errors.As(err, &ce):
		msg = "invalid CSR: " + ce.Reason
	case errors.As(err, &re):
		msg = "invalid request: " + re.Field + ": " + re.Reason
	}
	return withCode(CodeCSRParse, reasonBadCSR, "certificate_request: %s", oneLine(msg))
}

func internal(msg string) *Refusal {
	return &Refusal{Status: http.StatusInternalServerError, Code: http.StatusInternalServerError, Reason: reasonInternal, Message: msg}
}

// serialHex is a certificate's serial as the store writes it.
func serialHex(c *x509.Certificate) string { return hex.EncodeToString(c.SerialNumber.Bytes()) }

func itoa(n int64) string { return strconv.FormatInt(n, 10) }
