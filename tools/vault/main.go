// Command vault is HashiCorp Vault's own CLI and server, built from the
// github.com/hashicorp/vault module with Vault's "minimal" build tag (core,
// PKI, AppRole, userpass, kv and transit, without the heavy plugin set).
//
// It exists only so that chancery's tests can run a real Vault dev server:
// scripts/install-vault.sh builds it once per machine. It is a separate
// module so that the main module stays small and `go test ./...` skips it.
package main

import (
	"os"

	"github.com/hashicorp/vault/command"
)

func main() {
	os.Exit(command.Run(os.Args[1:]))
}
