package pkcs11

import (
	"io"
	"log/slog"
)

// DefaultMaxSessions bounds the sessions a Key opens on its token: one that
// keeps the login alive and a pool of DefaultMaxSessions-1 for concurrent
// signing. Signers beyond the pool wait for a session.
const DefaultMaxSessions = 16

// DefaultRetries is how many times Key.Sign reopens the token and tries
// again after the token's sessions were lost.
const DefaultRetries = 3

// Config opens a key in a PKCS#11 token.
type Config struct {
	// URI selects the module (module-path), the token (token and/or
	// serial) and the key (object and/or id), and says where the PIN comes
	// from (pin-source, pin-env or pin-value; else $CHANCERY_PKCS11_PIN).
	// A URI with pin-value holds the PIN: do not log it; URI.String drops it.
	URI string
	// MaxSessions bounds the sessions opened on the token: one keeps the
	// login, the others are a pool for concurrent signing. Zero means
	// DefaultMaxSessions.
	MaxSessions int
	// Retries is how many times Sign reopens the token and tries again after
	// the sessions were lost. Zero means DefaultRetries, negative none.
	Retries int
	// Logger gets a warning each time the token is reopened. Nil means
	// slog.Default().
	Logger *slog.Logger
	// LookupEnv reads the PIN's environment variable. Nil means
	// os.LookupEnv.
	LookupEnv func(string) (string, bool)
	// Rand is the source of a generated key's CKA_ID. Nil means
	// crypto/rand.
	Rand io.Reader
}
