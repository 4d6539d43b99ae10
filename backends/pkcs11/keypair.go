//go:build cgo

package pkcs11

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rsa"
	"fmt"
	"strings"

	"github.com/ThalesIgnite/crypto11"

	"github.com/chancery-pki/chancery/signer"
)

// generateKey makes a key pair of alg in the token with id and label. The
// private key is a token object, private, sensitive, not extractable, and
// can sign only; the public key can verify only.
func (tc *tokenConn) generateKey(alg Algorithm, id []byte, label string) (crypto11.Signer, error) {
	pub, err := crypto11.NewAttributeSetWithIDAndLabel(id, []byte(label))
	if err != nil {
		return nil, err
	}
	priv := pub.Copy()
	set := func(s crypto11.AttributeSet, kv ...any) error {
		for i := 0; i < len(kv); i += 2 {
			if err := s.Set(kv[i].(crypto11.AttributeType), kv[i+1]); err != nil {
				return err
			}
		}
		return nil
	}
	if err := set(priv,
		crypto11.CkaToken, true, crypto11.CkaPrivate, true,
		crypto11.CkaSensitive, true, crypto11.CkaExtractable, false,
		crypto11.CkaSign, true, crypto11.CkaDecrypt, false, crypto11.CkaUnwrap, false,
	); err != nil {
		return nil, err
	}
	if err := set(pub,
		crypto11.CkaToken, true, crypto11.CkaPrivate, false,
		crypto11.CkaVerify, true, crypto11.CkaEncrypt, false, crypto11.CkaWrap, false,
	); err != nil {
		return nil, err
	}
	switch alg {
	case P256, "":
		priv.Set(crypto11.CkaDerive, false)
		return tc.c11.GenerateECDSAKeyPairWithAttributes(pub, priv, elliptic.P256())
	case P384:
		priv.Set(crypto11.CkaDerive, false)
		return tc.c11.GenerateECDSAKeyPairWithAttributes(pub, priv, elliptic.P384())
	case RSA3072:
		return tc.c11.GenerateRSAKeyPairWithAttributes(pub, priv, 3072)
	}
	return nil, fmt.Errorf("pkcs11: unknown key algorithm %q (want P-256, P-384 or RSA-3072)", alg)
}

// findKey returns the one key pair that matches the URI's object label and
// id.
func (tc *tokenConn) findKey(u *URI) (crypto11.Signer, error) {
	var id, label []byte
	if len(u.ID) > 0 {
		id = u.ID
	}
	if u.Object != "" {
		label = []byte(u.Object)
	}
	keys, err := tc.c11.FindKeyPairs(id, label)
	if err != nil {
		return nil, &Error{Msg: fmt.Sprintf("failed to search token %q for the key", tc.token.Label), Err: err}
	}
	switch {
	case len(keys) == 1:
		return keys[0], nil
	case len(keys) > 1 || tc.matches > 1:
		return nil, &Error{Kind: ErrAmbiguous,
			Msg:    fmt.Sprintf("%d private keys in token %q have %s", max(len(keys), tc.matches), tc.token.Label, describeKeySelector(u)),
			Advice: "add id= (or a more specific object=) to the URI; list the keys with `pkcs11-tool --module " + u.ModulePath + " --token-label " + shellQuote(tc.token.Label) + " --login --list-objects --type privkey`"}
	case tc.matches == 1:
		return nil, &Error{Kind: ErrKeyRefused,
			Msg:    fmt.Sprintf("the private key with %s in token %q has no CKA_ID, or no public key object with the same CKA_ID", describeKeySelector(u), tc.token.Label),
			Advice: "chancery needs the key pair's public half in the token; set matching ids with `pkcs11-tool --set-id`"}
	}
	return nil, &Error{Kind: ErrKeyNotFound,
		Msg:    fmt.Sprintf("token %q holds no private key with %s", tc.token.Label, describeKeySelector(u)),
		Advice: "check object= and id= in the URI (`chancery init` generates the key when it is missing)"}
}

