package store

import (
	"context"
	"errors"

	"github.com/chancery-pki/chancery/audit"
)

// ErrNotEmpty is matched by Importer.Claim's error when the store holds
// records, and no import that may be taken over.
var ErrNotEmpty = errors.New("the target store is not empty")

// ErrImportClaimed is matched by Importer.Claim's error when another
// import holds the store, and by Import's when this one no longer does.
var ErrImportClaimed = errors.New("another import holds the target store")

// Importer is implemented by a Store that can take another store's records
// as they are, to move a cluster's state from one store to another
// (`chancery store migrate`): nodes and certificate records unchanged, and
// audit records byte for byte, under their own sequence numbers.
//
// An import goes into an empty store only. Records come in any number of
// Import calls; the last one carries the cluster record and the audit
// head, and until it commits the store holds no cluster, so that no
// manager uses a half-imported store. An import first claims the store
// (Claim), so that of two imports at once exactly one proceeds. A failed
// import is undone with Destroyer, which then deletes only while the
// import holds its claim.
type Importer interface {
	// Claim takes the store for one import by this Store, in one atomic
	// step: it fails with ErrNotEmpty when the store holds records, or
	// with ErrImportClaimed when another import holds it. An import of
	// the same source cluster that was abandoned (its process stopped,
	// or the removal of its records failed) is taken over, its records
	// deleted, once its claim has lapsed. source is the imported
	// cluster's ID.
	Claim(ctx context.Context, source string) error
	// Import writes b's records, in transactions of bounded size, while
	// this Store holds its claim (ErrImportClaimed once it does not). It
	// fails, writing nothing more, once the store holds a cluster record.
	// The batch that carries the cluster record ends the claim.
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
