package file

import (
	"crypto"
	"crypto/x509"
	"fmt"
	"time"

	"github.com/chancery-pki/chancery/ca"
)

// ImportRoot reads an existing root CA for `chancery init --ca-cert F
// --ca-key F` and checks it as swarm does (ca.CheckRootCA): the key matches
// the certificate, the certificate is a self-signed CA with a supported key
// type and signature algorithm, and it does not expire within a year.
// certPEM must hold exactly one certificate; keyPEM one private key,
// decrypted with passphrase when encrypted. Nothing is written.
func ImportRoot(certPEM, keyPEM, passphrase []byte, now time.Time) (*x509.Certificate, crypto.Signer, error) {
	certs, err := ca.ParseCertificatesPEM(certPEM)
	if err != nil {
		return nil, nil, fmt.Errorf("the CA certificate to import: %w", err)
	}
	if len(certs) != 1 {
		return nil, nil, fmt.Errorf("file: CA certificate: the file holds %d certificates, want exactly one root", len(certs))
	}
	key, err := ParseKey(keyPEM, passphrase)
	if err != nil {
		return nil, nil, err
	}
	if err := ca.CheckRootCA(certs[0], key.Public(), now); err != nil {
		return nil, nil, fmt.Errorf("refusing to import the root CA: %w", err)
	}
	return certs[0], key, nil
}
