package pkcs11

import (
	"errors"
	"strings"

	"github.com/chancery-pki/chancery/hint"
)

// Errors that callers may match with errors.Is. Each error this package
// returns for one of these conditions is an *Error that says which module,
// token or key, and what to do.
var (
	// ErrModuleNotFound means the PKCS#11 module (module-path) does not
	// exist or cannot be loaded.
	ErrModuleNotFound = errors.New("pkcs11: PKCS#11 module not found")
	// ErrTokenNotFound means no initialized token matches the URI's token
	// and serial attributes.
	ErrTokenNotFound = errors.New("pkcs11: token not found")
	// ErrWrongPIN means the token refused the PIN (CKR_PIN_INCORRECT), or
	// the PIN is locked or expired.
	ErrWrongPIN = errors.New("pkcs11: wrong PIN")
	// ErrKeyNotFound means the token holds no private key with the URI's
	// object label and id.
	ErrKeyNotFound = errors.New("pkcs11: key not found")
	// ErrNoPIN means the token needs a login and no PIN was given, or the
	// PIN could not be read from its file or environment variable.
	ErrNoPIN = errors.New("pkcs11: no PIN")
	// ErrAmbiguous means the URI matches more than one token or key.
	ErrAmbiguous = errors.New("pkcs11: the URI matches more than one object")
	// ErrInvalidURI means a PKCS#11 URI could not be parsed, or lacks what
	// chancery needs.
	ErrInvalidURI = errors.New("pkcs11: invalid PKCS#11 URI")
	// ErrKeyRefused means an existing key is not fit to be a root key: it
	// can leave the token, cannot sign, or is of an unsupported type.
	ErrKeyRefused = errors.New("pkcs11: key refused")
	// ErrClosed means the Key was used after Close.
	ErrClosed = errors.New("pkcs11: the key is closed")
)

// Error is an error of this package that says what failed and what to do:
// its message says what failed, and Advice, what to do, is its Hint
// (hint.Hinter), which a command line prints on a line of its own. It
// matches its Kind with errors.Is, and unwraps to its cause.
type Error struct {
	// Kind is one of the sentinel errors above, or nil.
	Kind error
	// Msg says what failed, in lower case, without the "pkcs11: " prefix.
	Msg string
	// Advice says what to do about it; it may be empty. It never holds a
	// PIN.
	Advice string
	// Err is the underlying error, such as a pkcs11.Error, or nil.
	Err error
}

func (e *Error) Error() string {
	var b strings.Builder
	b.WriteString("pkcs11: ")
	b.WriteString(e.Msg)
	if e.Err != nil {
		b.WriteString(": ")
		b.WriteString(e.Err.Error())
	}
	return b.String()
}

// Hint returns Advice.
func (e *Error) Hint() string { return e.Advice }

var _ hint.Hinter = (*Error)(nil)

// Is reports whether target is e's Kind.
func (e *Error) Is(target error) bool { return e.Kind != nil && target == e.Kind }

// Unwrap returns the underlying error.
func (e *Error) Unwrap() error { return e.Err }

// redactedError hides a secret that appeared in an error's message while
// keeping the error chain for errors.Is and errors.As.
type redactedError struct {
	msg string
	err error
}

func (e *redactedError) Error() string { return e.msg }
func (e *redactedError) Unwrap() error { return e.err }

// redact returns err with every occurrence of pin in its message replaced.
// No message built by this package contains the PIN; this guards against a
// module or library that echoes it.
func redact(err error, pin string) error {
	if err == nil || pin == "" {
		return err
	}
	msg := err.Error()
	if !strings.Contains(msg, pin) {
		return err
	}
	return &redactedError{msg: strings.ReplaceAll(msg, pin, "[PIN]"), err: err}
}
