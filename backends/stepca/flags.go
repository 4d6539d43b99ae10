package stepca

import (
	"github.com/spf13/pflag"

	"github.com/chancery-pki/chancery/backends"
)

var _ backends.FlagDeclarer = Backend{}

// Flags declares the stepca backend's flags, --stepca-url,
// --stepca-root-fingerprint, --stepca-provisioner, --stepca-password-file
// and --stepca-provisioner-key-file; any of them selects the backend. No
// flag takes a secret: the password is read from a file. Settings needs
// all but the key file, and refuses --ca-key (step-ca holds the key),
// --ca-common-name and --ca-key-algorithm (step-ca's root is used as it
// is).
func (Backend) Flags(fs *pflag.FlagSet) backends.FlagParser {
	u := fs.String("stepca-url", "", "use a step-ca as the CA: its address, https://HOST:PORT")
	fp := fs.String("stepca-root-fingerprint", "", "the SHA-256 fingerprint of step-ca's root (`step certificate fingerprint root_ca.crt`), pinned")
	prov := fs.String("stepca-provisioner", "", "the name of step-ca's JWK provisioner for chancery")
	pw := fs.String("stepca-password-file", "", "file (mode 0600) holding the JWK provisioner's password")
	key := fs.String("stepca-provisioner-key-file", "", "file holding the JWK provisioner's encrypted key (else the one step-ca lists)")
	return backends.FlagParserFunc(func(opts backends.RootOptions) (backends.Settings, error) {
		for _, f := range []struct{ v, flag string }{
			{*u, "stepca-url"}, {*fp, "stepca-root-fingerprint"}, {*prov, "stepca-provisioner"}, {*pw, "stepca-password-file"},
		} {
			if f.v == "" {
				return nil, &backends.FlagError{Msg: "the " + Name + " backend needs --" + f.flag,
					Advice: "give --stepca-url, --stepca-root-fingerprint, --stepca-provisioner and --stepca-password-file"}
			}
		}
		if _, err := ParseURL(*u); err != nil {
			return nil, &backends.FlagError{Msg: err.Error(), Advice: "for example --stepca-url https://ca.example:9000"}
		}
		if _, err := ParseFingerprint(*fp); err != nil {
			return nil, &backends.FlagError{Msg: err.Error(), Advice: "`step certificate fingerprint root_ca.crt` prints it"}
		}
		if opts.Key {
			return nil, &backends.FlagError{Msg: "--ca-key cannot be used with --stepca-url: step-ca holds the key",
				Advice: "give --ca-cert alone to name step-ca's root"}
		}
		for _, f := range []struct {
			given bool
			flag  string
		}{{opts.CommonName, "ca-common-name"}, {opts.KeyAlgorithm, "ca-key-algorithm"}} {
			if f.given {
				return nil, &backends.FlagError{Msg: "--" + f.flag + " does not apply to a step-ca: its root is used as it is"}
			}
		}
		return settings(Config{URL: *u, RootFingerprint: *fp, Provisioner: *prov, PasswordFile: *pw, KeyFile: *key}), nil
	})
}
