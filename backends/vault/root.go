package vault

import (
	"context"
	"crypto/rand"
	"crypto/x509"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net/http"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/chancery-pki/chancery/backends"
	"github.com/chancery-pki/chancery/ca"
	"github.com/chancery-pki/chancery/hint"
	"github.com/chancery-pki/chancery/signer"
)

func init() { backends.Register(Name, Backend{}) }

// Backend is the Vault backend's entry in the backends registry.
type Backend struct{}

var (
	_ backends.Backend     = Backend{}
	_ backends.RootDeleter = Backend{}
)

// keyParams maps chancery's key algorithm names (backends.ParseKeyAlgorithm)
// to Vault's key_type and key_bits.
func keyParams(alg string) (keyType string, bits int, err error) {
	a, err := backends.ParseKeyAlgorithm(alg)
	if err != nil {
		return "", 0, configError("%v", err)
	}
	switch a {
	case backends.P256:
		return "ec", 256, nil
	case backends.P384:
		return "ec", 384, nil
	case backends.RSA3072:
		return "rsa", 3072, nil
	}
	return "", 0, configError("key algorithm %s has no Vault key type", a)
}

// maxRootTries bounds the root generations whose serial comes out shorter
// than signer.SerialBytes.
const maxRootTries = 8

// CreateRoot makes the cluster's root in Vault, or adopts an existing one.
//
// Without SettingIssuer, it generates a new root inside Vault
// (issuers/generate/root/internal: the key is made in Vault and never
// leaves it) with the shape of ca.NewRootTemplate: subject CN=CommonName,
// valid from Now backdated by ca.CertBackdate for ca.RootCAExpiry, CA:TRUE
// without a path length limit, certificate and CRL signing, a serial of
// signer.SerialBytes bytes. With SettingIssuer, it uses that issuer, which
// must be a self-signed root whose key is in Vault, checked as an imported
// root is (ca.CheckRootCA).
//
// Importing a root key (ImportCertPEM, ImportKeyPEM) is refused: import it
// into Vault yourself and name its issuer. On error nothing is left in
// Vault.
func (Backend) CreateRoot(ctx context.Context, req backends.CreateRootRequest) (signer.Signer, backends.Settings, error) {
	if err := ctx.Err(); err != nil {
		return nil, nil, fmt.Errorf("vault: %w", err)
	}
	for k := range req.Settings {
		if !userSettings[k] {
			return nil, nil, configError("unknown setting %q", k)
		}
	}
	if req.ImportCertPEM != nil || req.ImportKeyPEM != nil {
		return nil, nil, configError("chancery does not import a root key into Vault: import it yourself (`vault write MOUNT/issuers/import/bundle pem_bundle=@FILE`) and pass its issuer with --vault-issuer")
	}
	cfg, err := ConfigFromSettings(req.DataDir, req.Settings)
	if err != nil {
		return nil, nil, err
	}
	now := req.Now
	if now.IsZero() {
		now = time.Now()
	}
	c, err := dial(ctx, cfg)
	if err != nil {
		return nil, nil, err
	}
	if cfg.Engine == EngineTransit {
		ts, generated, err := createTransitRoot(ctx, c, req, now)
		if err != nil {
			c.close()
			return nil, nil, err
		}
		return ts, recordTransitSettings(req.Settings, ts, generated), nil
	}
	var s *Signer
	if cfg.Issuer != "" {
		s, err = adoptRoot(ctx, c, cfg.Issuer, now, req)
	} else {
		s, err = generateRoot(ctx, c, req, now)
	}
	if err != nil {
		c.close()
		return nil, nil, err
	}
	return s, recordSettings(req.Settings, s.issuerID, s.keyID, cfg.Issuer == ""), nil
}

