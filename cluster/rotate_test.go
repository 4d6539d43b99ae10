package cluster

import (
	"context"
	"os"
	"path/filepath"
	"testing"

	"github.com/chancery-pki/chancery/backends/file"
)

// TestStartRotationRetargetSameSecond replaces a rotation's target within
// the same second: the second new key file gets another name than the
// first, which is deleted.
func TestStartRotationRetargetSameSecond(t *testing.T) {
	ctx := context.Background()
	dataDir, st, _ := newCluster(t)
	req := RotateRequest{DataDir: dataDir, Now: fixedNow}
	first, err := StartRotation(ctx, st, req)
	if err != nil {
		t.Fatal(err)
	}
	second, err := StartRotation(ctx, st, req)
	if err != nil {
		t.Fatalf("a new target within the same second: %v", err)
	}
	k1 := filepath.Join(dataDir, first.Rotation.Target.Backend.Settings[file.SettingKeyPath])
	k2 := filepath.Join(dataDir, second.Rotation.Target.Backend.Settings[file.SettingKeyPath])
	if k1 == k2 {
		t.Fatalf("both targets' keys are at %s", k1)
	}
	if _, err := os.Stat(k1); !os.IsNotExist(err) {
		t.Errorf("the first target's key file is still there (%v)", err)
	}
	if _, err := os.Stat(k2); err != nil {
		t.Errorf("the second target's key file: %v", err)
	}
}
