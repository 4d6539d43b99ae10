package main

import (
	"os"
	"testing"

	"github.com/rogpeppe/go-internal/testscript"
)

func TestMain(m *testing.M) {
	testscript.Main(m, map[string]func(){
		"chancery": func() { os.Exit(run(os.Args[1:])) },
	})
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
