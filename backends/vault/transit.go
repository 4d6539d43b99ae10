package vault

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/hashicorp/vault/api"

	"github.com/chancery-pki/chancery/backends"
	"github.com/chancery-pki/chancery/ca"
	"github.com/chancery-pki/chancery/hint"
	"github.com/chancery-pki/chancery/signer"
)

// transitKeyType maps chancery's key algorithm names to transit key types.
func transitKeyType(alg string) (string, error) {
	keyType, bits, err := keyParams(alg)
	if err != nil {
		return "", err
	}
	if keyType == "ec" {
		return fmt.Sprintf("ecdsa-p%d", bits), nil
	}
	return fmt.Sprintf("rsa-%d", bits), nil
}

// transitSignTimeout bounds a signature made without a caller's context
// (crypto.Signer.Sign).
const transitSignTimeout = 30 * time.Second

// transitKey is a crypto.Signer whose private key is one version of a key in
// Vault's transit engine. Each signature is one call to MOUNT/sign/NAME with
// the digest (prehashed) and the pinned key version, so that a rotation of
// the transit key never changes the key that signs for the cluster.
type transitKey struct {
	conn    *conn
	name    string
	version int
	pub     crypto.PublicKey
}

var _ signer.ContextSigner = (*transitKey)(nil)

// Public returns the public half of the pinned key version.
func (k *transitKey) Public() crypto.PublicKey { return k.pub }

// Sign signs digest with a timeout of its own; the local issuer uses
// SignContext instead.
func (k *transitKey) Sign(r io.Reader, digest []byte, opts crypto.SignerOpts) ([]byte, error) {
	ctx, cancel := context.WithTimeout(context.Background(), transitSignTimeout)
	defer cancel()
	return k.SignContext(ctx, r, digest, opts)
}

// transitHashes are the digests transit signs, by Vault's names.
var transitHashes = map[crypto.Hash]string{
	crypto.SHA256: "sha2-256",
	crypto.SHA384: "sha2-384",
	crypto.SHA512: "sha2-512",
}

// SignContext has Vault sign digest with the pinned key version: ECDSA
// signatures come back in ASN.1 DER, RSA ones in PKCS #1 v1.5, as
// crypto.Signer returns them.
func (k *transitKey) SignContext(ctx context.Context, _ io.Reader, digest []byte, opts crypto.SignerOpts) ([]byte, error) {
	if opts == nil {
		return nil, errors.New("vault: transit signing needs a hash function")
	}
	h := opts.HashFunc()
	hashName, ok := transitHashes[h]
	if !ok {
		return nil, fmt.Errorf("vault: transit cannot sign a %v digest", h)
	}
	if len(digest) != h.Size() {
		return nil, fmt.Errorf("vault: digest of %d bytes for %v", len(digest), h)
	}
	data := map[string]any{
		"input":          base64.StdEncoding.EncodeToString(digest),
		"prehashed":      true,
		"hash_algorithm": hashName,
		"key_version":    k.version,
	}
	switch k.pub.(type) {
	case *ecdsa.PublicKey:
		data["marshaling_algorithm"] = "asn1"
	case *rsa.PublicKey:
		if _, ok := opts.(*rsa.PSSOptions); ok {
			// crypto/x509 signs with RSA-PSS only when asked to, and
			// chancery never asks.
			return nil, errors.New("vault: transit signing with RSA-PSS is not supported")
		}
		data["signature_algorithm"] = "pkcs1v15"
	}
	path := k.conn.cfg.Mount + "/sign/" + k.name
	sec, err := k.conn.call(ctx, request{op: "sign with the root's transit key", method: http.MethodPost, path: path, data: data, mountPath: true})
	if err != nil {
		return nil, err
	}
	return k.parseSignature(sec, path)
}

// parseSignature reads "vault:vN:BASE64" from a sign answer and checks that
// the pinned version signed.
func (k *transitKey) parseSignature(sec *api.Secret, path string) ([]byte, error) {
	bad := func(detail string) error {
		return &Error{Kind: ErrVault, Op: "sign with the root's transit key", Path: path, Detail: detail}
	}
	if sec == nil || sec.Data == nil {
		return nil, bad("Vault returned no signature")
	}
	s, _ := sec.Data["signature"].(string)
	rest, ok := strings.CutPrefix(s, "vault:v")
	if !ok {
		return nil, bad("the signature is not in Vault's vault:vN: format")
	}
	v, b64, ok := strings.Cut(rest, ":")
	if !ok {
		return nil, bad("the signature is not in Vault's vault:vN: format")
	}
	if v != strconv.Itoa(k.version) {
		return nil, bad(fmt.Sprintf("key version %s signed, not the pinned version %d", v, k.version))
	}
	sig, err := base64.StdEncoding.DecodeString(b64)
	if err != nil || len(sig) == 0 {
		return nil, bad("the signature is not valid base64")
	}
	return sig, nil
}

