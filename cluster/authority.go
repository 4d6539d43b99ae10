package cluster

import (
	"context"
	"crypto/x509"
	"encoding/hex"
	"errors"
	"fmt"
	"time"

	"github.com/chancery-pki/chancery/audit"
	"github.com/chancery-pki/chancery/ca"
	"github.com/chancery-pki/chancery/issuer"
	"github.com/chancery-pki/chancery/signer"
	"github.com/chancery-pki/chancery/store"
)

// ErrNodeRemoved means a certificate or a role change was asked for a node
// that was removed from the cluster; it must join again with a token.
var ErrNodeRemoved = &RefusalError{Reason: "the node was removed from the cluster and must join again with a join token"}

// ErrRoleChanged means the node's role changed while its certificate was
// being issued; the certificate is withheld, and the node asks again.
var ErrRoleChanged = errors.New("cluster: the node's role changed during issuance; ask again")

// Authority issues node certificates: it applies the node certificate policy,
// has the issuer in force sign (package issuer, which checks the result
// against the request), checks that the chain handed out verifies under the
// roots the cluster trusts, and records it in the store.
type Authority struct {
	store   store.Store
	issuers *issuer.Holder
	now     func() time.Time
}

// NewAuthority returns an Authority over st that issues with the Issuer
// issuers holds at each call, so that replacing it (a root rotation, a
// change of leader) applies to the next certificate. now nil means
// time.Now.
func NewAuthority(st store.Store, issuers *issuer.Holder, now func() time.Time) *Authority {
	if now == nil {
		now = timeNow
	}
	return &Authority{store: st, issuers: issuers, now: now}
}

// Issuers returns the holder of the Issuer the Authority issues with.
func (a *Authority) Issuers() *issuer.Holder { return a.issuers }

// Signer returns the Signer of the Issuer in force, or nil when none is.
func (a *Authority) Signer() signer.Signer {
	if i := a.issuers.Load(); i != nil {
		return i.Signer()
	}
	return nil
}

// IssueRequest asks for a node certificate.
type IssueRequest struct {
	// NodeID is the node's ID: a new one for a joining node, its own for a
	// renewal.
	NodeID string
	// Role is the role to certify: from the join token for a join, from the
	// store for a renewal.
	Role ca.Role
	// Hostname is recorded in the node registry when not empty.
	Hostname string
	// CSR is the node's certificate request, PEM or DER.
	CSR []byte
	// Limit, when not nil, bounds this renewal: one the node asked for of
	// its own accord. It is refused with a *RenewalLimitError when the
	// node's bucket is empty.
	Limit *RenewalLimit
}

// Issued is an issued node certificate with the chain a node presents.
type Issued struct {
	// Certificate is the node certificate.
	Certificate *x509.Certificate
	// Chain is Certificate followed by any intermediates, without the root:
	// what the node writes to swarm-node.crt and presents in TLS.
	Chain []*x509.Certificate
	// Node is the node's record after issuance.
	Node store.Node
}

// IssueNodeCertificate issues a node certificate under the cluster's current
// settings (its ID and cert-expiry are read from the store at each call, so
// a change applies to every certificate issued after it), checks the result
// against the cluster's roots and the node contract, and records it and the
// node in the store. A removed node is refused with ErrNodeRemoved, also when
// the removal commits during issuance; a role change during issuance gives
// ErrRoleChanged, and nothing is recorded.
func (a *Authority) IssueNodeCertificate(ctx context.Context, req IssueRequest) (*Issued, error) {
	c, err := a.store.Cluster(ctx)
	if err != nil {
		return nil, err
	}
	node, err := a.store.Node(ctx, req.NodeID)
	action := audit.ActionRenewed
	switch {
	case errors.Is(err, store.ErrNotFound):
		node = store.Node{ID: req.NodeID, State: store.StateReady}
		action = audit.ActionIssued
	case err != nil:
		return nil, err
	case node.State == store.StateRemoved:
		return nil, ErrNodeRemoved
	}
	now := a.now()
	if req.Limit != nil && action == audit.ActionRenewed {
		if err := req.Limit.take(&node, c.CertExpiry, now); err != nil {
			return nil, err
		}
	}
	iss, err := a.issuers.Current()
	if err != nil {
		return nil, err
	}
	sreq, err := ca.NodeCertificateRequest(ca.NodeRequest{
		ClusterID: c.ID, NodeID: req.NodeID, Role: req.Role, CSR: req.CSR, Expiry: c.CertExpiry, Now: now,
	}, iss.CA())
	if err != nil {
		return nil, err
	}
	out, err := iss.Issue(ctx, sreq)
	if err != nil {
		return nil, err
	}
	cert := out.Certificate
	if err := a.check(c, out.Chain, now); err != nil {
		return nil, err
	}
	node.Role = string(req.Role)
	if req.Hostname != "" {
		node.Hostname = req.Hostname
	}
	node.CertSerial = signer.SerialHex(cert.SerialNumber)
	node.CertNotAfter = cert.NotAfter
	node.CertIssuerKeyID = hex.EncodeToString(cert.AuthorityKeyId)
	rec := store.IssuedCertificate{
		Serial:      node.CertSerial,
		NodeID:      req.NodeID,
		Role:        string(req.Role),
		NotBefore:   cert.NotBefore,
		NotAfter:    cert.NotAfter,
		IssuerKeyID: hex.EncodeToString(cert.AuthorityKeyId),
		IssuedAt:    now,
	}
	ev := audit.Event{
		Action: action, Actor: audit.ActorFrom(ctx), NodeID: req.NodeID, Role: string(req.Role),
		Serial: rec.Serial, NotAfter: rec.NotAfter, IssuerKeyID: rec.IssuerKeyID, Backend: iss.Backend(),
	}
	if action == audit.ActionRenewed {
		// Keep whatever state the store holds; RecordIssuance refuses a node
		// removed meanwhile.
		node.State = ""
	}
	// The certificate is signed: record it even if the caller has gone
	// away meanwhile, so that every signature the CA made is in the store
	// and the audit log. The write still has a bound of its own.
	rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), recordTimeout)
	defer cancel()
	if err := a.store.RecordIssuance(rctx, node, rec, ev); err != nil {
		if errors.Is(err, store.ErrConflict) {
			if n, rerr := a.store.Node(ctx, req.NodeID); rerr == nil && n.State == store.StateRemoved {
				return nil, ErrNodeRemoved
			}
			return nil, fmt.Errorf("%w: %v", ErrRoleChanged, err)
		}
		return nil, fmt.Errorf("the certificate was signed but not recorded, so it is withheld: %w", err)
	}
	return &Issued{Certificate: cert, Chain: out.Chain, Node: node}, nil
}

// recordTimeout bounds the store write that records a certificate once it
// is signed, which no longer follows the caller's context.
const recordTimeout = 30 * time.Second

// check verifies the chain handed out under the roots the cluster trusts,
// as nodes will: the Issuer checked the certificate against its request.
func (a *Authority) check(c store.Cluster, chain []*x509.Certificate, now time.Time) error {
	roots, err := Roots(c)
	if err != nil {
		return err
	}
	if err := ca.VerifyChain(chain, roots, now); err != nil {
		return fmt.Errorf("the issued certificate does not chain to the cluster root: %w", err)
	}
	return nil
}
