package stepca

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/go-jose/go-jose/v4"

	"github.com/chancery-pki/chancery/ca"
	"github.com/chancery-pki/chancery/signer"
)

// Config configures New.
type Config struct {
	// URL is step-ca's address, https://HOST:PORT.
	URL string
	// RootFingerprint is the SHA-256 fingerprint of step-ca's root, in hex.
	RootFingerprint string
	// Provisioner is the name of step-ca's JWK provisioner, or X5C
	// provisioner when X5CCertFile is set.
	Provisioner string
	// PasswordFile holds the password that decrypts the JWK provisioner's
	// key (required), or the X5C key when it is encrypted (optional).
	PasswordFile string
	// KeyFile, when set, holds the provisioner's encrypted key (a JWE, as
	// `step crypto jwk create` writes it); otherwise the encrypted key
	// step-ca lists with the provisioner is used.
	KeyFile string
	// X5CCertFile and X5CKeyFile, when set, are an X5C provisioner's
	// credential: a certificate (with its intermediates) under one of the
	// provisioner's roots, and its private key (PEM, 0600), which signs
	// the tokens instead of a JWK provisioner's key.
	X5CCertFile, X5CKeyFile string
	// Chain, when set, is the chain the cluster record holds: step-ca's
	// root must be its last certificate.
	Chain []*x509.Certificate
	// Timeout bounds each request; zero means DefaultTimeout.
	Timeout time.Duration
	// MaxResponseBytes caps an answer's size; zero means
	// DefaultMaxResponseBytes.
	MaxResponseBytes int64
	// Now is the clock that dates the one-time tokens; nil means time.Now.
	Now func() time.Time
}

// Signer asks a step-ca to sign, with a one-time token per request. See the
// package documentation.
type Signer struct {
	cfg       Config
	client    *client
	chain     []*x509.Certificate
	key       *provisionerKey
	crossSign bool
	fragment  string // the audiences' fragment: "#x5c/NAME" for an X5C provisioner
	now       func() time.Time
	closeOnce sync.Once
}

var (
	_ signer.Signer             = (*Signer)(nil)
	_ signer.CapabilityReporter = (*Signer)(nil)
	_ signer.Describer          = (*Signer)(nil)
	_ signer.ToleranceReporter  = (*Signer)(nil)
)

// ErrNoCrossSign means the provisioner's template does not issue CA
// certificates, so this step-ca cannot cross-sign a new root.
var ErrNoCrossSign = errors.New(`stepca: the provisioner does not issue CA certificates: give it the template's cross-sign data (options.x509.templateData {"chanceryCrossSign": true}) to rotate out of this step-ca`)

// provisionerInfo is what step-ca lists of a provisioner.
type provisionerInfo struct {
	Type         string          `json:"type"`
	Name         string          `json:"name"`
	Key          json.RawMessage `json:"key"`
	EncryptedKey string          `json:"encryptedKey"`
	Roots        []byte          `json:"roots"`
	Options      struct {
		X509 struct {
			TemplateData map[string]any `json:"templateData"`
		} `json:"x509"`
	} `json:"options"`
}

// maxProvisionerPages bounds the pages of /provisioners read.
const maxProvisionerPages = 20

