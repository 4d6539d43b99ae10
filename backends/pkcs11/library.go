//go:build cgo

package pkcs11

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/ThalesIgnite/crypto11"
	"github.com/miekg/pkcs11"
)

// poolWaitTimeout is how long a signer waits for a session from the pool.
const poolWaitTimeout = 30 * time.Second

// modules counts the crypto11 contexts this package has open on each module
// path. crypto11 initializes a module when it opens the first context on
// it and finalizes it when it closes the last one; the lookups this package
// does with miekg/pkcs11 before opening a context must leave the module as
// crypto11 expects it: initialized when a context is open, finalized when
// none is. The mutex also serializes every open and close, so that no two
// of them race on C_Initialize and C_Finalize.
var modules = struct {
	sync.Mutex
	open map[string]int
}{open: map[string]int{}}

// tokenConn is an open crypto11 context on one token.
type tokenConn struct {
	c11 *crypto11.Context
	// path is the module's canonical path; module is as the URI gives it.
	path, module string
	token        pkcs11.TokenInfo
	// matches counts the private keys that matched the URI when the token
	// was opened.
	matches int
}

// openToken loads the URI's module, finds its token, logs in with pin
// (checking the PIN itself, so that a wrong PIN gets its own error), counts
// the private keys that match the URI, and opens a crypto11 context on the
// token.
func openToken(u *URI, pin string, from pinFrom, maxSessions int) (*tokenConn, error) {
	if maxSessions <= 0 {
		maxSessions = DefaultMaxSessions
	}
	if maxSessions < 2 {
		maxSessions = 2
	}
	modules.Lock()
	defer modules.Unlock()

	if err := checkModule(u.ModulePath); err != nil {
		return nil, err
	}
	path := canonicalModule(u.ModulePath)
	p := pkcs11.New(path)
	if p == nil {
		return nil, &Error{Kind: ErrModuleNotFound, Msg: fmt.Sprintf("%s cannot be loaded as a PKCS#11 module", path),
			Advice: "module-path must name the HSM vendor's PKCS#11 library (SoftHSM2: /usr/lib/softhsm/libsofthsm2.so)"}
	}
	defer p.Destroy()
	if err := p.Initialize(); err != nil && !isCKR(err, pkcs11.CKR_CRYPTOKI_ALREADY_INITIALIZED) {
		return nil, &Error{Kind: ErrModuleNotFound, Msg: fmt.Sprintf("failed to initialize the PKCS#11 module %s", path), Err: err,
			Advice: "for SoftHSM2, check that SOFTHSM2_CONF names a readable configuration whose tokendir exists"}
	}
	// With no context of ours open, crypto11 initializes the module itself
	// and fails if it already is: leave it finalized, as found.
	fresh := modules.open[path] == 0
	finalize := func() {
		if fresh {
			p.Finalize()
		}
	}
	tok, slot, err := findToken(p, u)
	if err != nil {
		finalize()
		return nil, err
	}
	sh, err := p.OpenSession(slot, pkcs11.CKF_SERIAL_SESSION)
	if err != nil {
		finalize()
		return nil, &Error{Msg: fmt.Sprintf("failed to open a session on token %q", tok.Label), Err: err}
	}
	loginRequired := tok.Flags&pkcs11.CKF_LOGIN_REQUIRED != 0
	if loginRequired {
		if err := login(p, sh, tok, pin, from); err != nil {
			p.CloseSession(sh)
			finalize()
			return nil, err
		}
	}
	matches, err := countKeys(p, sh, u)
	if err != nil {
		p.CloseSession(sh)
		finalize()
		return nil, &Error{Msg: fmt.Sprintf("failed to search token %q for the key", tok.Label), Err: err}
	}

	cfg := &crypto11.Config{
		Path:              path,
		Pin:               pin,
		MaxSessions:       maxSessions,
		PoolWaitTimeout:   poolWaitTimeout,
		LoginNotSupported: !loginRequired,
	}
	if fresh {
		// crypto11 initializes the module again, and slot IDs may change
		// across C_Initialize: select the token by what identifies it.
		p.CloseSession(sh)
		p.Finalize()
		switch {
		case tok.SerialNumber != "":
			cfg.TokenSerial = tok.SerialNumber
		default:
			cfg.TokenLabel = tok.Label
		}
	} else {
		// Keep this session, and so the login, until crypto11 has logged in.
		defer p.CloseSession(sh)
		n := int(slot)
		cfg.SlotNumber = &n
	}
	c11, err := crypto11.Configure(cfg)
	if err != nil {
		return nil, &Error{Msg: fmt.Sprintf("failed to open token %q", tok.Label), Err: err}
	}
	modules.open[path]++
	return &tokenConn{c11: c11, path: path, module: u.ModulePath, token: tok, matches: matches}, nil
}

// close closes the crypto11 context; crypto11 finalizes the module when it
// was its last context.
func (tc *tokenConn) close() error {
	modules.Lock()
	defer modules.Unlock()
	err := tc.c11.Close()
	modules.open[tc.path]--
	if err != nil && !isCKR(err, pkcs11.CKR_CRYPTOKI_NOT_INITIALIZED) {
		return &Error{Msg: fmt.Sprintf("failed to close token %q", tc.token.Label), Err: err}
	}
	return nil
}

// canonicalModule resolves symbolic links in a module's path: crypto11
// counts its contexts per path string, and two paths of one library would
// each have it initialize the library.
func canonicalModule(path string) string {
	if !strings.Contains(path, "/") {
		return path
	}
	if p, err := filepath.EvalSymlinks(path); err == nil {
		return p
	}
	return path
}

// checkModule gives a missing module its own error before dlopen does.
// A bare file name is left to the dynamic loader's search path.
func checkModule(path string) error {
	if path == "" {
		return &Error{Kind: ErrModuleNotFound, Msg: "the URI names no PKCS#11 module",
			Advice: "add ?module-path=/path/to/module.so (SoftHSM2: /usr/lib/softhsm/libsofthsm2.so)"}
	}
	if !strings.Contains(path, "/") {
		return nil
	}
	if _, err := os.Stat(path); err != nil {
		hint := "install the HSM's PKCS#11 library or fix module-path"
		if strings.Contains(path, "softhsm") {
			hint = "install SoftHSM2 (apt-get install softhsm2) or fix module-path"
		}
		if errors.Is(err, os.ErrNotExist) {
			return &Error{Kind: ErrModuleNotFound, Msg: fmt.Sprintf("PKCS#11 module %s does not exist", path), Advice: hint}
		}
		return &Error{Kind: ErrModuleNotFound, Msg: fmt.Sprintf("PKCS#11 module %s cannot be read", path), Err: err, Advice: hint}
	}
	return nil
}
