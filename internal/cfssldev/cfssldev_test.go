package cfssldev

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"io"
	"net/http"
	"os"
	"strings"
	"testing"
	"time"
)

// response is the envelope of cfssl serve's answers.
type response struct {
	Success bool            `json:"success"`
	Result  json.RawMessage `json:"result"`
	Errors  []struct {
		Message string `json:"message"`
	} `json:"errors"`
}

// certificate is the certificate a successful answer holds.
func (r response) certificate(t *testing.T) *x509.Certificate {
	t.Helper()
	var res struct {
		Certificate string `json:"certificate"`
	}
	if !r.Success || json.Unmarshal(r.Result, &res) != nil {
		t.Fatalf("no certificate in %+v", r)
	}
	b, _ := pem.Decode([]byte(res.Certificate))
	if b == nil {
		t.Fatalf("no PEM certificate in %q", res.Certificate)
	}
	c, err := x509.ParseCertificate(b.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// client trusts the server's bundle.
func client(t *testing.T, s *Server) *http.Client {
	t.Helper()
	pemBytes, err := os.ReadFile(s.BundleFile)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pemBytes) {
		t.Fatalf("%s holds no certificate", s.BundleFile)
	}
	c := &http.Client{
		Timeout:   10 * time.Second,
		Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}},
	}
	t.Cleanup(c.CloseIdleConnections)
	return c
}

func post(t *testing.T, c *http.Client, url string, body []byte) response {
	t.Helper()
	resp, err := c.Post(url, "application/json", bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	var r response
	if err := json.Unmarshal(raw, &r); err != nil {
		t.Fatalf("%s: %d %q: %v", url, resp.StatusCode, raw, err)
	}
	return r
}

func csrPEM(t *testing.T) []byte {
	t.Helper()
	k := NewECKey(t, elliptic.P256())
	der, err := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{
		Subject: pkix.Name{CommonName: "node"},
	}, k)
	if err != nil {
		t.Fatal(err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE REQUEST", Bytes: der})
}

// TestStart starts servers and signs a node certificate with each: over
// /sign without Auth, over /authsign with it (where /sign is refused).
func TestStart(t *testing.T) {
	Need(t)
	for _, tc := range []struct {
		name string
		opts Options
	}{
		{"Default", Options{}},
		{"AuthP384Intermediate", Options{Auth: true, Intermediate: true, Curve: elliptic.P384()}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := Start(t, tc.opts)
			curve := tc.opts.Curve
			if curve == nil {
				curve = elliptic.P256()
			}
			if pub, ok := s.Cert.PublicKey.(*ecdsa.PublicKey); !ok || pub.Curve != curve {
				t.Errorf("signing CA key is %T on %v, want ECDSA on %v", s.Cert.PublicKey, pub.Curve.Params().Name, curve.Params().Name)
			}
			if tc.opts.Intermediate {
				if s.Cert.Equal(s.Root) {
					t.Error("Intermediate: the signing CA is the root")
				}
				if err := s.Cert.CheckSignatureFrom(s.Root); err != nil {
					t.Errorf("Intermediate: the signing CA is not under the root: %v", err)
				}
			} else if !s.Cert.Equal(s.Root) {
				t.Error("the signing CA is not the root")
			}
			if b, err := os.ReadFile(s.AuthKeyFile); err != nil || strings.TrimSpace(string(b)) != s.AuthKeyHex {
				t.Errorf("AuthKeyFile holds %q (%v), want %q", b, err, s.AuthKeyHex)
			}
			if !strings.HasPrefix(s.SignURL, "https://127.0.0.1:") || !strings.HasSuffix(s.SignURL, "/api/v1/cfssl/sign") {
				t.Errorf("SignURL = %q", s.SignURL)
			}

			c := client(t, s)
			base := strings.TrimSuffix(s.SignURL, "sign")
			if !post(t, c, base+"info", []byte("{}")).certificate(t).Equal(s.Cert) {
				t.Fatal("info: not the signing CA")
			}

			req, err := json.Marshal(map[string]string{"certificate_request": string(csrPEM(t))})
			if err != nil {
				t.Fatal(err)
			}
			signURL := s.SignURL
			body := req
			if tc.opts.Auth {
				// cfssl 1.2.0 serves no /sign when its default profile
				// needs the auth key.
				resp, err := c.Post(s.SignURL, "application/json", bytes.NewReader(req))
				if err != nil {
					t.Fatal(err)
				}
				resp.Body.Close()
				if resp.StatusCode == http.StatusOK {
					t.Error("Auth: /sign signed without the auth key")
				}
				key, err := hex.DecodeString(s.AuthKeyHex)
				if err != nil {
					t.Fatal(err)
				}
				mac := hmac.New(sha256.New, key)
				mac.Write(req)
				signURL = base + "authsign"
				body, err = json.Marshal(map[string]string{
					"token":   base64.StdEncoding.EncodeToString(mac.Sum(nil)),
					"request": base64.StdEncoding.EncodeToString(req),
				})
				if err != nil {
					t.Fatal(err)
				}
			}
			cert := post(t, c, signURL, body).certificate(t)
			if err := cert.CheckSignatureFrom(s.Cert); err != nil {
				t.Errorf("the node certificate is not signed by the signing CA: %v", err)
			}
			// The default profile backdates the certificate and gives it
			// NodeExpiry from then; cfssl rounds the time to the minute.
			if got := cert.NotAfter.Sub(cert.NotBefore); got != NodeExpiry {
				t.Errorf("node certificate valid for %s, want %s", got, NodeExpiry)
			}
			if d := time.Now().Add(-Backdate).Sub(cert.NotBefore); d < -2*time.Minute || d > 2*time.Minute {
				t.Errorf("node certificate valid from %s, want about %s ago", cert.NotBefore, Backdate)
			}
		})
	}
}

// TestConfig checks which profiles need the auth key.
func TestConfig(t *testing.T) {
	for _, auth := range []bool{false, true} {
		var cfg struct {
			Signing struct {
				Default  map[string]any            `json:"default"`
				Profiles map[string]map[string]any `json:"profiles"`
			} `json:"signing"`
			AuthKeys map[string]struct {
				Type, Key string
			} `json:"auth_keys"`
		}
		if err := json.Unmarshal(Config("00ff", auth), &cfg); err != nil {
			t.Fatal(err)
		}
		if k := cfg.AuthKeys[AuthKeyID]; k.Type != "standard" || k.Key != "00ff" {
			t.Errorf("auth=%v: auth key %+v", auth, k)
		}
		for name, p := range map[string]map[string]any{
			"default": cfg.Signing.Default,
			"CA":      cfg.Signing.Profiles["CA"],
		} {
			if _, has := p["auth_key"]; has != auth {
				t.Errorf("auth=%v: profile %s has auth_key: %v", auth, name, has)
			}
		}
		if p := cfg.Signing.Profiles["authenticated"]; p["auth_key"] != AuthKeyID {
			t.Errorf("auth=%v: authenticated profile's auth_key = %v", auth, p["auth_key"])
		}
	}
}