// transitKeyInfo is what chancery reads of a transit key.
type transitKeyInfo struct {
	keyType              string
	exportable           bool
	allowPlaintextBackup bool
	imported             bool
	deletionAllowed      bool
	supportsSigning      bool
	latest               int
	minEncryption        int            // min_encryption_version; 0 means none
	public               map[int]string // PEM, by version
}

// transitSigningTypes are the transit key types chancery signs with: those
// whose keys signer.CheckPublicKey accepts.
var transitSigningTypes = []string{"ecdsa-p256", "ecdsa-p384", "ecdsa-p521", "rsa-2048", "rsa-3072", "rsa-4096"}

const transitTypeList = "ecdsa-p256, ecdsa-p384, ecdsa-p521, rsa-2048, rsa-3072 or rsa-4096"

// readTransitKey reads MOUNT/keys/NAME. It returns (nil, nil) when no key
// has that name.
func readTransitKey(ctx context.Context, c *conn, name string) (*transitKeyInfo, error) {
	path := c.cfg.Mount + "/keys/" + name
	op := "read transit key " + name
	sec, err := c.call(ctx, request{op: op, method: http.MethodGet, path: path, mountPath: true})
	if err != nil {
		var e *Error
		if errors.As(err, &e) && e.Status == http.StatusNotFound && e.Kind != ErrMountNotFound {
			return nil, nil
		}
		return nil, err
	}
	if sec == nil || sec.Data == nil {
		return nil, nil
	}
	bad := func(detail string) error {
		return &Error{Kind: ErrVault, Op: op, Path: path, Detail: detail}
	}
	d := sec.Data
	info := &transitKeyInfo{public: map[int]string{}}
	info.keyType, _ = d["type"].(string)
	info.exportable, _ = d["exportable"].(bool)
	info.allowPlaintextBackup, _ = d["allow_plaintext_backup"].(bool)
	info.supportsSigning, _ = d["supports_signing"].(bool)
	info.imported, _ = d["imported_key"].(bool)
	info.deletionAllowed, _ = d["deletion_allowed"].(bool)
	info.minEncryption, _ = intOf(d["min_encryption_version"])
	latest, ok := intOf(d["latest_version"])
	if !ok || latest < 1 {
		return nil, bad("Vault returned no latest_version")
	}
	info.latest = latest
	versions, _ := d["keys"].(map[string]any)
	for v, raw := range versions {
		n, err := strconv.Atoi(v)
		if err != nil {
			continue
		}
		entry, _ := raw.(map[string]any)
		if p, _ := entry["public_key"].(string); p != "" {
			info.public[n] = p
		}
	}
	return info, nil
}

// intOf reads a JSON number as the API client decodes it.
func intOf(v any) (int, bool) {
	switch n := v.(type) {
	case json.Number:
		i, err := n.Int64()
		return int(i), err == nil
	case float64:
		return int(n), n == float64(int(n))
	case int:
		return n, true
	}
	return 0, false
}