// generateRoot has Vault generate the root, trying again (and deleting the
// first) when its serial is short, and deleting it when its shape is not
// ca.NewRootTemplate's.
//
// Each generation names its issuer and key (issuer_name and key_name, a
// fresh random name), so that whatever Vault may have made can be found and
// deleted when the answer is lost (a 5xx, a timeout after sending) or
// unreadable: on error nothing is left in the mount.
func generateRoot(ctx context.Context, c *conn, req backends.CreateRootRequest, now time.Time) (*Signer, error) {
	keyType, bits, err := keyParams(req.KeyAlgorithm)
	if err != nil {
		return nil, err
	}
	want := ca.NewRootTemplate(req.CommonName, now)
	path := c.cfg.Mount + "/issuers/generate/root/internal"
	for try := 1; ; try++ {
		name, err := generatedName()
		if err != nil {
			return nil, err
		}
		data := map[string]any{
			"common_name":          want.Subject.CommonName,
			"issuer_name":          name,
			"key_name":             name,
			"key_type":             keyType,
			"key_bits":             bits,
			"exclude_cn_from_sans": true,
			"not_after":            want.NotAfter.UTC().Format(time.RFC3339),
			"not_before_duration":  int64(max(time.Since(want.NotBefore).Truncate(time.Second), time.Second) / time.Second),
			"max_path_length":      -1,
			"key_usage":            []string{"CertSign", "CRLSign"},
			"format":               "der",
		}
		sec, err := c.call(ctx, request{op: "generate the root in Vault", method: http.MethodPost, path: path, data: data, once: true, mountPath: true})
		if err != nil {
			if vaultDidNotAct(err) {
				return nil, err
			}
			// Vault may have made the root and the answer was lost.
			return nil, undoGenerated(ctx, c, err, name, "", "")
		}
		issuerID, keyID := "", ""
		if sec != nil && sec.Data != nil {
			issuerID, _ = sec.Data["issuer_id"].(string)
			keyID, _ = sec.Data["key_id"].(string)
		}
		cert, err := certificateFrom(sec, "generate the root in Vault", path)
		if err == nil && (issuerID == "" || keyID == "") {
			err = &Error{Kind: ErrVault, Op: "generate the root in Vault", Path: path, Detail: "Vault returned no issuer or key ID"}
		}
		if err != nil {
			return nil, undoGenerated(ctx, c, err, name, issuerID, keyID)
		}
		if !serialOK(cert) && try < maxRootTries {
			if err := undoGenerated(ctx, c, nil, name, issuerID, keyID); err != nil {
				return nil, err
			}
			continue
		}
		if err := checkRoot(cert, want, c.cfg.NotBeforeSkew, now); err != nil {
			return nil, undoGenerated(ctx, c, err, name, issuerID, keyID)
		}
		return newSigner(c, issuerID, keyID, []*x509.Certificate{cert}, req.Rand), nil
	}
}

// generatedName returns a fresh name for the issuer and key of a root
// generation: "chancery-root-" and 16 random hex digits.
func generatedName() (string, error) {
	var b [8]byte
	if _, err := rand.Read(b[:]); err != nil {
		return "", fmt.Errorf("vault: failed to draw a name for the root: %w", err)
	}
	return "chancery-root-" + hex.EncodeToString(b[:]), nil
}

// vaultDidNotAct reports whether a failed call surely left Vault unchanged:
// Vault refused it (4xx), is sealed, or was never reached (TLS not trusted,
// every connection refused).
func vaultDidNotAct(err error) bool {
	var e *Error
	if !errors.As(err, &e) {
		return false // the context ended: the request may have been sent
	}
	switch {
	case e.Status >= 400 && e.Status < 500:
		return true
	case e.Kind == ErrSealed, e.Kind == ErrConfig:
		return true
	case e.Kind == ErrUnreachable && e.Status == 0 && strings.Contains(e.Detail, "connection refused"):
		return true
	}
	return false
}

