package cluster

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"fmt"
	"time"

	"github.com/chancery-pki/chancery/audit"
	"github.com/chancery-pki/chancery/issuer"
	"github.com/chancery-pki/chancery/signer"
	"github.com/chancery-pki/chancery/store"
)

// Checkpoint binds the audit log's head to the CA key: iss issues a
// checkpoint certificate naming the head (audit.CheckpointRequest) for a
// throwaway key, which is then dropped, and the certificate is recorded as a
// checkpoint entry. An empty log, or one whose head is already a
// checkpoint, is left alone (the returned entry is nil).
func Checkpoint(ctx context.Context, st store.Store, iss *issuer.Issuer, now time.Time) (*audit.Entry, error) {
	if iss == nil {
		return nil, issuer.ErrNoIssuer
	}
	head, err := st.AuditHead(ctx)
	if err != nil {
		return nil, err
	}
	if head.Seq == 0 {
		return nil, nil
	}
	recs, err := st.AuditRecords(ctx, head.Seq, 1)
	if err != nil {
		return nil, err
	}
	if len(recs) > 0 {
		if last, err := audit.Unmarshal(recs[len(recs)-1].Data); err == nil && last.Action == audit.ActionCheckpoint {
			return nil, nil
		}
	}
	c, err := st.Cluster(ctx)
	if err != nil {
		return nil, err
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("cluster: failed to generate the checkpoint key: %w", err)
	}
	var csr *x509.CertificateRequest
	if signer.CapabilitiesOf(iss.Signer()).NeedsCSR {
		der, err := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{}, key)
		if err != nil {
			return nil, fmt.Errorf("cluster: failed to make the checkpoint CSR: %w", err)
		}
		if csr, err = x509.ParseCertificateRequest(der); err != nil {
			return nil, fmt.Errorf("cluster: failed to make the checkpoint CSR: %w", err)
		}
	}
	out, err := iss.Issue(ctx, audit.CheckpointRequest(c.ID, head, key.Public(), csr, iss.CA(), now))
	if err != nil {
		return nil, fmt.Errorf("failed to sign the audit checkpoint: %w", err)
	}
	entries, err := st.AppendAudit(ctx, audit.CheckpointEvent(audit.ActorFrom(ctx), iss.Backend(), head, out.Chain))
	if err != nil {
		return nil, err
	}
	return &entries[0], nil
}
