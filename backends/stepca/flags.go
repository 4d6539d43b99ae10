package stepca

import (
	"github.com/spf13/pflag"

	"github.com/chancery-pki/chancery/backends"
)

var _ backends.FlagDeclarer = Backend{}

// Flags declares the stepca backend's flags, --stepca-url,
// --stepca-root-fingerprint, --stepca-provisioner, --stepca-password-file
// and --stepca-provisioner-key-file, or for an X5C provisioner
// --stepca-x5c-cert-file and --stepca-x5c-key-file; any of them selects the
// backend. No flag takes a secret: the password and keys are read from
// files. Settings needs the URL, fingerprint and provisioner, and the
// password file for a JWK provisioner or both X5C files; it refuses
// --ca-key (step-ca holds the key),
// --ca-common-name and --ca-key-algorithm (step-ca's root is used as it
// is).
func (Backend) Flags(fs *pflag.FlagSet) backends.FlagParser {
	u := fs.String("stepca-url", "", "use a step-ca as the CA: its address, https://HOST:PORT")
	fp := fs.String("stepca-root-fingerprint", "", "the SHA-256 fingerprint of step-ca's root (`step certificate fingerprint root_ca.crt`), pinned")
	prov := fs.String("stepca-provisioner", "", "the name of step-ca's JWK provisioner for chancery")
	pw := fs.String("stepca-password-file", "", "file (mode 0600) holding the JWK provisioner's password")
	key := fs.String("stepca-provisioner-key-file", "", "file holding the JWK provisioner's encrypted key (else the one step-ca lists)")
	x5cCert := fs.String("stepca-x5c-cert-file", "", "an X5C provisioner's certificate (and intermediates), instead of a JWK provisioner")
	x5cKey := fs.String("stepca-x5c-key-file", "", "the X5C certificate's private key (mode 0600; encrypted PKCS#8 with --stepca-password-file)")
	return backends.FlagParserFunc(func(opts backends.RootOptions) (backends.Settings, error) {
		type flag struct{ v, name string }
		need := []flag{{*u, "stepca-url"}, {*fp, "stepca-root-fingerprint"}, {*prov, "stepca-provisioner"}}
		if *x5cCert != "" || *x5cKey != "" {
			need = append(need, flag{*x5cCert, "stepca-x5c-cert-file"}, flag{*x5cKey, "stepca-x5c-key-file"})
			if *key != "" {
				return nil, &backends.FlagError{Msg: "--stepca-provisioner-key-file is a JWK provisioner's, --stepca-x5c-cert-file an X5C one's: give one"}
			}
		} else {
			need = append(need, flag{*pw, "stepca-password-file"})
		}
		for _, f := range need {
			if f.v == "" {
				return nil, &backends.FlagError{Msg: "the " + Name + " backend needs --" + f.name,
					Advice: "give --stepca-url, --stepca-root-fingerprint, --stepca-provisioner and --stepca-password-file (or, for an X5C provisioner, --stepca-x5c-cert-file and --stepca-x5c-key-file)"}
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
		return settings(Config{URL: *u, RootFingerprint: *fp, Provisioner: *prov, PasswordFile: *pw, KeyFile: *key,
			X5CCertFile: *x5cCert, X5CKeyFile: *x5cKey}), nil
	})
}
