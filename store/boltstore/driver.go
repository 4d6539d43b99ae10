package boltstore

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"github.com/chancery-pki/chancery/store"
)

// Name is the store type of this package in a data directory's settings
// (store.Settings.Type).
const Name = store.DefaultType

// File is the store file's name in the data directory, unless the
// settings' OptionPath names another.
const File = "chancery.db"

// OptionPath names the store file in store.Settings.Options, relative to
// the data directory unless absolute. Default File.
const OptionPath = "path"

func init() { store.Register(Name, driver{}) }

// driver opens bbolt stores for store.Open.
type driver struct{}

// Path returns the store file of a data directory with the given options.
func Path(dataDir string, options map[string]string) string {
	p := options[OptionPath]
	if p == "" {
		p = File
	}
	if filepath.IsAbs(p) {
		return p
	}
	return filepath.Join(dataDir, p)
}

func (driver) Open(ctx context.Context, req store.OpenRequest) (store.Store, error) {
	if err := checkOptions(req.Options); err != nil {
		return nil, err
	}
	p := Path(req.DataDir, req.Options)
	if !req.Create {
		if _, err := os.Stat(p); errors.Is(err, os.ErrNotExist) {
			return nil, fmt.Errorf("%w (no %s)", store.ErrNoStore, p)
		}
	}
	return Open(p, Options{Now: req.Now})
}

func (driver) Exists(ctx context.Context, req store.OpenRequest) (bool, error) {
	if err := checkOptions(req.Options); err != nil {
		return false, err
	}
	_, err := os.Stat(Path(req.DataDir, req.Options))
	switch {
	case err == nil:
		return true, nil
	case errors.Is(err, os.ErrNotExist):
		return false, nil
	}
	return false, fmt.Errorf("boltstore: %w", err)
}

func checkOptions(opts map[string]string) error {
	for k := range opts {
		if k != OptionPath {
			return fmt.Errorf("boltstore: unknown store option %q (the embedded store takes %q)", k, OptionPath)
		}
	}
	return nil
}
