package stepca_test

import (
	"context"
	"testing"

	"github.com/chancery-pki/chancery/backends"
	. "github.com/chancery-pki/chancery/backends/stepca"
	"github.com/chancery-pki/chancery/conformance"
	"github.com/chancery-pki/chancery/internal/stepcadev"
	"github.com/chancery-pki/chancery/signer"
)

// newTestSigner opens the stepca backend on srv, as `chancery init` does,
// closed when t ends.
func newTestSigner(t *testing.T, srv *stepcadev.Server) *Signer {
	t.Helper()
	return newTestSignerWith(t, srv.Settings())
}

// newTestSignerWith opens the stepca backend with settings.
func newTestSignerWith(t *testing.T, settings backends.Settings) *Signer {
	t.Helper()
	s, _, err := Backend{}.CreateRoot(context.Background(), backends.CreateRootRequest{DataDir: t.TempDir(), Settings: settings})
	if err != nil {
		t.Fatalf("CreateRoot: %v", err)
	}
	t.Cleanup(func() { s.(*Signer).Close() })
	return s.(*Signer)
}

func TestConformance(t *testing.T) {
	for _, tc := range []struct {
		name string
		opts stepcadev.Options
	}{
		{"Intermediate", stepcadev.Options{CrossSign: true}},
		{"RootSigns", stepcadev.Options{CrossSign: true, RootSigns: true}},
		{"X5C", stepcadev.Options{CrossSign: true, X5C: true}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			srv := stepcadev.Start(t, tc.opts)
			settings := srv.Settings()
			if tc.opts.X5C {
				settings = srv.X5CSettings()
			}
			conformance.Run(t, func(t *testing.T) signer.Signer { return newTestSignerWith(t, settings) }, conformance.Options{})
		})
	}
}
