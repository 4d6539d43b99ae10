//go:build cgo

package pkcs11

import (
	"context"
	"crypto/rand"
	"fmt"
	"io"
	"log/slog"
)

// prepared is a checked Config.
type prepared struct {
	uri  *URI
	pin  string
	from pinFrom
	cfg  Config
}

func prepare(cfg Config) (*prepared, error) {
	u, err := ParseURI(cfg.URI)
	if err != nil {
		return nil, err
	}
	return prepareURI(u, cfg)
}

// prepareURI checks that u names a module, a token and a key, and reads
// the PIN.
func prepareURI(u *URI, cfg Config) (*prepared, error) {
	if u.Token == "" && u.Serial == "" {
		return nil, &URIError{Reason: "it selects no token: add token=LABEL (or serial=SERIAL); slots are never used, their IDs change"}
	}
	if u.Object == "" && len(u.ID) == 0 {
		return nil, &URIError{Reason: "it selects no key: add object=LABEL (and/or id=ID)"}
	}
	if u.ModulePath == "" {
		return nil, &URIError{Attr: attrModulePath, Reason: "missing: add ?module-path=/path/to/module.so (SoftHSM2: /usr/lib/softhsm/libsofthsm2.so)"}
	}
	pin, from, err := resolvePIN(u, cfg.LookupEnv)
	if err != nil {
		return nil, err
	}
	if cfg.Retries == 0 {
		cfg.Retries = DefaultRetries
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.Rand == nil {
		cfg.Rand = rand.Reader
	}
	return &prepared{uri: u, pin: pin, from: from, cfg: cfg}, nil
}

// OpenKey opens the token and finds the existing key the URI names.
func OpenKey(ctx context.Context, cfg Config) (*Key, error) {
	p, err := prepare(cfg)
	if err != nil {
		return nil, err
	}
	return openKey(ctx, p)
}

func openKey(ctx context.Context, p *prepared) (*Key, error) {
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("pkcs11: %w", err)
	}
	c, info, err := openConn(p.uri, p.pin, p.from, p.cfg.MaxSessions)
	if err != nil {
		return nil, redact(err, p.pin)
	}
	return newKey(p, c, info), nil
}

// EnsureKey opens the token and finds the key the URI names or, when the
// token holds none, generates one of algorithm alg there, with the URI's
// label (DefaultObjectLabel when it gives only an id) and id (16 random
// bytes when it gives none). It reports whether it generated the key.
func EnsureKey(ctx context.Context, cfg Config, alg Algorithm) (*Key, bool, error) {
	p, err := prepare(cfg)
	if err != nil {
		return nil, false, err
	}
	return ensureKey(ctx, p, alg)
}

func ensureKey(ctx context.Context, p *prepared, alg Algorithm) (*Key, bool, error) {
	if err := ctx.Err(); err != nil {
		return nil, false, fmt.Errorf("pkcs11: %w", err)
	}
	if alg == "" {
		alg = DefaultAlgorithm
	}
	if _, err := ParseAlgorithm(string(alg)); err != nil {
		return nil, false, err
	}
	tc, err := openToken(p.uri, p.pin, p.from, p.cfg.MaxSessions)
	if err != nil {
		return nil, false, redact(err, p.pin)
	}
	if tc.matches > 0 {
		c, info, err := tc.keyConn(p.uri)
		if err != nil {
			tc.close()
			return nil, false, redact(err, p.pin)
		}
		return newKey(p, c, info), false, nil
	}
	u := p.uri.WithoutPINValue()
	if len(u.ID) == 0 {
		u.ID = make([]byte, 16)
		if _, err := io.ReadFull(p.cfg.Rand, u.ID); err != nil {
			tc.close()
			return nil, false, fmt.Errorf("pkcs11: failed to draw the new key's id: %w", err)
		}
	}
	if u.Object == "" {
		u.Object = DefaultObjectLabel
	}
	s, err := tc.generateKey(alg, u.ID, u.Object)
	if err != nil {
		tc.close()
		return nil, false, redact(&Error{Msg: fmt.Sprintf("failed to generate a %s key in token %q", alg, tc.token.Label), Err: err,
			Advice: "check that the token supports the algorithm and has room for two more objects"}, p.pin)
	}
	info, err := tc.readKeyInfo(s)
	if err != nil {
		s.Delete()
		tc.close()
		return nil, false, redact(err, p.pin)
	}
	p.uri = u
	return newKey(p, &tokenKey{tc: tc, key: s}, info), true, nil
}

// keyConn finds the URI's key in an open token and reads its attributes.
func (tc *tokenConn) keyConn(u *URI) (conn, KeyInfo, error) {
	s, err := tc.findKey(u)
	if err != nil {
		return nil, KeyInfo{}, err
	}
	info, err := tc.readKeyInfo(s)
	if err != nil {
		return nil, KeyInfo{}, err
	}
	return &tokenKey{tc: tc, key: s}, info, nil
}

// openConn opens the token and finds the URI's key in it.
func openConn(u *URI, pin string, from pinFrom, maxSessions int) (conn, KeyInfo, error) {
	tc, err := openToken(u, pin, from, maxSessions)
	if err != nil {
		return nil, KeyInfo{}, err
	}
	c, info, err := tc.keyConn(u)
	if err != nil {
		tc.close()
		return nil, KeyInfo{}, err
	}
	return c, info, nil
}
