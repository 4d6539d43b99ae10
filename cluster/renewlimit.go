package cluster

import (
	"fmt"
	"math"
	"time"

	"github.com/chancery-pki/chancery/ca"
	"github.com/chancery-pki/chancery/store"
)

// Defaults of RenewalLimit: a node may renew of its own accord 5 times at
// once, and 10 more times per certificate lifetime (the cluster's
// cert-expiry).
const (
	DefaultRenewalBurst        = 5
	DefaultRenewalsPerLifetime = 10
)

// RenewalLimit bounds the renewals a node asks for of its own accord, so
// that one node cannot grow the store's issued-certificate records and the
// audit log without limit: a bucket of Burst renewals, refilled at
// PerLifetime per certificate lifetime. The bucket is kept in the node's
// record (store.Node.RenewalTokens), written with the certificate it pays
// for, so a manager's restart or another manager does not refill it.
// Renewals the manager asks for (a root rotation, a role change, a
// certificate nearing its expiry) are not counted: see IssueRequest.Limit.
type RenewalLimit struct {
	Burst       int
	PerLifetime int
}

// DefaultRenewalLimit is the RenewalLimit of DefaultRenewalBurst and
// DefaultRenewalsPerLifetime.
var DefaultRenewalLimit = RenewalLimit{Burst: DefaultRenewalBurst, PerLifetime: DefaultRenewalsPerLifetime}

// RenewalLimitError refuses a renewal over the node's RenewalLimit.
type RenewalLimitError struct {
	NodeID string
	// RetryAfter is when the node's bucket holds a renewal again.
	RetryAfter time.Duration
}

func (e *RenewalLimitError) Error() string {
	return fmt.Sprintf("node %s renewed too often: try again in %s (a node renews of its own accord at most a few times per certificate lifetime; the manager asks for the renewals it needs)",
		e.NodeID, e.RetryAfter.Round(time.Second))
}

// take spends one renewal of n's bucket at now, for certificates of the
// lifetime expiry, or says how long until one is there.
func (l RenewalLimit) take(n *store.Node, expiry time.Duration, now time.Time) error {
	if expiry <= 0 {
		expiry = ca.DefaultCertExpiry
	}
	burst := float64(max(l.Burst, 1))
	per := float64(max(l.PerLifetime, 1))
	every := float64(expiry) / per // nanoseconds per renewal
	tokens := burst
	if !n.RenewalTokensAt.IsZero() {
		tokens = n.RenewalTokens
		if el := now.Sub(n.RenewalTokensAt); el > 0 {
			tokens += float64(el) / every
		}
		tokens = math.Min(tokens, burst)
	}
	if tokens < 1 {
		return &RenewalLimitError{NodeID: n.ID, RetryAfter: time.Duration(math.Ceil((1 - tokens) * every))}
	}
	n.RenewalTokens, n.RenewalTokensAt = tokens-1, now
	return nil
}
