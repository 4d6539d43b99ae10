package main

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"syscall"

	"github.com/spf13/cobra"

	"github.com/chancery-pki/chancery/agent"
	"github.com/chancery-pki/chancery/ca"
	"github.com/chancery-pki/chancery/client"
	"github.com/chancery-pki/chancery/cluster"
	"github.com/chancery-pki/chancery/datadir"
	"github.com/chancery-pki/chancery/hint"
	"github.com/chancery-pki/chancery/manager"
	"github.com/chancery-pki/chancery/secretfile"
	"github.com/chancery-pki/chancery/store"
)

// JoinTokenEnv names the environment variable join reads its token from
// when neither --token-file nor --token is given.
const JoinTokenEnv = "CHANCERY_JOIN_TOKEN"

func newJoinCmd(a *app) *cobra.Command {
	var (
		token, tokenFile, hostname, listen, advertise string
		noRun                                         bool
		stf                                           *storeFlags
	)
	cmd := &cobra.Command{
		Use:   "join [--token-file FILE] [--store etcd --etcd-endpoints URLS ...] MANAGER",
		Short: "Join a cluster as a node, then keep its certificate fresh in the foreground",
		Long: `Join a cluster as a node, then keep its certificate fresh in the foreground.

The token comes from --token-file FILE (a file only you can read, mode 0600),
or from $` + JoinTokenEnv + ` (removed from the environment once read). --token
TOKEN also works, but puts the token where every local user can read it while
join runs. Once joined, the process runs on as 'chancery run --data-dir DIR',
without the token in its arguments or environment.

A manager of a cluster whose state is in etcd joins with the manager token and
the store's settings, as the first manager's init was given them (--store etcd
--etcd-endpoints ...): join checks that the store holds the token's cluster and
that the root's key opens here, writes store.json, and runs a full manager on
the shared store.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			tok, err := a.joinToken(cmd.Flags().Changed("token"), token, tokenFile)
			if err != nil {
				return err
			}
			settings, shared, err := stf.joinSettings()
			if err != nil {
				return err
			}
			adv := ""
			if advertise != "" {
				l := listen
				if l == "" {
					l = manager.DefaultListenAddr
				}
				if adv, err = cluster.ResolveAdvertise(advertise, l); err != nil {
					return err
				}
			}
			req := agent.JoinRequest{DataDir: a.dataDir, Addr: args[0], Token: tok, Hostname: hostname, ListenAddr: listen, AdvertiseAddr: adv}
			if shared {
				if err := datadir.Check(a.dataDir); err != nil {
					return err
				}
				if _, err := os.Stat(filepath.Join(a.dataDir, store.SettingsFile)); err == nil {
					return hint.With(fmt.Errorf("%s already names a store (%s)", a.dataDir, store.SettingsFile), "use another --data-dir")
				}
				c, err := cluster.CheckJoinStore(cmd.Context(), cluster.JoinStoreCheck{DataDir: a.dataDir, Settings: settings, Token: tok})
				if err != nil {
					return err
				}
				req.ClusterID = c.ID
			}
			j, err := agent.Join(cmd.Context(), req)
			if err != nil {
				var e *client.APIError
				switch {
				case errors.Is(err, ca.ErrInvalidJoinToken):
					return hint.With(err, "copy the whole token from 'chancery join-token worker' on a manager")
				case errors.As(err, &e) && e.Code == "invalid_token":
					return hint.With(err, "the token may have been rotated: get the current one with 'chancery join-token worker' on a manager")
				}
				return err
			}
			if shared {
				if j.Role != ca.RoleManager {
					agent.RemoveJoined(a.dataDir)
					return fmt.Errorf("the manager made this node a %s, and only a manager reaches the store; nothing was kept", j.Role.Short())
				}
				if err := store.WriteSettings(a.dataDir, settings); err != nil {
					agent.RemoveJoined(a.dataDir)
					return err
				}
			}
			fmt.Fprintf(a.stdout, "This node joined a cluster as a %s.\n", j.Role.Short())
			if shared {
				fmt.Fprintf(a.stdout, "It runs as a manager on the cluster's store in %s (settings in %s).\n", settings.Type, filepath.Join(a.dataDir, store.SettingsFile))
			}
			if noRun {
				return nil
			}
			if a.reexec != nil {
				return a.runAgain()
			}
			if shared {
				return a.runManager(cmd.Context(), "", "", "", nil, nil)
			}
			return a.runNode(cmd.Context(), "")
		},
	}
	f := cmd.Flags()
	f.StringVar(&tokenFile, "token-file", "", "file holding the join token (SWMTKN-1-...), mode 0600; its role decides the node's (else $"+JoinTokenEnv+")")
	f.StringVar(&token, "token", "", "join token on the command line, where local users can read it: prefer --token-file or $"+JoinTokenEnv)
	f.StringVar(&hostname, "hostname", "", "host name to register (default: this host's)")
	f.StringVar(&listen, "listen-addr", "", "where this node serves the manager API while it is a manager (default "+manager.DefaultListenAddr+")")
	f.StringVar(&advertise, "advertise-addr", "", "address nodes are told to reach this manager on, with a shared store: HOST:PORT, an IP address or an interface (eth0), the last two with the listen port unless given :PORT (default: the listen address unless a wildcard)")
	f.BoolVar(&noRun, "no-run", false, "join and exit, without running the node (start it later with 'chancery run')")
	stf = addJoinStoreFlags(f)
	return cmd
}

// joinToken returns the token join uses: from --token-file, else --token
// (with a warning), else $CHANCERY_JOIN_TOKEN. The variable is removed from
// the process's environment whichever is used, so that nothing started
// later inherits it.
func (a *app) joinToken(tokenSet bool, token, tokenFile string) (string, error) {
	env, inEnv := os.LookupEnv(JoinTokenEnv)
	os.Unsetenv(JoinTokenEnv)
	switch {
	case tokenFile != "" && tokenSet:
		return "", hint.With(errors.New("both --token and --token-file are given"), "give only --token-file")
	case tokenFile != "":
		t, err := secretfile.Read(tokenFile)
		if err != nil {
			return "", err
		}
		return t, nil
	case tokenSet:
		fmt.Fprintf(a.stderr, "warning: --token shows the join token to every user of this host while this command runs; use --token-file FILE or $%s\n", JoinTokenEnv)
		if token == "" {
			return "", hint.With(errors.New("--token is empty"), "get a token on a manager with 'chancery join-token worker' (or manager)")
		}
		return token, nil
	case inEnv && env != "":
		return env, nil
	}
	return "", hint.With(errors.New("a join token is needed"),
		"get one on a manager with 'chancery join-token -q worker' (or manager), save it in a file only you can read, and give --token-file FILE (or set $"+JoinTokenEnv+")")
}

// runAgain replaces this process with 'chancery run' for the data
// directory, so that the long-running node carries no join token: neither
// in its arguments (/proc/PID/cmdline, which every local user can read) nor
// in its environment as the process started with (/proc/PID/environ, which
// unsetting a variable does not change).
func (a *app) runAgain() error {
	dir, err := filepath.Abs(a.dataDir)
	if err != nil {
		return err
	}
	args := []string{"chancery", "run", "--data-dir", dir, "--log-level", a.logLevel}
	if err := a.reexec(args, os.Environ()); err != nil {
		return hint.With(fmt.Errorf("the node joined, but failed to start running it: %w", err),
			"start it with 'chancery run --data-dir "+dir+"'")
	}
	return nil
}

// execSelf replaces the process with this executable, run with args and
// env. It is the app's reexec in the real command.
func execSelf(args, env []string) error {
	exe := "/proc/self/exe"
	if _, err := os.Stat(exe); err != nil {
		if exe, err = os.Executable(); err != nil {
			return err
		}
	}
	return syscall.Exec(exe, args, env)
}
