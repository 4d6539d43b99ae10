package main

import (
	"bytes"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/spf13/pflag"

	"github.com/chancery-pki/chancery/backends"
	"github.com/chancery-pki/chancery/backends/cfssl"
	"github.com/chancery-pki/chancery/backends/file"
	"github.com/chancery-pki/chancery/backends/pkcs11"
	"github.com/chancery-pki/chancery/backends/vault"
)

// TestRootFlags runs the flags of init (and of any command that makes a
// root) through every registered backend's declaration: which backend they
// select, the settings and root request they give, and what they refuse,
// with its hint, before anything is read or made.
func TestRootFlags(t *testing.T) {
	dir := t.TempDir()
	certFile, keyFile := filepath.Join(dir, "root.crt"), filepath.Join(dir, "root.key")
	for _, f := range []string{certFile, keyFile} {
		if err := os.WriteFile(f, []byte("PEM"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	// The key and a passphrase file that others may read: refused, before
	// anything is made, saying the fix.
	looseKey, loosePass := filepath.Join(dir, "loose.key"), filepath.Join(dir, "loose.pass")
	for _, f := range []string{looseKey, loosePass} {
		if err := os.WriteFile(f, []byte("SECRET-CONTENT"), 0o600); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(f, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	const (
		ext  = "protocol=cfssl,url=https://ca:8888/api/v1/cfssl/sign"
		ext2 = "protocol=cfssl,url=https://ca2:8888/api/v1/cfssl/sign"
		uri  = "pkcs11:token=t;object=o?module-path=/m"
	)
	for _, tc := range []struct {
		name     string
		args     []string
		backend  string
		settings backends.Settings
		alg      string // the request's KeyAlgorithm
		err      string // a substring of the error, when one is wanted
		hint     string // a substring of its hint
	}{
		{name: "Default", backend: file.Name, settings: backends.Settings{}},
		{name: "FilePassphrase", args: []string{"--ca-passphrase-file", "p"}, backend: file.Name, settings: backends.Settings{file.SettingPassphraseFile: "p"}},
		{name: "FileImport", args: []string{"--ca-cert", certFile, "--ca-key", keyFile}, backend: file.Name, settings: backends.Settings{}},
		{name: "FileAlgorithm", args: []string{"--ca-key-algorithm", "P-384"}, backend: file.Name, settings: backends.Settings{}, alg: "P-384"},
		{name: "PKCS11", args: []string{"--pkcs11-uri", uri, "--ca-cert", certFile}, backend: pkcs11.Name, settings: backends.Settings{pkcs11.SettingURI: uri}},
		{name: "PKCS11Named", args: []string{"--backend", pkcs11.Name, "--pkcs11-uri", uri, "--ca-key-algorithm", "rsa"}, backend: pkcs11.Name,
			settings: backends.Settings{pkcs11.SettingURI: uri}, alg: "rsa"},
		{name: "Vault", args: []string{"--vault-addr", "https://vault:8200", "--vault-engine", "transit", "--vault-token-file="}, backend: vault.Name,
			settings: backends.Settings{vault.SettingAddress: "https://vault:8200", vault.SettingEngine: vault.EngineTransit, vault.SettingTokenFile: ""}},
		{name: "CFSSL", args: []string{"--external-ca", ext, "--external-ca", ext2, "--external-ca-auth-key-file", "k", "--ca-cert", certFile}, backend: cfssl.Name,
			settings: cfssl.NewSettings([]string{ext, ext2}, "k")},

		{name: "TwoBackends", args: []string{"--vault-addr", "https://vault:8200", "--pkcs11-uri", uri}, err: "each choose a backend", hint: "the root lives in one place"},
		{name: "PassphraseWithExternalCA", args: []string{"--external-ca", ext, "--ca-passphrase-file", "p"}, err: "--ca-passphrase-file applies to the file backend only"},
		{name: "PassphraseWithNamed", args: []string{"--backend", vault.Name, "--ca-passphrase-file", "p"}, err: "--ca-passphrase-file applies to the file backend only"},
		{name: "FlagsOfAnotherThanNamed", args: []string{"--backend", file.Name, "--vault-addr", "https://vault:8200"}, err: `uses the vault backend, not "file"`},
		{name: "CertAlone", args: []string{"--ca-cert", certFile}, err: "--ca-cert and --ca-key go together", hint: "give both"},
		{name: "KeyAlone", args: []string{"--ca-key", keyFile}, err: "--ca-cert and --ca-key go together", hint: "or neither"},
		{name: "PKCS11Key", args: []string{"--pkcs11-uri", uri, "--ca-key", keyFile}, err: "--ca-key cannot be used with the pkcs11 backend", hint: "pkcs11-tool --write-object"},
		{name: "PKCS11NoURI", args: []string{"--backend", pkcs11.Name}, err: "the pkcs11 backend needs --pkcs11-uri", hint: "for example --pkcs11-uri"},
		{name: "VaultImport", args: []string{"--vault-addr", "https://vault:8200", "--ca-cert", certFile, "--ca-key", keyFile}, err: "--ca-cert and --ca-key cannot be used with the vault backend", hint: "--vault-issuer"},
		{name: "VaultNoFlags", args: []string{"--backend", vault.Name}, err: "the vault backend needs --vault-addr", hint: "--vault-*"},
		{name: "ExternalCAKey", args: []string{"--external-ca", ext, "--ca-key", keyFile}, err: "--ca-key cannot be used with --external-ca", hint: "--ca-cert alone"},
		{name: "ExternalCACommonName", args: []string{"--external-ca", ext, "--ca-common-name", "x"}, err: "--ca-common-name does not apply to an external CA"},
		{name: "ExternalCAAlgorithm", args: []string{"--external-ca", ext, "--ca-key-algorithm", "P-384"}, err: "--ca-key-algorithm does not apply to an external CA"},
		{name: "ExternalCAAuthKeyAlone", args: []string{"--external-ca-auth-key-file", "k"}, err: "the cfssl backend needs --external-ca", hint: "for example --external-ca"},
		{name: "KeyReadableByOthers", args: []string{"--ca-cert", certFile, "--ca-key", looseKey}, err: "run 'chmod 600 " + looseKey + "'", hint: "make a new root rather than import it"},
		{name: "KeyPassphraseReadableByOthers", args: []string{"--ca-cert", certFile, "--ca-key", keyFile, "--ca-key-passphrase-file", loosePass},
			err: "--ca-key-passphrase-file: file: failed to read the passphrase file: unsafe secret file: " + loosePass},
		{name: "MissingKey", args: []string{"--ca-cert", certFile, "--ca-key", filepath.Join(dir, "none")}, err: "no such file"},
		{name: "MissingCert", args: []string{"--ca-cert", filepath.Join(dir, "none"), "--ca-key", keyFile}, err: "failed to read --ca-cert"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			fs := pflag.NewFlagSet("init", pflag.ContinueOnError)
			r := addRootFlags(fs)
			if err := fs.Parse(tc.args); err != nil {
				t.Fatal(err)
			}
			backend, req, err := r.request()
			if tc.err != "" {
				var out bytes.Buffer
				printError(&out, err)
				_, hint, _ := strings.Cut(out.String(), "\nhint: ")
				if err == nil || !strings.Contains(err.Error(), tc.err) || !strings.Contains(hint, tc.hint) || (hint == "") != (tc.hint == "") {
					t.Fatalf("request: %v\n%s\nwant %q, hint %q", err, out.String(), tc.err, tc.hint)
				}
				if strings.Contains(out.String(), "SECRET-CONTENT") {
					t.Errorf("the error shows a file's content:\n%s", out.String())
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if backend != tc.backend || !reflect.DeepEqual(req.Settings, tc.settings) || req.KeyAlgorithm != tc.alg || req.CommonName != "swarm-ca" {
				t.Errorf("request = %q, %v, algorithm %q, CN %q; want %q, %v, %q, swarm-ca", backend, req.Settings, req.KeyAlgorithm, req.CommonName, tc.backend, tc.settings, tc.alg)
			}
			if imported := slices.Contains(tc.args, "--ca-cert"); imported != (req.ImportCertPEM != nil) {
				t.Errorf("ImportCertPEM %q with args %q", req.ImportCertPEM, tc.args)
			}
		})
	}
}
