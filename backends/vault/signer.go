package vault

import (
	"bytes"
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"encoding/base64"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/hashicorp/vault/api"

	"github.com/chancery-pki/chancery/signer"
)

// Name is the backend's type name, as stored in the cluster's settings.
const Name = "vault"

// Signer issues certificates with a root CA held in Vault's PKI engine. It
// is safe for concurrent use. Close stops its token renewal.
type Signer struct {
	conn     *conn
	issuerID string
	chain    []*x509.Certificate
	rand     io.Reader

	keyMu sync.Mutex
	keyID string // the issuer's key, for CreateCSR; looked up when empty

	rolesMu sync.Mutex
	roles   map[string]*roleState // by roleSpec.key

	throwawayMu sync.Mutex
	throwaway   map[string]crypto.Signer
}

var (
	_ signer.Signer             = (*Signer)(nil)
	_ signer.CapabilityReporter = (*Signer)(nil)
	_ signer.CSRCreator         = (*Signer)(nil)
	_ signer.Describer          = (*Signer)(nil)
	_ io.Closer                 = (*Signer)(nil)
)

func newSigner(c *conn, issuerID, keyID string, chain []*x509.Certificate, r io.Reader) *Signer {
	if r == nil {
		r = rand.Reader
	}
	return &Signer{
		conn: c, issuerID: issuerID, keyID: keyID, chain: chain, rand: r,
		roles: map[string]*roleState{}, throwaway: map[string]crypto.Signer{},
	}
}

// Chain returns the chain the Signer issues under: the root in Vault.
func (s *Signer) Chain() []*x509.Certificate { return s.chain }

// IssuerID returns the ID of the Vault issuer that signs.
func (s *Signer) IssuerID() string { return s.issuerID }

// Close stops the token renewal. The Signer must not be used afterwards.
func (s *Signer) Close() error {
	s.conn.close()
	return nil
}

// Capabilities reports what Vault's PKI engine can do for chancery: it
// generates root keys inside itself, makes a CSR for its own key
// (intermediate/cross-sign), and signs CA certificates from a public key
// alone (sign-self-issued); node certificates need the node's CSR, because
// Vault's sign endpoint signs only CSRs (NeedsCSR applies to the node
// profile).
func (s *Signer) Capabilities() signer.Capabilities {
	return signer.Capabilities{GeneratesKeys: true, CreatesCSR: true, SignsPublicKey: true, NeedsCSR: true}
}

// IssuedTolerance declares how the PKI engine's node certificates differ
// from the local issuer's: their DNS names are sorted, and their NotBefore
// comes from Vault's clock (see nodeTolerance).
func (s *Signer) IssuedTolerance() signer.Tolerance { return nodeTolerance(s.conn.cfg.NotBeforeSkew) }

// Describe says where the key lives: the Vault address, namespace, engine,
// mount and issuer, how chancery authenticates, and that Vault sorts node
// certificates' DNS names. No secret is included.
func (s *Signer) Describe() signer.Description {
	cfg := s.conn.cfg
	d := signer.Description{Backend: Name, Details: [][2]string{{"address", cfg.Address}}}
	if cfg.Namespace != "" {
		d.Details = append(d.Details, [2]string{"namespace", cfg.Namespace})
	}
	d.Details = append(d.Details, [2]string{"engine", EnginePKI}, [2]string{"mount", cfg.Mount}, [2]string{"issuer", s.issuerID},
		[2]string{"auth", cfg.authMethod()},
		// What makes this engine's node certificates differ from the
		// contract's, said where operators look (`chancery info`).
		[2]string{"dns_names", "sorted by Vault's PKI engine (--vault-engine transit keeps swarm's order)"})
	return d
}

// Sign checks req with signer.CheckRequest and has Vault issue it: a node
// certificate through a role chancery configures (see the package
// documentation), a CA certificate through sign-self-issued. The
// certificate is checked against the request before it is returned.
func (s *Signer) Sign(ctx context.Context, req *signer.Request) (*x509.Certificate, error) {
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("vault: %w", err)
	}
	if err := signer.CheckRequest(req, s.chain[0]); err != nil {
		return nil, err
	}
	if req.Profile == signer.ProfileCA {
		return s.signCA(ctx, req)
	}
	return s.signNode(ctx, req)
}

