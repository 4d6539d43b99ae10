// Package certdir reads and writes a node's own certificate files, laid out
// as swarm lays them out in its data directory, so that swarm habits such as
// `openssl x509 -in D/certificates/swarm-node.crt -text` carry over:
//
//	D/certificates/swarm-root-ca.crt   the root CA bundle the node trusts (0644)
//	D/certificates/swarm-node.crt      the node certificate and its chain (0644)
//	D/certificates/swarm-node.key      the node's private key, PKCS#8 PEM (0600)
//
// Every file is replaced atomically (a synced temporary file renamed over
// it, by internal/atomicfile), so a crash leaves either the old file or the
// new one.
package certdir

import (
	"crypto"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"github.com/chancery-pki/chancery/ca"
	"github.com/chancery-pki/chancery/internal/atomicfile"
	"github.com/chancery-pki/chancery/signer"
)

// File names inside the certificates directory.
const (
	Subdir       = "certificates"
	RootCAFile   = "swarm-root-ca.crt"
	NodeCertFile = "swarm-node.crt"
	NodeKeyFile  = "swarm-node.key"
)

// Dir is a node's certificates directory.
type Dir string

// In returns the certificates directory of the data directory dataDir.
func In(dataDir string) Dir { return Dir(filepath.Join(dataDir, Subdir)) }

// Path returns the path of the file name in d.
func (d Dir) Path(name string) string { return filepath.Join(string(d), name) }

// WriteRoot replaces the root CA bundle.
func (d Dir) WriteRoot(rootPEM []byte) error {
	if _, err := ca.ParseCertificatesPEM(rootPEM); err != nil {
		return fmt.Errorf("refusing to write an invalid root bundle: %w", err)
	}
	return d.write(RootCAFile, rootPEM, 0o644)
}

// pendingCert is where WriteNode stages a certificate whose key is being
// put in place; LoadNode finishes an interrupted swap from it.
const pendingCert = NodeCertFile + ".next"

// WriteNode replaces the node's key (0600) and certificate chain, leaf
// first. The new certificate is staged and synced first, then the key is
// renamed into place, then the certificate: a crash between the two renames
// leaves the staged certificate, which LoadNode puts in place, so the pair
// on disk always matches.
func (d Dir) WriteNode(key crypto.Signer, chain []*x509.Certificate) error {
	if len(chain) == 0 {
		return errors.New("certdir: no certificate to write")
	}
	if !matches(key, chain[0]) {
		return errors.New("certdir: the node key does not match the certificate")
	}
	der, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return fmt.Errorf("certdir: failed to encode the node key: %w", err)
	}
	if err := d.write(pendingCert, ca.EncodeCertificatesPEM(chain...), 0o644); err != nil {
		return err
	}
	if err := d.write(NodeKeyFile, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}), 0o600); err != nil {
		os.Remove(d.Path(pendingCert))
		return err
	}
	if err := os.Rename(d.Path(pendingCert), d.Path(NodeCertFile)); err != nil {
		return fmt.Errorf("certdir: failed to replace %s: %w", d.Path(NodeCertFile), err)
	}
	atomicfile.SyncDir(string(d))
	return nil
}

// LoadNode reads the node's key and certificate chain and checks that they
// match. If a WriteNode was interrupted between its renames, it finishes it.
func (d Dir) LoadNode() (crypto.Signer, []*x509.Certificate, error) {
	key, err := d.NodeKey()
	if err != nil {
		return nil, nil, err
	}
	chain, err := d.NodeChain()
	if err != nil {
		return nil, nil, err
	}
	if matches(key, chain[0]) {
		os.Remove(d.Path(pendingCert))
		return key, chain, nil
	}
	data, err := os.ReadFile(d.Path(pendingCert))
	if err == nil {
		if next, err := ca.ParseCertificatesPEM(data); err == nil && matches(key, next[0]) {
			if err := os.Rename(d.Path(pendingCert), d.Path(NodeCertFile)); err != nil {
				return nil, nil, fmt.Errorf("certdir: failed to finish replacing %s: %w", d.Path(NodeCertFile), err)
			}
			atomicfile.SyncDir(string(d))
			return key, next, nil
		}
	}
	return nil, nil, fmt.Errorf("certdir: %s does not match the key in %s", d.Path(NodeCertFile), d.Path(NodeKeyFile))
}

func matches(key crypto.Signer, cert *x509.Certificate) bool {
	return signer.SamePublicKey(key.Public(), cert.PublicKey)
}

// Root reads the root CA bundle.
func (d Dir) Root() ([]*x509.Certificate, []byte, error) {
	data, err := os.ReadFile(d.Path(RootCAFile))
	if err != nil {
		return nil, nil, fmt.Errorf("certdir: %w", err)
	}
	certs, err := ca.ParseCertificatesPEM(data)
	if err != nil {
		return nil, nil, fmt.Errorf("%s: %w", d.Path(RootCAFile), err)
	}
	return certs, data, nil
}

// NodeChain reads the node certificate and its chain, leaf first.
func (d Dir) NodeChain() ([]*x509.Certificate, error) {
	data, err := os.ReadFile(d.Path(NodeCertFile))
	if err != nil {
		return nil, fmt.Errorf("certdir: %w", err)
	}
	certs, err := ca.ParseCertificatesPEM(data)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", d.Path(NodeCertFile), err)
	}
	return certs, nil
}

// NodeKey reads the node's private key.
func (d Dir) NodeKey() (crypto.Signer, error) {
	data, err := os.ReadFile(d.Path(NodeKeyFile))
	if err != nil {
		return nil, fmt.Errorf("certdir: %w", err)
	}
	block, _ := pem.Decode(data)
	if block == nil || block.Type != "PRIVATE KEY" {
		return nil, fmt.Errorf("certdir: %s holds no PKCS#8 private key", d.Path(NodeKeyFile))
	}
	k, err := x509.ParsePKCS8PrivateKey(block.Bytes)
	if err != nil {
		return nil, fmt.Errorf("certdir: %s: %w", d.Path(NodeKeyFile), err)
	}
	s, ok := k.(crypto.Signer)
	if !ok {
		return nil, fmt.Errorf("certdir: %s: unsupported key type %T", d.Path(NodeKeyFile), k)
	}
	return s, nil
}

func (d Dir) write(name string, data []byte, mode os.FileMode) error {
	if err := os.MkdirAll(string(d), 0o755); err != nil {
		return fmt.Errorf("certdir: %w", err)
	}
	if err := atomicfile.Write(d.Path(name), data, mode); err != nil {
		return fmt.Errorf("certdir: %w", err)
	}
	return nil
}
