// Package softhsm makes private SoftHSM2 tokens for tests: a configuration
// of the test process's own (SOFTHSM2_CONF pointing at a fresh temporary
// token directory, never the system's), and a fresh token with random PINs
// for each test, chosen by label, never by slot number (SoftHSM2's slot IDs
// are random and change across C_Initialize).
//
// SoftHSM2 reads SOFTHSM2_CONF once, at C_Initialize, and its state is
// shared by everything in the process that loads the module. So the
// package sets up one configuration per process, on first use, whose token
// directory holds every token the process makes. A token made while the
// module is initialized in the process is made through the module itself
// (C_InitToken), so that the running module sees it at once; otherwise it
// is made with softhsm2-util, and the module sees it when it is next
// initialized. Tests that use tokens should not run in parallel with each
// other (t.Parallel): creating a token races with another test initializing
// or finalizing the module.
//
// A package whose tests use tokens calls Main from its TestMain, which
// removes the process's token directory when the tests are done:
//
//	func TestMain(m *testing.M) { os.Exit(softhsm.Main(m)) }
//
// The scripts beside this file make a configuration and a token for local
// use (see new-token.sh).
package softhsm

import (
	"fmt"
	"os"
	"strings"
	"testing"
)

// ModuleEnv names an environment variable that overrides where the SoftHSM2
// module is looked for.
const ModuleEnv = "SOFTHSM2_MODULE"

// ModulePaths are where SoftHSM2's PKCS#11 module is looked for, in order:
// Debian and Ubuntu, their multiarch directories, Fedora and RHEL,
// /usr/local, Homebrew.
var ModulePaths = []string{
	"/usr/lib/softhsm/libsofthsm2.so",
	"/usr/lib/x86_64-linux-gnu/softhsm/libsofthsm2.so",
	"/usr/lib/aarch64-linux-gnu/softhsm/libsofthsm2.so",
	"/usr/lib64/pkcs11/libsofthsm2.so",
	"/usr/lib/pkcs11/libsofthsm2.so",
	"/usr/local/lib/softhsm/libsofthsm2.so",
	"/opt/homebrew/lib/softhsm/libsofthsm2.so",
}

// Module returns the path of the SoftHSM2 module: $SOFTHSM2_MODULE when
// set, else the first of ModulePaths that exists.
func Module() (string, error) {
	if p := os.Getenv(ModuleEnv); p != "" {
		if _, err := os.Stat(p); err != nil {
			return "", fmt.Errorf("softhsm: $%s names %s: %w", ModuleEnv, p, err)
		}
		return p, nil
	}
	for _, p := range ModulePaths {
		if _, err := os.Stat(p); err == nil {
			return p, nil
		}
	}
	return "", fmt.Errorf("softhsm: the SoftHSM2 module is not installed (looked for %s); install softhsm2 (scripts/setup.sh does) or set $%s",
		strings.Join(ModulePaths, ", "), ModuleEnv)
}

// InCI reports whether the tests run under CI (CI=true), where a missing
// real peer is a failure, not a reason to skip.
func InCI() bool { return os.Getenv("CI") == "true" }

// Require returns the SoftHSM2 module's path. When the module is missing it
// skips the test, or fails it under CI=true.
func Require(t testing.TB) string {
	t.Helper()
	p, err := Module()
	if err != nil {
		if InCI() {
			t.Fatalf("%v (CI=true: a missing SoftHSM2 is a failure)", err)
		}
		t.Skip(err)
	}
	return p
}
