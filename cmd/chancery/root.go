package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"

	"github.com/spf13/cobra"

	"github.com/chancery-pki/chancery/cluster"
	"github.com/chancery-pki/chancery/store"
)

// DataDirEnv names the environment variable that sets the default data
// directory.
const DataDirEnv = "CHANCERY_DATA_DIR"

// defaultDataDir is /var/lib/chancery for root, else the user's data
// directory, unless CHANCERY_DATA_DIR is set.
func defaultDataDir() string {
	if d := os.Getenv(DataDirEnv); d != "" {
		return d
	}
	if os.Geteuid() == 0 {
		return "/var/lib/chancery"
	}
	if d := os.Getenv("XDG_DATA_HOME"); d != "" {
		return filepath.Join(d, "chancery")
	}
	if h, err := os.UserHomeDir(); err == nil {
		return filepath.Join(h, ".local", "share", "chancery")
	}
	return "chancery-data"
}

// app holds what every command shares.
type app struct {
	dataDir string
	stdout  io.Writer
	stderr  io.Writer
}

func newRootCmd(a *app) *cobra.Command {
	root := &cobra.Command{
		Use:   "chancery",
		Short: "A cluster PKI with Docker swarm mode's rules and the root key in a file, an HSM or Vault",
		Long: `chancery is the certificate authority of a cluster: init creates a root CA and
two join tokens that pin it; nodes join with a token and get certificates that
carry the cluster ID (O), their role (OU) and their node ID (CN).`,
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	root.PersistentFlags().StringVar(&a.dataDir, "data-dir", defaultDataDir(), "data directory (default from $"+DataDirEnv+")")
	root.AddCommand(newInitCmd(a), newJoinTokenCmd(a), newUpdateCmd(a), newInfoCmd(a))
	return root
}

// run runs the command line args and returns the exit status.
func run(args []string) int {
	a := &app{stdout: os.Stdout, stderr: os.Stderr}
	cmd := newRootCmd(a)
	cmd.SetArgs(args)
	cmd.SetOut(a.stdout)
	cmd.SetErr(a.stderr)
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	if err := cmd.ExecuteContext(ctx); err != nil {
		printError(a.stderr, err)
		return 1
	}
	return 0
}

// openStore opens the cluster's store in the data directory, with hints
// for the usual mistakes.
func (a *app) openStore() (store.Store, error) {
	st, err := cluster.OpenStore(a.dataDir)
	switch {
	case errors.Is(err, cluster.ErrNoCluster):
		return nil, withHint(err, fmt.Sprintf("run 'chancery init --data-dir %s', or point --data-dir at an existing cluster", a.dataDir))
	case err != nil:
		return nil, err
	}
	return st, nil
}