func describeKeySelector(u *URI) string {
	switch {
	case u.Object != "" && len(u.ID) > 0:
		return fmt.Sprintf("label %q and id %x", u.Object, u.ID)
	case len(u.ID) > 0:
		return fmt.Sprintf("id %x", u.ID)
	}
	return fmt.Sprintf("label %q", u.Object)
}

// shellQuote quotes s for a shell command in a hint.
func shellQuote(s string) string {
	if s != "" && strings.Trim(s, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_./:") == "" {
		return s
	}
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}

// algorithmOf names a public key's algorithm.
func algorithmOf(pub crypto.PublicKey) string {
	switch k := pub.(type) {
	case *ecdsa.PublicKey:
		return k.Curve.Params().Name
	case *rsa.PublicKey:
		return fmt.Sprintf("RSA-%d", k.N.BitLen())
	}
	return fmt.Sprintf("%T", pub)
}

// checkKeyUsable refuses an existing key that is not fit to be a root key.
func checkKeyUsable(info KeyInfo, pub crypto.PublicKey) error {
	if err := signer.CheckPublicKey(pub); err != nil {
		return &Error{Kind: ErrKeyRefused, Msg: fmt.Sprintf("key %q in token %q: %v", info.Label, info.TokenLabel, err)}
	}
	if !info.Sensitive || info.Extractable {
		return &Error{Kind: ErrKeyRefused,
			Msg: fmt.Sprintf("key %q in token %q can leave the token (CKA_SENSITIVE %t, CKA_EXTRACTABLE %t)",
				info.Label, info.TokenLabel, info.Sensitive, info.Extractable),
			Advice: "a root key must be sensitive and not extractable: pick another object= and let `chancery init` generate it in the token"}
	}
	if !info.Sign {
		return &Error{Kind: ErrKeyRefused, Msg: fmt.Sprintf("key %q in token %q cannot sign (CKA_SIGN false)", info.Label, info.TokenLabel)}
	}
	return nil
}

// keyAttributes are the attributes readKeyInfo reads, in KeyInfo's order.
var keyAttributes = []crypto11.AttributeType{
	crypto11.CkaLabel, crypto11.CkaId,
	crypto11.CkaToken, crypto11.CkaPrivate, crypto11.CkaSensitive, crypto11.CkaAlwaysSensitive,
	crypto11.CkaExtractable, crypto11.CkaNeverExtractable, crypto11.CkaLocal, crypto11.CkaSign,
}

// readKeyInfo reads key's attributes from the token.
func (tc *tokenConn) readKeyInfo(key crypto11.Signer) (KeyInfo, error) {
	attrs, err := tc.c11.GetAttributes(key, keyAttributes)
	if err != nil {
		return KeyInfo{}, &Error{Msg: fmt.Sprintf("failed to read the key's attributes from token %q", tc.token.Label), Err: err}
	}
	val := func(t crypto11.AttributeType) []byte {
		if a := attrs[t]; a != nil {
			return a.Value
		}
		return nil
	}
	flag := func(t crypto11.AttributeType) bool {
		v := val(t)
		return len(v) == 1 && v[0] != 0
	}
	return KeyInfo{
		Module:            tc.module,
		TokenLabel:        tc.token.Label,
		TokenSerial:       tc.token.SerialNumber,
		TokenManufacturer: tc.token.ManufacturerID,
		TokenModel:        tc.token.Model,
		Label:             string(val(crypto11.CkaLabel)),
		ID:                append([]byte(nil), val(crypto11.CkaId)...),
		Algorithm:         algorithmOf(key.Public()),
		Token:             flag(crypto11.CkaToken),
		Private:           flag(crypto11.CkaPrivate),
		Sensitive:         flag(crypto11.CkaSensitive),
		AlwaysSensitive:   flag(crypto11.CkaAlwaysSensitive),
		Extractable:       flag(crypto11.CkaExtractable),
		NeverExtractable:  flag(crypto11.CkaNeverExtractable),
		Local:             flag(crypto11.CkaLocal),
		Sign:              flag(crypto11.CkaSign),
	}, nil
}