// New checks its configuration, bootstraps trust in step-ca's root by its
// fingerprint, reads the provisioner's password and key, fetches step-ca's
// intermediates and provisioner, and returns the Signer. Nothing is signed.
func New(ctx context.Context, cfg Config) (*Signer, error) {
	base, err := ParseURL(cfg.URL)
	if err != nil {
		return nil, err
	}
	fp, err := ParseFingerprint(cfg.RootFingerprint)
	if err != nil {
		return nil, err
	}
	if cfg.Provisioner == "" {
		return nil, errors.New("stepca: no provisioner named (--stepca-provisioner)")
	}
	x5c := cfg.X5CCertFile != "" || cfg.X5CKeyFile != ""
	switch {
	case x5c && (cfg.X5CCertFile == "" || cfg.X5CKeyFile == ""):
		return nil, errors.New("stepca: an X5C provisioner needs both its certificate and its key file (--stepca-x5c-cert-file, --stepca-x5c-key-file)")
	case x5c && cfg.KeyFile != "":
		return nil, errors.New("stepca: a JWK provisioner key file and an X5C credential are both given: give one")
	case !x5c && cfg.PasswordFile == "":
		return nil, errors.New("stepca: no provisioner password file given (--stepca-password-file)")
	}
	if cfg.Timeout < 0 || cfg.MaxResponseBytes < 0 {
		return nil, errors.New("stepca: negative timeout or response size")
	}
	var password []byte
	if cfg.PasswordFile != "" {
		if password, err = readPassword(cfg.PasswordFile); err != nil {
			return nil, err
		}
		defer clear(password)
	}
	var keyFile []byte
	if cfg.KeyFile != "" {
		if keyFile, err = readLimited(cfg.KeyFile, maxKeyFileSize); err != nil {
			return nil, fmt.Errorf("stepca: the provisioner key file: %w", err)
		}
	}
	c, root, err := bootstrap(ctx, base, fp, orDefault(cfg.Timeout, DefaultTimeout), orDefault(cfg.MaxResponseBytes, DefaultMaxResponseBytes))
	if err != nil {
		return nil, err
	}
	s := &Signer{cfg: cfg, client: c, now: cfg.Now}
	if s.now == nil {
		s.now = time.Now
	}
	if err := s.load(ctx, root, password, keyFile); err != nil {
		s.Close()
		return nil, err
	}
	return s, nil
}

func orDefault[T comparable](v, def T) T {
	var zero T
	if v == zero {
		return def
	}
	return v
}

// load builds the chain and decrypts the provisioner's key.
func (s *Signer) load(ctx context.Context, root *x509.Certificate, password, keyFile []byte) error {
	var inter struct {
		Certs []string `json:"crts"`
	}
	if err := s.client.get(ctx, "/intermediates", &inter); err != nil {
		return err
	}
	if len(inter.Certs) == 0 {
		return &RemoteError{URL: s.client.base + "/intermediates", Status: http.StatusOK, Message: "no intermediate certificate listed"}
	}
	signing, err := ca.ParseCertificatesPEM([]byte(inter.Certs[0]))
	if err != nil {
		return &RemoteError{URL: s.client.base + "/intermediates", Status: http.StatusOK, Message: "the intermediate does not parse: " + err.Error()}
	}
	issuer := signing[0]
	if !issuer.IsCA || !issuer.BasicConstraintsValid || issuer.KeyUsage != 0 && issuer.KeyUsage&x509.KeyUsageCertSign == 0 {
		return fmt.Errorf("stepca: step-ca's signing certificate %q is not a CA that signs certificates", issuer.Subject)
	}
	switch {
	case bytes.Equal(issuer.Raw, root.Raw):
		s.chain = []*x509.Certificate{root}
	case bytes.Equal(issuer.RawIssuer, root.RawSubject) && issuer.CheckSignatureFrom(root) == nil:
		s.chain = []*x509.Certificate{issuer, root}
	default:
		return fmt.Errorf("stepca: step-ca's signing certificate %q is not issued by its pinned root %q", issuer.Subject, root.Subject)
	}
	if rec := s.cfg.Chain; len(rec) > 0 && !bytes.Equal(rec[len(rec)-1].Raw, root.Raw) {
		want := rec[len(rec)-1]
		return fmt.Errorf("stepca: step-ca at %s issues under the root %q (sha256:%s), not under the cluster's root %q (sha256:%s)",
			s.client.base, root.Subject, fingerprintOf(root), want.Subject, fingerprintOf(want))
	}
	p, err := s.provisioner(ctx)
	if err != nil {
		return err
	}
	if s.cfg.X5CCertFile != "" {
		if s.key, err = loadX5C(p.Name, s.cfg.X5CCertFile, s.cfg.X5CKeyFile, password, "file "+s.cfg.PasswordFile, p.Roots, s.now()); err != nil {
			return err
		}
		// step-ca finds an X5C provisioner by the audience's fragment.
		s.fragment = "#x5c/" + url.PathEscape(p.Name)
		s.crossSign = p.Options.X509.TemplateData[templateDataCrossSign] == true
		return nil
	}
	var pub jose.JSONWebKey
	if err := json.Unmarshal(p.Key, &pub); err != nil || !pub.IsPublic() || pub.KeyID == "" {
		return fmt.Errorf("stepca: step-ca lists no usable public key for provisioner %q", s.cfg.Provisioner)
	}
	encrypted := keyFile
	if encrypted == nil {
		if p.EncryptedKey == "" {
			return fmt.Errorf("stepca: step-ca lists no encrypted key for provisioner %q: give it with --stepca-provisioner-key-file", s.cfg.Provisioner)
		}
		encrypted = []byte(p.EncryptedKey)
	}
	if s.key, err = decryptKey(p.Name, &pub, encrypted, password, "file "+s.cfg.PasswordFile); err != nil {
		return err
	}
	s.crossSign = p.Options.X509.TemplateData[templateDataCrossSign] == true
	return nil
}

