package main

import (
	"os"
	"testing"

	"github.com/rogpeppe/go-internal/testscript"

	"github.com/chancery-pki/chancery/internal/vaultdev"
	"github.com/chancery-pki/chancery/softhsm"
)

func TestMain(m *testing.M) {
	testscript.Main(withPeers{m}, map[string]func(){
		"chancery": func() { os.Exit(run(os.Args[1:])) },
	})
}

// withPeers runs the tests, then removes the process's SoftHSM2 tokens and
// stops the shared Vault dev server, if tests made or started them.
type withPeers struct{ m *testing.M }

func (w withPeers) Run() int {
	code := softhsm.Main(w.m)
	vaultdev.StopShared()
	return code
}

// TestScripts runs the command-line scripts in testdata/script: each runs
// chancery commands and checks their exit status, output and files.
func TestScripts(t *testing.T) {
	testscript.Run(t, testscript.Params{
		Dir: "testdata/script",
		Setup: func(env *testscript.Env) error {
			env.Setenv("CHANCERY_DATA_DIR", env.WorkDir+"/data")
			return nil
		},
	})
}
