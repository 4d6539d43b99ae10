//go:build cgo

package pkcs11

import (
	"errors"

	"github.com/miekg/pkcs11"
)

// ckr returns the PKCS#11 return value in err's chain, following both
// Unwrap and the Cause method of the github.com/pkg/errors wrappers that
// crypto11 uses.
func ckr(err error) (pkcs11.Error, bool) {
	for err != nil {
		var pe pkcs11.Error
		if errors.As(err, &pe) {
			return pe, true
		}
		c, ok := err.(interface{ Cause() error })
		if !ok {
			return 0, false
		}
		err = c.Cause()
	}
	return 0, false
}

// isCKR reports whether err carries the return value rv.
func isCKR(err error, rv uint) bool {
	pe, ok := ckr(err)
	return ok && uint(pe) == rv
}

// sessionLost reports whether err means that the sessions, the login or the
// token went away, so that reopening the token may cure it.
func sessionLost(err error) bool {
	pe, ok := ckr(err)
	if !ok {
		return false
	}
	switch uint(pe) {
	case pkcs11.CKR_SESSION_HANDLE_INVALID,
		pkcs11.CKR_SESSION_CLOSED,
		pkcs11.CKR_USER_NOT_LOGGED_IN,
		pkcs11.CKR_DEVICE_REMOVED,
		pkcs11.CKR_DEVICE_ERROR,
		pkcs11.CKR_TOKEN_NOT_PRESENT,
		pkcs11.CKR_TOKEN_NOT_RECOGNIZED,
		pkcs11.CKR_CRYPTOKI_NOT_INITIALIZED,
		pkcs11.CKR_KEY_HANDLE_INVALID,
		pkcs11.CKR_OBJECT_HANDLE_INVALID,
		pkcs11.CKR_SLOT_ID_INVALID:
		return true
	}
	return false
}