// provisioner finds the provisioner named in the configuration in
// step-ca's list: a JWK provisioner, or an X5C one for an X5C credential.
func (s *Signer) provisioner(ctx context.Context) (*provisionerInfo, error) {
	cursor := ""
	for page := 0; page < maxProvisionerPages; page++ {
		var list struct {
			Provisioners []provisionerInfo `json:"provisioners"`
			NextCursor   string            `json:"nextCursor"`
		}
		path := "/provisioners?limit=100"
		if cursor != "" {
			path += "&cursor=" + url.QueryEscape(cursor)
		}
		if err := s.client.get(ctx, path, &list); err != nil {
			return nil, err
		}
		for i, p := range list.Provisioners {
			if p.Name != s.cfg.Provisioner {
				continue
			}
			want := "JWK"
			if s.cfg.X5CCertFile != "" {
				want = "X5C"
			}
			if p.Type != want {
				return nil, fmt.Errorf("stepca: provisioner %q is of type %s: chancery needs a JWK provisioner, or an X5C one with --stepca-x5c-cert-file", p.Name, p.Type)
			}
			return &list.Provisioners[i], nil
		}
		if list.NextCursor == "" || list.NextCursor == cursor {
			break
		}
		cursor = list.NextCursor
	}
	return nil, fmt.Errorf("stepca: step-ca at %s has no provisioner named %q", s.client.base, s.cfg.Provisioner)
}

// Chain returns step-ca's signing certificate followed by its root, or the
// root alone when step-ca signs with its root.
func (s *Signer) Chain() []*x509.Certificate { return s.chain }

// Capabilities reports that step-ca signs only CSRs: NeedsCSR.
func (s *Signer) Capabilities() signer.Capabilities {
	return signer.Capabilities{NeedsCSR: true}
}

// CrossSigns reports whether the provisioner issues CA certificates (its
// template data allows them), so that this step-ca can cross-sign a new
// root.
func (s *Signer) CrossSigns() bool { return s.crossSign }

// CanCrossSign returns ErrNoCrossSign when the provisioner does not issue
// CA certificates (see CrossSigns), so that a rotation out of this step-ca
// is refused before it starts (rotation.CrossSignChecker).
func (s *Signer) CanCrossSign() error {
	if !s.crossSign {
		return ErrNoCrossSign
	}
	return nil
}

// tolerance: a remote CA, whose signatures are always verified; its key
// chooses the signature algorithm. Validity is the request's, exactly.
var tolerance = signer.Tolerance{AnySignatureAlgorithm: true, VerifySignature: true}

// IssuedTolerance declares step-ca's differences from the local issuer.
func (s *Signer) IssuedTolerance() signer.Tolerance { return tolerance }

