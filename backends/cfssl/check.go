package cfssl

import (
	"crypto/x509"
	"errors"
	"time"

	"github.com/chancery-pki/chancery/signer"
)

// This file checks a certificate CFSSL returned against the request, with
// signer.CheckIssued and CFSSL's declared tolerance. Anything that differs
// is a *MismatchError and the certificate is discarded.

// clockSkew is how far in the future a returned certificate's NotBefore may
// lie, to allow for the CA's clock.
const clockSkew = 5 * time.Minute

// tolerance is how CFSSL's certificates may differ from the local issuer's:
// its profile sets the validity and the order of the extended key usages,
// its key the signature algorithm; and as a remote CA, every signature is
// verified.
var tolerance = signer.Tolerance{
	AnyExtKeyUsageOrder:   true,
	AnySignatureAlgorithm: true,
	ValidityFromCA:        true,
	NotBeforeSkew:         clockSkew,
	VerifySignature:       true,
}

// IssuedTolerance declares CFSSL's differences from the local issuer (see
// signer.Tolerance).
func (s *Signer) IssuedTolerance() signer.Tolerance { return tolerance }

// hints say what usually causes a difference in a field.
var hints = map[string]string{
	"key usage":          "CFSSL takes key usages from its profile's usages",
	"extended key usage": "CFSSL takes extended key usages from its profile's usages",
	"basic constraints":  "CFSSL sets CA:TRUE only with a profile whose ca_constraint has is_ca",
	"extensions":         "the CFSSL profile must not add OCSP, CRL or issuer URLs, policies or other extensions",
}

// checkIssued checks cert, returned by the CA at u for req, against the
// request and the issuer (signer.CheckIssued): validity comes from the CA's
// profile, not the request, so the certificate must be valid at now
// (allowing clockSkew for the CA's clock) and must not outlive the issuer.
func checkIssued(u string, req *signer.Request, cert, issuer *x509.Certificate, wantSubject []byte, now time.Time) error {
	err := signer.CheckIssued(cert, req, issuer, signer.IssuedCheck{Tolerance: tolerance, Now: now})
	var ie *signer.IssuedError
	if !errors.As(err, &ie) {
		return err
	}
	me := &MismatchError{URL: u, Field: ie.Field, Got: ie.Got, Want: ie.Want, Advice: hints[ie.Field]}
	t := req.Template
	switch ie.Field {
	case "issuer":
		me.Want += ", the subject of the CA certificate reported by /info"
	case "signature":
		me.Want = "one by the key of the CA certificate reported by /info"
	case "public key":
		me.Want = "the CSR's " + ie.Want
	case "subject":
		if len(cert.RawSubject) > len(wantSubject) {
			me.Advice = "CFSSL copies from the CSR the subject attributes the request leaves empty, such as C, ST and L: the CSR must carry none of them"
		}
	case "subject key id":
		if t.IsCA {
			me.Want += ", the new root's"
			me.Advice = "CFSSL versions that ignore the request's extensions compute the SHA-1 of the public key (RFC 5280 method 1); a root whose key ID was computed otherwise, such as with truncated SHA-256, cannot be cross-signed by them"
		} else {
			me.Advice = "CFSSL's signer gives every certificate the SHA-1 of its public key (RFC 5280 method 1), as chancery's local issuer does"
		}
	case "validity":
		if cert.NotAfter.After(issuer.NotAfter) {
			me.Advice = "the profile's expiry reaches past the CA certificate: shorten it, or renew the CA"
		}
	}
	return me
}