// check refuses a key chancery must not use as a root: one whose private
// key can leave Vault or has been outside it (exportable, plaintext backups
// allowed, imported), one that cannot sign, or a version without a
// supported public key or that Vault no longer signs with.
func (info *transitKeyInfo) check(name string, version int) (crypto.PublicKey, error) {
	refuse := func(detail, advice string) error {
		return &Error{Kind: ErrConfig, Op: "use transit key " + name, Detail: detail, Advice: advice}
	}
	const types = "use a key of type " + transitTypeList
	switch {
	case !info.supportsSigning:
		return nil, refuse(fmt.Sprintf("the key (type %s) cannot sign", info.keyType), types)
	case !slices.Contains(transitSigningTypes, info.keyType):
		return nil, refuse(fmt.Sprintf("key type %s is unsupported for a cluster root", info.keyType), types)
	case info.exportable:
		return nil, refuse("the key is exportable: its private key can leave Vault", "create a key with exportable=false (the default), or let chancery init create one")
	case info.allowPlaintextBackup:
		return nil, refuse("the key allows plaintext backups: its private key can leave Vault", "create a key with allow_plaintext_backup=false (the default), or let chancery init create one")
	case info.imported:
		return nil, refuse("the key was imported: its private key has been outside Vault", "let Vault generate the key (`vault write MOUNT/keys/NAME type=ecdsa-p256`), or let chancery init create one")
	case info.minEncryption > version:
		return nil, refuse(fmt.Sprintf("the key's min_encryption_version %d is above version %d, which signs for the cluster", info.minEncryption, version),
			"set min_encryption_version back to at most that version (`vault write MOUNT/keys/NAME/config min_encryption_version=...`)")
	}
	p, ok := info.public[version]
	if !ok {
		return nil, refuse(fmt.Sprintf("the key has no version %d with a public key (latest is %d)", version, info.latest),
			"the version chancery signs with must not be trimmed (min_available_version)")
	}
	block, _ := pem.Decode([]byte(p))
	if block == nil {
		return nil, refuse(fmt.Sprintf("version %d's public key is not PEM", version), "")
	}
	pub, err := x509.ParsePKIXPublicKey(block.Bytes)
	if err != nil {
		return nil, refuse(fmt.Sprintf("version %d's public key: %v", version, err), "")
	}
	if err := signer.CheckPublicKey(pub); err != nil {
		return nil, refuse(err.Error(), types)
	}
	return pub, nil
}

// TransitSigner issues certificates with a root key held in Vault's transit
// engine: chancery's local issuer builds each certificate, and Vault signs
// it. It is safe for concurrent use. Close stops its token renewal.
type TransitSigner struct {
	*signer.LocalIssuer
	conn *conn
	key  *transitKey
}

var (
	_ signer.Signer             = (*TransitSigner)(nil)
	_ signer.CapabilityReporter = (*TransitSigner)(nil)
	_ signer.CSRCreator         = (*TransitSigner)(nil)
	_ signer.Describer          = (*TransitSigner)(nil)
	_ io.Closer                 = (*TransitSigner)(nil)
)

// Sign issues the certificate req asks for with the local issuer (see
// signer.LocalIssuer.Sign), Vault signing it with the pinned key version.
// Errors from Vault are returned as the *Error that names the call.
func (s *TransitSigner) Sign(ctx context.Context, req *signer.Request) (*x509.Certificate, error) {
	cert, err := s.LocalIssuer.Sign(ctx, req)
	return cert, vaultFirst(err)
}

// CreateCSR returns a CSR for the root's key, signed in Vault, so that
// another backend can cross-sign this root.
func (s *TransitSigner) CreateCSR(ctx context.Context, template *x509.CertificateRequest) ([]byte, error) {
	der, err := s.LocalIssuer.CreateCSR(ctx, template)
	return der, vaultFirst(err)
}

// vaultFirst returns the *Error inside err when there is one, so that a
// failure in Vault reads as such rather than as the local issuer's.
func vaultFirst(err error) error {
	var e *Error
	if err != nil && errors.As(err, &e) {
		return e
	}
	return err
}

// KeyName returns the transit key's name.
func (s *TransitSigner) KeyName() string { return s.key.name }

// KeyVersion returns the transit key version that signs.
func (s *TransitSigner) KeyVersion() int { return s.key.version }

// Close stops the token renewal. The Signer must not be used afterwards.
func (s *TransitSigner) Close() error {
	s.conn.close()
	return nil
}

// newTransitSigner is the Signer of key, under chain. Its description,
// for `chancery info`, carries the key's attributes that info checked.
func newTransitSigner(c *conn, key *transitKey, info *transitKeyInfo, chain []*x509.Certificate, r io.Reader) (*TransitSigner, error) {
	cfg := c.cfg
	d := signer.Description{Backend: Name, Details: [][2]string{{"address", cfg.Address}}}
	if cfg.Namespace != "" {
		d.Details = append(d.Details, [2]string{"namespace", cfg.Namespace})
	}
	d.Details = append(d.Details, [2]string{"engine", EngineTransit}, [2]string{"mount", cfg.Mount},
		[2]string{"key", key.name}, [2]string{"version", strconv.Itoa(key.version)}, [2]string{"auth", cfg.authMethod()},
		[2]string{"key_type", info.keyType}, [2]string{"latest_version", strconv.Itoa(info.latest)},
		// check refused anything else: the key never left Vault and cannot.
		[2]string{"exportable", "false"}, [2]string{"allow_plaintext_backup", "false"}, [2]string{"imported", "false"})
	if info.deletionAllowed {
		d.Details = append(d.Details, [2]string{"deletion_allowed", "true (a token with delete on the key can destroy the root)"})
	} else {
		d.Details = append(d.Details, [2]string{"deletion_allowed", "false"})
	}
	li, err := signer.NewLocalIssuer(signer.LocalConfig{
		Key: key, Chain: chain, Rand: r, Description: d,
		Capabilities: signer.Capabilities{GeneratesKeys: true},
	})
	if err != nil {
		return nil, &Error{Kind: ErrIssuerNotFound, Op: "open transit key " + key.name, Detail: err.Error(),
			Advice: "check --vault-addr, --vault-namespace, --vault-mount and --vault-key"}
	}
	return &TransitSigner{LocalIssuer: li, conn: c, key: key}, nil
}