// Describe names step-ca, its root and provisioner; never the password or
// the key.
func (s *Signer) Describe() signer.Description {
	cross := "no (the provisioner's template data does not allow CA certificates)"
	if s.crossSign {
		cross = "yes"
	}
	return signer.Description{Backend: Name, Details: [][2]string{
		{"url", s.client.base},
		{"root_fingerprint", "sha256:" + fingerprintOf(s.chain[len(s.chain)-1])},
		{"provisioner", s.provisionerDescription()},
		{"ca_certificate", s.chain[0].Subject.String()},
		{"cross_sign", cross},
	}}
}

func (s *Signer) provisionerDescription() string {
	if s.key.leaf != nil {
		return fmt.Sprintf("%s (X5C, certificate %q until %s)", s.key.name, s.key.leaf.Subject.String(), s.key.leaf.NotAfter.UTC().Format(time.RFC3339))
	}
	return s.key.name + " (JWK, key " + s.key.kid + ")"
}

// audience is the audience of a token for step-ca's endpoint ("sign",
// "revoke").
func (s *Signer) audience(endpoint string) string {
	return s.client.base + "/1.0/" + endpoint + s.fragment
}

// Close releases the Signer's idle connections.
func (s *Signer) Close() error {
	s.closeOnce.Do(s.client.close)
	return nil
}

// MismatchError says that step-ca returned a certificate that differs from
// the request; it was discarded.
type MismatchError struct {
	URL    string
	Field  string
	Got    string
	Want   string
	Advice string
	// Serial is the discarded certificate's serial number, in decimal.
	Serial string
	// RevokeErr is why step-ca did not revoke the discarded certificate,
	// or nil when it did.
	RevokeErr error
}

func (e *MismatchError) Error() string {
	msg := fmt.Sprintf("stepca: %s returned a certificate that differs from the request in its %s: got %s, want %s", e.URL, e.Field, e.Got, e.Want)
	if e.Advice != "" {
		msg += " (" + e.Advice + ")"
	}
	if e.RevokeErr != nil {
		msg += fmt.Sprintf("; it was discarded, but step-ca did not revoke it (serial %s): %v", e.Serial, e.RevokeErr)
	} else {
		msg += fmt.Sprintf("; it was discarded and revoked at step-ca (serial %s)", e.Serial)
	}
	return msg
}

// Is reports whether target is signer.ErrIssuedMismatch.
func (e *MismatchError) Is(target error) bool { return target == signer.ErrIssuedMismatch }

// Sign checks req with signer.CheckRequest, refuses it without a CSR, and
// asks step-ca to sign the CSR with a fresh one-time token whose claims
// carry what the certificate states. It checks the certificate returned
// with signer.CheckIssued and returns it only if it matches.
func (s *Signer) Sign(ctx context.Context, req *signer.Request) (*x509.Certificate, error) {
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("stepca: %w", err)
	}
	issuer := s.chain[0]
	if err := signer.CheckRequest(req, issuer); err != nil {
		return nil, err
	}
	if req.CSR == nil {
		return nil, &signer.RequestError{Field: "csr", Reason: "missing: step-ca signs only certificate requests, so the stepca backend needs the subject's CSR"}
	}
	c, err := s.claims(req)
	if err != nil {
		return nil, err
	}
	ott, err := s.key.token(c, s.now())
	if err != nil {
		return nil, err
	}
	return s.sign(ctx, req, ott, c.Chancery.Serial)
}

