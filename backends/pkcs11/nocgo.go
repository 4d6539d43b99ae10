//go:build !cgo

package pkcs11

import (
	"context"

	"github.com/chancery-pki/chancery/backends"
	"github.com/chancery-pki/chancery/signer"
)

// ErrNoCgo means this binary was built without cgo, which the PKCS#11
// backend needs to load a module.
var ErrNoCgo = &Error{Msg: "this chancery was built without cgo (CGO_ENABLED=0), and PKCS#11 needs it",
	Advice: "rebuild with CGO_ENABLED=1 and a C compiler (gcc)"}

func init() { backends.Register(Name, Backend{}) }

// Backend is the pkcs11 backend's entry in the backends registry. In a
// build without cgo every method fails with ErrNoCgo.
type Backend struct{}

var (
	_ backends.Backend     = Backend{}
	_ backends.RootDeleter = Backend{}
)

// CreateRoot fails with ErrNoCgo.
func (Backend) CreateRoot(context.Context, backends.CreateRootRequest) (signer.Signer, backends.Settings, error) {
	return nil, nil, ErrNoCgo
}

// Open fails with ErrNoCgo.
func (Backend) Open(context.Context, backends.OpenRequest) (signer.Signer, error) {
	return nil, ErrNoCgo
}

// DeleteRoot fails with ErrNoCgo.
func (Backend) DeleteRoot(context.Context, string, backends.Settings) error { return ErrNoCgo }

// Inspect fails with ErrNoCgo.
func Inspect(context.Context, backends.Settings) (KeyInfo, error) { return KeyInfo{}, ErrNoCgo }
