package main

import (
	"errors"
	"fmt"
	"strings"

	"github.com/spf13/cobra"

	"github.com/chancery-pki/chancery/backends/file"
	"github.com/chancery-pki/chancery/backends/vault"
	"github.com/chancery-pki/chancery/ca"
	"github.com/chancery-pki/chancery/cluster"
	"github.com/chancery-pki/chancery/hint"
	"github.com/chancery-pki/chancery/store"
	"github.com/chancery-pki/chancery/store/etcdstore"
)

func newInitCmd(a *app) *cobra.Command {
	var (
		certExpiry, listen, advertise, metricsAddr, hostname string
		noRun                                                bool
		root                                                 *rootFlags
		ext                                                  *extCAFlags
		stf                                                  *storeFlags
	)
	cmd := &cobra.Command{
		Use:   "init",
		Short: "Create a cluster (a root CA, two join tokens, this node as its first manager) and run the manager",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			expiry, err := ca.ParseCertExpiry(certExpiry)
			if err != nil {
				return err
			}
			extCfg, err := ext.config()
			if err != nil {
				return err
			}
			backend, rootReq, err := root.request()
			if err != nil {
				return err
			}
			storeSettings, err := stf.settings()
			if err != nil {
				return err
			}
			res, err := cluster.Init(cmd.Context(), cluster.InitRequest{
				DataDir:             a.dataDir,
				Backend:             backend,
				BackendSettings:     rootReq.Settings,
				RootCN:              rootReq.CommonName,
				KeyAlgorithm:        rootReq.KeyAlgorithm,
				ImportCertPEM:       rootReq.ImportCertPEM,
				ImportKeyPEM:        rootReq.ImportKeyPEM,
				ImportKeyPassphrase: rootReq.ImportKeyPassphrase,
				CertExpiry:          expiry,
				ListenAddr:          listen,
				AdvertiseAddr:       advertise,
				Hostname:            hostname,
				Store:               storeSettings,
			})
			switch {
			case errors.Is(err, cluster.ErrClusterExists):
				return hint.With(err, "'chancery info --data-dir "+a.dataDir+"' shows the existing cluster")
			case errors.Is(err, file.ErrPassphraseNeeded):
				return hint.With(err, "give the imported key's passphrase with --ca-key-passphrase-file FILE")
			case err != nil:
				return err
			}
			fmt.Fprintf(a.stdout, "Cluster initialized: current node (%s) is now a manager.\n\n", res.NodeID)
			printJoinCommand(a, ca.RoleWorker, res.WorkerToken, res.AdvertiseAddr)
			fmt.Fprintf(a.stdout, "To add a manager to this cluster, run 'chancery join-token manager' and follow the instructions.\n\n")
			if backend == vault.Name {
				printVaultRunPolicyHint(a, res.BackendSettings)
			}
			if noRun {
				return nil
			}
			// The manager opens the root with the settings init stored, which
			// hold no secret (a pin-value given to init is not among them).
			return a.runManager(cmd.Context(), "", "", metricsAddr, nil, extCfg)
		},
	}
	f := cmd.Flags()
	root = addRootFlags(f)
	ext = addExtCAFlags(f)
	stf = addStoreFlags(f)
	f.StringVar(&certExpiry, "cert-expiry", "2160h0m0s", "validity period for node certificates (ns|us|ms|s|m|h), at least 1h")
	f.StringVar(&listen, "listen-addr", cluster.DefaultListenAddr, "manager API listen address (HOST:PORT)")
	f.StringVar(&advertise, "advertise-addr", "", "address joining nodes use to reach this manager: HOST:PORT, an IP address or an interface (eth0), the last two with the listen port unless given :PORT (default: the listen address, or this host's first address)")
	f.StringVar(&hostname, "hostname", "", "host name to register for this node (default: this host's)")
	f.BoolVar(&noRun, "no-run", false, "create the cluster and exit, without running the manager (start it later with 'chancery run')")
	f.StringVar(&metricsAddr, "metrics-addr", "", "serve Prometheus metrics over plain HTTP on this address (they are always on the data directory's socket)")
	return cmd
}

// printJoinCommand prints the command that joins a node with token: a
// manager of a cluster whose state is in etcd joins with the data
// directory's store settings.
func printJoinCommand(a *app, role ca.Role, token, addr string) {
	file := role.Short() + ".token"
	fmt.Fprintf(a.stdout, "To add a %s to this cluster, run the following commands on it:\n\n", role.Short())
	fmt.Fprintf(a.stdout, "    (umask 077; echo %s > %s)\n", token, file)
	storeArgs := ""
	if role == ca.RoleManager {
		storeArgs = joinStoreArgs(a.dataDir)
	}
	fmt.Fprintf(a.stdout, "    chancery join --token-file %s%s %s\n\n", file, storeArgs, addr)
}

// shellQuote quotes v for a POSIX shell when it needs it.
func shellQuote(v string) string {
	if v != "" && !strings.ContainsAny(v, " \t\n'\"$\\`;&|<>()*?[]#~{}!") {
		return v
	}
	return "'" + strings.ReplaceAll(v, "'", `'\''`) + "'"
}

// joinStoreArgs returns the join flags that name dataDir's shared store,
// with a leading space; none for the embedded store.
func joinStoreArgs(dataDir string) string {
	s, err := store.ReadSettings(dataDir)
	if err != nil || s.Type != etcdstore.Name {
		return ""
	}
	out := " --store " + s.Type
	for _, o := range []struct{ flag, option string }{
		{"etcd-endpoints", etcdstore.OptionEndpoints}, {"etcd-prefix", etcdstore.OptionPrefix},
		{"etcd-cacert", etcdstore.OptionCACert}, {"etcd-cert", etcdstore.OptionCert}, {"etcd-key", etcdstore.OptionKey},
	} {
		if v := s.Options[o.option]; v != "" {
			out += " --" + o.flag + " " + shellQuote(v)
		}
	}
	return out
}
