package extca

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/chancery-pki/chancery/ca"
	"github.com/chancery-pki/chancery/internal/cfssldev"
	"github.com/chancery-pki/chancery/signer"
)

// BenchmarkSignThroughput measures node certificates per second, P-256
// throughout, at concurrency 1 and 16: issued in process by the local
// issuer (the floor of any endpoint), by this endpoint's /sign over TLS,
// and by a real `cfssl serve`'s /sign over TLS, with the same keep-alive
// client and the same swarm-shaped request. The three are measured in
// turns of benchBatch certificates each, so that a machine whose load
// changes during the run (a shared one) weighs on all three alike; one
// benchmark iteration is one turn of each. No audit log: with one, every
// issuance also waits for the store's transaction.
//
//	go test -run '^$' -bench SignThroughput -benchtime 10x ./extca
func BenchmarkSignThroughput(b *testing.B) {
	env := startEnv(b, envOptions{Config: func(c *Config) {
		c.Audit = nil
		c.Logger = slog.New(slog.NewTextHandler(io.Discard, &slog.HandlerOptions{Level: slog.LevelWarn}))
	}})
	csr := csrPEM(b, newKey(b), pkix.Name{})
	body := nodeRequestJSON(b, csr, testCluster, testNode, ca.RoleWorker)
	cfsslURL, cfsslRoots := startCFSSLServe(b, env.Issuer)
	chanceryClient := benchClient(b, env.Roots, &env.Manager)
	cfsslClient := benchClient(b, cfsslRoots, nil)

	targets := []struct {
		name string
		do   func() error
	}{
		{"in-process", func() error {
			req, err := ca.NodeCertificateRequest(ca.NodeRequest{
				ClusterID: testCluster, NodeID: testNode, Role: ca.RoleWorker, CSR: csr, Now: time.Now(),
			}, env.Issuer.Chain()[0])
			if err != nil {
				return err
			}
			_, err = env.Issuer.Sign(context.Background(), req)
			return err
		}},
		{"chancery", func() error { return benchPost(chanceryClient, env.URL+PathSign, body) }},
		{"cfssl-serve", func() error { return benchPost(cfsslClient, cfsslURL+PathSign, body) }},
	}
	for _, conc := range []int{1, 16} {
		b.Run(fmt.Sprintf("c%d", conc), func(b *testing.B) {
			elapsed := make([]time.Duration, len(targets))
			for i, tg := range targets { // warm up: connections, caches
				if _, err := runBatch(conc, conc, tg.do); err != nil {
					b.Fatalf("%s: %v", targets[i].name, err)
				}
			}
			b.ResetTimer()
			for range b.N {
				for i, tg := range targets {
					d, err := runBatch(benchBatch, conc, tg.do)
					if err != nil {
						b.Fatalf("%s: %v", tg.name, err)
					}
					elapsed[i] += d
				}
			}
			b.StopTimer()
			rate := make([]float64, len(targets))
			for i, tg := range targets {
				rate[i] = float64(b.N*benchBatch) / elapsed[i].Seconds()
				b.ReportMetric(rate[i], tg.name+"-certs/s")
			}
			b.ReportMetric(rate[1]/rate[0], "chancery/in-process")
			b.ReportMetric(rate[1]/rate[2], "chancery/cfssl-serve")
			b.ReportMetric(0, "ns/op")
		})
	}
}

// benchBatch is how many certificates each target issues per turn.
const benchBatch = 500

// runBatch calls do n times from conc goroutines and returns how long
// that took.
func runBatch(n, conc int, do func() error) (time.Duration, error) {
	var (
		next  atomic.Int64
		wg    sync.WaitGroup
		first atomic.Value
	)
	start := time.Now()
	for range conc {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for next.Add(1) <= int64(n) {
				if err := do(); err != nil {
					first.CompareAndSwap(nil, err)
					return
				}
			}
		}()
	}
	wg.Wait()
	d := time.Since(start)
	if err, _ := first.Load().(error); err != nil {
		return d, err
	}
	return d, nil
}

