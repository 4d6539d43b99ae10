package main

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/chancery-pki/chancery/api"
	"github.com/chancery-pki/chancery/audit"
	"github.com/chancery-pki/chancery/certdir"
	"github.com/chancery-pki/chancery/datadir"
	"github.com/chancery-pki/chancery/hint"
	"github.com/chancery-pki/chancery/store"
	"github.com/chancery-pki/chancery/store/boltstore"
	"github.com/chancery-pki/chancery/store/etcdstore"
	"github.com/chancery-pki/chancery/store/migrate"
)

func newStoreCmd(a *app) *cobra.Command {
	cmd := &cobra.Command{Use: "store", Short: "Manage where the cluster's state is kept"}
	cmd.AddCommand(newStoreMigrateCmd(a))
	return cmd
}

func newStoreMigrateCmd(a *app) *cobra.Command {
	stf := &storeFlags{typFlag: "to"}
	cmd := &cobra.Command{
		Use:   "migrate --to etcd --etcd-endpoints URL,...",
		Short: "Move a stopped manager's state from the embedded store into etcd, audit log included, and verify it",
		Long: `migrate copies the cluster record, every node, every certificate record
and the audit log (byte for byte) from this data directory's embedded store
into an empty etcd prefix, then verifies the copy: the audit log verifies
as 'chancery audit verify' does and ends at the same head, and the counts
of nodes and certificate records match. Only then does the data directory's
store.json name etcd; the old store file is kept, renamed aside. On any
failure store.json is unchanged and what was written to etcd is removed.
The manager must be stopped.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if stf.typ != etcdstore.Name {
				return fmt.Errorf("--to %q: the only store to migrate to is etcd", stf.typ)
			}
			target, err := stf.settings()
			if err != nil {
				return err
			}
			return a.migrateStore(cmd, target)
		},
	}
	f := cmd.Flags()
	f.StringVar(&stf.typ, "to", "", "the store to move to: etcd")
	stf.addEtcdFlags(f, "")
	return cmd
}

// migrateStore moves the data directory's bbolt store into the etcd store
// target names.
func (a *app) migrateStore(cmd *cobra.Command, target store.Settings) error {
	ctx := cmd.Context()
	if err := datadir.Check(a.dataDir); err != nil {
		return err
	}
	cur, err := store.ReadSettings(a.dataDir)
	if err != nil {
		return err
	}
	if cur.Type != boltstore.Name {
		return fmt.Errorf("this data directory's state is in the %s store already; store migrate moves it from the embedded store (%s)", cur.Type, boltstore.Name)
	}
	dbPath := boltstore.Path(a.dataDir, cur.Options)
	if _, err := os.Stat(dbPath); err != nil {
		return hint.With(fmt.Errorf("%w (%s: %v)", store.ErrNoStore, dbPath, err), "run store migrate on the manager's data directory (--data-dir)")
	}
	if conn, err := net.DialTimeout("unix", filepath.Join(a.dataDir, api.SocketFile), time.Second); err == nil {
		conn.Close()
		return errors.New("the manager of this data directory is running (its admin socket answers): stop it before store migrate, and start it again after")
	}
	src, err := boltstore.Open(dbPath, boltstore.Options{Timeout: 500 * time.Millisecond})
	if errors.Is(err, boltstore.ErrLocked) {
		return hint.With(err, "the manager (or another chancery command) has the store open: stop it before store migrate")
	}
	if err != nil {
		return err
	}
	defer src.Close()
	cfg, err := etcdstore.ParseOptions(a.dataDir, target.Options)
	if err != nil {
		return err
	}
	dst, err := etcdstore.Open(ctx, cfg, nil)
	if err != nil {
		return err
	}
	defer dst.Close()

	res, err := migrate.Copy(ctx, src, dst, func(c store.Cluster) ([]audit.Root, error) {
		return migrateRoots(a.dataDir, c)
	})
	if errors.Is(err, migrate.ErrNotEmpty) {
		return hint.With(fmt.Errorf("etcd at %s holds keys under the prefix %q already: store migrate moves a cluster into an empty prefix only", strings.Join(cfg.Endpoints, ","), cfg.Prefix),
			"choose another prefix with --etcd-prefix /NAME/ (etcdctl get --prefix --keys-only "+cfg.Prefix+" shows what is there)")
	}
	if errors.Is(err, migrate.ErrClaimed) {
		return hint.With(fmt.Errorf("%w (store.json is unchanged, and nothing was written to etcd)", err),
			"another store migrate is copying into this prefix; wait for it, or, if it has stopped, run store migrate again once its claim has lapsed (it then deletes the partial copy and starts again)")
	}
	if err != nil {
		return fmt.Errorf("%w (store.json is unchanged; what was written under %q in etcd was removed, or, if that failed, is taken over by the next store migrate)", err, cfg.Prefix)
	}

	// The copy verifies: set the old file aside and name etcd.
	if err := src.Close(); err != nil {
		return a.undoMigrate(ctx, dst, fmt.Errorf("closing the embedded store: %w", err))
	}
	aside := dbPath + ".migrated-" + time.Now().UTC().Format("20060102T150405Z")
	if err := os.Rename(dbPath, aside); err != nil {
		return a.undoMigrate(ctx, dst, fmt.Errorf("setting the embedded store aside: %w", err))
	}
	if err := store.ReplaceSettings(a.dataDir, target); err != nil {
		if rerr := os.Rename(aside, dbPath); rerr != nil {
			err = fmt.Errorf("%w; moving %s back to %s also failed: %v", err, aside, dbPath, rerr)
		}
		return a.undoMigrate(ctx, dst, err)
	}
	fmt.Fprintf(a.stdout, "Moved the cluster's state to etcd at %s under %s: %d nodes, %d certificate records, %d audit entries (%d checkpoints), verified; audit head %d.\n",
		strings.Join(cfg.Endpoints, ","), cfg.Prefix, res.Nodes, res.Certificates, res.Audit.Entries, res.Audit.Checkpoints, res.Audit.Head.Seq)
	fmt.Fprintf(a.stdout, "%s now names the etcd store. The old store is kept at %s; remove it once the manager runs well on etcd.\n",
		filepath.Join(a.dataDir, store.SettingsFile), aside)
	fmt.Fprintf(a.stdout, "Start the manager again with 'chancery run --data-dir %s'.\n", a.dataDir)
	return nil
}

// undoMigrate removes the copy from etcd after a failure past verification.
func (a *app) undoMigrate(ctx context.Context, dst *etcdstore.Store, err error) error {
	dctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
	defer cancel()
	if derr := dst.Destroy(dctx); derr != nil {
		return fmt.Errorf("%w (store.json is unchanged; removing the copy from etcd also failed: %v)", err, derr)
	}
	return fmt.Errorf("%w (store.json is unchanged, and nothing is left in etcd)", err)
}

// migrateRoots are the roots audit verify checks checkpoints against, from
// the cluster record c, with its current root one this node trusts.
func migrateRoots(dataDir string, c store.Cluster) ([]audit.Root, error) {
	trusted, _, err := certdir.In(dataDir).Root()
	if err != nil {
		return nil, err
	}
	var records []api.RootRecord
	for _, r := range c.Roots() {
		records = append(records, api.RootRecord{CertificatePEM: string(r.CertPEM), Backend: r.Backend.Type, ActiveFrom: r.ActiveFrom, ActiveUntil: r.ActiveUntil})
	}
	return auditRoots(records, trusted)
}
