package stepca

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"errors"
	"fmt"
	"time"

	"github.com/go-jose/go-jose/v4"

	"github.com/chancery-pki/chancery/backends/file"
	"github.com/chancery-pki/chancery/ca"
)

// This file holds the X5C provisioner's credential: a certificate (and its
// intermediates) under one of the provisioner's roots, and its private key,
// which signs the tokens, the chain riding in their x5c header.

// maxCertFileSize bounds the X5C certificate file.
const maxCertFileSize = 1 << 20

// loadX5C reads the X5C credential: the certificate chain (leaf first) and
// the leaf's private key, from a file not readable by others, decrypted
// with password when it is encrypted PKCS#8. roots are the provisioner's
// roots as step-ca lists them (PEM); the leaf must chain to one, be valid
// at now and allow digital signatures. passwordSource says where the
// password came from, for errors.
func loadX5C(name, certFile, keyFile string, password []byte, passwordSource string, roots []byte, now time.Time) (*provisionerKey, error) {
	data, err := readLimited(certFile, maxCertFileSize)
	if err != nil {
		return nil, fmt.Errorf("stepca: the X5C certificate file: %w", err)
	}
	chain, err := ca.ParseCertificatesPEM(data)
	if err != nil {
		return nil, fmt.Errorf("stepca: the X5C certificate file %s: %w", certFile, err)
	}
	leaf := chain[0]
	keyPEM, err := readSecretFile(keyFile, maxKeyFileSize)
	if err != nil {
		return nil, fmt.Errorf("stepca: the X5C key file: %w", err)
	}
	key, err := file.ParseKey(keyPEM, password)
	clear(keyPEM)
	switch {
	case errors.Is(err, file.ErrWrongPassphrase):
		return nil, &PasswordError{Source: passwordSource, Reason: "wrong password for the X5C key in " + keyFile}
	case errors.Is(err, file.ErrPassphraseNeeded):
		return nil, fmt.Errorf("stepca: the X5C key file %s is encrypted: give its password with --stepca-password-file", keyFile)
	case err != nil:
		return nil, fmt.Errorf("stepca: the X5C key file %s: %v", keyFile, err)
	}
	if pk, ok := key.Public().(interface{ Equal(crypto.PublicKey) bool }); !ok || !pk.Equal(leaf.PublicKey) {
		return nil, fmt.Errorf("stepca: the X5C key in %s is not the key of the certificate %q in %s", keyFile, leaf.Subject, certFile)
	}
	if leaf.KeyUsage != 0 && leaf.KeyUsage&x509.KeyUsageDigitalSignature == 0 {
		return nil, fmt.Errorf("stepca: the X5C certificate %q does not allow digital signatures, which step-ca requires", leaf.Subject)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(roots) {
		return nil, fmt.Errorf("stepca: step-ca lists no roots for the X5C provisioner %q", name)
	}
	inter := x509.NewCertPool()
	for _, c := range chain[1:] {
		inter.AddCert(c)
	}
	if _, err := leaf.Verify(x509.VerifyOptions{Roots: pool, Intermediates: inter, CurrentTime: now, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageAny}}); err != nil {
		return nil, fmt.Errorf("stepca: the X5C certificate %q is not valid under the roots of provisioner %q: %v", leaf.Subject, name, err)
	}
	alg, err := algorithmOf(key)
	if err != nil {
		return nil, err
	}
	x5c := make([]string, len(chain))
	for i, c := range chain {
		x5c[i] = base64.StdEncoding.EncodeToString(c.Raw)
	}
	return &provisionerKey{name: name, kid: "x5c " + leaf.Subject.String(), alg: alg, key: key, x5c: x5c, leaf: leaf}, nil
}

// algorithmOf is the JWS algorithm a key signs tokens with.
func algorithmOf(key crypto.Signer) (jose.SignatureAlgorithm, error) {
	switch k := key.Public().(type) {
	case *ecdsa.PublicKey:
		switch k.Curve {
		case elliptic.P256():
			return jose.ES256, nil
		case elliptic.P384():
			return jose.ES384, nil
		case elliptic.P521():
			return jose.ES512, nil
		}
	case *rsa.PublicKey:
		return jose.RS256, nil
	case ed25519.PublicKey:
		return jose.EdDSA, nil
	}
	return "", fmt.Errorf("stepca: the X5C key (%T) cannot sign tokens", key.Public())
}
