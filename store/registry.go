package store

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/chancery-pki/chancery/internal/atomicfile"
)

// This file chooses a Store from a data directory's settings: drivers
// (the embedded bbolt store, "bbolt", and "etcd") register under a type name, and
// a data directory's settings file names the type and its options.

// SettingsFile is the file in a data directory that says which store holds
// the cluster's state and how to reach it. It holds no secrets (an etcd
// client key is named by its path), and is written 0600 all the same.
const SettingsFile = "store.json"

// DefaultType is the store of a data directory whose settings file is
// missing: the embedded store, chosen before settings files existed.
const DefaultType = "bbolt"

// ErrNoStore means a data directory names no store: it holds no cluster
// state (a worker's, or an empty one).
var ErrNoStore = errors.New("store: this data directory holds no cluster state")

// Settings say which store holds a cluster's state.
type Settings struct {
	// Type names the driver, such as "bbolt".
	Type string `json:"type"`
	// Options are the driver's options, such as an etcd endpoint list.
	// They never hold secrets.
	Options map[string]string `json:"options,omitempty"`
}

// OpenRequest asks a driver for a Store.
type OpenRequest struct {
	// DataDir is the data directory the settings came from; relative paths
	// in Options are relative to it.
	DataDir string
	// Options are the settings' options.
	Options map[string]string
	// Create allows the driver to create a new, empty store (chancery
	// init); otherwise a store that does not exist is ErrNoStore.
	Create bool
	// Now is the clock for the timestamps the store sets; nil means
	// time.Now.
	Now func() time.Time
}

// Driver opens one type of Store.
type Driver interface {
	// Open opens the store req describes.
	Open(ctx context.Context, req OpenRequest) (Store, error)
	// Exists reports whether the store req describes holds anything, without
	// creating it.
	Exists(ctx context.Context, req OpenRequest) (bool, error)
}

var (
	driversMu sync.RWMutex
	drivers   = map[string]Driver{}
)

// Register makes a driver available under name. It panics if name is
// taken, as registering twice is a programming error.
func Register(name string, d Driver) {
	driversMu.Lock()
	defer driversMu.Unlock()
	if _, dup := drivers[name]; dup {
		panic("store: driver " + name + " registered twice")
	}
	drivers[name] = d
}

// DriverFor returns the driver registered under name.
func DriverFor(name string) (Driver, error) {
	driversMu.RLock()
	defer driversMu.RUnlock()
	d, ok := drivers[name]
	if !ok {
		names := make([]string, 0, len(drivers))
		for n := range drivers {
			names = append(names, n)
		}
		sort.Strings(names)
		return nil, fmt.Errorf("store: unknown store type %q (available: %s)", name, strings.Join(names, ", "))
	}
	return d, nil
}

// ReadSettings reads dataDir's settings file. A data directory without one
// has DefaultType's settings; os.ErrNotExist is never returned.
func ReadSettings(dataDir string) (Settings, error) {
	p := filepath.Join(dataDir, SettingsFile)
	f, err := os.Open(p)
	if errors.Is(err, os.ErrNotExist) {
		return Settings{Type: DefaultType}, nil
	}
	if err != nil {
		return Settings{}, fmt.Errorf("store: the settings file: %w", err)
	}
	defer f.Close()
	// A settings file is a few hundred bytes; more is not one.
	data, err := io.ReadAll(io.LimitReader(f, 64<<10+1))
	if err != nil {
		return Settings{}, fmt.Errorf("store: the settings file %s: %w", p, err)
	}
	if len(data) > 64<<10 {
		return Settings{}, fmt.Errorf("store: the settings file %s is larger than 64 KiB", p)
	}
	var s Settings
	dec := json.NewDecoder(strings.NewReader(string(data)))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&s); err != nil {
		return Settings{}, fmt.Errorf("store: the settings file %s is not valid: %w", p, err)
	}
	if s.Type == "" {
		return Settings{}, fmt.Errorf("store: the settings file %s names no store type", p)
	}
	return s, nil
}

// WriteSettings creates dataDir's settings file, 0600. It refuses to
// replace one.
func WriteSettings(dataDir string, s Settings) error {
	if s.Type == "" {
		return errors.New("store: settings without a store type")
	}
	data, err := json.MarshalIndent(s, "", "  ")
	if err != nil {
		return fmt.Errorf("store: failed to encode the settings: %w", err)
	}
	if err := atomicfile.WriteNew(filepath.Join(dataDir, SettingsFile), append(data, '\n'), 0o600); err != nil {
		return fmt.Errorf("store: the settings file: %w", err)
	}
	return nil
}

// ReplaceSettings replaces dataDir's settings file, or creates it, 0600, in
// one atomic step: a crash leaves the old file or the new one.
func ReplaceSettings(dataDir string, s Settings) error {
	if s.Type == "" {
		return errors.New("store: settings without a store type")
	}
	data, err := json.MarshalIndent(s, "", "  ")
	if err != nil {
		return fmt.Errorf("store: failed to encode the settings: %w", err)
	}
	if err := atomicfile.Write(filepath.Join(dataDir, SettingsFile), append(data, '\n'), 0o600); err != nil {
		return fmt.Errorf("store: the settings file: %w", err)
	}
	return nil
}

// Open opens the store dataDir's settings name (see ReadSettings). A data
// directory whose store does not exist gives ErrNoStore.
func Open(ctx context.Context, dataDir string, now func() time.Time) (Store, error) {
	s, err := ReadSettings(dataDir)
	if err != nil {
		return nil, err
	}
	d, err := DriverFor(s.Type)
	if err != nil {
		return nil, err
	}
	return d.Open(ctx, OpenRequest{DataDir: dataDir, Options: s.Options, Now: now})
}

// Exists reports whether dataDir's settings name a store that holds
// anything: whether the data directory is a manager's that reaches the
// cluster's state.
func Exists(ctx context.Context, dataDir string) (bool, error) {
	s, err := ReadSettings(dataDir)
	if err != nil {
		return false, err
	}
	d, err := DriverFor(s.Type)
	if err != nil {
		return false, err
	}
	return d.Exists(ctx, OpenRequest{DataDir: dataDir, Options: s.Options})
}
