package file

import (
	"github.com/spf13/pflag"

	"github.com/chancery-pki/chancery/backends"
)

var _ backends.FlagDeclarer = Backend{}

// Flags declares the file backend's flag, --ca-passphrase-file (the
// SettingPassphraseFile setting). The file backend is backends.Default: its
// flag selects it only in that the flags of another backend may not be
// given with it. Settings refuses --ca-cert or --ca-key given alone.
func (Backend) Flags(fs *pflag.FlagSet) backends.FlagParser {
	passFile := fs.String("ca-passphrase-file", "", "encrypt the root key file with the passphrase in this file, mode 0600 or 0400 (else $"+PassphraseEnv+" when set)")
	return backends.FlagParserFunc(func(opts backends.RootOptions) (backends.Settings, error) {
		if opts.Cert != opts.Key {
			return nil, &backends.FlagError{Msg: "--ca-cert and --ca-key go together", Advice: "give both to import an existing root, or neither to create one"}
		}
		s := backends.Settings{}
		if *passFile != "" {
			s[SettingPassphraseFile] = *passFile
		}
		return s, nil
	})
}
