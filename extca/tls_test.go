package extca

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"io"
	"log/slog"

	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/chancery-pki/chancery/ca"
	"github.com/chancery-pki/chancery/clock"
	"github.com/chancery-pki/chancery/signer"
)

// TestTLSCertificate checks the endpoint's TLS certificate: issued by the
// Signer, chained to chancery's root, for the configured names, and
// served to clients that trust only that root, over TLS 1.2 or later.
func TestTLSCertificate(t *testing.T) {
	env := startEnv(t, envOptions{})
	leaf := env.Server.Certificate().Leaf
	inter := x509.NewCertPool()
	for _, der := range env.Server.Certificate().Certificate[1:] {
		c, err := x509.ParseCertificate(der)
		if err != nil {
			t.Fatal(err)
		}
		inter.AddCert(c)
	}
	for _, name := range []string{"localhost", "127.0.0.1"} {
		if _, err := leaf.Verify(x509.VerifyOptions{DNSName: name, Roots: env.Roots, Intermediates: inter}); err != nil {
			t.Errorf("the TLS certificate for %s: %v", name, err)
		}
	}
	if leaf.IsCA || leaf.Subject.CommonName != "localhost" {
		t.Errorf("TLS certificate: CA %v, subject %s", leaf.IsCA, leaf.Subject)
	}
	if first := env.Audit.all()[1]; first.Details["purpose"] != "external CA TLS certificate" || first.Serial != serialHex(leaf) {
		t.Errorf("audit event %+v, want the TLS certificate's issuance", first)
	}
	// Reached by its DNS name through the loopback address.
	c := env.client(t)
	c.Transport.(*http.Transport).TLSClientConfig.ServerName = "localhost"
	if a := post(t, c, env.URL+PathInfo, nil); a.Status != http.StatusOK {
		t.Errorf("info by DNS name: %s", a.Raw)
	}

	old := &tls.Config{RootCAs: env.Roots, MaxVersion: tls.VersionTLS11}
	conn, err := tls.Dial("tcp", strings.TrimPrefix(env.URL, "https://"), old)
	if err == nil {
		conn.Close()
		t.Error("a TLS 1.1 client was served")
	}
}

// TestClientCertificates checks client certificate trust: a certificate
// from an unknown CA fails the handshake; SetClientCAs switches the trusted
// CAs for new connections.
func TestClientCertificates(t *testing.T) {
	env := startEnv(t, envOptions{})
	other, _ := newIssuer(t, "other-swarm")
	stranger := nodeCert(t, other, testCluster, testManagerNode, ca.RoleManager)
	body := nodeRequestJSON(t, csrPEM(t, newKey(t), pkixName()), testCluster, testNode, ca.RoleWorker)

	// Go's client sends no certificate the server's CAs did not issue:
	// the request comes without one.
	checkRefusal(t, post(t, env.client(t, stranger), env.URL+PathSign, body), 400, 400, "authentication required")
	// A client that sends it anyway fails the handshake.
	forced := env.client(t)
	forced.Transport.(*http.Transport).TLSClientConfig.GetClientCertificate = func(*tls.CertificateRequestInfo) (*tls.Certificate, error) {
		return &stranger, nil
	}
	if _, err := forced.Post(env.URL+PathSign, "application/json", strings.NewReader(string(body))); err == nil || !strings.Contains(err.Error(), "certificate") {
		t.Errorf("a client certificate from an unknown CA: %v, want a TLS error", err)
	}

	// The swarm rotates to another root: its managers now hold
	// certificates from it.
	pool := x509.NewCertPool()
	pool.AddCert(other.Chain()[0])
	env.Server.SetClientCAs(pool)
	post(t, env.client(t, stranger), env.URL+PathSign, body).certificates(t)
	checkRefusal(t, post(t, env.client(t, env.Manager), env.URL+PathSign, body), 400, 400, "authentication required")

	// With no client CAs, no certificate is asked for, and /sign says
	// to use /authsign.
	env.Server.SetClientCAs(nil)
	a := post(t, env.client(t, env.Manager), env.URL+PathSign, body)
	checkRefusal(t, a, 400, 400, "this CA accepts no client certificates; use /authsign")
}

