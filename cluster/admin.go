package cluster

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/chancery-pki/chancery/audit"
	"github.com/chancery-pki/chancery/ca"
	"github.com/chancery-pki/chancery/store"
)

// JoinToken returns the current join token for role.
func JoinToken(ctx context.Context, st store.Store, role ca.Role) (string, error) {
	c, err := st.Cluster(ctx)
	if err != nil {
		return "", err
	}
	return tokenFor(c, role)
}

func tokenFor(c store.Cluster, role ca.Role) (string, error) {
	switch role {
	case ca.RoleWorker:
		return c.WorkerToken, nil
	case ca.RoleManager:
		return c.ManagerToken, nil
	}
	return "", fmt.Errorf("cluster: unknown role %q (want worker or manager)", role)
}

// RotateJoinToken replaces the secret of role's join token, keeping its root
// digest, and returns the new token. The old token stops working at once;
// nodes already joined are not affected.
func RotateJoinToken(ctx context.Context, st store.Store, role ca.Role, r io.Reader) (string, error) {
	if r == nil {
		r = rand.Reader
	}
	if !role.Valid() {
		return "", fmt.Errorf("cluster: unknown role %q (want worker or manager)", role)
	}
	var token string
	_, err := st.UpdateCluster(ctx, func(c *store.Cluster) error {
		old, err := tokenFor(*c, role)
		if err != nil {
			return err
		}
		if token, err = ca.RotateJoinToken(old, r); err != nil {
			return fmt.Errorf("the stored %s join token: %w", role.Short(), err)
		}
		if role == ca.RoleWorker {
			c.WorkerToken = token
		} else {
			c.ManagerToken = token
		}
		return nil
	}, audit.Event{Action: audit.ActionTokenRotated, Actor: audit.ActorFrom(ctx), Role: string(role)})
	if err != nil {
		return "", err
	}
	return token, nil
}

// ErrInvalidCertExpiry means a cert-expiry below ca.MinCertExpiry.
var ErrInvalidCertExpiry = errors.New("cluster: invalid cert-expiry")

// SetCertExpiry sets the lifetime of every node certificate issued from now
// on. It refuses anything below ca.MinCertExpiry; setting the current value
// changes and records nothing.
func SetCertExpiry(ctx context.Context, st store.Store, d time.Duration) error {
	if d < ca.MinCertExpiry {
		return fmt.Errorf("%w: %s is below the minimum of %s", ErrInvalidCertExpiry, d, ca.MinCertExpiry)
	}
	if c, err := st.Cluster(ctx); err == nil && c.CertExpiry == d {
		return nil
	}
	_, err := st.UpdateCluster(ctx, func(c *store.Cluster) error {
		c.CertExpiry = d
		return nil
	}, audit.Event{Action: audit.ActionCertExpiry, Actor: audit.ActorFrom(ctx), Details: map[string]string{"cert_expiry": d.String()}})
	return err
}

// MinCertRecordRetention is the shortest retention of expired certificates'
// records: a day, so that a record outlives any clock skew between managers
// and the certificate it describes.
const MinCertRecordRetention = 24 * time.Hour

// ErrInvalidRetention means a retention below MinCertRecordRetention.
var ErrInvalidRetention = errors.New("cluster: invalid cert-record-retention")

// SetCertRecordRetention sets how long the records of issued certificates
// are kept once expired (0: forever); the leader prunes older ones (see
// PruneCertificates). The audit log keeps every issuance whatever it is.
func SetCertRecordRetention(ctx context.Context, st store.Store, d time.Duration) error {
	if d != 0 && d < MinCertRecordRetention {
		return fmt.Errorf("%w: %s is below the minimum of %s (0 keeps every record)", ErrInvalidRetention, d, MinCertRecordRetention)
	}
	if c, err := st.Cluster(ctx); err == nil && c.CertRecordRetention == d {
		return nil
	}
	_, err := st.UpdateCluster(ctx, func(c *store.Cluster) error {
		c.CertRecordRetention = d
		return nil
	}, audit.Event{Action: audit.ActionRetention, Actor: audit.ActorFrom(ctx), Details: map[string]string{"cert_record_retention": d.String()}})
	return err
}

// PruneCertificates deletes, step by step, the records of certificates that
// expired more than the cluster's retention before now and are no node's
// current certificate, each step recording a certificates.pruned audit
// entry. It returns how many it deleted: none when the retention is 0 or
// the store is no store.Pruner.
func PruneCertificates(ctx context.Context, st store.Store, now time.Time) (int, error) {
	p, ok := st.(store.Pruner)
	if !ok {
		return 0, nil
	}
	c, err := st.Cluster(ctx)
	if err != nil {
		return 0, err
	}
	if c.CertRecordRetention <= 0 {
		return 0, nil
	}
	req := store.PruneRequest{
		ExpiredBefore: now.Add(-c.CertRecordRetention),
		Event:         audit.Event{Action: audit.ActionPruned, Actor: audit.ActorFrom(ctx)},
	}
	total := 0
	for {
		res, err := p.PruneIssuedCertificates(ctx, req)
		if err != nil {
			return total, err
		}
		total += res.Deleted
		if res.Next == "" {
			return total, nil
		}
		req.After = res.Next
	}
}

// Info is what `chancery info` shows of a cluster.
type Info struct {
	ClusterID  string
	Managers   int
	Nodes      int
	CertExpiry time.Duration
	// CertRecordRetention is how long expired certificates' records are
	// kept; 0 keeps them all.
	CertRecordRetention time.Duration
	Backend             string
	AdvertiseAddr       string
	// Root is the CA certificate nodes trust.
	RootSubject     string
	RootFingerprint string
	RootNotAfter    time.Time
}

// ReadInfo gathers Info from the store. Removed nodes are not counted.
func ReadInfo(ctx context.Context, st store.Store) (Info, error) {
	c, err := st.Cluster(ctx)
	if err != nil {
		return Info{}, err
	}
	nodes, err := st.Nodes(ctx)
	if err != nil {
		return Info{}, err
	}
	roots, err := Roots(c)
	if err != nil {
		return Info{}, err
	}
	info := Info{
		ClusterID:           c.ID,
		CertExpiry:          c.CertExpiry,
		CertRecordRetention: c.CertRecordRetention,
		Backend:             c.Backend.Type,
		AdvertiseAddr:       c.AdvertiseAddr,
		RootSubject:         roots[0].Subject.String(),
		RootFingerprint:     Fingerprint(roots[0]),
		RootNotAfter:        roots[0].NotAfter,
	}
	for _, n := range nodes {
		if n.State == store.StateRemoved {
			continue
		}
		info.Nodes++
		if n.Role == string(ca.RoleManager) {
			info.Managers++
		}
	}
	return info, nil
}