// maxSerialTries bounds the issuances of a node certificate whose serial
// comes out shorter than signer.SerialBytes (1 in 128 of Vault's serials).
const maxSerialTries = 8

// roleSlack is how much later than the request's a node certificate's
// NotBefore may come out before chancery rewrites the role's
// not_before_duration.
const roleSlack = 2 * time.Second

func (s *Signer) signNode(ctx context.Context, req *signer.Request) (*x509.Certificate, error) {
	if req.CSR == nil {
		return nil, &signer.RequestError{Field: "csr", Reason: "Vault signs node certificates only from the node's CSR"}
	}
	issuer := s.chain[0]
	if csrHasUserID(req.CSR) {
		return nil, unsupported("CSR", "its subject carries a user ID (UID), which Vault's sign endpoint copies into the certificate or refuses, whatever the role says; the node must leave it out of its CSR")
	}
	plan, err := planNode(req, issuer)
	if err != nil {
		return nil, err
	}
	t := req.Template
	role, unlock, err := s.role(ctx, plan.spec, t.NotBefore)
	if err != nil {
		return nil, err
	}
	defer func() { unlock() }()
	data := map[string]any{
		"csr":                  string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE REQUEST", Bytes: req.CSR.Raw})),
		"common_name":          plan.cn,
		"exclude_cn_from_sans": true,
		"not_after":            t.NotAfter.UTC().Format(time.RFC3339),
		"format":               "der",
	}
	if len(plan.dnsNames) > 0 {
		data["alt_names"] = strings.Join(plan.dnsNames, ",")
	}
	if len(plan.ips) > 0 {
		ips := make([]string, len(plan.ips))
		for i, ip := range plan.ips {
			ips[i] = ip.String()
		}
		data["ip_sans"] = ips
	}
	path := s.conn.cfg.Mount + "/sign/" + role
	for try := 1; ; try++ {
		sec, err := s.conn.call(ctx, request{op: "sign a node certificate", method: http.MethodPost, path: path, data: data, mountPath: true})
		var e *Error
		if errors.As(err, &e) && e.Kind == ErrVault && strings.Contains(e.Detail, "unknown role") && try == 1 {
			// Someone deleted the role under us: configure it again, once.
			unlock()
			s.forgetRole(plan.spec)
			if role, unlock, err = s.role(ctx, plan.spec, t.NotBefore); err != nil {
				unlock = func() {}
				return nil, err
			}
			path = s.conn.cfg.Mount + "/sign/" + role
			continue
		}
		if err != nil {
			return nil, err
		}
		cert, err := certificateFrom(sec, "sign a node certificate", path)
		if err != nil {
			return nil, err
		}
		if !serialOK(cert) && try < maxSerialTries {
			// Vault draws serials below 2^159, as the local issuer does, but
			// keeps the 1 in 128 that are shorter than 20 bytes, which the
			// local issuer draws again. So does chancery: this certificate
			// is dropped, and Vault (with no_store) keeps no copy.
			continue
		}
		if err := checkNode(cert, req, issuer, s.conn.cfg.NotBeforeSkew); err != nil {
			return nil, err
		}
		if !serialOK(cert) {
			return nil, &Error{Kind: ErrMismatch, Op: "sign a node certificate", Detail: fmt.Sprintf("Vault returned %d serial numbers shorter than %d bytes in a row", maxSerialTries, signer.SerialBytes)}
		}
		return cert, nil
	}
}

// oidUserID is the subject attribute Vault reads user IDs from.
var oidUserID = asn1.ObjectIdentifier{0, 9, 2342, 19200300, 100, 1, 1}

// csrHasUserID reports whether a CSR's subject carries a user ID.
func csrHasUserID(csr *x509.CertificateRequest) bool {
	return slices.ContainsFunc(csr.Subject.Names, func(a pkix.AttributeTypeAndValue) bool { return a.Type.Equal(oidUserID) })
}

