package ca

import (
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"time"

	"github.com/chancery-pki/chancery/signer"
)

// ErrInvalidCSR is matched, with errors.Is, by every error about a node's
// certificate signing request, whether ParseCSR or the signer's request
// checks refused it. It is signer.ErrInvalidCSR.
var ErrInvalidCSR = signer.ErrInvalidCSR

// CSRError is ParseCSR's and NodeCertificateRequest's refusal of a
// certificate signing request. It matches ErrInvalidCSR. Its message is
// "ca: invalid CSR: " and Reason; an answer to the node can show Reason.
type CSRError struct {
	// Reason says what is wrong with the CSR: "empty", "bad signature:
	// ...", "public key: ...".
	Reason string
}

func (e *CSRError) Error() string { return "ca: invalid CSR: " + e.Reason }

// Is reports whether target is ErrInvalidCSR.
func (e *CSRError) Is(target error) bool { return target == ErrInvalidCSR }

func csrError(format string, args ...any) error {
	return &CSRError{Reason: fmt.Sprintf(format, args...)}
}

// NodeRequest asks for a node certificate.
type NodeRequest struct {
	// ClusterID becomes the subject's O.
	ClusterID string
	// NodeID becomes the subject's CN and a DNS name.
	NodeID string
	// Role becomes the subject's OU and a DNS name.
	Role Role
	// CSR is the node's certificate request, PEM or DER. Only its public key
	// is used: its subject and extensions are ignored. Its signature is
	// checked by the signer (signer.CheckRequest), so NodeCertificateRequest
	// refuses only what cannot be parsed or has an unsupported key.
	CSR []byte
	// Expiry is the certificate's lifetime from Now. Zero means
	// DefaultCertExpiry; below MinCertExpiry is refused.
	Expiry time.Duration
	// Now is the issuance time. NotBefore is Now backdated by CertBackdate.
	Now time.Time
}

// ParseCSR parses a PEM ("CERTIFICATE REQUEST") or DER CSR, checks its
// signature and its key type. Its errors are *CSRError values, which match
// ErrInvalidCSR.
func ParseCSR(data []byte) (*x509.CertificateRequest, error) {
	csr, err := parseCSR(data)
	if err != nil {
		return nil, err
	}
	if err := signer.CheckCSRSignature(csr); err != nil {
		return nil, csrError("%v", err)
	}
	return csr, nil
}

// parseCSR is ParseCSR without the signature check, for requests whose
// signature signer.CheckRequest checks: once per issuance is enough.
func parseCSR(data []byte) (*x509.CertificateRequest, error) {
	der := data
	if block, rest := pem.Decode(data); block != nil {
		if block.Type != "CERTIFICATE REQUEST" && block.Type != "NEW CERTIFICATE REQUEST" {
			return nil, csrError("PEM block is %q, want \"CERTIFICATE REQUEST\"", block.Type)
		}
		if len(trimSpace(rest)) != 0 {
			return nil, csrError("trailing data after the PEM block")
		}
		der = block.Bytes
	}
	if len(der) == 0 {
		return nil, csrError("empty")
	}
	csr, err := x509.ParseCertificateRequest(der)
	if err != nil {
		return nil, csrError("%v", err)
	}
	if err := signer.CheckPublicKey(csr.PublicKey); err != nil {
		return nil, csrError("public key: %v", err)
	}
	return csr, nil
}

func trimSpace(b []byte) []byte {
	for len(b) > 0 && (b[0] == ' ' || b[0] == '\n' || b[0] == '\r' || b[0] == '\t') {
		b = b[1:]
	}
	return b
}

// NodeDNSNames returns a node certificate's DNS names: the role and the node
// ID, and for managers also CADNSName.
func NodeDNSNames(nodeID string, role Role) []string {
	names := []string{string(role), nodeID}
	if role == RoleManager {
		names = append(names, CADNSName)
	}
	return names
}

// NodeSubject returns a node certificate's subject: O=cluster ID,
// OU=role, CN=node ID.
func NodeSubject(clusterID, nodeID string, role Role) pkix.Name {
	return pkix.Name{
		Organization:       []string{clusterID},
		OrganizationalUnit: []string{string(role)},
		CommonName:         nodeID,
	}
}

