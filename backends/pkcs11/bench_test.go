//go:build cgo

package pkcs11

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"fmt"
	"math/big"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/chancery-pki/chancery/ca"
)

// The benchmarks measure, for a P-256 and an RSA-3072 key in SoftHSM2, at
// 1 and 8 concurrent signers:
//
//   - BenchmarkRawSign: crypto11's Signer.Sign of a SHA-256 digest;
//   - BenchmarkKeySign: the same through Key, this package's recovering
//     wrapper;
//   - BenchmarkBareLeaf: a leaf the minimal way, with crypto11's signer as
//     the crypto.Signer: x509.ParseCertificateRequest, CheckSignature,
//     x509.CreateCertificate, nothing else;
//   - BenchmarkChanceryIssue: a node certificate through the backend:
//     ca.NodeCertificateRequest and the Signer's Sign;
//   - BenchmarkIssueRatio: the last two interleaved, for their ratio on a
//     machine whose load changes.
//
// Run them with
//
//	go test -run '^$' -bench . -benchtime 3s ./backends/pkcs11
var benchAlgs = []Algorithm{P256, RSA3072}

var benchConcurrency = []int{1, 8}

// benchName is "P256", "RSA3072".
func benchName(alg Algorithm) string {
	return map[Algorithm]string{P256: "P256", P384: "P384", RSA3072: "RSA3072"}[alg]
}

// runConcurrent runs op b.N times over conc goroutines and reports the rate
// in unit.
func runConcurrent(b *testing.B, conc int, unit string, op func() error) {
	b.Helper()
	var (
		next atomic.Int64
		wg   sync.WaitGroup
	)
	b.ResetTimer()
	for g := 0; g < conc; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for next.Add(1) <= int64(b.N) {
				if err := op(); err != nil {
					b.Error(err)
					return
				}
			}
		}()
	}
	wg.Wait()
	b.StopTimer()
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), unit)
}

func forEach(b *testing.B, run func(b *testing.B, alg Algorithm, s *Signer)) {
	for _, alg := range benchAlgs {
		b.Run(benchName(alg), func(b *testing.B) {
			s, _, _ := createRoot(b, alg)
			run(b, alg, s)
		})
	}
}

func BenchmarkRawSign(b *testing.B) {
	forEach(b, func(b *testing.B, alg Algorithm, s *Signer) {
		raw := s.key.conn.(*tokenKey).key
		digest := sha256.Sum256([]byte("chancery"))
		for _, conc := range benchConcurrency {
			b.Run(fmt.Sprintf("conc%d", conc), func(b *testing.B) {
				runConcurrent(b, conc, "sigs/s", func() error {
					_, err := raw.Sign(rand.Reader, digest[:], crypto.SHA256)
					return err
				})
			})
		}
	})
}

func BenchmarkKeySign(b *testing.B) {
	forEach(b, func(b *testing.B, alg Algorithm, s *Signer) {
		digest := sha256.Sum256([]byte("chancery"))
		for _, conc := range benchConcurrency {
			b.Run(fmt.Sprintf("conc%d", conc), func(b *testing.B) {
				runConcurrent(b, conc, "sigs/s", func() error {
					_, err := s.key.Sign(rand.Reader, digest[:], crypto.SHA256)
					return err
				})
			})
		}
	})
}

// benchCSR is a node's CSR for a fresh P-256 key, DER.
func benchCSR(b *testing.B) []byte {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		b.Fatal(err)
	}
	der, err := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{}, key)
	if err != nil {
		b.Fatal(err)
	}
	return der
}