// roleState is what the Signer knows of a role it configured.
type roleState struct {
	name string
	// mu is held for reading while a certificate is signed through the
	// role, and for writing while the role is written.
	mu      sync.RWMutex
	written bool
	nbd     time.Duration // the role's not_before_duration
}

// role makes sure the role for spec exists with a not_before_duration that
// puts Vault's NotBefore at notBefore (to the second, give or take
// roleSlack), and returns its name with its lock held (for reading, or for
// writing when it had to write the role), and the function that unlocks it.
func (s *Signer) role(ctx context.Context, spec roleSpec, notBefore time.Time) (string, func(), error) {
	key := spec.key()
	s.rolesMu.Lock()
	st := s.roles[key]
	if st == nil {
		st = &roleState{name: spec.name(s.issuerID)}
		s.roles[key] = st
	}
	s.rolesMu.Unlock()
	name := st.name
	// The wall clock, not Config.Clock: Vault's NotBefore comes from its
	// own wall clock.
	// Vault's smallest backdate is one second (0 means its default of
	// 30s): a request that starts less than a second ago, or within the
	// next second, waits until its NotBefore is a second old.
	switch wait := time.Until(notBefore.Add(time.Second)); {
	case wait > 2*time.Second:
		return "", nil, unsupported("validity", "the certificate would start in the future, and Vault starts certificates at its current time minus a backdate")
	case wait > 0:
		timer := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			timer.Stop()
			return "", nil, fmt.Errorf("vault: %w", ctx.Err())
		case <-timer.C:
		}
	}
	fits := func(nbd time.Duration) bool {
		start := time.Now().Add(-nbd)
		return !start.Before(notBefore) && !start.After(notBefore.Add(roleSlack))
	}
	st.mu.RLock()
	if st.written && fits(st.nbd) {
		return name, st.mu.RUnlock, nil
	}
	st.mu.RUnlock()
	st.mu.Lock()
	if !st.written {
		// Before the first write, check that the token may both write the
		// role and sign through it, so that a policy lacking one leaves no
		// role behind.
		if err := s.checkCapabilities(ctx, name); err != nil {
			st.mu.Unlock()
			return "", nil, err
		}
	}
	if !st.written || !fits(st.nbd) {
		// Vault sets NotBefore to its time minus not_before_duration, in
		// whole seconds (at least one, see above).
		nbd := max(time.Since(notBefore).Truncate(time.Second), time.Second)
		if err := s.writeRole(ctx, name, spec, nbd); err != nil {
			st.mu.Unlock()
			return "", nil, err
		}
		st.written, st.nbd = true, nbd
	}
	// This request signs under the write lock, so that another with a
	// different backdate cannot rewrite the role before it has signed.
	return name, st.mu.Unlock, nil
}

// checkCapabilities asks Vault (sys/capabilities-self) whether the token
// may write the role and sign through it. When the token may not ask, it
// lets the calls themselves find out.
func (s *Signer) checkCapabilities(ctx context.Context, role string) error {
	m := s.conn.cfg.Mount
	need := []struct {
		path string
		caps []string
	}{
		{m + "/roles/" + role, []string{"create", "update"}},
		{m + "/sign/" + role, []string{"update"}},
	}
	paths := []string{need[0].path, need[1].path}
	sec, err := s.conn.call(ctx, request{op: "check the token's capabilities", method: http.MethodPost, path: "sys/capabilities-self", data: map[string]any{"paths": paths}})
	if err != nil {
		if errors.Is(err, ErrPermissionDenied) && !errors.Is(err, ErrTokenInvalid) {
			return nil
		}
		return err
	}
	if sec == nil {
		return nil
	}
	for _, n := range need {
		got, _ := sec.Data[n.path].([]any)
		ok := false
		for _, g := range got {
			if c, _ := g.(string); c == "root" || slices.Contains(n.caps, c) {
				ok = true
			}
		}
		if !ok {
			e := &Error{Kind: ErrPermissionDenied, Op: "configure the node certificate role", Path: n.path,
				Detail: fmt.Sprintf("the token's policies do not allow %s there", strings.Join(n.caps, " or ")), Advice: hints[ErrPermissionDenied]}
			if d := s.conn.mountMissing(ctx); d != "" {
				e.Kind, e.Advice, e.Detail = ErrMountNotFound, hints[ErrMountNotFound], d
			}
			return e
		}
	}
	return nil
}

