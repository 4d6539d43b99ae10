// Package cluster ties the CA rules (package ca), a root's Signer (package
// signer, through the backends registry) and the state store (package store)
// into the operations of a cluster's manager: creating the cluster, issuing
// node certificates (through the issuer in force, package issuer), rotating
// join tokens, changing the certificate lifetime, reporting what the
// cluster is, and each change of a root rotation, one store transaction
// with its audit entry (rotate.go; the leader's reconciler in package
// manager decides when, with rotation.Step).
//
// It does no networking and prints nothing: the manager's API and the CLI
// call it.
package cluster

import (
	"context"
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/chancery-pki/chancery/backends"
	"github.com/chancery-pki/chancery/ca"
	"github.com/chancery-pki/chancery/signer"
	"github.com/chancery-pki/chancery/store"
	"github.com/chancery-pki/chancery/store/boltstore"
	// Registers the "etcd" store, which a data directory's store.json may
	// name.
	_ "github.com/chancery-pki/chancery/store/etcdstore"
)

// StoreFile is the embedded store's file in the data directory.
const StoreFile = boltstore.File

// ErrNoCluster means the data directory holds no cluster.
var ErrNoCluster = errors.New("cluster: this data directory holds no cluster: run `chancery init` first")

// ErrClusterExists means init was asked to create a cluster where one is.
var ErrClusterExists = errors.New("cluster: a cluster already exists in this data directory")

// StorePath returns the embedded store file's path in dataDir.
func StorePath(dataDir string) string { return boltstore.Path(dataDir, nil) }

// OpenStore opens the store of an existing cluster that dataDir's settings
// name (store.ReadSettings): the embedded store unless they say otherwise.
func OpenStore(dataDir string) (store.Store, error) {
	st, err := store.Open(context.Background(), dataDir, nil)
	if errors.Is(err, store.ErrNoStore) {
		return nil, fmt.Errorf("%w (%s)", ErrNoCluster, dataDir)
	}
	if err != nil {
		return nil, err
	}
	return st, nil
}

// HasStore reports whether dataDir is a manager's that reaches the
// cluster's state: its settings name a store that exists.
func HasStore(dataDir string) (bool, error) {
	return store.Exists(context.Background(), dataDir)
}

// Roots parses the cluster record's root bundle.
func Roots(c store.Cluster) ([]*x509.Certificate, error) {
	roots, err := ca.ParseCertificatesPEM(c.RootCAPEM)
	if err != nil {
		return nil, fmt.Errorf("the stored root CA bundle is unreadable: %w", err)
	}
	return roots, nil
}

// OpenSigner opens the Signer of the cluster's current root (see
// OpenRoot). overrides replace stored settings (for example a passphrase
// file given on the command line).
func OpenSigner(ctx context.Context, dataDir string, c store.Cluster, overrides backends.Settings, r io.Reader) (signer.Signer, error) {
	return OpenRoot(ctx, dataDir, c.CurrentRoot(), overrides, r)
}

// OpenRoot opens the Signer of root from the backend it names, issuing
// under the chain the record keeps: its intermediates, then the root.
func OpenRoot(ctx context.Context, dataDir string, root store.Root, overrides backends.Settings, r io.Reader) (signer.Signer, error) {
	b, err := backends.Get(root.Backend.Type)
	if err != nil {
		return nil, err
	}
	chain, err := RootChain(root)
	if err != nil {
		return nil, err
	}
	settings := backends.Settings(root.Backend.Settings).Clone()
	for k, v := range overrides {
		settings[k] = v
	}
	return b.Open(ctx, backends.OpenRequest{DataDir: dataDir, Settings: settings, Chain: chain, Rand: r})
}

// RootChain parses a root record's chain: its intermediates, the signing
// CA first, then the root.
func RootChain(root store.Root) ([]*x509.Certificate, error) {
	cert, err := ca.ParseCertificatesPEM(root.CertPEM)
	if err != nil {
		return nil, fmt.Errorf("the stored root certificate is unreadable: %w", err)
	}
	if len(cert) != 1 {
		return nil, fmt.Errorf("cluster: the stored root holds %d certificates, want 1", len(cert))
	}
	var chain []*x509.Certificate
	if len(root.IntermediatesPEM) > 0 {
		if chain, err = ca.ParseCertificatesPEM(root.IntermediatesPEM); err != nil {
			return nil, fmt.Errorf("the stored intermediates are unreadable: %w", err)
		}
	}
	return append(chain, cert[0]), nil
}

// Fingerprint is the SHA-256 fingerprint of a certificate's DER, as
// "sha256:" and lower case hex.
func Fingerprint(c *x509.Certificate) string {
	sum := sha256.Sum256(c.Raw)
	return "sha256:" + hex.EncodeToString(sum[:])
}

// timeNow is the default clock.
func timeNow() time.Time { return time.Now() }