// createTransitRoot makes the cluster's root with a key in the transit
// engine: a new key named c.cfg.Key (DefaultTransitKey when empty), created
// of the requested type, never exportable and without plaintext backups,
// that signs the root chancery builds (ca.NewRootTemplate, self-signed). A
// key of that name that exists already is used only when it was named
// explicitly (--vault-key), so that two clusters never share a root key by
// accident; such a key is adopted, and left in place on error. On error a
// key it created is deleted.
func createTransitRoot(ctx context.Context, c *conn, req backends.CreateRootRequest, now time.Time) (*TransitSigner, bool, error) {
	keyType, err := transitKeyType(req.KeyAlgorithm)
	if err != nil {
		return nil, false, err
	}
	name, explicit := c.cfg.Key, c.cfg.Key != ""
	if !explicit {
		name = DefaultTransitKey
	}
	info, err := readTransitKey(ctx, c, name)
	if err != nil {
		return nil, false, err
	}
	generated := info == nil
	if generated {
		path := c.cfg.Mount + "/keys/" + name
		sec, err := c.call(ctx, request{op: "create the root's transit key", method: http.MethodPost, path: path, once: true, mountPath: true,
			data: map[string]any{"type": keyType, "exportable": false, "allow_plaintext_backup": false}})
		if err != nil {
			if vaultDidNotAct(err) {
				return nil, false, err
			}
			return nil, false, undoTransitKey(ctx, c, err, name)
		}
		if sec != nil && slices.ContainsFunc(sec.Warnings, func(w string) bool { return strings.Contains(w, "already existed") }) {
			// Made by someone else between the read and the create: not
			// chancery's to delete.
			generated = false
		}
		if info, err = readTransitKey(ctx, c, name); err == nil && info == nil {
			err = &Error{Kind: ErrVault, Op: "read transit key " + name, Path: path, Detail: "the key just created is missing"}
		}
		if err != nil {
			if generated {
				err = undoTransitKey(ctx, c, err, name)
			}
			return nil, false, err
		}
		if generated && info.keyType != keyType {
			return nil, false, undoTransitKey(ctx, c, configError("transit key %s came out of type %s, not %s", name, info.keyType, keyType), name)
		}
	}
	if !generated {
		if !explicit {
			return nil, false, &Error{Kind: ErrConfig, Op: "create the root's transit key", Path: c.cfg.Mount + "/keys/" + name,
				Detail: fmt.Sprintf("transit key %s exists already (another cluster's root?)", name),
				Advice: fmt.Sprintf("to make it this cluster's root, pass --vault-key %s; to create a new key, name it with --vault-key", name)}
		}
		if req.KeyAlgorithm != "" && info.keyType != keyType {
			return nil, false, configError("transit key %s is of type %s, not %s (--key-algorithm)", name, info.keyType, keyType)
		}
	}
	fail := func(err error) (*TransitSigner, bool, error) {
		if generated {
			err = undoTransitKey(ctx, c, err, name)
		}
		return nil, false, err
	}
	pub, err := info.check(name, info.latest)
	if err != nil {
		return fail(err)
	}
	key := &transitKey{conn: c, name: name, version: info.latest, pub: pub}
	root, err := signer.SelfSign(req.Rand, signer.WithContext(ctx, key), ca.NewRootTemplate(req.CommonName, now))
	if err != nil {
		return fail(vaultFirst(err))
	}
	s, err := newTransitSigner(c, key, info, []*x509.Certificate{root}, req.Rand)
	if err != nil {
		return fail(err)
	}
	return s, generated, nil
}

