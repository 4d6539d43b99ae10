package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"time"

	"github.com/spf13/cobra"

	"github.com/chancery-pki/chancery/agent"
	"github.com/chancery-pki/chancery/backends"
	"github.com/chancery-pki/chancery/backends/file"
	"github.com/chancery-pki/chancery/cluster"
	"github.com/chancery-pki/chancery/datadir"
	"github.com/chancery-pki/chancery/hint"
	"github.com/chancery-pki/chancery/manager"
	"github.com/chancery-pki/chancery/server"
)

func newRunCmd(a *app) *cobra.Command {
	var listen, advertise, metricsAddr, passFile string
	var ext *extCAFlags
	cmd := &cobra.Command{
		Use:   "run",
		Short: "Run the manager or node of a data directory in the foreground (after a restart)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if a.heartbeat < 100*time.Millisecond {
				return fmt.Errorf("--dispatcher-heartbeat %s is too short: give at least 100ms", a.heartbeat)
			}
			if err := checkRotationFlags(a.stragglerGrace, cmd.Flags().Changed("straggler-grace"), a.renewRate, a.heartbeat); err != nil {
				return err
			}
			if err := datadir.Check(a.dataDir); err != nil {
				return err
			}
			if ok, err := cluster.HasStore(a.dataDir); err != nil {
				return err
			} else if ok {
				overrides := backends.Settings{}
				if passFile != "" {
					overrides[file.SettingPassphraseFile] = passFile
				}
				extCfg, err := ext.config()
				if err != nil {
					return err
				}
				return a.runManager(cmd.Context(), listen, advertise, metricsAddr, overrides, extCfg)
			}
			if advertise != "" {
				return hint.With(errors.New("--advertise-addr is for a manager on a shared store"), "give it to 'chancery join' with --store etcd, or drop it")
			}
			if _, err := agent.ReadState(a.dataDir); err == nil {
				return a.runNode(cmd.Context(), listen)
			}
			return hint.With(fmt.Errorf("%s holds neither a manager nor a node", a.dataDir),
				"create a cluster with 'chancery init', or join one with 'chancery join --token-file FILE MANAGER'")
		},
	}
	cmd.Flags().StringVar(&listen, "listen-addr", "", "override the manager's stored listen address")
	cmd.Flags().StringVar(&advertise, "advertise-addr", "", "override the address nodes are told to reach this manager on, with a store in etcd (the forms init takes)")
	cmd.Flags().StringVar(&metricsAddr, "metrics-addr", "", "serve Prometheus metrics over plain HTTP on this address")
	ext = addExtCAFlags(cmd.Flags())
	cmd.Flags().StringVar(&passFile, "ca-passphrase-file", "", "file holding the root key's passphrase (else $"+file.PassphraseEnv+")")
	cmd.Flags().DurationVar(&a.heartbeat, "dispatcher-heartbeat", server.DefaultHeartbeatPeriod, "how often nodes report to the manager, as docker's --dispatcher-heartbeat")
	cmd.Flags().DurationVar(&a.stragglerGrace, "straggler-grace", server.DefaultStragglerGrace,
		fmt.Sprintf("how long a node may stay silent before a root rotation counts it as a straggler, which blocks the rotation until it reports or 'ca --force' excludes it (%s to %s, and 4 heartbeats at least)", minStragglerGrace, maxStragglerGrace))
	cmd.Flags().Float64Var(&a.renewRate, "renew-rate", server.DefaultRenewRate,
		fmt.Sprintf("how many nodes a second are asked to renew during a root rotation (%g to %g)", minRenewRate, maxRenewRate))
	return cmd
}

// The bounds of run's rotation flags.
const (
	// minStragglerGrace: shorter, a node that reports on time could be
	// counted silent between two heartbeats.
	minStragglerGrace = time.Second
	// maxStragglerGrace: longer, a dead node would block a rotation for
	// more than a day before 'ca --force' could exclude it.
	maxStragglerGrace = 24 * time.Hour
	// stragglerHeartbeats is how many heartbeat periods the grace spans at
	// least: with a store in etcd, a node's heartbeat reaches the other
	// managers at most every second heartbeat.
	stragglerHeartbeats = 4
	minRenewRate        = 1.0
	maxRenewRate        = 100000.0
)

// checkRotationFlags checks --straggler-grace and --renew-rate against
// their bounds, and a grace given (set) against the heartbeat period (the
// default grace is left as it was with a long heartbeat).
func checkRotationFlags(grace time.Duration, set bool, renewRate float64, heartbeat time.Duration) error {
	switch {
	case grace < minStragglerGrace || grace > maxStragglerGrace:
		return fmt.Errorf("--straggler-grace %s is out of range: give %s to %s", grace, minStragglerGrace, maxStragglerGrace)
	case set && grace < stragglerHeartbeats*heartbeat:
		return fmt.Errorf("--straggler-grace %s is shorter than %d heartbeats (--dispatcher-heartbeat %s): nodes that report on time would count as stragglers; give %s at least",
			grace, stragglerHeartbeats, heartbeat, stragglerHeartbeats*heartbeat)
	case !(renewRate >= minRenewRate && renewRate <= maxRenewRate): // NaN too
		return fmt.Errorf("--renew-rate %g is out of range: give %g to %g nodes a second", renewRate, minRenewRate, maxRenewRate)
	}
	return nil
}

// runManager runs the manager of the data directory until interrupted.
func (a *app) runManager(ctx context.Context, listen, advertise, metricsAddr string, overrides backends.Settings, ext *manager.ExternalCAConfig) error {
	log, err := a.logger()
	if err != nil {
		return err
	}
	err = manager.Run(ctx, manager.Config{
		DataDir: a.dataDir, ListenAddr: listen, AdvertiseAddr: advertise, MetricsAddr: metricsAddr, BackendOverrides: overrides, Logger: log,
		HeartbeatPeriod: a.heartbeat, StragglerGrace: a.stragglerGrace, RenewRate: a.renewRate,
		ExternalCA: ext,
	})
	switch {
	case errors.Is(err, file.ErrPassphraseNeeded):
		return hint.With(err, "give the root key's passphrase with --ca-passphrase-file FILE or $"+file.PassphraseEnv)
	case errors.Is(err, agent.ErrExpired):
		return hint.With(err, "the manager's own certificate expired while it was stopped; see the README's recovery section")
	case errors.Is(err, agent.ErrRemoved):
		return hint.With(err, "this manager was removed from the cluster (excluded from a root rotation by 'chancery ca --force', removed with 'chancery node rm', or it left); join it again with a manager token")
	}
	return err
}

// runNode runs the node of the data directory until interrupted: its
// agent, and the forwarding manager API while it is a manager.
func (a *app) runNode(ctx context.Context, listen string) error {
	log, err := a.logger()
	if err != nil {
		return err
	}
	hostname, _ := os.Hostname()
	if st, err := agent.ReadState(a.dataDir); err == nil && st.Hostname != "" {
		hostname = st.Hostname
	}
	err = manager.RunNode(ctx, manager.NodeConfig{DataDir: a.dataDir, ListenAddr: listen, Hostname: hostname, Logger: log})
	if errors.Is(err, agent.ErrExpired) {
		return hint.With(err, "ask a manager for a token with 'chancery join-token worker' (or manager)")
	}
	return err
}
