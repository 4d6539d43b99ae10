package store

import (
	"context"

	"github.com/chancery-pki/chancery/audit"
)

// Importer is implemented by a Store that can take another store's records
// as they are, to move a cluster's state from one store to another
// (`chancery store migrate`): nodes and certificate records unchanged, and
// audit records byte for byte, under their own sequence numbers.
//
// An import goes into an empty store only. Records come in any number of
// Import calls; the last one carries the cluster record and the audit
// head, and until it commits the store holds no cluster, so that no
// manager uses a half-imported store. A failed import is undone with
// Destroyer.
type Importer interface {
	// Empty reports whether the store holds nothing at all.
	Empty(ctx context.Context) (bool, error)
	// Import writes b's records, in transactions of bounded size. It
	// fails, writing nothing more, once the store holds a cluster record.
	Import(ctx context.Context, b ImportBatch) error
}

// ImportBatch is records for Importer.Import.
type ImportBatch struct {
	// Nodes and Certificates are stored as they are.
	Nodes        []Node
	Certificates []IssuedCertificate
	// Audit are audit records as AuditRecords returns them: each is
	// stored under its Key, its Data unchanged.
	Audit []audit.Record
	// Cluster, when set, is the cluster record, stored as it is (Version
	// included) in the import's last transaction together with Head, the
	// audit log's head after the last record imported.
	Cluster *Cluster
	Head    audit.Head
}