// undoGenerated deletes the issuer and key a root generation may have made,
// by ID where Vault returned them and by name otherwise, with a fresh
// context (the caller's may be why it undoes). cause is the error that made
// it undo (nil when a short serial did); it returns cause, told what was
// undone, or an error saying what may be left.
func undoGenerated(ctx context.Context, c *conn, cause error, name, issuerID, keyID string) error {
	dctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
	defer cancel()
	issuerRef, keyRef := issuerID, keyID
	if issuerRef == "" {
		issuerRef = name
	}
	if keyRef == "" {
		keyRef = name
	}
	// Deleting by name is a no-op when Vault made nothing by that name.
	derr := deleteIssuer(dctx, c, issuerRef, keyRef)
	if derr != nil {
		c.cfg.Logger.Warn("vault: failed to delete the root just generated", "issuer", issuerRef, "key", keyRef, "error", derr.Error(), hint.Attr(derr))
		advice := fmt.Sprintf("chancery could not delete the root it may have generated (issuer and key named %s): delete them (`vault delete %s/issuer/%s` and `vault delete %s/key/%s`) before trying again",
			name, c.cfg.Mount, name, c.cfg.Mount, name)
		var e *Error
		switch {
		case cause == nil:
			// derr says which deletion failed, and carries its own hint.
			return hint.With(derr, advice)
		case !errors.As(cause, &e):
			return hint.With(cause, advice)
		case e.Advice == "" || strings.HasPrefix(e.Advice, hintMayHaveActed):
			e.Advice = advice
		default:
			e.Advice += "; " + advice
		}
		return cause
	}
	var e *Error
	if cause != nil && errors.As(cause, &e) && strings.HasPrefix(e.Advice, hintMayHaveActed) {
		e.Advice = "chancery deleted whatever Vault may have generated; try again"
	}
	return cause
}

// checkRoot checks a root Vault generated against the template chancery's
// own roots are made from.
func checkRoot(cert, want *x509.Certificate, skew time.Duration, now time.Time) error {
	var m mismatch
	if got, wantS := cert.Subject.String(), want.Subject.String(); got != wantS || len(cert.Subject.Names) != 1 {
		m.add("the root's subject", got, wantS)
	}
	if !serialOK(cert) {
		m.add("the root's serial length", len(cert.SerialNumber.Bytes()), signer.SerialBytes)
	}
	if !cert.IsCA || !cert.BasicConstraintsValid || cert.MaxPathLen > 0 || cert.MaxPathLenZero {
		m.add("the root's basic constraints", fmt.Sprintf("CA=%v pathlen=%d", cert.IsCA, cert.MaxPathLen), "CA:TRUE without a path length")
	}
	if cert.KeyUsage != want.KeyUsage {
		m.add("the root's key usage", keyUsageList(cert.KeyUsage), keyUsageList(want.KeyUsage))
	}
	if !cert.NotAfter.Equal(want.NotAfter) {
		m.add("the root's NotAfter", stamp(cert.NotAfter), stamp(want.NotAfter))
	}
	if d := cert.NotBefore.Sub(want.NotBefore); d > skew || d < -skew {
		m.add("the root's NotBefore", stamp(cert.NotBefore), stamp(want.NotBefore))
	}
	if len(cert.DNSNames)+len(cert.IPAddresses)+len(cert.EmailAddresses)+len(cert.URIs) != 0 {
		m.add("the root's names", cert.DNSNames, "none")
	}
	for _, ext := range cert.Extensions {
		if !slices.ContainsFunc(allowedExtensions, ext.Id.Equal) {
			m.add("an extension of the root", ext.Id, "none (Vault may add AIA or CRL URLs from the mount's config/urls)")
		}
	}
	if err := ca.CheckRootCA(cert, nil, now); err != nil {
		m.add("the root", err, "a valid root CA")
	}
	return m.err("check the root Vault generated")
}

