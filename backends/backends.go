// Package backends is the registry of signer backends: each backend package
// registers itself under its type name ("file", "pkcs11", "vault",
// "cfssl", "stepca"), and the cluster code creates and opens roots through it without
// knowing which backend holds the key.
//
// Settings are the backend's non-secret parameters, kept in the cluster
// record (a key path, a token label, a Vault mount); secrets (passphrases,
// PINs, tokens) are read by the backend from files or environment variables
// named in the settings, and are never stored or logged.
//
// # Command-line flags
//
// A backend owns the flags that give its settings. Its registered Backend
// implements FlagDeclarer: Flags declares them on a pflag.FlagSet (a
// --pkcs11-uri, the --vault-* flags) and returns a FlagParser, whose
// Settings turns the parsed flags into Settings and refuses the shared root
// options (RootOptions: --ca-cert, --ca-key, --ca-common-name,
// --ca-key-algorithm) that do not apply to the backend.
//
// A command that creates a root (`chancery init`, a rotation) calls
// DeclareFlags on its flag set, which declares --backend and every
// registered backend's flags; once the command line is parsed,
// CommandFlags.Select finds the backend they select (the one whose flags
// are given, else the one --backend names, else Default), refuses the
// flags of two backends, and returns its name and Settings. Mistakes are
// *FlagError values, whose Hint (package hint) the command prints. The
// command never names a backend or a setting.
package backends

import (
	"context"
	"crypto/x509"
	"fmt"
	"io"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/chancery-pki/chancery/signer"
)

// Settings are a backend's non-secret parameters.
type Settings map[string]string

// Clone returns a copy of s.
func (s Settings) Clone() Settings {
	c := make(Settings, len(s))
	for k, v := range s {
		c[k] = v
	}
	return c
}

// CreateRootRequest asks a backend for a new cluster root.
type CreateRootRequest struct {
	// DataDir is chancery's data directory; relative paths in settings are
	// under it.
	DataDir string
	// Settings are the backend's parameters from the command line.
	Settings Settings
	// CommonName is the new root's subject CN.
	CommonName string
	// KeyAlgorithm names the new key's algorithm ("P-256", "P-384",
	// "RSA-3072"); empty means the backend's default.
	KeyAlgorithm string
	// ImportCertPEM and ImportKeyPEM, when set, are an existing root to use
	// instead of a new one (`--ca-cert`, `--ca-key`), checked as swarm
	// checks them. ImportKeyPassphrase decrypts an encrypted key.
	ImportCertPEM, ImportKeyPEM []byte
	ImportKeyPassphrase         []byte
	// Now is the creation time.
	Now time.Time
	// Rand is the randomness source; nil means crypto/rand.
	Rand io.Reader
}

// OpenRequest asks a backend for the Signer of an existing root.
type OpenRequest struct {
	// DataDir is chancery's data directory.
	DataDir string
	// Settings are those CreateRoot returned, as the cluster record keeps
	// them, with any command-line overrides applied.
	Settings Settings
	// Chain is the CA chain to issue under, from the cluster record.
	Chain []*x509.Certificate
	// Rand is the randomness source; nil means crypto/rand.
	Rand io.Reader
}

// Backend creates and opens roots.
type Backend interface {
	// CreateRoot makes (or imports) a root and returns its Signer and the
	// settings that open it again. It leaves nothing behind on error.
	CreateRoot(ctx context.Context, req CreateRootRequest) (signer.Signer, Settings, error)
	// Open returns the Signer of a root made by CreateRoot.
	Open(ctx context.Context, req OpenRequest) (signer.Signer, error)
}

var (
	mu       sync.RWMutex
	registry = map[string]Backend{}
)

// Register makes a backend available under name. It panics if name is
// taken, as registering twice is a programming error.
func Register(name string, b Backend) {
	mu.Lock()
	defer mu.Unlock()
	if _, dup := registry[name]; dup {
		panic("backends: " + name + " registered twice")
	}
	registry[name] = b
}