// bareLeaf returns the minimal issuance with the token key: parse the
// CSR, check its signature, create the certificate, nothing else.
func bareLeaf(s *Signer, csrDER []byte) func() error {
	raw := s.key.conn.(*tokenKey).key
	root := s.Chain()[0]
	now := time.Now()
	var serial atomic.Int64
	return func() error {
		csr, err := x509.ParseCertificateRequest(csrDER)
		if err != nil {
			return err
		}
		if err := csr.CheckSignature(); err != nil {
			return err
		}
		tmpl := &x509.Certificate{
			SerialNumber:          big.NewInt(serial.Add(1)),
			Subject:               ca.NodeSubject(testClusterID, testNodeID, ca.RoleWorker),
			DNSNames:              ca.NodeDNSNames(testNodeID, ca.RoleWorker),
			NotBefore:             now.Add(-time.Hour),
			NotAfter:              now.Add(ca.DefaultCertExpiry),
			KeyUsage:              x509.KeyUsageDigitalSignature | x509.KeyUsageKeyEncipherment,
			ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
			BasicConstraintsValid: true,
		}
		_, err = x509.CreateCertificate(rand.Reader, tmpl, root, csr.PublicKey, raw)
		return err
	}
}

// chanceryIssue returns a node certificate issuance through the backend's
// Signer, as the manager does it.
func chanceryIssue(s *Signer, csrDER []byte) func() error {
	issuer := s.Chain()[0]
	ctx := context.Background()
	return func() error {
		req, err := ca.NodeCertificateRequest(ca.NodeRequest{
			ClusterID: testClusterID, NodeID: testNodeID, Role: ca.RoleWorker,
			CSR: csrDER, Expiry: ca.DefaultCertExpiry, Now: time.Now(),
		}, issuer)
		if err != nil {
			return err
		}
		_, err = s.Sign(ctx, req)
		return err
	}
}

func BenchmarkBareLeaf(b *testing.B) {
	forEach(b, func(b *testing.B, alg Algorithm, s *Signer) {
		op := bareLeaf(s, benchCSR(b))
		for _, conc := range benchConcurrency {
			b.Run(fmt.Sprintf("conc%d", conc), func(b *testing.B) {
				runConcurrent(b, conc, "certs/s", op)
			})
		}
	})
}

func BenchmarkChanceryIssue(b *testing.B) {
	forEach(b, func(b *testing.B, alg Algorithm, s *Signer) {
		op := chanceryIssue(s, benchCSR(b))
		for _, conc := range benchConcurrency {
			b.Run(fmt.Sprintf("conc%d", conc), func(b *testing.B) {
				runConcurrent(b, conc, "certs/s", op)
			})
		}
	})
}

// BenchmarkIssueRatio interleaves the two: each goroutine alternates a
// bare leaf and a chancery issuance, timing each, so that both meet the
// same load from the rest of the machine. It reports the ratio of
// chancery's rate to the bare rate (the bare path's mean latency over
// chancery's), and both rates as if each had run alone for its share of the
// time.
func BenchmarkIssueRatio(b *testing.B) {
	forEach(b, func(b *testing.B, alg Algorithm, s *Signer) {
		csrDER := benchCSR(b)
		bare, issue := bareLeaf(s, csrDER), chanceryIssue(s, csrDER)
		for _, conc := range benchConcurrency {
			b.Run(fmt.Sprintf("conc%d", conc), func(b *testing.B) {
				var bareNS, issueNS atomic.Int64
				timed := func(op func() error, total *atomic.Int64) error {
					start := time.Now()
					err := op()
					total.Add(int64(time.Since(start)))
					return err
				}
				runConcurrent(b, conc, "pairs/s", func() error {
					if err := timed(bare, &bareNS); err != nil {
						return err
					}
					return timed(issue, &issueNS)
				})
				n, c := float64(b.N), float64(conc)
				b.ReportMetric(n*c/(float64(bareNS.Load())/1e9), "bare-certs/s")
				b.ReportMetric(n*c/(float64(issueNS.Load())/1e9), "chancery-certs/s")
				b.ReportMetric(float64(bareNS.Load())/float64(issueNS.Load()), "chancery/bare")
			})
		}
	})
}