// adoptRoot opens an existing issuer as the cluster's root.
func adoptRoot(ctx context.Context, c *conn, ref string, now time.Time, req backends.CreateRootRequest) (*Signer, error) {
	issuerID, cert, err := readIssuer(ctx, c, ref)
	if err != nil {
		return nil, err
	}
	if err := ca.CheckRootCA(cert, nil, now); err != nil {
		return nil, &Error{Kind: ErrUnsupported, Op: "use issuer " + ref, Detail: err.Error(),
			Advice: "name a self-signed root issuer (intermediates are not supported), valid for at least a year"}
	}
	keyID, err := lookupKeyID(ctx, c, issuerID)
	if err != nil {
		return nil, err
	}
	return newSigner(c, issuerID, keyID, []*x509.Certificate{cert}, req.Rand), nil
}

// readIssuer reads an issuer's ID and certificate from the mount (an
// endpoint Vault serves without authentication).
func readIssuer(ctx context.Context, c *conn, ref string) (string, *x509.Certificate, error) {
	path := c.cfg.Mount + "/issuer/" + ref + "/json"
	sec, err := c.call(ctx, request{op: "read issuer " + ref, method: http.MethodGet, path: path, mountPath: true})
	if err != nil {
		var e *Error
		if errors.As(err, &e) && e.Kind == ErrVault && e.Status == 500 && strings.Contains(strings.ToLower(e.Detail), "issuer") {
			e.Kind, e.Advice = ErrIssuerNotFound, hints[ErrIssuerNotFound]
		}
		return "", nil, err
	}
	if sec == nil {
		return "", nil, &Error{Kind: ErrIssuerNotFound, Op: "read issuer " + ref, Path: path, Advice: hints[ErrIssuerNotFound]}
	}
	cert, err := certificateFrom(sec, "read issuer "+ref, path)
	if err != nil {
		return "", nil, err
	}
	id, _ := sec.Data["issuer_id"].(string)
	if id == "" {
		id = ref
	}
	return id, cert, nil
}

// lookupKeyID finds the key of an issuer in the mount's issuer list (also
// served without authentication).
func lookupKeyID(ctx context.Context, c *conn, issuerID string) (string, error) {
	path := c.cfg.Mount + "/issuers"
	sec, err := c.call(ctx, request{op: "list the mount's issuers", method: "LIST", path: path, mountPath: true})
	if err != nil {
		return "", err
	}
	if sec != nil {
		if info, ok := sec.Data["key_info"].(map[string]any); ok {
			if entry, ok := info[issuerID].(map[string]any); ok {
				if id, _ := entry["key_id"].(string); id != "" {
					return id, nil
				}
			}
		}
	}
	return "", &Error{Kind: ErrIssuerNotFound, Op: "find the key of issuer " + issuerID, Path: path,
		Detail: "the issuer has no key in Vault", Advice: "chancery needs an issuer whose key Vault holds"}
}

// Open connects to Vault, authenticates, and returns the Signer of the root
// CreateRoot made: the issuer in the settings, whose certificate must be the
// cluster's root (req.Chain[0]).
func (Backend) Open(ctx context.Context, req backends.OpenRequest) (signer.Signer, error) {
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("vault: %w", err)
	}
	cfg, err := ConfigFromSettings(req.DataDir, req.Settings)
	if err != nil {
		return nil, err
	}
	if cfg.Engine == EngineTransit {
		return OpenTransit(ctx, cfg, req.Chain, req.Rand)
	}
	s, err := Open(ctx, cfg, req.Chain, req.Rand)
	if err != nil {
		return nil, err
	}
	s.keyID = req.Settings[SettingKeyID]
	return s, nil
}