// benchClient is the keep-alive HTTPS client both servers get: HTTP/1.1,
// up to 16 connections.
func benchClient(b *testing.B, roots *x509.CertPool, cert *tls.Certificate) *http.Client {
	cfg := &tls.Config{RootCAs: roots, MinVersion: tls.VersionTLS12}
	if cert != nil {
		cfg.Certificates = []tls.Certificate{*cert}
	}
	tr := &http.Transport{TLSClientConfig: cfg, MaxIdleConnsPerHost: 16, MaxConnsPerHost: 16}
	b.Cleanup(tr.CloseIdleConnections)
	return &http.Client{Transport: tr, Timeout: 30 * time.Second}
}

func benchPost(c *http.Client, url string, body []byte) error {
	resp, err := c.Post(url, "application/json", bytes.NewReader(body))
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(resp.Body)
	if err != nil {
		return err
	}
	if resp.StatusCode != http.StatusOK || !bytes.Contains(data, []byte(`"success":true`)) {
		return fmt.Errorf("%s: HTTP %d: %s", url, resp.StatusCode, data)
	}
	return nil
}

// startCFSSLServe starts `cfssl serve` over TLS with iss's root key as its
// CA and a default profile of node certificates, and returns its base
// URL and the pool that trusts its TLS certificate.
func startCFSSLServe(b *testing.B, iss *signer.LocalIssuer) (string, *x509.CertPool) {
	bin := cfssldev.Need(b)
	dir := b.TempDir()
	root := iss.Chain()[0]
	tlsKey := newKey(b)
	req := &signer.Request{PublicKey: tlsKey.Public(), Profile: signer.ProfileNode, Template: &x509.Certificate{
		Subject: pkix.Name{CommonName: "127.0.0.1"}, IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		KeyUsage:    x509.KeyUsageDigitalSignature | x509.KeyUsageKeyEncipherment,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}}
	tlsCert, err := iss.Sign(context.Background(), req)
	if err != nil {
		b.Fatal(err)
	}
	caKey := benchRootKey(b, iss)
	files := map[string][]byte{
		"ca.pem":      ca.EncodeCertificatesPEM(root),
		"ca-key.pem":  ecPEM(b, caKey),
		"tls.pem":     ca.EncodeCertificatesPEM(tlsCert),
		"tls-key.pem": ecPEM(b, tlsKey),
		"config.json": []byte(`{"signing":{"default":{"usages":["digital signature","key encipherment","server auth","client auth"],"expiry":"2160h","backdate":"1h"}}}`),
	}
	for name, data := range files {
		if err := os.WriteFile(filepath.Join(dir, name), data, 0o600); err != nil {
			b.Fatal(err)
		}
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	port := l.Addr().(*net.TCPAddr).Port
	l.Close()
	cmd := exec.Command(bin, "serve", "-address", "127.0.0.1", "-port", strconv.Itoa(port),
		"-ca", filepath.Join(dir, "ca.pem"), "-ca-key", filepath.Join(dir, "ca-key.pem"), "-config", filepath.Join(dir, "config.json"),
		"-tls-cert", filepath.Join(dir, "tls.pem"), "-tls-key", filepath.Join(dir, "tls-key.pem"), "-loglevel", "2")
	var log bytes.Buffer
	cmd.Stdout, cmd.Stderr = &log, &log
	if err := cmd.Start(); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	pool := x509.NewCertPool()
	pool.AddCert(root)
	base := "https://127.0.0.1:" + strconv.Itoa(port)
	probe := benchClient(b, pool, nil)
	for deadline := time.Now().Add(15 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		if benchPost(probe, base+PathInfo, []byte(`{}`)) == nil {
			return base, pool
		}
		if time.Now().After(deadline) {
			b.Fatalf("cfssl serve did not start:\n%s", log.String())
		}
	}
}

// benchRootKey returns the root key of an issuer made by newIssuer, which
// keeps it for the benchmark's cfssl serve.
func benchRootKey(b *testing.B, iss *signer.LocalIssuer) *ecdsa.PrivateKey {
	k, ok := issuerKeys.Load(iss)
	if !ok {
		b.Fatal("the issuer's key is unknown")
	}
	return k.(*ecdsa.PrivateKey)
}

func ecPEM(b *testing.B, k *ecdsa.PrivateKey) []byte {
	der, err := x509.MarshalECPrivateKey(k)
	if err != nil {
		b.Fatal(err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: der})
}