// Get returns the backend registered under name.
func Get(name string) (Backend, error) {
	mu.RLock()
	defer mu.RUnlock()
	b, ok := registry[name]
	if !ok {
		return nil, fmt.Errorf("backends: unknown backend %q (available: %s)", name, strings.Join(namesLocked(), ", "))
	}
	return b, nil
}

// Names lists the registered backends, sorted.
func Names() []string {
	mu.RLock()
	defer mu.RUnlock()
	return namesLocked()
}

func namesLocked() []string {
	n := make([]string, 0, len(registry))
	for k := range registry {
		n = append(n, k)
	}
	sort.Strings(n)
	return n
}

// SettingGenerated is the setting in which a backend whose CreateRoot can
// either generate a key or adopt one that exists (pkcs11, vault) records
// which it did: "true" when chancery generated the key. Only such a key is
// chancery's to delete (RootDeleter).
const SettingGenerated = "generated"

// Generated reports whether settings record a key that CreateRoot
// generated (SettingGenerated).
func Generated(settings Settings) bool { return settings[SettingGenerated] == "true" }

// RootDeleter is implemented by backends that can undo CreateRoot, so that a
// failed `chancery init` leaves no key behind.
type RootDeleter interface {
	// DeleteRoot removes the root key that CreateRoot made with settings.
	DeleteRoot(ctx context.Context, dataDir string, settings Settings) error
}

// Inspector is implemented by backends that can describe their key without
// signing, for `chancery info` when no manager runs (a running manager's
// Signer describes itself).
type Inspector interface {
	// Inspect returns ordered key/value details of the key the settings
	// name, never secrets.
	Inspect(ctx context.Context, dataDir string, settings Settings) ([][2]string, error)
}

// NextRooter is implemented by backends that can choose where a new root
// goes beside the current one, so that a root rotation with no backend
// flags makes its new root in the current backend: a new key file (file),
// a new key object in the same token (pkcs11), a new issuer in the same
// PKI mount or a new key in the same transit mount (vault). An external CA
// (cfssl, stepca) cannot make a root, and does not implement it.
type NextRooter interface {
	// NextRootSettings returns the settings of a new root beside the one
	// current names; id is unique to the rotation (a time and a random part).
	NextRootSettings(current Settings, id string) (Settings, error)
}

// RootForgetter is implemented by backends whose retired root keys chancery
// forgets by itself once a root rotation is done or aborted: a key file
// chancery made is deleted. Backends whose keys live in the operator's
// systems (an HSM key, a Vault issuer) do not implement it: their retired
// keys are deleted through RootDeleter, and only with the operator's
// consent (store.RetiredKey.Delete); an external CA does neither.
type RootForgetter interface {
	// ForgetRoot deletes the key material of the root settings name.
	ForgetRoot(ctx context.Context, dataDir string, settings Settings) error
}

// NextName is the name of a rotation's new root beside the root named
// current, for a backend whose roots are named (a token object's label, a
// transit key): current followed by "-" and id, where a suffix that an
// earlier rotation added (a "-" and a word of id's shape: as long, with a
// lower case hex digit wherever id has one and the same character
// elsewhere, as "20250102T030405Z-1a2b3c") is replaced rather than kept,
// so that names do not grow with every rotation. An empty current is def.
func NextName(current, def, id string) string {
	if current == "" {
		current = def
	}
	if i := len(current) - len(id) - 1; i > 0 && current[i] == '-' && sameShape(current[i+1:], id) {
		current = current[:i]
	}
	return current + "-" + id
}

// sameShape reports whether a and b are as long, with lower case hex
// digits at the same places and the same bytes elsewhere.
func sameShape(a, b string) bool {
	if len(a) != len(b) || a == "" {
		return false
	}
	for i := 0; i < len(a); i++ {
		ha, hb := lowerHex(a[i]), lowerHex(b[i])
		if ha != hb || !ha && a[i] != b[i] {
			return false
		}
	}
	return true
}

func lowerHex(c byte) bool { return '0' <= c && c <= '9' || 'a' <= c && c <= 'f' }
