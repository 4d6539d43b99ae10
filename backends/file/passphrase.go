package file

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"

	"github.com/chancery-pki/chancery/secretfile"
)

// PassphraseEnv is the environment variable that holds a key file's
// passphrase when no passphrase file is given.
const PassphraseEnv = "CHANCERY_CA_PASSPHRASE"

// MaxPassphraseBytes bounds a passphrase file's size.
const MaxPassphraseBytes = 4096

// ReadPassphrase returns the passphrase from the file at path when path is
// not empty, else from the environment variable env when it is set, else
// nil. A passphrase file must be a regular file owned by the user running
// chancery, mode 0600 or 0400 (secretfile.Open): one that others may read
// gives an error that matches secretfile.ErrUnsafe. Its trailing newline is
// dropped; an empty or oversized one is an error. Errors name the file or
// variable, never the passphrase.
func ReadPassphrase(path, env string) ([]byte, error) {
	if path != "" {
		f, err := secretfile.Open(path)
		if err != nil {
			return nil, fmt.Errorf("file: failed to read the passphrase file: %w", err)
		}
		defer f.Close()
		// Bounded even for a file whose size says nothing (a FIFO, a device).
		data, err := io.ReadAll(io.LimitReader(f, MaxPassphraseBytes+1))
		if err != nil {
			return nil, fmt.Errorf("file: failed to read the passphrase file: %w", err)
		}
		if len(data) > MaxPassphraseBytes {
			return nil, fmt.Errorf("file: the passphrase file %s is larger than %d bytes", path, MaxPassphraseBytes)
		}
		data = bytes.TrimRight(data, "\r\n")
		if len(data) == 0 {
			return nil, fmt.Errorf("file: the passphrase file %s is empty", path)
		}
		return data, nil
	}
	if env == "" {
		return nil, nil
	}
	v, ok := os.LookupEnv(env)
	if !ok {
		return nil, nil
	}
	if v == "" {
		return nil, errors.New("file: the environment variable " + env + " is set but empty")
	}
	return []byte(v), nil
}