// undoTransitKey deletes a transit key that a failed init created, with a
// fresh context (the caller's may be why it undoes): deletion must first be
// allowed in the key's config. It returns cause, told what was left behind
// if the deletion failed, with the advice to delete it as a hint. Both
// errors stay in the chain.
func undoTransitKey(ctx context.Context, c *conn, cause error, name string) error {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
	defer cancel()
	if err := deleteTransitKey(ctx, c, name); err != nil {
		return hint.With(fmt.Errorf("%w; and transit key %s may be left in Vault: %w", cause, name, err),
			fmt.Sprintf("delete it: `vault write %s/keys/%s/config deletion_allowed=true` then `vault delete %s/keys/%s`",
				c.cfg.Mount, name, c.cfg.Mount, name))
	}
	return cause
}

// deleteTransitKey allows the deletion of a transit key and deletes it. A
// key that does not exist is not an error.
func deleteTransitKey(ctx context.Context, c *conn, name string) error {
	path := c.cfg.Mount + "/keys/" + name
	if _, err := c.call(ctx, request{op: "allow deleting transit key " + name, method: http.MethodPost, path: path + "/config",
		data: map[string]any{"deletion_allowed": true}, mountPath: true}); err != nil {
		var e *Error
		if errors.As(err, &e) && (e.Status == http.StatusNotFound || e.Status == http.StatusBadRequest && strings.Contains(e.Detail, "no existing key")) {
			return nil
		}
		return err
	}
	_, err := c.call(ctx, request{op: "delete transit key " + name, method: http.MethodDelete, path: path, mountPath: true})
	return err
}

// OpenTransit connects to Vault with cfg (EngineTransit), authenticates, and
// returns the Signer of the root whose key is cfg.Key version cfg.KeyVersion:
// that version's public key must be the key of the cluster's root,
// chain[0], and the key must still be unable to leave Vault. r is the
// source of serial numbers; nil means crypto/rand. Close the Signer to stop
// its token renewal.
func OpenTransit(ctx context.Context, cfg Config, chain []*x509.Certificate, r io.Reader) (*TransitSigner, error) {
	if cfg.Engine == "" {
		cfg.Engine = EngineTransit
	}
	if err := cfg.check(); err != nil {
		return nil, err
	}
	switch {
	case cfg.Engine != EngineTransit:
		return nil, configError("OpenTransit needs --vault-engine %s", EngineTransit)
	case cfg.Key == "" || cfg.KeyVersion == 0:
		return nil, configError("no transit key or version in the settings (%s, %s)", SettingKey, SettingKeyVersion)
	case len(chain) == 0:
		return nil, configError("opening a transit key needs the cluster's root certificate")
	}
	c, err := dial(ctx, cfg)
	if err != nil {
		return nil, err
	}
	s, err := openTransit(ctx, c, chain, r)
	if err != nil {
		c.close()
		return nil, err
	}
	return s, nil
}

func openTransit(ctx context.Context, c *conn, chain []*x509.Certificate, r io.Reader) (*TransitSigner, error) {
	cfg := c.cfg
	info, err := readTransitKey(ctx, c, cfg.Key)
	if err != nil {
		return nil, err
	}
	if info == nil {
		return nil, &Error{Kind: ErrIssuerNotFound, Op: "open transit key " + cfg.Key, Path: cfg.Mount + "/keys/" + cfg.Key,
			Detail: "no key of that name", Advice: "check --vault-addr, --vault-namespace, --vault-mount and --vault-key"}
	}
	pub, err := info.check(cfg.Key, cfg.KeyVersion)
	if err != nil {
		return nil, err
	}
	if !signer.SamePublicKey(pub, chain[0].PublicKey) {
		return nil, &Error{Kind: ErrIssuerNotFound, Op: "open transit key " + cfg.Key,
			Detail: fmt.Sprintf("version %d of the key is not the key of the cluster's root %q", cfg.KeyVersion, chain[0].Subject),
			Advice: "check --vault-addr, --vault-namespace, --vault-mount and --vault-key"}
	}
	return newTransitSigner(c, &transitKey{conn: c, name: cfg.Key, version: cfg.KeyVersion, pub: pub}, info, chain, r)
}

// recordTransitSettings returns the settings that reopen a transit root:
// those the user gave, plus the key's name and pinned version.
func recordTransitSettings(in backends.Settings, s *TransitSigner, generated bool) backends.Settings {
	out := backends.Settings{}
	for k, v := range in {
		if userSettings[k] && v != "" {
			out[k] = v
		}
	}
	out[SettingEngine] = EngineTransit
	out[SettingMount] = s.conn.cfg.Mount
	out[SettingKey] = s.key.name
	out[SettingKeyVersion] = strconv.Itoa(s.key.version)
	out[SettingGenerated] = strconv.FormatBool(generated)
	return out
}
