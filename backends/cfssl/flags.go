package cfssl

import (
	"github.com/spf13/pflag"

	"github.com/chancery-pki/chancery/backends"
)

var _ backends.FlagDeclarer = Backend{}

// Flags declares the cfssl backend's flags, --external-ca (repeatable, the
// SettingExternalCAPrefix settings in order) and --external-ca-auth-key-file
// (SettingAuthKeyFile); either selects the backend. Settings needs an
// external CA, and refuses --ca-key (the external CA holds its own key),
// --ca-common-name and --ca-key-algorithm (the external CA's root is used
// as it is).
func (Backend) Flags(fs *pflag.FlagSet) backends.FlagParser {
	specs := fs.StringArray("external-ca", nil, "use an external CFSSL CA: protocol=cfssl,url=https://HOST:PORT/api/v1/cfssl/sign[,cacert=FILE] (repeatable: tried in order)")
	authKeyFile := fs.String("external-ca-auth-key-file", "", "file (mode 0600 or 0400) holding the external CA's hex auth key, for authsign (else $"+AuthKeyEnv+")")
	return backends.FlagParserFunc(func(opts backends.RootOptions) (backends.Settings, error) {
		if len(*specs) == 0 {
			return nil, &backends.FlagError{Msg: "the " + Name + " backend needs --external-ca",
				Advice: "for example --external-ca protocol=cfssl,url=https://HOST:PORT/api/v1/cfssl/sign"}
		}
		if opts.Key {
			return nil, &backends.FlagError{Msg: "--ca-key cannot be used with --external-ca: the external CA holds the key",
				Advice: "give --ca-cert alone to name the root the external CA issues under"}
		}
		for _, f := range []struct {
			given bool
			flag  string
		}{{opts.CommonName, "ca-common-name"}, {opts.KeyAlgorithm, "ca-key-algorithm"}} {
			if f.given {
				return nil, &backends.FlagError{Msg: "--" + f.flag + " does not apply to an external CA"}
			}
		}
		return NewSettings(*specs, *authKeyFile), nil
	})
}
