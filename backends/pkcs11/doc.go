// Package pkcs11 is the backend that keeps the root CA key in a PKCS#11
// token (an HSM, a smart card, SoftHSM2), through
// github.com/ThalesIgnite/crypto11 over github.com/miekg/pkcs11 (cgo).
//
// The key is chosen by an RFC 7512 PKCS#11 URI (see ParseURI), such as
//
//	pkcs11:token=chancery;object=root?module-path=/usr/lib/softhsm/libsofthsm2.so&pin-source=/etc/chancery/pin
//
// When the token holds no such key, `chancery init` generates one inside it
// (P-256 by default, P-384 or RSA-3072) with CKA_TOKEN, CKA_PRIVATE and
// CKA_SENSITIVE true and CKA_EXTRACTABLE false, so the private key is made in
// the token and can never leave it; an existing key is used when found by
// label or id. KeyInfo reads the key's attributes back from the token
// (CKA_SENSITIVE, CKA_EXTRACTABLE, CKA_NEVER_EXTRACTABLE, CKA_LOCAL) as
// evidence of that.
//
// The backend supplies only a crypto.Signer, Key: certificates come from
// signer.NewLocalIssuer, as for every backend that holds a key. Key signs
// concurrently through crypto11's bounded session pool, and when the
// sessions become invalid (CKR_SESSION_HANDLE_INVALID,
// CKR_USER_NOT_LOGGED_IN, CKR_DEVICE_REMOVED, CKR_TOKEN_NOT_PRESENT, the
// library finalized under it) it reopens the token, logs in again, finds the
// key again by its id and label and retries, a bounded number of times.
//
// `chancery ca --rotate` without flags makes the new root's key in the
// current root's token (Backend.NextRootSettings), labeled after the current
// key with the rotation's time. The retired root's key is left in the token
// when the rotation is done: HSM keys are the operator's to destroy.
//
// Errors start with "pkcs11: ", say what to do in their Hint (package hint),
// and never contain the PIN, in the message or the hint. A missing module,
// a missing token, a wrong PIN and a missing key each match their own
// sentinel (ErrModuleNotFound, ErrTokenNotFound, ErrWrongPIN,
// ErrKeyNotFound) with errors.Is.
//
// A PKCS#11 module is process-wide state: C_Initialize and C_Finalize apply
// to every user of the library in the process, and login state is shared by
// every session on a token. This package is meant to be the only user of a
// module in its process, and keeps track of the crypto11 contexts it has
// open on each module so that it initializes and finalizes the library in
// step with crypto11.
//
// The package needs cgo. In a build without it (CGO_ENABLED=0) the backend
// is still registered, and every operation fails with ErrNoCgo, which says
// to rebuild with cgo.
package pkcs11
