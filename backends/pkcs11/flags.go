package pkcs11

import (
	"github.com/spf13/pflag"

	"github.com/chancery-pki/chancery/backends"
)

var _ backends.FlagDeclarer = Backend{}

// Flags declares the pkcs11 backend's flag, --pkcs11-uri (the SettingURI
// setting), which selects the backend. Settings needs the URI, and refuses
// --ca-key: a private key cannot be imported into the token through
// chancery.
func (Backend) Flags(fs *pflag.FlagSet) backends.FlagParser {
	uri := fs.String("pkcs11-uri", "", "keep the root key in a PKCS#11 token: an RFC 7512 URI, pkcs11:token=T;object=L?module-path=M&pin-source=F (the key is generated there if missing)")
	return backends.FlagParserFunc(func(opts backends.RootOptions) (backends.Settings, error) {
		if *uri == "" {
			return nil, &backends.FlagError{Msg: "the " + Name + " backend needs --pkcs11-uri",
				Advice: "for example --pkcs11-uri 'pkcs11:token=T;object=L?module-path=M&pin-source=F'"}
		}
		if opts.Key {
			return nil, &backends.FlagError{Msg: "--ca-key cannot be used with the " + Name + " backend: the key must be in the token",
				Advice: "import the key with pkcs11-tool --write-object, then give --ca-cert alone"}
		}
		return backends.Settings{SettingURI: *uri}, nil
	})
}
