// Command etcd is the etcd server, built from the go.etcd.io/etcd/server/v3
// module at the version of the etcd client chancery's etcd store uses.
//
// It exists only so that chancery's tests can run a real etcd:
// scripts/install-etcd.sh builds it once per machine. It is a separate
// module so that the main module does not depend on the server, and
// `go test ./...` skips it.
package main

import (
	"os"

	"go.etcd.io/etcd/server/v3/etcdmain"
)

func main() {
	etcdmain.Main(os.Args)
}
