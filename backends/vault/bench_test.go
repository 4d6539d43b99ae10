package vault

import (
	"context"
	"crypto/rand"
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/chancery-pki/chancery/ca"
	"github.com/chancery-pki/chancery/signer"
)

// BenchmarkNodeIssuance measures node certificates per second through the
// Vault backend (ca.NodeCertificateRequest, then Sign: the request checks,
// Vault's sign endpoint, and the check of the result) against, as the
// reference, Vault's own MOUNT/sign/ROLE called with the same API client,
// role and CSRs, at 1 and 16 concurrent signers. The target is chancery at
// 90% or more of Vault's rate (the ratio metric, in percent).
//
// The two alternate in batches of 64 certificates and each side's time is
// summed, so that load from elsewhere on the machine (2 shared cores here)
// weighs on both alike. CSRs are made before the clock starts.
//
//	go test -run '^$' -bench NodeIssuance -benchtime 2000x ./backends/vault
func BenchmarkNodeIssuance(b *testing.B) {
	s, _ := newTestSigner(b)
	csrs := csrPool(b)
	compareRates(b, issueWith(s, csrs), vaultSign(b, s, csrs))
}

// BenchmarkTransitNodeIssuance measures node certificates per second with
// the root key in Vault's transit engine (the local issuer builds each
// certificate, Vault signs its digest) against the same reference as
// BenchmarkNodeIssuance: Vault's PKI engine issuing through
// MOUNT/sign/ROLE, with the same API client configuration, on the same
// server, alternating in batches, at 1 and 16 concurrent signers.
//
//	go test -run '^$' -bench TransitNodeIssuance -benchtime 2000x ./backends/vault
func BenchmarkTransitNodeIssuance(b *testing.B) {
	s, _ := newTestSigner(b)
	ts, _ := newTransitTestSigner(b)
	csrs := csrPool(b)
	compareRates(b, issueWith(ts, csrs), vaultSign(b, s, csrs))
}

// issueWith returns chancery's side: a worker certificate request built by
// ca.NodeCertificateRequest from csrs[i], signed by s.
func issueWith(s signer.Signer, csrs [][]byte) func(int) error {
	issuer := s.Chain()[0]
	return func(i int) error {
		req, err := ca.NodeCertificateRequest(ca.NodeRequest{
			ClusterID: testClusterID, NodeID: testNodeID, Role: ca.RoleWorker,
			CSR: csrs[i%len(csrs)], Expiry: ca.DefaultCertExpiry, Now: time.Now(),
		}, issuer)
		if err != nil {
			return err
		}
		_, err = s.Sign(context.Background(), req)
		return err
	}
}

// csrPool returns node CSRs (fresh P-256 keys, empty subjects), made
// before any clock starts; callers use csrs[i%len(csrs)].
func csrPool(b *testing.B) [][]byte {
	csrs := make([][]byte, 64)
	for i := range csrs {
		der, err := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{}, newP256(b))
		if err != nil {
			b.Fatal(err)
		}
		csrs[i] = der
	}
	return csrs
}

// vaultSign returns the reference: Vault's own MOUNT/sign/ROLE through the
// role s configures for worker certificates (made by a first Sign), called
// with s's API client.
func vaultSign(b *testing.B, s *Signer, csrs [][]byte) func(int) error {
	first := nodeRequest(b, s.Chain()[0], ca.RoleWorker, time.Now())
	if _, err := s.Sign(context.Background(), first); err != nil {
		b.Fatal(err)
	}
	plan, err := planNode(first, s.Chain()[0])
	if err != nil {
		b.Fatal(err)
	}
	rolePath := s.conn.cfg.Mount + "/sign/" + plan.spec.name(s.issuerID)
	return func(i int) error {
		_, err := s.conn.client.Logical().WriteWithContext(context.Background(), rolePath, map[string]any{
			"csr":                  string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE REQUEST", Bytes: csrs[i%len(csrs)]})),
			"common_name":          testNodeID,
			"alt_names":            strings.Join([]string{"swarm-worker", testNodeID}, ","),
			"exclude_cn_from_sans": true,
			"not_after":            time.Now().Add(ca.DefaultCertExpiry).UTC().Format(time.RFC3339),
			"format":               "der",
		})
		return err
	}
}

// compareRates runs chancery and vault alternately in batches of 64 at 1
// and 16 concurrent callers, and reports both rates and their ratio.
func compareRates(b *testing.B, chancery, vault func(int) error) {
	for _, conc := range []int{1, 16} {
		b.Run(fmt.Sprintf("signers=%d", conc), func(b *testing.B) {
			const batch = 64
			var tc, tv time.Duration
			b.ResetTimer()
			for done := 0; done < b.N; done += batch {
				n := min(batch, b.N-done)
				tc += runConcurrent(b, conc, n, chancery)
				tv += runConcurrent(b, conc, n, vault)
			}
			b.StopTimer()
			rc, rv := float64(b.N)/tc.Seconds(), float64(b.N)/tv.Seconds()
			b.ReportMetric(rc, "chancery-certs/s")
			b.ReportMetric(rv, "vault-certs/s")
			b.ReportMetric(100*rc/rv, "ratio-%")
		})
	}
}

// runConcurrent runs n calls of f on conc goroutines and returns the time
// they took.
func runConcurrent(b *testing.B, conc, n int, f func(i int) error) time.Duration {
	b.Helper()
	var (
		next atomic.Int64
		wg   sync.WaitGroup
		once sync.Once
		ferr error
	)
	start := time.Now()
	for w := 0; w < conc; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := int(next.Add(1)) - 1
				if i >= n {
					return
				}
				if err := f(i); err != nil {
					once.Do(func() { ferr = err })
					return
				}
			}
		}()
	}
	wg.Wait()
	elapsed := time.Since(start)
	if ferr != nil {
		b.Fatal(ferr)
	}
	return elapsed
}
