package vault

import (
	"fmt"
	"strings"

	"github.com/chancery-pki/chancery/backends"
)

var _ backends.NextRooter = Backend{}

// NextRootSettings puts a rotation's new root in the current root's Vault,
// with the same address, namespace, TLS settings and credentials:
//
//   - with the PKI engine, a new issuer generated in the same mount (no
//     issuer setting: CreateRoot generates one, whose key never leaves
//     Vault);
//   - with the transit engine, a new key in the same mount, named after the
//     current one followed by "-ID" (replacing the suffix an earlier
//     rotation added; backends.NextName).
//
// The retired root's issuer or key stays in Vault once the rotation is
// done, unless chancery generated it and the operator asked for its
// deletion (ca --rotate --delete-old-key). The token needs the init policy's
// rights to make the new root (`chancery vault policy`, without --run), and
// afterwards the run policy of the new issuer or key.
func (Backend) NextRootSettings(current backends.Settings, id string) (backends.Settings, error) {
	if id == "" {
		return nil, configError("a new root needs an id")
	}
	cfg, err := ConfigFromSettings("", current)
	if err != nil {
		return nil, err
	}
	next := backends.Settings{}
	for k, v := range current {
		if userSettings[k] && k != SettingIssuer && k != SettingKey && strings.TrimSpace(v) != "" {
			next[k] = v
		}
	}
	next[SettingMount] = cfg.Mount
	if cfg.Engine == EngineTransit {
		next[SettingEngine] = EngineTransit
		next[SettingKey] = backends.NextName(cfg.Key, DefaultTransitKey, id)
		if err := CheckKeyName(next[SettingKey]); err != nil {
			return nil, fmt.Errorf("%w (the id %q makes no transit key name)", err, id)
		}
	}
	return next, nil
}
