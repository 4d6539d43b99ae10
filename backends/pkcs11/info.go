package pkcs11

import (
	"encoding/hex"
	"strconv"
)

// KeyInfo says where a key lives and what its token says about it: the
// attributes are read back from the token, not remembered from when the key
// was made, so they are evidence that the key was generated in the token
// (CKA_LOCAL), has always been sensitive and never extractable, and cannot
// leave it.
type KeyInfo struct {
	// Module is the PKCS#11 module's path.
	Module string
	// TokenLabel, TokenSerial, TokenManufacturer and TokenModel are from
	// the token's CK_TOKEN_INFO.
	TokenLabel, TokenSerial, TokenManufacturer, TokenModel string
	// Label and ID are the private key's CKA_LABEL and CKA_ID.
	Label string
	ID    []byte
	// Algorithm is the key's algorithm: "P-256", "P-384", "RSA-3072".
	Algorithm string

	// The private key's attributes as the token reports them.
	Token            bool // CKA_TOKEN: stored in the token, not a session object
	Private          bool // CKA_PRIVATE: visible only after login
	Sensitive        bool // CKA_SENSITIVE: its value cannot be read
	AlwaysSensitive  bool // CKA_ALWAYS_SENSITIVE: it has never been readable
	Extractable      bool // CKA_EXTRACTABLE: it can be wrapped out of the token
	NeverExtractable bool // CKA_NEVER_EXTRACTABLE: it has never been extractable
	Local            bool // CKA_LOCAL: generated in the token, not imported
	Sign             bool // CKA_SIGN: it can sign
}

// Details returns the key's description as ordered key/value pairs, for
// signer.Description and `chancery info`: token, token serial, module,
// object (label), id (hex), algorithm, then the attributes CKA_TOKEN,
// CKA_PRIVATE, CKA_SENSITIVE, CKA_ALWAYS_SENSITIVE, CKA_EXTRACTABLE,
// CKA_NEVER_EXTRACTABLE and CKA_LOCAL as "true" or "false".
func (i KeyInfo) Details() [][2]string {
	b := strconv.FormatBool
	return [][2]string{
		{"token", i.TokenLabel},
		{"token serial", i.TokenSerial},
		{"token model", i.TokenManufacturer + " " + i.TokenModel},
		{"module", i.Module},
		{"object", i.Label},
		{"id", hex.EncodeToString(i.ID)},
		{"algorithm", i.Algorithm},
		{"CKA_TOKEN", b(i.Token)},
		{"CKA_PRIVATE", b(i.Private)},
		{"CKA_SENSITIVE", b(i.Sensitive)},
		{"CKA_ALWAYS_SENSITIVE", b(i.AlwaysSensitive)},
		{"CKA_EXTRACTABLE", b(i.Extractable)},
		{"CKA_NEVER_EXTRACTABLE", b(i.NeverExtractable)},
		{"CKA_LOCAL", b(i.Local)},
	}
}

// NeverLeavesToken reports whether the token vouches that the key was made
// in it and cannot leave it: sensitive, not extractable, never extractable,
// always sensitive, and local.
func (i KeyInfo) NeverLeavesToken() bool {
	return i.Sensitive && !i.Extractable && i.NeverExtractable && i.AlwaysSensitive && i.Local
}
