package main

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"github.com/chancery-pki/chancery/agent"
	"github.com/chancery-pki/chancery/api"
	"github.com/chancery-pki/chancery/ca"
	"github.com/chancery-pki/chancery/certdir"
	"github.com/chancery-pki/chancery/client"
	"github.com/chancery-pki/chancery/cluster"
	"github.com/chancery-pki/chancery/server"
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
	root.AddCommand(newInitCmd(a), newJoinCmd(a), newRunCmd(a), newJoinTokenCmd(a), newUpdateCmd(a),
		newInfoCmd(a), newNodeCmd(a), newAuditCmd(a), newVaultCmd(a), newBenchCmd(a))
	return root
}

// run runs the command line args and returns the exit status.
func run(args []string) int { return runWith(args, os.Stdout, os.Stderr) }

func runWith(args []string, stdout, stderr io.Writer) int {
	a := &app{stdout: stdout, stderr: stderr}
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
// directory: the running manager's socket; else, when no manager runs, the
// store directly; else, on a joined manager's host, the leader over mutual
// TLS with this node's manager certificate.
func (a *app) admin(ctx context.Context) (*client.Client, func(), error) {
	sock := filepath.Join(a.dataDir, api.SocketFile)
	if conn, err := net.DialTimeout("unix", sock, time.Second); err == nil {
		conn.Close()
		c := client.NewSocket(sock)
		return c, c.Close, nil
	}
	if ok, err := cluster.HasStore(a.dataDir); err != nil {
		return nil, nil, err
	} else if ok {
		st, err := cluster.OpenStore(a.dataDir)
		if err != nil {
			return nil, nil, err
		}
		c, err := st.Cluster(ctx)
		if err != nil {
			st.Close()
			return nil, nil, err
		}
		srv, err := server.New(server.Config{DataDir: a.dataDir, Store: st, NodeID: c.LeaderID})
		if err != nil {
			st.Close()
			return nil, nil, err
		}
		return client.NewHandler(srv.AdminHandler()), func() { st.Close() }, nil
	}
	if state, err := agent.ReadState(a.dataDir); err == nil {
		dir := certdir.In(a.dataDir)
		key, chain, err := dir.LoadNode()
		if err != nil {
			return nil, nil, err
		}
		if ou := chain[0].Subject.OrganizationalUnit; len(ou) != 1 || ou[0] != string(ca.RoleManager) {
			return nil, nil, withHint(errors.New("this node is a worker: administration needs a manager"),
				"run the command on a manager's host, or with --data-dir pointing at a manager's data directory")
		}
		roots, _, err := dir.Root()
		if err != nil {
			return nil, nil, err
		}
		cert := tlsCert(key, chain)
		c := client.NewForCluster(state.Managers[0], certPool(roots), func() *tls.Certificate { return cert }, strings.Join(chain[0].Subject.Organization, ""))
		return c, c.Close, nil
	}
	return nil, nil, withHint(fmt.Errorf("%w (%s)", cluster.ErrNoCluster, a.dataDir),
		fmt.Sprintf("run 'chancery init --data-dir %s', or point --data-dir at an existing cluster", a.dataDir))
}

// apiError turns an API error into a CLI error with hints where one helps.
func apiError(err error) error {
	var e *client.APIError
	if !errors.As(err, &e) {
		return err
	}
	switch e.Code {
	case api.CodeNotFound:
		return withHint(err, "'chancery node ls' lists the nodes")
	case api.CodeForbidden:
		return withHint(err, "administration needs a manager's certificate")
	}
	return err
}
