package stepca_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	. "github.com/chancery-pki/chancery/backends/stepca"
	"github.com/chancery-pki/chancery/ca"
	"github.com/chancery-pki/chancery/internal/stepcadev"
	"github.com/chancery-pki/chancery/signer"
)

// BenchmarkNodeIssuance measures node certificates per second through the
// stepca backend (ca.NodeCertificateRequest, then Sign: the request checks,
// a one-time token, step-ca's /1.0/sign, and signer.CheckIssued on the
// result) against, as the reference, step-ca's own /1.0/sign asked with
// the same HTTP client, provisioner key and CSRs (a token minted per
// request, as step-ca requires, and the answer parsed, nothing checked),
// at 1 and 16 concurrent signers, on one step-ca with an intermediate:
// without a database (db=none: step-ca keeps used tokens in memory), where
// chancery's own work shows most, and with its bbolt database
// (db=bbolt: every certificate is written, and can be revoked).
//
// The two alternate in batches of 64 certificates and each side's time is
// summed, so that load from elsewhere on the machine weighs on both alike.
// CSRs are made before the clock starts.
//
//	go test -run '^$' -bench NodeIssuance -benchtime 2000x ./backends/stepca
func BenchmarkNodeIssuance(b *testing.B) {
	for _, db := range []struct {
		name string
		noDB bool
	}{{"none", true}, {"bbolt", false}} {
		b.Run("db="+db.name, func(b *testing.B) { benchNodeIssuance(b, stepcadev.Options{NoDB: db.noDB}) })
	}
}

func benchNodeIssuance(b *testing.B, opts stepcadev.Options) {
	srv := stepcadev.Start(b, opts)
	s, err := New(context.Background(), Config{URL: srv.URL, RootFingerprint: srv.Fingerprint, Provisioner: stepcadev.Provisioner, PasswordFile: srv.PasswordFile})
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	csrs := make([][]byte, 64)
	for i := range csrs {
		key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		if err != nil {
			b.Fatal(err)
		}
		if csrs[i], err = x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{}, key); err != nil {
			b.Fatal(err)
		}
	}
	issuer := s.Chain()[0]
	request := func(i int) ca.NodeRequest {
		return ca.NodeRequest{ClusterID: testClusterID, NodeID: testNodeID, Role: ca.RoleWorker,
			CSR: csrs[i%len(csrs)], Expiry: ca.DefaultCertExpiry, Now: time.Now()}
	}
	chancery := func(i int) error {
		req, err := ca.NodeCertificateRequest(request(i), issuer)
		if err != nil {
			return err
		}
		_, err = s.Sign(context.Background(), req)
		return err
	}
	// The reference's requests are built before the clock starts: only the
	// token and the call to step-ca are timed.
	refReqs := make([]refRequest, len(csrs))
	for i := range refReqs {
		req, err := ca.NodeCertificateRequest(request(i), issuer)
		if err != nil {
			b.Fatal(err)
		}
		refReqs[i] = refRequest{req: req, csrPEM: string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE REQUEST", Bytes: csrs[i]}))}
	}
	reference := func(i int) error {
		r := refReqs[i%len(refReqs)]
		ott, _, err := s.MintToken(r.req)
		if err != nil {
			return err
		}
		return s.RawSign(context.Background(), r.csrPEM, ott, r.req)
	}
	for _, conc := range []int{1, 16} {
		b.Run(fmt.Sprintf("signers=%d", conc), func(b *testing.B) {
			const batch = 64
			var tc, tr time.Duration
			b.ResetTimer()
			for done := 0; done < b.N; done += batch {
				n := min(batch, b.N-done)
				tc += runConcurrent(b, conc, n, chancery)
				tr += runConcurrent(b, conc, n, reference)
			}
			b.StopTimer()
			rc, rr := float64(b.N)/tc.Seconds(), float64(b.N)/tr.Seconds()
			b.ReportMetric(rc, "chancery-certs/s")
			b.ReportMetric(rr, "stepca-sign-certs/s")
			b.ReportMetric(100*rc/rr, "ratio-%")
		})
	}
}

type refRequest struct {
	req    *signer.Request
	csrPEM string
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