// Open connects to Vault with cfg, authenticates, and returns the Signer of
// the root issuer cfg.Issuer. When chain is given, chain[0] must be the
// issuer's certificate (the cluster's root); otherwise the issuer's
// certificate is the chain. r is the source of serial numbers for CA
// certificates; nil means crypto/rand. Close the Signer to stop its token
// renewal.
func Open(ctx context.Context, cfg Config, chain []*x509.Certificate, r io.Reader) (*Signer, error) {
	if err := cfg.check(); err != nil {
		return nil, err
	}
	if cfg.Issuer == "" {
		return nil, configError("no issuer in the settings (%s)", SettingIssuer)
	}
	c, err := dial(ctx, cfg)
	if err != nil {
		return nil, err
	}
	issuerID, cert, err := readIssuer(ctx, c, cfg.Issuer)
	if err != nil {
		c.close()
		return nil, err
	}
	if len(chain) > 0 && !equalCert(cert, chain[0]) {
		c.close()
		return nil, &Error{Kind: ErrIssuerNotFound, Op: "open issuer " + cfg.Issuer,
			Detail: fmt.Sprintf("Vault's issuer holds %q, not the cluster's root %q", cert.Subject, chain[0].Subject),
			Advice: "check --vault-addr, --vault-namespace, --vault-mount and --vault-issuer"}
	}
	if len(chain) == 0 {
		chain = []*x509.Certificate{cert}
	}
	return newSigner(c, issuerID, "", chain, r), nil
}

// DeleteRoot removes what CreateRoot generated in Vault: the issuer, its key,
// and the roles chancery configured for it; with the transit engine, the
// transit key. A root CreateRoot adopted (SettingGenerated "false") is left
// alone.
func (Backend) DeleteRoot(ctx context.Context, dataDir string, settings backends.Settings) error {
	if settings[SettingGenerated] != "true" {
		return nil
	}
	cfg, err := ConfigFromSettings(dataDir, settings)
	if err != nil {
		return err
	}
	if cfg.Engine == EngineTransit {
		if cfg.Key == "" {
			return configError("no transit key in the settings (%s)", SettingKey)
		}
		c, err := dial(ctx, cfg)
		if err != nil {
			return err
		}
		defer c.close()
		return deleteTransitKey(ctx, c, cfg.Key)
	}
	if cfg.Issuer == "" {
		return configError("no issuer in the settings (%s)", SettingIssuer)
	}
	c, err := dial(ctx, cfg)
	if err != nil {
		return err
	}
	defer c.close()
	keyID := settings[SettingKeyID]
	if keyID == "" {
		if keyID, err = lookupKeyID(ctx, c, cfg.Issuer); err != nil && !errors.Is(err, ErrIssuerNotFound) {
			return err
		}
	}
	if err := deleteRoles(ctx, c, cfg.Issuer); err != nil {
		return err
	}
	return deleteIssuer(ctx, c, cfg.Issuer, keyID)
}

// deleteIssuer deletes an issuer, then its key.
func deleteIssuer(ctx context.Context, c *conn, issuerID, keyID string) error {
	if _, err := c.call(ctx, request{op: "delete the root's issuer", method: http.MethodDelete, path: c.cfg.Mount + "/issuer/" + issuerID, mountPath: true}); err != nil {
		return err
	}
	if keyID == "" {
		return nil
	}
	_, err := c.call(ctx, request{op: "delete the root's key", method: http.MethodDelete, path: c.cfg.Mount + "/key/" + keyID, mountPath: true})
	return err
}

// deleteRoles deletes the roles chancery configured for an issuer.
func deleteRoles(ctx context.Context, c *conn, issuerID string) error {
	sec, err := c.call(ctx, request{op: "list the mount's roles", method: "LIST", path: c.cfg.Mount + "/roles", mountPath: true})
	if err != nil {
		return err
	}
	var names []string
	if sec != nil {
		if keys, ok := sec.Data["keys"].([]any); ok {
			for _, k := range keys {
				if n, _ := k.(string); strings.HasPrefix(n, "chancery-"+issuerID+"-") {
					names = append(names, n)
				}
			}
		}
	}
	sort.Strings(names)
	for _, n := range names {
		if _, err := c.call(ctx, request{op: "delete role " + n, method: http.MethodDelete, path: c.cfg.Mount + "/roles/" + n, mountPath: true}); err != nil {
			return err
		}
	}
	return nil
}
