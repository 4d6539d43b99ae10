package cfsslwire

import (
	"bytes"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"

	"github.com/chancery-pki/chancery/secretfile"
)

// MaxAuthKeyFileSize bounds an auth key file. CFSSL's keys are 16 or 32
// bytes, written in hex.
const MaxAuthKeyFileSize = 4 << 10

// AuthKey is an HMAC-SHA-256 key shared with a CFSSL CA, as in the
// auth_keys section of CFSSL's configuration (type "standard"). Whatever the
// verb, formatting an AuthKey prints "[redacted]": the key never reaches a
// message or a log by accident.
type AuthKey struct {
	key []byte
}

// ParseAuthKey decodes a hex auth key, as CFSSL writes them; white space
// around it is ignored. Its errors never quote the key.
func ParseAuthKey(hexKey []byte) (*AuthKey, error) {
	s := bytes.TrimSpace(hexKey)
	if len(s) == 0 {
		return nil, errors.New("cfssl: the auth key is empty")
	}
	key := make([]byte, hex.DecodedLen(len(s)))
	if _, err := hex.Decode(key, s); err != nil {
		// hex's error quotes the offending character: a piece of the key.
		return nil, errors.New("cfssl: the auth key is not hex (CFSSL's auth keys are hex strings, such as 32 hex digits)")
	}
	if len(key) < MinAuthKeyBytes {
		return nil, fmt.Errorf("cfssl: the auth key is %d bytes; use at least %d (%d hex digits)", len(key), MinAuthKeyBytes, 2*MinAuthKeyBytes)
	}
	return &AuthKey{key: key}, nil
}

// MinAuthKeyBytes is the shortest HMAC auth key accepted: 128 bits.
const MinAuthKeyBytes = 16

// ReadAuthKey reads a hex auth key from the file at path when path is not
// empty, else from the environment variable env. The file must be a
// regular file owned by the user running chancery, mode 0600 or 0400
// (secretfile.Open); one that others may read gives an error that matches
// secretfile.ErrUnsafe. Errors name the file or variable, never the key.
func ReadAuthKey(path, env string) (*AuthKey, error) {
	switch {
	case path != "":
		f, err := secretfile.Open(path)
		if err != nil {
			return nil, fmt.Errorf("cfssl: failed to read the auth key file: %w", err)
		}
		defer f.Close()
		data, err := io.ReadAll(io.LimitReader(f, MaxAuthKeyFileSize+1))
		if err != nil {
			return nil, fmt.Errorf("cfssl: failed to read the auth key file %s: %w", path, err)
		}
		if len(data) > MaxAuthKeyFileSize {
			return nil, fmt.Errorf("cfssl: the auth key file %s is larger than %d bytes", path, MaxAuthKeyFileSize)
		}
		k, err := ParseAuthKey(data)
		if err != nil {
			return nil, fmt.Errorf("%w, in the file %s", err, path)
		}
		return k, nil
	case env != "":
		v, ok := os.LookupEnv(env)
		if !ok || v == "" {
			return nil, fmt.Errorf("cfssl: the environment variable %s, which should hold the auth key, is not set", env)
		}
		k, err := ParseAuthKey([]byte(v))
		if err != nil {
			return nil, fmt.Errorf("%w, in $%s", err, env)
		}
		return k, nil
	}
	return nil, errors.New("cfssl: no auth key file or environment variable given")
}

// Token returns CFSSL's authsign token for request (the JSON of a sign
// request): HMAC-SHA-256 under the key, as CFSSL's "standard" provider
// computes it with no additional data.
func (k AuthKey) Token(request []byte) []byte {
	m := hmac.New(sha256.New, k.key)
	m.Write(request)
	return m.Sum(nil)
}

// Verify reports whether token is request's authsign token under the key.
// The comparison takes constant time.
func (k AuthKey) Verify(request, token []byte) bool {
	return hmac.Equal(k.Token(request), token)
}

// Format prints "[redacted]" for every verb.
func (k AuthKey) Format(f fmt.State, verb rune) { io.WriteString(f, "[redacted]") }

// String returns "[redacted]".
func (k AuthKey) String() string { return "[redacted]" }

// GoString returns "[redacted]".
func (k AuthKey) GoString() string { return "[redacted]" }