// TestTLSRenewal renews the TLS certificate at two thirds of its
// lifetime, and retries a failed renewal while serving the old one.
func TestTLSRenewal(t *testing.T) {
	iss, _ := newIssuer(t, "chancery-root")
	fake := clock.NewFake(time.Now())
	var flaky *flakySigner
	pol, err := ParsePolicy([]byte(DefaultPolicy), "default", "")
	if err != nil {
		t.Fatal(err)
	}
	aud := &memAudit{}
	srv, err := New(context.Background(), Config{
		Signer: iss, Policy: pol, ClientCAs: x509.NewCertPool(), DNSNames: []string{"ca.example"},
		TLSCertExpiry: 3 * time.Hour, Clock: fake, Audit: aud,
		wrapIntermediate: func(s signer.Signer) signer.Signer { flaky = &flakySigner{Signer: s}; return flaky },
		Logger:           slog.New(slog.NewTextHandler(io.Discard, nil)),
	})
	if err != nil {
		t.Fatal(err)
	}
	first := srv.Certificate().Leaf
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { srv.RenewTLSCertificate(ctx); close(done) }()
	defer func() { cancel(); <-done }()

	if !fake.BlockUntil(1, 5*time.Second) {
		t.Fatal("no renewal scheduled")
	}
	// Not yet due: lifetime 4h (3h plus the 1h backdate), due at 2h40m.
	flaky.fails.Store(1)
	fake.Set(renewAt(first).Add(-time.Minute))
	if srv.Certificate().Leaf != first {
		t.Fatal("renewed before two thirds of the lifetime")
	}
	fake.Set(renewAt(first))
	if !fake.BlockUntil(1, 5*time.Second) {
		t.Fatal("no retry scheduled after a failed renewal")
	}
	if srv.Certificate().Leaf != first {
		t.Fatal("a failed renewal replaced the certificate")
	}
	fake.Advance(renewRetry)
	deadline := time.Now().Add(5 * time.Second)
	for srv.Certificate().Leaf == first {
		if time.Now().After(deadline) {
			t.Fatal("the certificate was not renewed")
		}
		time.Sleep(time.Millisecond)
	}
	renewed := srv.Certificate().Leaf
	if want := fake.Now().Add(-ca.CertBackdate).Truncate(time.Second); !renewed.NotBefore.Equal(want) {
		t.Errorf("renewed not before %s, want %s", renewed.NotBefore, want)
	}
	if n := len(aud.all()); n != 3 {
		t.Errorf("%d audit events, want the intermediate and the two TLS certificates", n)
	}
}

// TestNewRefuses checks the configurations New refuses.
func TestNewRefuses(t *testing.T) {
	iss, _ := newIssuer(t, "chancery-root")
	pol, err := ParsePolicy([]byte(DefaultPolicy), "default", "")
	if err != nil {
		t.Fatal(err)
	}
	good := func() Config {
		return Config{Signer: iss, Policy: pol, ClientCAs: x509.NewCertPool(), DNSNames: []string{"ca.example"},
			Logger: slog.New(slog.NewTextHandler(io.Discard, nil))}
	}
	tests := []struct {
		name string
		mod  func(*Config)
		err  string
	}{
		{"NoSigner", func(c *Config) { c.Signer = nil }, "a signer is needed"},
		{"NoPolicy", func(c *Config) { c.Policy = nil }, "no allow rule"},
		{"CertRulesWithoutClientCAs", func(c *Config) { c.ClientCAs = nil }, "no client CA is given"},
		{"NoNames", func(c *Config) { c.DNSNames = nil }, "at least one DNS name or IP address"},
		{"IPAsDNSName", func(c *Config) { c.DNSNames = []string{"10.0.0.1"} }, "give IP addresses as IP addresses"},
		{"ShortCertExpiry", func(c *Config) { c.CertExpiry = time.Minute }, "below the minimum"},
		{"NegativeWindow", func(c *Config) { c.ReplayWindow = -time.Second }, "negative replay window"},
		{"TTLBelowWindow", func(c *Config) { c.ReplayTTL = time.Minute }, "must be at least the replay window"},
		{"SignerDown", func(c *Config) {
			f := &flakySigner{Signer: iss}
			f.fails.Store(1)
			c.Signer = f
		}, "did not make the endpoint's intermediate"},
		{"AuditDown", func(c *Config) { c.Audit = &memAudit{fail: errors.New("disk full")} }, "not recorded in the audit log"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := good()
			tt.mod(&cfg)
			if _, err := New(context.Background(), cfg); err == nil || !strings.Contains(err.Error(), tt.err) {
				t.Errorf("New: %v, want an error with %q", err, tt.err)
			}
		})
	}
	if _, err := New(context.Background(), good()); err != nil {
		t.Errorf("New with a good configuration: %v", err)
	}
}

// TestIssuanceNotRecordedIsWithheld: a certificate the audit log cannot
// record does not leave.
func TestIssuanceNotRecordedIsWithheld(t *testing.T) {
	env := startEnv(t, envOptions{})
	env.Audit.setFail(errors.New("disk full"))
	body := nodeRequestJSON(t, csrPEM(t, newKey(t), pkixName()), testCluster, testNode, ca.RoleWorker)
	a := post(t, env.client(t, env.Manager), env.URL+PathSign, body)
	checkRefusal(t, a, http.StatusInternalServerError, 500, "could not be recorded in the CA's audit log, so it was withheld")
}