// sign posts the CSR with the token and checks the answer.
func (s *Signer) sign(ctx context.Context, req *signer.Request, ott, serial string) (*x509.Certificate, error) {
	t := req.Template
	body := map[string]any{
		"csr":       string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE REQUEST", Bytes: req.CSR.Raw})),
		"ott":       ott,
		"notBefore": t.NotBefore.UTC().Format(time.RFC3339),
		"notAfter":  t.NotAfter.UTC().Format(time.RFC3339),
	}
	var res struct {
		Crt string `json:"crt"`
	}
	if err := s.client.post(ctx, "/1.0/sign", body, &res); err != nil {
		return nil, s.explain(err)
	}
	u := s.client.base + "/1.0/sign"
	certs, err := ca.ParseCertificatesPEM([]byte(res.Crt))
	if err != nil {
		return nil, &RemoteError{URL: u, Status: http.StatusCreated, Message: "the answer holds no usable certificate: " + err.Error()}
	}
	cert := certs[0]
	var me *MismatchError
	if err := s.check(u, req, cert); err != nil {
		if !errors.As(err, &me) {
			return nil, err
		}
	} else if cert.SerialNumber.String() != serial {
		me = &MismatchError{URL: u, Field: "serial number", Got: cert.SerialNumber.String(), Want: serial + ", the token's",
			Advice: "the provisioner's template must set serialNumber from the token's claims"}
	}
	if me != nil {
		// Nothing half done: the certificate no one asked for is revoked.
		me.Serial = cert.SerialNumber.String()
		me.RevokeErr = s.revoke(ctx, me.Serial, "chancery: the certificate differs from the request in its "+me.Field)
		return nil, me
	}
	return cert, nil
}

// revoke revokes a certificate step-ca issued, by serial, with a one-time
// token whose subject is the serial, as `step ca revoke` does.
func (s *Signer) revoke(ctx context.Context, serial, reason string) error {
	ott, err := s.key.token(&claims{Subject: serial, Audience: []string{s.audience("revoke")}}, s.now())
	if err != nil {
		return err
	}
	var res struct {
		Status string `json:"status"`
	}
	return s.client.post(ctx, "/1.0/revoke", map[string]any{
		"serial": serial, "ott": ott, "reasonCode": 0, "reason": reason, "passive": true,
	}, &res)
}

// explain adds to step-ca's refusal what usually causes it.
func (s *Signer) explain(err error) error {
	var re *RemoteError
	if !errors.As(err, &re) {
		return err
	}
	msg := strings.ToLower(re.Message)
	switch {
	case strings.Contains(msg, "chancerycrosssign"):
		return fmt.Errorf("%w: %v", ErrNoCrossSign, err)
	case re.Status == http.StatusUnauthorized:
		return fmt.Errorf("%w (step-ca refused the one-time token: it expired, since chancery's and step-ca's clocks must agree within a minute; or it was used before; or step-ca no longer has the provisioner's key: step-ca's log says which)", err)
	case strings.Contains(msg, "provisioning credential"):
		return fmt.Errorf("%w (an X5C provisioner issues only within its certificate's validity: renew it, or use a JWK provisioner)", err)
	case strings.Contains(msg, "duration"):
		return fmt.Errorf("%w (the provisioner's claims bound the certificate's lifetime: raise maxTLSCertDuration, or lower chancery's)", err)
	}
	return err
}

// claims builds the token's claims for req.
func (s *Signer) claims(req *signer.Request) (*claims, error) {
	t := req.Template
	serial, err := signer.RandomSerial(rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("stepca: %w", err)
	}
	skid := t.SubjectKeyId
	if !t.IsCA || len(skid) == 0 {
		if skid, err = signer.SubjectKeyID(req.PublicKey); err != nil {
			return nil, fmt.Errorf("stepca: %w", err)
		}
	}
	cc := chanceryClaims{Serial: serial.String(), SubjectKeyID: skid, DNS: []string{}, IPs: []string{}}
	switch req.Profile {
	case signer.ProfileCA:
		if !s.crossSign {
			return nil, ErrNoCrossSign
		}
		cc.Profile, cc.MaxPathLen = "ca", signer.PathLen(t)
		if len(t.RawSubject) > 0 {
			cc.Subject = t.RawSubject
		} else if cc.Subject, err = asn1.Marshal(t.Subject.ToRDNSequence()); err != nil {
			return nil, fmt.Errorf("stepca: the subject does not encode: %w", err)
		}
	default:
		cc.Profile = "node"
		if cc.O, cc.OU, cc.CN, err = nodeSubject(t); err != nil {
			return nil, err
		}
		cc.DNS = append(cc.DNS, t.DNSNames...)
		for _, ip := range t.IPAddresses {
			cc.IPs = append(cc.IPs, ip.String())
		}
	}
	// step-ca checks the CSR's own names against the token's subject and
	// sans; the template reads neither, so they repeat the CSR's names.
	csr := req.CSR
	var sans []string
	sans = append(sans, csr.DNSNames...)
	for _, ip := range csr.IPAddresses {
		sans = append(sans, ip.String())
	}
	sans = append(sans, csr.EmailAddresses...)
	for _, u := range csr.URIs {
		sans = append(sans, u.String())
	}
	sub := csr.Subject.CommonName
	if sub == "" {
		sub = "chancery"
		if cc.CN != "" {
			sub = cc.CN
		}
	}
	return &claims{Subject: sub, Audience: []string{s.audience("sign")}, SANs: sans, Chancery: cc}, nil
}