// forgetRole marks the role for spec as not configured, so that the next
// use writes it again.
func (s *Signer) forgetRole(spec roleSpec) {
	s.rolesMu.Lock()
	st := s.roles[spec.key()]
	s.rolesMu.Unlock()
	if st != nil {
		st.mu.Lock()
		st.written = false
		st.mu.Unlock()
	}
}

// writeRole configures the role for node certificates of spec's shape; see
// the package documentation for each parameter's reason.
func (s *Signer) writeRole(ctx context.Context, name string, spec roleSpec, nbd time.Duration) error {
	list := func(v []string) []string {
		if v == nil {
			return []string{}
		}
		return v
	}
	data := map[string]any{
		"issuer_ref":                         s.issuerID,
		"allow_any_name":                     true,
		"enforce_hostnames":                  false,
		"allow_ip_sans":                      true,
		"allow_localhost":                    true,
		"allow_wildcard_certificates":        true,
		"allowed_uri_sans":                   []string{},
		"allowed_other_sans":                 []string{},
		"allowed_serial_numbers":             []string{},
		"allowed_user_ids":                   []string{},
		"cn_validations":                     []string{"disabled"},
		"require_cn":                         false,
		"use_csr_common_name":                false,
		"use_csr_sans":                       false,
		"serial_number_source":               "json",
		"key_type":                           "any",
		"key_bits":                           0,
		"signature_bits":                     spec.SignatureBits,
		"use_pss":                            false,
		"key_usage":                          list(spec.KeyUsage),
		"ext_key_usage":                      list(spec.ExtKeyUsage),
		"ext_key_usage_oids":                 []string{},
		"server_flag":                        false,
		"client_flag":                        false,
		"code_signing_flag":                  false,
		"email_protection_flag":              false,
		"basic_constraints_valid_for_non_ca": spec.BasicConstraints,
		"organization":                       list(spec.Organization),
		"ou":                                 list(spec.OU),
		"country":                            list(spec.Country),
		"locality":                           list(spec.Locality),
		"province":                           list(spec.Province),
		"street_address":                     list(spec.StreetAddress),
		"postal_code":                        list(spec.PostalCode),
		"policy_identifiers":                 []string{},
		"no_store":                           true,
		"generate_lease":                     false,
		"not_before_duration":                int64(nbd / time.Second),
		"ttl":                                0,
		"max_ttl":                            0,
	}
	path := s.conn.cfg.Mount + "/roles/" + name
	_, err := s.conn.call(ctx, request{op: "configure the node certificate role", method: http.MethodPost, path: path, data: data, mountPath: true})
	return err
}

// signCA issues a CA certificate (a cross-signed root) exactly as the
// local issuer would: the local issuer builds it, self-issued and signed by
// a throwaway key, and Vault's sign-self-issued re-signs it with the root's
// key, changing only the issuer's signature and authority key ID.
func (s *Signer) signCA(ctx context.Context, req *signer.Request) (*x509.Certificate, error) {
	issuer := s.chain[0]
	t := req.Template
	der, err := subjectDER(t)
	if err != nil {
		return nil, unsupported("subject", err.Error())
	}
	// The certificate is built by the shared local issuer, as for every
	// backend: under a throwaway CA named as the subject, so that it is
	// self-issued (issuer = subject), which is what sign-self-issued takes.
	// The throwaway key is of the root's kind, so that the signature
	// algorithm is the one Vault re-signs with.
	key, err := s.throwawayKey(issuer.PublicKey)
	if err != nil {
		return nil, err
	}
	tca, err := signer.SelfSign(s.rand, key, &x509.Certificate{
		RawSubject: der, NotBefore: t.NotBefore, NotAfter: t.NotAfter,
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign,
	})
	if err != nil {
		return nil, fmt.Errorf("failed to make the throwaway CA for Vault to re-sign under: %w", err)
	}
	li, err := signer.NewLocalIssuer(signer.LocalConfig{Key: key, Chain: []*x509.Certificate{tca}, Rand: s.rand})
	if err != nil {
		return nil, err
	}
	built, err := li.Sign(ctx, req)
	if err != nil {
		return nil, err
	}
	path := s.conn.cfg.Mount + "/issuer/" + s.issuerID + "/sign-self-issued"
	sec, err := s.conn.call(ctx, request{op: "sign a CA certificate", method: http.MethodPost, path: path, mountPath: true, data: map[string]any{
		"certificate": string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: built.Raw})),
		"require_matching_certificate_algorithms": false,
	}})
	if err != nil {
		return nil, err
	}
	cert, err := certificateFrom(sec, "sign a CA certificate", path)
	if err != nil {
		return nil, err
	}
	if err := checkCA(cert, built, req, issuer); err != nil {
		return nil, err
	}
	return cert, nil
}

