package pkcs11

import (
	"errors"
	"fmt"
	"io"
	"net/url"
	"os"
	"path/filepath"
	"strings"

	"github.com/chancery-pki/chancery/secretfile"
)

// PINEnv is the environment variable that holds the user PIN when the URI
// names no pin-source, pin-value or pin-env.
const PINEnv = "CHANCERY_PKCS11_PIN"

// MaxPINFileSize is the largest pin-source file read. PKCS#11 PINs are
// short; a larger file is refused rather than read.
const MaxPINFileSize = 4 << 10

// pinFrom says where a PIN came from, for messages. It never holds the PIN.
type pinFrom string

// resolvePIN returns the user PIN the URI points to: its pin-value, the
// contents of its pin-source file (one trailing line ending dropped), the
// environment variable named by pin-env, or else PINEnv. The PIN is empty
// when none of these is set; the token decides whether it needs one.
func resolvePIN(u *URI, lookupEnv func(string) (string, bool)) (string, pinFrom, error) {
	if lookupEnv == nil {
		lookupEnv = os.LookupEnv
	}
	switch {
	case u.pinValue != "":
		return string(u.pinValue), "the URI's pin-value", nil
	case u.PINSource != "":
		path, err := pinSourcePath(u.PINSource)
		if err != nil {
			return "", "", err
		}
		from := pinFrom("the pin-source file " + path)
		pin, err := readPINFile(path)
		if err != nil {
			return "", from, err
		}
		return pin, from, nil
	case u.PINEnv != "":
		from := pinFrom("$" + u.PINEnv)
		v, ok := lookupEnv(u.PINEnv)
		if !ok || v == "" {
			return "", from, &Error{Kind: ErrNoPIN,
				Msg:    fmt.Sprintf("the URI's pin-env names $%s, which is not set", u.PINEnv),
				Advice: "export the token's user PIN in it, or use pin-source=FILE"}
		}
		return v, from, nil
	}
	if v, ok := lookupEnv(PINEnv); ok && v != "" {
		return v, "$" + PINEnv, nil
	}
	return "", "", nil
}

// pinSourcePath turns a pin-source value (a path or a file: URI) into a
// path.
func pinSourcePath(src string) (string, error) {
	if !strings.HasPrefix(src, "file:") {
		return src, nil
	}
	u, err := url.Parse(src)
	if err != nil || (u.Host != "" && u.Host != "localhost") || u.Path == "" || u.RawQuery != "" {
		return "", &URIError{Attr: attrPINSource, Reason: "not a local file: URI (want file:///path/to/pin or a plain path)"}
	}
	return u.Path, nil
}

// readPINFile reads a PIN file of at most MaxPINFileSize bytes and drops one
// trailing line ending. The file must be a regular file owned by the user
// running chancery, mode 0600 or 0400 (secretfile.Open); a file others may
// read gives an error that also matches secretfile.ErrUnsafe. Its errors
// name the file, never its contents.
func readPINFile(path string) (string, error) {
	f, err := secretfile.Open(path)
	if errors.Is(err, secretfile.ErrUnsafe) {
		return "", &Error{Kind: ErrNoPIN, Msg: "refusing the PIN file", Err: err,
			Advice: "the PIN file must be owned by the user running chancery and readable by no one else (mode 0600 or 0400)"}
	}
	if err != nil {
		return "", &Error{Kind: ErrNoPIN, Msg: "failed to read the PIN file", Err: err,
			Advice: "pin-source must name a readable file that holds the token's user PIN"}
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, MaxPINFileSize+1))
	if err != nil {
		return "", &Error{Kind: ErrNoPIN, Msg: "failed to read the PIN file " + path, Err: err}
	}
	if len(b) > MaxPINFileSize {
		return "", &Error{Kind: ErrNoPIN, Msg: fmt.Sprintf("the PIN file %s is larger than %d bytes", path, MaxPINFileSize),
			Advice: "it must hold the user PIN alone"}
	}
	s := string(b)
	s = strings.TrimSuffix(s, "\n")
	s = strings.TrimSuffix(s, "\r")
	if s == "" {
		return "", &Error{Kind: ErrNoPIN, Msg: fmt.Sprintf("the PIN file %s is empty", path),
			Advice: "write the token's user PIN in it"}
	}
	return s, nil
}

// absPINSource returns u with a relative pin-source made absolute, so that
// the stored URI still finds the file from another working directory.
func absPINSource(u *URI) (*URI, error) {
	if u.PINSource == "" || strings.HasPrefix(u.PINSource, "file:") || filepath.IsAbs(u.PINSource) {
		return u, nil
	}
	abs, err := filepath.Abs(u.PINSource)
	if err != nil {
		return nil, &Error{Kind: ErrNoPIN, Msg: "failed to resolve the pin-source path", Err: err}
	}
	c := *u
	c.PINSource = abs
	return &c, nil
}
