package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"github.com/chancery-pki/chancery/admin"
	"github.com/chancery-pki/chancery/api"
	"github.com/chancery-pki/chancery/client"
	"github.com/chancery-pki/chancery/cluster"
	"github.com/chancery-pki/chancery/hint"
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
	dataDir  string
	logLevel string
	stdout   io.Writer
	stderr   io.Writer
	// heartbeat is the period nodes are told to report at, when a command
	// that runs a manager sets it (--dispatcher-heartbeat).
	heartbeat time.Duration
	// stragglerGrace and renewRate tune root rotations, when a command
	// that runs a manager sets them (--straggler-grace, --renew-rate);
	// zero means the server's defaults.
	stragglerGrace time.Duration
	renewRate      float64
	// reexec, when set, replaces the process with this executable run with
	// the given arguments and environment (execSelf); join uses it to run
	// the node without its token. Tests that run commands in process leave
	// it nil, and join then runs the node in process.
	reexec func(args, env []string) error
}

func newRootCmd(a *app) *cobra.Command {
	root := &cobra.Command{
		Use:   "chancery",
		Short: "A cluster PKI with Docker swarm mode's rules and the root key in a file, an HSM or Vault",
		Long: `chancery is the certificate authority of a cluster: init creates a root CA and
two join tokens that pin it; nodes join with a token and get certificates that
carry the cluster ID (O), their role (OU) and their node ID (CN), and renew
them on their own.`,
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	root.PersistentFlags().StringVar(&a.dataDir, "data-dir", defaultDataDir(), "data directory (default from $"+DataDirEnv+")")
	root.PersistentFlags().StringVar(&a.logLevel, "log-level", "info", "log level of running managers and nodes: debug, info, warn, error")
	root.AddCommand(newInitCmd(a), newStoreCmd(a), newJoinCmd(a), newRunCmd(a), newJoinTokenCmd(a), newUpdateCmd(a), newCACmd(a),
		newInfoCmd(a), newNodeCmd(a), newAuditCmd(a), newVaultCmd(a), newBenchCmd(a), newLeaveCmd(a))
	return root
}

// run runs the command line args and returns the exit status.
func run(args []string) int {
	return runApp(&app{stdout: os.Stdout, stderr: os.Stderr, reexec: execSelf}, args)
}

// runWith runs the command line args in process, with join's node run in
// process too.
func runWith(args []string, stdout, stderr io.Writer) int {
	return runApp(&app{stdout: stdout, stderr: stderr}, args)
}

func runApp(a *app, args []string) int {
	stdout, stderr := a.stdout, a.stderr
	cmd := newRootCmd(a)
	cmd.SetArgs(args)
	cmd.SetOut(stdout)
	cmd.SetErr(stderr)
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := cmd.ExecuteContext(ctx); err != nil {
		printError(stderr, err)
		return 1
	}
	return 0
}

// logger returns the structured logger of running processes: text on
// stderr.
func (a *app) logger() (*slog.Logger, error) {
	var lvl slog.Level
	if err := lvl.UnmarshalText([]byte(a.logLevel)); err != nil {
		return nil, fmt.Errorf("invalid --log-level %q: want debug, info, warn or error", a.logLevel)
	}
	return slog.New(slog.NewTextHandler(a.stderr, &slog.HandlerOptions{Level: lvl})), nil
}

// admin returns a client of the administration API for the data
// directory (package admin chooses the transport).
func (a *app) admin(ctx context.Context) (*client.Client, func(), error) {
	c, done, err := admin.Open(ctx, a.dataDir)
	switch {
	case errors.Is(err, admin.ErrWorker):
		return nil, nil, hint.With(err, "run the command on a manager's host, or with --data-dir pointing at a manager's data directory")
	case errors.Is(err, cluster.ErrNoCluster):
		return nil, nil, hint.With(err,
			fmt.Sprintf("run 'chancery init --data-dir %s', or point --data-dir at an existing cluster", a.dataDir))
	}
	return c, done, err
}

// apiError turns an API error into a CLI error with hints where one helps.
func apiError(err error) error {
	var e *client.APIError
	if !errors.As(err, &e) {
		return err
	}
	switch e.Code {
	case api.CodeNotFound:
		return hint.With(err, "'chancery node ls' lists the nodes")
	case api.CodeForbidden:
		return hint.With(err, "administration needs a manager's certificate")
	case api.CodeAmbiguousName:
		return hint.With(err, "name the node by its ID, one of: "+strings.Join(e.Candidates, ", ")+" ('chancery node ls' shows which is which)")
	}
	return err
}
