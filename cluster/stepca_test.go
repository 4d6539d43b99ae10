package cluster

import (
	"context"
	"errors"
	"testing"

	"github.com/chancery-pki/chancery/backends"
	"github.com/chancery-pki/chancery/backends/stepca"
	"github.com/chancery-pki/chancery/internal/stepcadev"
	"github.com/chancery-pki/chancery/signer"
	"github.com/chancery-pki/chancery/store"
)

// TestRotationFromStepCAWithoutCrossSignRefused: a rotation out of a
// step-ca whose provisioner does not issue CA certificates is refused
// before anything changes, with stepca.ErrNoCrossSign, rather than failing
// at its first step.
func TestRotationFromStepCAWithoutCrossSignRefused(t *testing.T) {
	srv := stepcadev.Start(t, stepcadev.Options{RootSigns: true})
	b, err := backends.Get(stepca.Name)
	if err != nil {
		t.Fatal(err)
	}
	cur, _, err := b.CreateRoot(context.Background(), backends.CreateRootRequest{DataDir: t.TempDir(), Settings: srv.Settings()})
	if err != nil {
		t.Fatal(err)
	}
	defer cur.(*stepca.Signer).Close()
	// A cluster whose current Signer is the step-ca (through the Current
	// hook); its new root goes beside the stored one, a key file.
	dataDir, st, _ := newCluster(t)
	before := clusterRecord(t, st)
	_, err = StartRotation(context.Background(), st, RotateRequest{DataDir: dataDir,
		Current: func(context.Context, store.Cluster) (signer.Signer, func(), error) { return cur, func() {}, nil }})
	if !errors.Is(err, stepca.ErrNoCrossSign) {
		t.Fatalf("StartRotation out of a step-ca that does not cross-sign: %v, want stepca.ErrNoCrossSign", err)
	}
	t.Log(err)
	if after := clusterRecord(t, st); after.Rotation != nil || after.Version != before.Version {
		t.Errorf("the refused rotation changed the record: %+v", after.Rotation)
	}
}
