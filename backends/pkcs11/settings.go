package pkcs11

import (
	"fmt"
	"strconv"

	"github.com/chancery-pki/chancery/backends"
)

// Name is the backend's type name, as stored in the cluster's settings.
const Name = "pkcs11"

// Settings keys of the pkcs11 backend.
const (
	// SettingURI is the RFC 7512 URI of the key (`--pkcs11-uri`). The URI
	// CreateRoot returns names the key by label and id, keeps pin-source and
	// pin-env, and never holds pin-value.
	SettingURI = "uri"
	// SettingMaxSessions optionally bounds the sessions opened on the token
	// (default DefaultMaxSessions).
	SettingMaxSessions = "max_sessions"
	// SettingGenerated records whether CreateRoot generated the key ("true")
	// or found it in the token ("false"); DeleteRoot destroys only a
	// generated key. CreateRoot refuses it as input.
	SettingGenerated = backends.SettingGenerated
)

// configFromSettings reads the backend's settings. creating says whether
// they come from the command line (CreateRoot) or from the cluster record.
func configFromSettings(s backends.Settings, creating bool) (Config, error) {
	var cfg Config
	for k, v := range s {
		switch k {
		case SettingURI:
			cfg.URI = v
		case SettingMaxSessions:
			n, err := strconv.Atoi(v)
			if err != nil || n < 2 {
				return cfg, fmt.Errorf("pkcs11: setting %s must be a whole number of at least 2", SettingMaxSessions)
			}
			cfg.MaxSessions = n
		case SettingGenerated:
			if creating {
				return cfg, fmt.Errorf("pkcs11: setting %s is recorded by init, not given to it", SettingGenerated)
			}
		default:
			return cfg, fmt.Errorf("pkcs11: unknown setting %q (want %s, and optionally %s)", k, SettingURI, SettingMaxSessions)
		}
	}
	if cfg.URI == "" {
		return cfg, &Error{Kind: ErrInvalidURI, Msg: "no PKCS#11 URI given",
			Advice: "give one with --pkcs11-uri 'pkcs11:token=TOKEN;object=LABEL?module-path=/path/to/module.so&pin-source=/path/to/pin'"}
	}
	return cfg, nil
}
