// Command chancery is a cluster PKI with Docker swarm mode's rules: init
// creates a root CA and two join tokens, nodes get certificates that carry
// cluster, role and node identity, and the root key sits behind one Signer
// contract (a file today; an HSM, Vault or an external CA through the same
// seam).
//
// This package only parses flags, calls the packages that do the work and
// prints; ui.go owns the output rules.
package main

import (
	"os"

	// Backends register themselves with the backends registry.
	_ "github.com/chancery-pki/chancery/backends/cfssl"
	_ "github.com/chancery-pki/chancery/backends/file"
	_ "github.com/chancery-pki/chancery/backends/pkcs11"
	_ "github.com/chancery-pki/chancery/backends/stepca"
	_ "github.com/chancery-pki/chancery/backends/vault"
)

func main() { os.Exit(run(os.Args[1:])) }