// nodeSubject returns the O, OU and CN of a node certificate's subject,
// which must have exactly these attributes, once each, in Go's order: the
// template writes nothing else.
func nodeSubject(t *x509.Certificate) (o, ou, cn string, err error) {
	if n := t.Subject; len(t.RawSubject) == 0 && len(n.Organization) == 1 && len(n.OrganizationalUnit) == 1 && n.CommonName != "" &&
		len(n.Country)+len(n.Province)+len(n.Locality)+len(n.StreetAddress)+len(n.PostalCode)+len(n.ExtraNames) == 0 && n.SerialNumber == "" {
		// The usual request (ca.NodeSubject), without encoding it.
		return n.Organization[0], n.OrganizationalUnit[0], n.CommonName, nil
	}
	var n pkix.Name
	want := t.RawSubject
	if len(want) == 0 {
		if want, err = asn1.Marshal(t.Subject.ToRDNSequence()); err != nil {
			return "", "", "", &signer.RequestError{Field: "subject", Reason: "does not encode"}
		}
	}
	var rdns pkix.RDNSequence
	if _, err := asn1.Unmarshal(want, &rdns); err != nil {
		return "", "", "", &signer.RequestError{Field: "subject", Reason: "does not parse"}
	}
	n.FillFromRDNSequence(&rdns)
	if len(n.Organization) == 1 && len(n.OrganizationalUnit) == 1 && n.CommonName != "" {
		o, ou, cn = n.Organization[0], n.OrganizationalUnit[0], n.CommonName
		back, _ := asn1.Marshal(pkix.Name{Organization: []string{o}, OrganizationalUnit: []string{ou}, CommonName: cn}.ToRDNSequence())
		if bytes.Equal(back, want) {
			return o, ou, cn, nil
		}
	}
	return "", "", "", &signer.RequestError{Field: "subject", Reason: fmt.Sprintf("%q is not O=cluster, OU=role, CN=node alone: the stepca backend's template writes no other node subject", n.String())}
}

// hints say what usually causes a difference in a field.
var hints = map[string]string{
	"subject":            "the provisioner's template must write O, OU and CN from the token's chancery claims (see stepca.Template)",
	"key usage":          "the provisioner's template sets the key usages",
	"extended key usage": "the provisioner's template sets the extended key usages",
	"basic constraints":  "the provisioner's template sets the basic constraints",
	"extensions":         `the provisioner's claims must set "disableSmallstepExtensions": true, and its template add no extension`,
	"validity":           "step-ca takes the validity from the sign request, within the provisioner's claims",
}

// check runs signer.CheckIssued on a certificate step-ca returned.
func (s *Signer) check(u string, req *signer.Request, cert *x509.Certificate) error {
	err := signer.CheckIssued(cert, req, s.chain[0], signer.IssuedCheck{Tolerance: tolerance, Now: s.now()})
	var ie *signer.IssuedError
	if !errors.As(err, &ie) {
		return err
	}
	return &MismatchError{URL: u, Field: ie.Field, Got: ie.Got, Want: ie.Want, Advice: hints[ie.Field]}
}
