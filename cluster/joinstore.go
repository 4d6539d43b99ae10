package cluster

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"

	"github.com/chancery-pki/chancery/backends"
	"github.com/chancery-pki/chancery/backends/file"
	"github.com/chancery-pki/chancery/ca"
	"github.com/chancery-pki/chancery/hint"
	"github.com/chancery-pki/chancery/store"
	"github.com/chancery-pki/chancery/store/boltstore"
)

// This file checks, before a manager joins a cluster whose state is in a
// shared store (etcd), that the store it was told to use holds the cluster
// its join token is for, that the token is that cluster's manager token,
// and that the root's Signer opens from the joining manager's data
// directory: so that a join that could not run as a full manager is
// refused before anything is written.

var (
	// ErrWorkerTokenWithStore means a worker token was given with a shared
	// store: only managers reach the cluster's state.
	ErrWorkerTokenWithStore = errors.New("cluster: a worker token was given with store settings; only a manager reaches the cluster's state")
	// ErrOtherCluster means the shared store holds another cluster than the
	// one the join token is for.
	ErrOtherCluster = errors.New("cluster: the store holds another cluster than the join token's")
	// ErrNotManagerToken means the join token is neither of the stored
	// cluster's current tokens.
	ErrNotManagerToken = errors.New("cluster: the join token is not the stored cluster's current manager token")
)

// JoinStoreCheck is what CheckJoinStore checks.
type JoinStoreCheck struct {
	// DataDir is the joining manager's data directory (it need not exist
	// yet): the root's Signer is opened from there.
	DataDir string
	// Settings name the shared store.
	Settings store.Settings
	// Token is the join token.
	Token string
	// Overrides replace stored backend settings, as the manager will be
	// given them at start.
	Overrides backends.Settings
}

// CheckJoinStore opens the store req.Settings name and checks that it
// holds the cluster the join token pins (its root digest), that the token
// is that cluster's manager token, and that the current root's Signer
// opens from req.DataDir. It returns the stored cluster record. A root in
// the file backend opens only where its key file is: the error says where
// to copy it.
func CheckJoinStore(ctx context.Context, req JoinStoreCheck) (store.Cluster, error) {
	tok, err := ca.ParseJoinToken(req.Token)
	if err != nil {
		return store.Cluster{}, err
	}
	if req.Settings.Type == "" || req.Settings.Type == boltstore.Name {
		return store.Cluster{}, fmt.Errorf("cluster: a joining manager shares the cluster's store: %q is not a shared store", req.Settings.Type)
	}
	d, err := store.DriverFor(req.Settings.Type)
	if err != nil {
		return store.Cluster{}, err
	}
	st, err := d.Open(ctx, store.OpenRequest{DataDir: req.DataDir, Options: req.Settings.Options})
	if errors.Is(err, store.ErrNoStore) {
		return store.Cluster{}, hint.With(fmt.Errorf("cluster: the store holds no cluster: %w", err),
			"give the --etcd-endpoints and --etcd-prefix of the first manager's store.json ('chancery info' on it shows them)")
	}
	if err != nil {
		return store.Cluster{}, err
	}
	defer st.Close()
	c, err := st.Cluster(ctx)
	if err != nil {
		return store.Cluster{}, err
	}
	if err := tok.CheckRoot(TrustedPEM(c)); err != nil {
		return c, hint.With(fmt.Errorf("%w: the store holds the cluster %s, whose root is not the token's (%v)", ErrOtherCluster, c.ID, err),
			"give the store settings of the cluster whose manager issued the token (the first manager's store.json)")
	}
	role, err := ca.TokenRole(req.Token, c.WorkerToken, c.ManagerToken)
	switch {
	case role == ca.RoleWorker:
		return c, hint.With(ErrWorkerTokenWithStore, "join a worker without --store and the --etcd-* flags, or join a manager with 'chancery join-token -q manager'")
	case err != nil:
		return c, hint.With(ErrNotManagerToken, "the token may have been rotated: get the current one with 'chancery join-token -q manager' on a manager")
	}
	sg, err := OpenSigner(ctx, req.DataDir, c, req.Overrides, nil)
	if err != nil {
		if c.Backend.Type == file.Name && errors.Is(err, os.ErrNotExist) {
			kp := c.Backend.Settings[file.SettingKeyPath]
			if kp == "" {
				kp = file.DefaultKeyPath
			}
			if !filepath.IsAbs(kp) {
				kp = filepath.Join(req.DataDir, kp)
			}
			return c, hint.With(fmt.Errorf("cluster: the root key is in the file backend, and %s does not hold it: %w", kp, err),
				"copy the root key from the first manager's data directory ("+file.DefaultKeyPath+") to "+kp+" (mode 0600) before joining, "+
					"or rotate the root into a backend every manager reaches (pkcs11, vault, cfssl, stepca)")
		}
		return c, fmt.Errorf("cluster: the root's signer does not open on this manager: %w", err)
	}
	if cl, ok := sg.(io.Closer); ok {
		cl.Close()
	}
	return c, nil
}
