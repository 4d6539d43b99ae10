package pkcs11

import (
	"crypto/sha256"
	"fmt"

	"github.com/chancery-pki/chancery/backends"
)

var _ backends.NextRooter = Backend{}

// NextRootSettings puts a rotation's new root key in the current root's
// token: the same token, module, PIN source and session bound, and a new
// key object whose label is the current one followed by "-ID" (replacing
// the suffix an earlier rotation added; backends.NextName) and whose id
// (CKA_ID) is 16 bytes derived from the current id and the new label, so
// that it names no key of the token's but the one CreateRoot generates.
//
// The key of the retired root stays in the token once the rotation is
// done, unless chancery generated it and the operator asked for its
// deletion (ca --rotate --delete-old-key): HSM keys are the operator's to
// destroy (pkcs11-tool --delete-object).
func (Backend) NextRootSettings(current backends.Settings, id string) (backends.Settings, error) {
	if id == "" {
		return nil, fmt.Errorf("pkcs11: a new root needs an id")
	}
	cfg, err := configFromSettings(current, false)
	if err != nil {
		return nil, err
	}
	u, err := ParseURI(cfg.URI)
	if err != nil {
		return nil, err
	}
	next := u.WithoutPINValue()
	next.Object = backends.NextName(u.Object, DefaultObjectLabel, id)
	sum := sha256.Sum256(append(append([]byte("chancery next root\x00"), u.ID...), "\x00"+next.Object...))
	next.ID = sum[:16]
	if _, err := ParseURI(next.String()); err != nil {
		return nil, fmt.Errorf("pkcs11: the new root's URI: %w", err)
	}
	out := backends.Settings{SettingURI: next.String()}
	if v, ok := current[SettingMaxSessions]; ok {
		out[SettingMaxSessions] = v
	}
	return out, nil
}
