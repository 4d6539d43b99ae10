package store

import (
	"context"
	"errors"
	"time"

	"github.com/chancery-pki/chancery/audit"
)

// Pruner is implemented by stores that can delete the records of issued
// certificates that expired long ago, so that a cluster whose nodes renew
// for years does not keep every record forever. The audit log is never
// pruned: its certificate.issued and certificate.renewed entries keep the
// history of every certificate. Callers test for it with a type assertion;
// a store without it keeps every record.
type Pruner interface {
	// PruneIssuedCertificates examines at most req.Scan certificate
	// records in serial order after req.After, deletes those that expired
	// before req.ExpiredBefore and are no node's current certificate, and
	// appends req.Event, with the count and the cutoff in its Details, in
	// the same transaction when it deleted any. Next is the serial to pass
	// as After to go on, "" once the scan reached the end.
	PruneIssuedCertificates(ctx context.Context, req PruneRequest) (PruneResult, error)
}

// PruneRequest asks a Pruner for one step of a prune.
type PruneRequest struct {
	// ExpiredBefore is the cutoff: records whose NotAfter is before it go.
	ExpiredBefore time.Time
	// After is the serial the step starts after; "" for the first.
	After string
	// Scan is the most records one step examines (and so the size of its
	// transaction); 0 means DefaultPruneScan.
	Scan int
	// Event is the audit event the step records when it deletes records,
	// such as {Action: audit.ActionPruned, Actor: ...}.
	Event audit.Event
}

// PruneResult is the outcome of one step of a prune.
type PruneResult struct {
	// Examined and Deleted count the records the step read and removed.
	Examined, Deleted int
	// Next is the serial to continue after, "" at the end of the records.
	Next string
}

// DefaultPruneScan is PruneRequest.Scan's default.
const DefaultPruneScan = 10000

// Audit details of a prune's event.
const (
	DetailPruned        = "pruned"
	DetailExpiredBefore = "expired_before"
)

// CheckPruneRequest checks a PruneRequest and applies the default scan, so
// every store refuses the same input.
func CheckPruneRequest(req PruneRequest) (PruneRequest, error) {
	switch {
	case req.ExpiredBefore.IsZero():
		return req, errors.New("store: prune: no cutoff given (ExpiredBefore)")
	case req.Scan < 0:
		return req, errors.New("store: prune: a negative scan size")
	case req.Event.Action == "":
		return req, errors.New("store: prune: no audit event given")
	case req.Scan == 0:
		req.Scan = DefaultPruneScan
	}
	return req, nil
}
