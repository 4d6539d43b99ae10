package extca

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chancery-pki/chancery/backends/cfssl"
	"github.com/chancery-pki/chancery/ca"
	"github.com/chancery-pki/chancery/conformance"
	"github.com/chancery-pki/chancery/signer"
)

// chanceryAsClientPolicy admits chancery's own cfssl backend, by its auth
// key, for any cluster and cross-signing.
const chanceryAsClientPolicy = `authkey ci ci.hex
allow key ci clusters=* cross-sign
`

// newBackendSigner opens chancery's cfssl backend on a fresh endpoint,
// with the auth key: the signer a second chancery would use with
// --external-ca pointing at this one.
func newBackendSigner(t *testing.T, env *testEnv) *cfssl.Signer {
	t.Helper()
	bundle := filepath.Join(t.TempDir(), "root.pem")
	if err := os.WriteFile(bundle, ca.EncodeCertificatesPEM(env.Issuer.Chain()[0]), 0o600); err != nil {
		t.Fatal(err)
	}
	key, err := cfssl.ParseAuthKey([]byte(testAuthKeyHex))
	if err != nil {
		t.Fatal(err)
	}
	s, err := cfssl.New(context.Background(), cfssl.Config{
		CAs:     []cfssl.ExternalCA{{URL: env.URL + PathSign, CACertFile: bundle}},
		AuthKey: key, AuthKeySource: "test",
	})
	if err != nil {
		t.Fatalf("cfssl.New: %v", err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// concurrentSubtest is the conformance subtest that signs one request 16
// times at once. Through /authsign the 16 are one token: the first is
// served, the others are refused as in progress, then as replays, by
// design (see replay.go). TestConcurrentIssuance covers concurrency with
// distinct requests.
const concurrentSubtest = "ConcurrentSerialsUnique"

// TestConformanceThroughEndpoint runs the conformance suite against
// chancery's cfssl backend talking to this endpoint: the certificates it
// gets are field for field those of the local issuer behind it, but for
// the validity, which the endpoint sets from its configuration.
func TestConformanceThroughEndpoint(t *testing.T) {
	conformance.Run(t, func(t *testing.T) signer.Signer {
		if strings.HasSuffix(t.Name(), "/"+concurrentSubtest) {
			t.Skip("one authsign request sent 16 times is one token: served once, then refused as a replay; see TestConcurrentIssuance")
		}
		return newBackendSigner(t, startEnv(t, envOptions{Policy: chanceryAsClientPolicy}))
	}, conformance.Options{
		ValidityFromProfile: func(req *signer.Request) (time.Time, time.Time) {
			now := time.Now()
			if req.Profile == signer.ProfileCA {
				// Cut at the signing root's NotAfter, 20 years from its
				// making (a second before this request).
				return now.Add(-ca.CertBackdate), now.Add(ca.RootCAExpiry)
			}
			return now.Add(-ca.CertBackdate), now.Add(ca.DefaultCertExpiry)
		},
		ValidityTolerance: 5 * time.Second,
	})
}
