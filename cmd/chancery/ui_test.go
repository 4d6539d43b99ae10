package main

import (
	"bytes"
	"errors"
	"fmt"
	"testing"

	"github.com/chancery-pki/chancery/backends"
	"github.com/chancery-pki/chancery/backends/cfssl"
	"github.com/chancery-pki/chancery/backends/pkcs11"
	"github.com/chancery-pki/chancery/backends/vault"
	"github.com/chancery-pki/chancery/hint"
)

// TestPrintError checks that printError prints the message once and then
// a "hint:" line for each hint in the error's chain, for the errors of
// every backend and of the flags alike, however deep they are wrapped.
func TestPrintError(t *testing.T) {
	sealed := &vault.Error{Kind: vault.ErrSealed, Op: "sign a node certificate", Path: "pki/sign/r", Status: 503,
		Detail: "Vault is sealed", Advice: "unseal Vault (`vault operator unseal`) and try again"}
	wrongPIN := &pkcs11.Error{Kind: pkcs11.ErrWrongPIN, Msg: `token "T" refused the PIN from the pin-source file /p`,
		Advice: "check the PIN; tokens lock the PIN after a few wrong tries"}
	mismatch := &cfssl.MismatchError{URL: "https://ca/api/v1/cfssl/sign", Field: "key usage", Got: "a", Want: "b",
		Advice: "CFSSL takes key usages from its profile's usages"}
	flag := &backends.FlagError{Msg: "--vault-key names a transit key", Advice: "add --vault-engine transit"}
	for _, tc := range []struct {
		name string
		err  error
		want string
	}{
		{"Vault", fmt.Errorf("failed to sign the audit checkpoint: %w", sealed),
			"chancery: error: failed to sign the audit checkpoint: vault: Vault is sealed: sign a node certificate (pki/sign/r): HTTP 503: Vault is sealed\n" +
				"hint: unseal Vault (`vault operator unseal`) and try again\n"},
		{"PKCS11", wrongPIN,
			"chancery: error: pkcs11: token \"T\" refused the PIN from the pin-source file /p\n" +
				"hint: check the PIN; tokens lock the PIN after a few wrong tries\n"},
		{"CFSSL", fmt.Errorf("issuing: %w", mismatch),
			"chancery: error: issuing: cfssl: the certificate from https://ca/api/v1/cfssl/sign differs from the request in its key usage: got a, want b; it was discarded\n" +
				"hint: CFSSL takes key usages from its profile's usages\n"},
		{"Flag", flag,
			"chancery: error: --vault-key names a transit key\nhint: add --vault-engine transit\n"},
		{"FlagWithoutAdvice", &backends.FlagError{Msg: "--ca-key applies to the file backend only"},
			"chancery: error: --ca-key applies to the file backend only\n"},
		{"CommandAndBackend", hint.With(fmt.Errorf("opening the root: %w", sealed), "see the README's recovery section"),
			"chancery: error: opening the root: vault: Vault is sealed: sign a node certificate (pki/sign/r): HTTP 503: Vault is sealed\n" +
				"hint: see the README's recovery section\n" +
				"hint: unseal Vault (`vault operator unseal`) and try again\n"},
		{"Joined", errors.Join(sealed, wrongPIN),
			"chancery: error: vault: Vault is sealed: sign a node certificate (pki/sign/r): HTTP 503: Vault is sealed\n" +
				"pkcs11: token \"T\" refused the PIN from the pin-source file /p\n" +
				"hint: unseal Vault (`vault operator unseal`) and try again\n" +
				"hint: check the PIN; tokens lock the PIN after a few wrong tries\n"},
		{"None", errors.New("nothing to update"), "chancery: error: nothing to update\n"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var out bytes.Buffer
			printError(&out, tc.err)
			if got := out.String(); got != tc.want {
				t.Errorf("printError wrote\n%s\nwant\n%s", got, tc.want)
			}
		})
	}
}
