//go:build cgo

package pkcs11

import (
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"strconv"
	"sync"

	"github.com/chancery-pki/chancery/backends"
	"github.com/chancery-pki/chancery/ca"
	"github.com/chancery-pki/chancery/signer"
)

func init() { backends.Register(Name, Backend{}) }

// Backend is the pkcs11 backend's entry in the backends registry.
type Backend struct{}

var (
	_ backends.Backend     = Backend{}
	_ backends.RootDeleter = Backend{}
)

// CreateRoot finds the key the URI names in its token or, when the token
// holds none, generates one there (req.KeyAlgorithm, P-256 by default; it
// is ignored for an existing key), and self-signs a new root with it. An
// existing key must be sensitive and not extractable.
//
// Importing a root (`--ca-cert`, `--ca-key`) cannot put a private key into
// the token: import the key with pkcs11-tool first, then give only its
// certificate (ImportCertPEM without ImportKeyPEM), which is checked against
// the token's key as swarm checks an imported root.
//
// The settings returned hold the URI without pin-value: a cluster opened
// later needs pin-source, pin-env or $CHANCERY_PKCS11_PIN.
func (Backend) CreateRoot(ctx context.Context, req backends.CreateRootRequest) (signer.Signer, backends.Settings, error) {
	if err := ctx.Err(); err != nil {
		return nil, nil, fmt.Errorf("pkcs11: %w", err)
	}
	cfg, err := configFromSettings(req.Settings, true)
	if err != nil {
		return nil, nil, err
	}
	if req.ImportKeyPEM != nil {
		return nil, nil, &Error{Msg: "a private key cannot be imported into the token through chancery",
			Advice: "import it yourself with `pkcs11-tool --module MODULE --token-label TOKEN --login --write-object KEY.der --type privkey --label LABEL --id ID --sensitive` " +
				"(and its public key with --type pubkey), then run init with object=LABEL in the URI and --ca-cert alone"}
	}
	alg := DefaultAlgorithm
	if req.ImportCertPEM == nil && req.KeyAlgorithm != "" {
		if alg, err = ParseAlgorithm(req.KeyAlgorithm); err != nil {
			return nil, nil, err
		}
	}
	cfg.Rand = req.Rand
	u, err := ParseURI(cfg.URI)
	if err != nil {
		return nil, nil, err
	}
	if u, err = absPINSource(u); err != nil {
		return nil, nil, err
	}
	p, err := prepareURI(u, cfg)
	if err != nil {
		return nil, nil, err
	}

	var (
		key       *Key
		generated bool
	)
	if req.ImportCertPEM != nil {
		key, err = openKey(ctx, p)
		if errors.Is(err, ErrKeyNotFound) {
			err = fmt.Errorf("%w (importing a root certificate needs its key in the token already)", err)
		}
	} else {
		key, generated, err = ensureKey(ctx, p, alg)
	}
	if err != nil {
		return nil, nil, err
	}
	undo := func() {
		if generated {
			key.destroy()
		}
		key.Close()
	}
	if !generated {
		if err := checkKeyUsable(key.Info(), key.Public()); err != nil {
			key.Close()
			return nil, nil, err
		}
	}
	var root *x509.Certificate
	if req.ImportCertPEM != nil {
		root, err = importedRoot(req.ImportCertPEM, key, req)
	} else {
		root, err = signer.SelfSign(req.Rand, key, ca.NewRootTemplate(req.CommonName, req.Now))
	}
	if err != nil {
		undo()
		return nil, nil, err
	}
	s, err := newSigner(key, []*x509.Certificate{root}, req.Rand, generated)
	if err != nil {
		undo()
		return nil, nil, err
	}
	settings := backends.Settings{
		SettingURI:       key.URI().String(),
		SettingGenerated: strconv.FormatBool(generated),
	}
	if v, ok := req.Settings[SettingMaxSessions]; ok {
		settings[SettingMaxSessions] = v
	}
	if generated {
		created.put(settings[SettingURI], s)
	}
	return s, settings, nil
}

// importedRoot parses an imported root certificate and checks it against
// the token's key.
func importedRoot(certPEM []byte, key *Key, req backends.CreateRootRequest) (*x509.Certificate, error) {
	certs, err := ca.ParseCertificatesPEM(certPEM)
	if err != nil {
		return nil, err
	}
	if len(certs) != 1 {
		return nil, fmt.Errorf("pkcs11: the imported root must be one certificate, not %d", len(certs))
	}
	if err := ca.CheckRootCA(certs[0], key.Public(), req.Now); err != nil {
		return nil, err
	}
	return certs[0], nil
}

// Open opens the token, finds the key the settings name and returns the
// Signer that issues under req.Chain with it.
func (Backend) Open(ctx context.Context, req backends.OpenRequest) (signer.Signer, error) {
	cfg, err := configFromSettings(req.Settings, false)
	if err != nil {
		return nil, err
	}
	key, err := OpenKey(ctx, cfg)
	if err != nil {
		return nil, err
	}
	s, err := newSigner(key, req.Chain, req.Rand, req.Settings[SettingGenerated] == "true")
	if err != nil {
		key.Close()
		return nil, err
	}
	return s, nil
}

// DeleteRoot destroys the key CreateRoot generated, to undo a failed
// `chancery init`; a key that was in the token before is left alone. In the
// process that created it, it uses the open Signer (so a URI that carried
// pin-value needs no PIN again); elsewhere it opens the token.
func (Backend) DeleteRoot(ctx context.Context, dataDir string, settings backends.Settings) error {
	if settings[SettingGenerated] != "true" {
		return nil
	}
	if s := created.take(settings[SettingURI]); s != nil {
		err := s.key.destroy()
		s.key.Close()
		return err
	}
	cfg, err := configFromSettings(settings, false)
	if err != nil {
		return err
	}
	key, err := OpenKey(ctx, cfg)
	if err != nil {
		return err
	}
	defer key.Close()
	return key.destroy()
}

// created holds the Signers of keys CreateRoot generated in this process,
// by their stored URI, until DeleteRoot or Close.
var created = &signerRegistry{m: map[string]*Signer{}}

type signerRegistry struct {
	mu sync.Mutex
	m  map[string]*Signer
}

func (r *signerRegistry) put(uri string, s *Signer) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.m[uri] = s
}

func (r *signerRegistry) take(uri string) *Signer {
	r.mu.Lock()
	defer r.mu.Unlock()
	s := r.m[uri]
	delete(r.m, uri)
	return s
}

func (r *signerRegistry) forget(s *Signer) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for k, v := range r.m {
		if v == s {
			delete(r.m, k)
		}
	}
}

// Inspect opens the token the settings name, reads the key's attributes
// and closes the token again, without signing: what `chancery info` shows.
// It needs the PIN (pin-source, pin-env or $CHANCERY_PKCS11_PIN), since a
// private key is visible only after login.
func Inspect(ctx context.Context, settings backends.Settings) (KeyInfo, error) {
	cfg, err := configFromSettings(settings, false)
	if err != nil {
		return KeyInfo{}, err
	}
	key, err := OpenKey(ctx, cfg)
	if err != nil {
		return KeyInfo{}, err
	}
	defer key.Close()
	return key.Info(), nil
}