// throwawayKey returns a key of the same kind as the root's key pub (RSA,
// or ECDSA on the same curve), made once per kind and Signer: it only
// signs the self-issued certificates that Vault re-signs.
func (s *Signer) throwawayKey(pub crypto.PublicKey) (crypto.Signer, error) {
	kind := "rsa"
	var curve elliptic.Curve
	if k, ok := pub.(*ecdsa.PublicKey); ok {
		curve, kind = k.Curve, k.Curve.Params().Name
	}
	s.throwawayMu.Lock()
	defer s.throwawayMu.Unlock()
	if k := s.throwaway[kind]; k != nil {
		return k, nil
	}
	var (
		k   crypto.Signer
		err error
	)
	if curve == nil {
		k, err = rsa.GenerateKey(rand.Reader, 2048)
	} else {
		k, err = ecdsa.GenerateKey(curve, rand.Reader)
	}
	if err != nil {
		return nil, fmt.Errorf("vault: failed to generate a throwaway key: %w", err)
	}
	s.throwaway[kind] = k
	return k, nil
}

// certificateFrom reads the certificate of a sign response, PEM or base64
// DER.
func certificateFrom(sec *api.Secret, op, path string) (*x509.Certificate, error) {
	if sec == nil || sec.Data == nil {
		return nil, &Error{Kind: ErrVault, Op: op, Path: path, Detail: "Vault returned no data"}
	}
	raw, _ := sec.Data["certificate"].(string)
	der, err := decodeDER(raw, "CERTIFICATE")
	if err != nil {
		return nil, &Error{Kind: ErrVault, Op: op, Path: path, Detail: "Vault returned no readable certificate: " + err.Error()}
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, &Error{Kind: ErrVault, Op: op, Path: path, Detail: "Vault returned an unparsable certificate: " + err.Error()}
	}
	return cert, nil
}

// decodeDER reads a PEM block of the given type, or base64 DER.
func decodeDER(s, pemType string) ([]byte, error) {
	s = strings.TrimSpace(s)
	if s == "" {
		return nil, fmt.Errorf("empty")
	}
	if strings.HasPrefix(s, "-----BEGIN") {
		b, _ := pem.Decode([]byte(s))
		if b == nil || b.Type != pemType {
			return nil, fmt.Errorf("no %s PEM block", pemType)
		}
		return b.Bytes, nil
	}
	return base64.StdEncoding.DecodeString(s)
}

// keyRef returns the ID of the issuer's key, looking it up in the mount's
// issuer list when CreateRoot did not record it.
func (s *Signer) keyRef(ctx context.Context) (string, error) {
	s.keyMu.Lock()
	defer s.keyMu.Unlock()
	if s.keyID != "" {
		return s.keyID, nil
	}
	id, err := lookupKeyID(ctx, s.conn, s.issuerID)
	if err != nil {
		return "", err
	}
	s.keyID = id
	return id, nil
}

// equalCert reports whether two certificates are the same bytes.
func equalCert(a, b *x509.Certificate) bool { return bytes.Equal(a.Raw, b.Raw) }
