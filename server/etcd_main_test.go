package server

import (
	"os"
	"testing"

	"github.com/chancery-pki/chancery/internal/etcddev"
)

// TestMain stops the shared etcd that the suite starts when it runs on
// etcd (CHANCERY_TEST_STORE=etcd).
func TestMain(m *testing.M) {
	code := m.Run()
	etcddev.StopShared()
	os.Exit(code)
}
