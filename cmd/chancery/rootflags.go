package main

import (
	"errors"
	"fmt"
	"os"

	"github.com/spf13/pflag"

	"github.com/chancery-pki/chancery/backends"
	"github.com/chancery-pki/chancery/backends/file"
	"github.com/chancery-pki/chancery/ca"
	"github.com/chancery-pki/chancery/hint"
	"github.com/chancery-pki/chancery/secretfile"
)

// rootFlags are the flags of a command that makes a root: where it lives
// (--backend and every backend's own flags, declared by the backends
// package), and what it is (the flags every backend shares: an imported
// root, or a new root's common name and key algorithm).
type rootFlags struct {
	fs                              *pflag.FlagSet
	backends                        *backends.CommandFlags
	cert, key, keyPassFile, cn, alg string
}

func addRootFlags(f *pflag.FlagSet) *rootFlags {
	r := &rootFlags{fs: f, backends: backends.DeclareFlags(f)}
	f.StringVar(&r.cert, "ca-cert", "", "import this root CA certificate (PEM) instead of creating one; needs --ca-key")
	f.StringVar(&r.key, "ca-key", "", "the private key (PEM) of the --ca-cert root, in a file of mode 0600 or 0400")
	f.StringVar(&r.keyPassFile, "ca-key-passphrase-file", "", "file (mode 0600 or 0400) holding the passphrase of an encrypted --ca-key")
	f.StringVar(&r.alg, "ca-key-algorithm", string(backends.DefaultKeyAlgorithm), "key algorithm of a new root: P-256, P-384 or RSA-3072")
	f.StringVar(&r.cn, "ca-common-name", ca.DefaultRootCN, "common name of a new root")
	return r
}

// request returns the backend the flags select and the root they ask it
// for, with an imported root's files read. Mistakes in the flags are
// refused before anything is read.
func (r *rootFlags) request() (backend string, req backends.CreateRootRequest, err error) {
	backend, req.Settings, err = r.backends.Select(backends.RootOptions{
		Cert:         r.cert != "",
		Key:          r.key != "",
		CommonName:   r.fs.Changed("ca-common-name"),
		KeyAlgorithm: r.fs.Changed("ca-key-algorithm"),
	})
	if err != nil {
		return "", req, err
	}
	req.CommonName = r.cn
	if r.fs.Changed("ca-key-algorithm") {
		req.KeyAlgorithm = r.alg // else the backend's default, or an existing key's
	}
	if r.cert != "" {
		if req.ImportCertPEM, err = os.ReadFile(r.cert); err != nil {
			return "", req, fmt.Errorf("failed to read --ca-cert: %w", err)
		}
	}
	if r.key != "" {
		// Read as every key file is: a root key that others may read is
		// refused, not copied into the cluster with a warning.
		if req.ImportKeyPEM, err = file.ReadKeyFile(r.key); err != nil {
			err = fmt.Errorf("--ca-key: %w", err)
			if errors.Is(err, secretfile.ErrUnsafe) {
				err = hint.With(err, "chancery imports a root key only from a file that no other user can read or change, as ssh uses a private key; if others could read it, it may already be copied: make a new root rather than import it")
			}
			return "", req, err
		}
		if req.ImportKeyPassphrase, err = file.ReadPassphrase(r.keyPassFile, ""); err != nil {
			return "", req, fmt.Errorf("--ca-key-passphrase-file: %w", err)
		}
	}
	return backend, req, nil
}
