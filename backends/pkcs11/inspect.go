package pkcs11

import (
	"context"

	"github.com/chancery-pki/chancery/backends"
)

var _ backends.Inspector = Backend{}

// Inspect implements backends.Inspector: the key's token, label, id and the
// attributes read back from the token.
func (Backend) Inspect(ctx context.Context, _ string, settings backends.Settings) ([][2]string, error) {
	info, err := Inspect(ctx, settings)
	if err != nil {
		return nil, err
	}
	return info.Details(), nil
}
