package pkcs11

import (
	"strings"
	"testing"
)

func TestParseAlgorithm(t *testing.T) {
	for in, want := range map[string]Algorithm{
		"": P256, "P-256": P256, "p256": P256, "ECDSA-P256": P256,
		"P-384": P384, "p384": P384, "RSA-3072": RSA3072, "rsa3072": RSA3072, "RSA": RSA3072,
	} {
		if got, err := ParseAlgorithm(in); err != nil || got != want {
			t.Errorf("ParseAlgorithm(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
	for _, in := range []string{"P-521", "Ed25519", "RSA-2048", "x"} {
		if _, err := ParseAlgorithm(in); err == nil || !strings.HasPrefix(err.Error(), "pkcs11: ") {
			t.Errorf("ParseAlgorithm(%q): %v, want an error", in, err)
		}
	}
}
