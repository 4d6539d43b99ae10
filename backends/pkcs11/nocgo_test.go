//go:build !cgo

package pkcs11

import (
	"context"
	"errors"
	"testing"

	"github.com/chancery-pki/chancery/backends"
)

func TestNoCgo(t *testing.T) {
	b, err := backends.Get(Name)
	if err != nil {
		t.Fatal(err)
	}
	settings := backends.Settings{SettingURI: "pkcs11:token=T;object=k?module-path=/m.so"}
	if _, _, err := b.CreateRoot(context.Background(), backends.CreateRootRequest{Settings: settings}); !errors.Is(err, ErrNoCgo) {
		t.Errorf("CreateRoot: %v, want ErrNoCgo", err)
	}
	if _, err := b.Open(context.Background(), backends.OpenRequest{Settings: settings}); !errors.Is(err, ErrNoCgo) {
		t.Errorf("Open: %v, want ErrNoCgo", err)
	}
	if _, err := Inspect(context.Background(), settings); !errors.Is(err, ErrNoCgo) {
		t.Errorf("Inspect: %v, want ErrNoCgo", err)
	}
}
