//go:build cgo

package softhsm

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"testing"

	"github.com/miekg/pkcs11"
)

// ConfEnv is the environment variable SoftHSM2 reads its configuration
// path from.
const ConfEnv = "SOFTHSM2_CONF"

// proc is the process's private SoftHSM2 configuration.
var proc struct {
	once sync.Once
	err  error
	dir  string // holds softhsm2.conf and tokens/
	conf string
	mu   sync.Mutex // serializes token creation
}

// WriteConfig writes a SoftHSM2 configuration to dir/softhsm2.conf whose
// token directory is dir/tokens, creating both (0700), and returns the
// configuration's path.
func WriteConfig(dir string) (string, error) {
	tokens := filepath.Join(dir, "tokens")
	if err := os.MkdirAll(tokens, 0o700); err != nil {
		return "", fmt.Errorf("softhsm: failed to create the token directory: %w", err)
	}
	conf := filepath.Join(dir, "softhsm2.conf")
	body := "# Written by chancery's softhsm package: a private SoftHSM2 configuration.\n" +
		"directories.tokendir = " + tokens + "\n" +
		"objectstore.backend = file\n" +
		"log.level = ERROR\n" +
		"slots.removable = false\n"
	if err := os.WriteFile(conf, []byte(body), 0o600); err != nil {
		return "", fmt.Errorf("softhsm: failed to write %s: %w", conf, err)
	}
	return conf, nil
}

// setup makes the process's configuration and points SOFTHSM2_CONF at it,
// once. It refuses to when the module is already initialized in the
// process, since that module would keep its tokens where another
// configuration says.
func setup(module string) error {
	proc.once.Do(func() {
		if initialized(module) {
			proc.err = errors.New("softhsm: the SoftHSM2 module was initialized in this process before the private configuration was set up; make tokens with softhsm.NewToken before opening any")
			return
		}
		dir, err := os.MkdirTemp("", "chancery-softhsm-")
		if err != nil {
			proc.err = fmt.Errorf("softhsm: %w", err)
			return
		}
		conf, err := WriteConfig(dir)
		if err != nil {
			os.RemoveAll(dir)
			proc.err = err
			return
		}
		if err := os.Setenv(ConfEnv, conf); err != nil {
			os.RemoveAll(dir)
			proc.err = fmt.Errorf("softhsm: %w", err)
			return
		}
		proc.dir, proc.conf = dir, conf
	})
	return proc.err
}

// initialized reports whether the module is initialized in this process.
func initialized(module string) bool {
	p := pkcs11.New(module)
	if p == nil {
		return false
	}
	defer p.Destroy()
	_, err := p.GetInfo()
	return err == nil
}

// ConfigPath returns the process's SoftHSM2 configuration, or "" before the
// first token was made.
func ConfigPath() string {
	proc.mu.Lock()
	defer proc.mu.Unlock()
	return proc.conf
}

// Main runs the tests and then removes the process's token directory. Call
// it from TestMain:
//
//	func TestMain(m *testing.M) { os.Exit(softhsm.Main(m)) }
func Main(m *testing.M) int {
	code := m.Run()
	if proc.dir != "" {
		os.RemoveAll(proc.dir)
	}
	return code
}