// NodeCertificateRequest turns nr into the request a signer.Signer signs
// under issuer, following the node certificate contract: subject
// O=cluster, OU=role, CN=node; DNS names from NodeDNSNames; digital signature
// and key encipherment; server and client authentication; CA:FALSE;
// NotBefore backdated by CertBackdate and NotAfter at Now+Expiry, both
// clamped to the issuer's validity, since a node certificate cannot outlive
// its chain.
func NodeCertificateRequest(nr NodeRequest, issuer *x509.Certificate) (*signer.Request, error) {
	if !ValidID(nr.ClusterID) {
		return nil, fmt.Errorf("ca: invalid cluster ID %q", nr.ClusterID)
	}
	if !ValidID(nr.NodeID) {
		return nil, fmt.Errorf("ca: invalid node ID %q", nr.NodeID)
	}
	if !nr.Role.Valid() {
		return nil, fmt.Errorf("ca: invalid role %q", nr.Role)
	}
	if issuer == nil {
		return nil, errors.New("ca: no issuer certificate")
	}
	expiry := nr.Expiry
	if expiry == 0 {
		expiry = DefaultCertExpiry
	}
	if expiry < MinCertExpiry {
		return nil, fmt.Errorf("ca: cert-expiry %s is below the minimum of %s", expiry, MinCertExpiry)
	}
	if nr.Now.IsZero() {
		return nil, errors.New("ca: node request has no issuance time")
	}
	csr, err := parseCSR(nr.CSR)
	if err != nil {
		return nil, err
	}
	notBefore := nr.Now.Add(-CertBackdate).Truncate(time.Second)
	notAfter := nr.Now.Add(expiry).Truncate(time.Second)
	if notBefore.Before(issuer.NotBefore) {
		notBefore = issuer.NotBefore
	}
	if notAfter.After(issuer.NotAfter) {
		notAfter = issuer.NotAfter
	}
	if !notAfter.After(nr.Now) {
		return nil, fmt.Errorf("ca: the CA certificate %q expired at %s: no node certificate can be issued under it", issuer.Subject, issuer.NotAfter.UTC().Format(time.RFC3339))
	}
	return &signer.Request{
		PublicKey: csr.PublicKey,
		CSR:       csr,
		Profile:   signer.ProfileNode,
		Template: &x509.Certificate{
			Subject:               NodeSubject(nr.ClusterID, nr.NodeID, nr.Role),
			DNSNames:              NodeDNSNames(nr.NodeID, nr.Role),
			NotBefore:             notBefore,
			NotAfter:              notAfter,
			KeyUsage:              x509.KeyUsageDigitalSignature | x509.KeyUsageKeyEncipherment,
			ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
			BasicConstraintsValid: true,
		},
	}, nil
}

// NodeIdentity is who a node certificate says its holder is.
type NodeIdentity struct {
	ClusterID string
	NodeID    string
	Role      Role
}

// IdentityOf reads the identity a node certificate carries and checks it
// against the contract: exactly one O, equal to clusterID; exactly one OU,
// a known role; a CN that is a valid node ID. It does not check the chain;
// see VerifyChain.
func IdentityOf(cert *x509.Certificate, clusterID string) (NodeIdentity, error) {
	s := cert.Subject
	if len(s.Organization) != 1 || s.Organization[0] != clusterID {
		return NodeIdentity{}, fmt.Errorf("ca: certificate %q is not for cluster %s", s, clusterID)
	}
	if len(s.OrganizationalUnit) != 1 || !Role(s.OrganizationalUnit[0]).Valid() {
		return NodeIdentity{}, fmt.Errorf("ca: certificate %q carries no known role", s)
	}
	if !ValidID(s.CommonName) {
		return NodeIdentity{}, fmt.Errorf("ca: certificate %q carries no valid node ID", s)
	}
	if cert.IsCA {
		return NodeIdentity{}, fmt.Errorf("ca: certificate %q is a CA, not a node certificate", s)
	}
	return NodeIdentity{ClusterID: clusterID, NodeID: s.CommonName, Role: Role(s.OrganizationalUnit[0])}, nil
}
