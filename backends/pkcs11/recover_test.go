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
	"errors"
	"io"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/miekg/pkcs11"
)

// gatedConn lets a fault test wait until no PKCS#11 call is in flight
// before it breaks the token's state: PKCS#11 leaves closing or finalizing
// under a running call undefined (SoftHSM2 frees the session under it).
// The signers keep running concurrently; they meet the broken state on
// their next call.
type gatedConn struct {
	conn
	gate *sync.RWMutex
}

func (g *gatedConn) Sign(r io.Reader, digest []byte, opts crypto.SignerOpts) ([]byte, error) {
	g.gate.RLock()
	defer g.gate.RUnlock()
	return g.conn.Sign(r, digest, opts)
}

// gate wraps k's conns, present and future, in gatedConns.
func gate(k *Key) *sync.RWMutex {
	g := &sync.RWMutex{}
	k.mu.Lock()
	defer k.mu.Unlock()
	k.conn = &gatedConn{conn: k.conn, gate: g}
	open := k.open
	k.open = func() (conn, KeyInfo, error) {
		c, info, err := open()
		if err != nil {
			return nil, info, err
		}
		return &gatedConn{conn: c, gate: g}, info, nil
	}
	return g
}

// slotOf returns the current slot ID of the token labeled label.
func slotOf(t *testing.T, p *pkcs11.Ctx, label string) uint {
	t.Helper()
	slots, err := p.GetSlotList(true)
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range slots {
		if ti, err := p.GetTokenInfo(s); err == nil && ti.Label == label {
			return s
		}
	}
	t.Fatalf("token %q not found", label)
	return 0
}

// TestRecoverUnderConcurrentIssuance breaks the token's sessions, three
// ways, while eight goroutines issue node certificates through the
// backend's Signer, and checks that every issuance succeeds after the key
// reopened the token, that every certificate verifies under the root, and
// that the logs say what happened without the PIN.
func TestRecoverUnderConcurrentIssuance(t *testing.T) {
	for _, tc := range []struct {
		name  string
		fault func(t *testing.T, p *pkcs11.Ctx, label string)
	}{
		{"CloseAllSessions", func(t *testing.T, p *pkcs11.Ctx, label string) {
			if err := p.CloseAllSessions(slotOf(t, p, label)); err != nil {
				t.Fatal(err)
			}
		}},
		{"Logout", func(t *testing.T, p *pkcs11.Ctx, label string) {
			sh, err := p.OpenSession(slotOf(t, p, label), pkcs11.CKF_SERIAL_SESSION)
			if err != nil {
				t.Fatal(err)
			}
			if err := p.Logout(sh); err != nil {
				t.Fatal(err)
			}
			p.CloseSession(sh)
		}},
		{"FinalizeAndInitialize", func(t *testing.T, p *pkcs11.Ctx, label string) {
			if err := p.Finalize(); err != nil {
				t.Fatal(err)
			}
			if err := p.Initialize(); err != nil && !isCKR(err, pkcs11.CKR_CRYPTOKI_ALREADY_INITIALIZED) {
				t.Fatal(err)
			}
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			logger, logs := captureLogs()
			s, _, tok := createRoot(t, P256)
			s.key.log = logger
			g := gate(s.key)
			p := pkcs11.New(tok.Module)
			defer p.Destroy()

			const workers, perWorker, faultAfter = 8, 30, 40
			var (
				issued atomic.Int64
				wg     sync.WaitGroup
				errs   = make(chan error, workers*perWorker)
				certs  = make(chan []byte, workers*perWorker)
				fault  = make(chan struct{})
			)
			for w := 0; w < workers; w++ {
				wg.Add(1)
				go func() {
					defer wg.Done()
					for i := 0; i < perWorker; i++ {
						cert, err := s.Sign(context.Background(), nodeRequest(t, s.Chain()[0]))
						if err != nil {
							errs <- err
							continue
						}
						certs <- cert.Raw
						if issued.Add(1) == faultAfter {
							close(fault)
						}
					}
				}()
			}
			<-fault
			g.Lock()
			tc.fault(t, p, tok.Label)
			g.Unlock()
			wg.Wait()
			close(errs)
			close(certs)

			for err := range errs {
				t.Errorf("issuance failed: %v", err)
			}
			n := 0
			for raw := range certs {
				n++
				if err := checkIssued(raw, s); err != nil {
					t.Error(err)
				}
			}
			if n != workers*perWorker {
				t.Errorf("%d certificates issued, want %d", n, workers*perWorker)
			}
			if s.key.Reopened() == 0 {
				t.Error("the key never reopened the token: the fault did not bite")
			}
			t.Logf("reopened the token %d time(s); logs:\n%s", s.key.Reopened(), logs)
			out := logs.String()
			if !strings.Contains(out, "lost the token's sessions") {
				t.Errorf("no warning logged:\n%s", out)
			}
			if strings.Contains(out, tok.PIN) {
				t.Errorf("the logs show the PIN:\n%s", out)
			}
		})
	}
}

// fakeConn signs with an in-memory key, failing with scripted errors.
type fakeConn struct {
	key    *ecdsa.PrivateKey
	fail   func() error // called before each signature; nil means succeed
	closed atomic.Bool
}

func (f *fakeConn) Public() crypto.PublicKey { return f.key.Public() }
func (f *fakeConn) Sign(r io.Reader, d []byte, o crypto.SignerOpts) ([]byte, error) {
	if f.closed.Load() {
		return nil, errors.New("context is closed")
	}
	if f.fail != nil {
		if err := f.fail(); err != nil {
			return nil, err
		}
	}
	return f.key.Sign(rand.Reader, d, o)
}
func (f *fakeConn) Close() error { f.closed.Store(true); return nil }

// fakeKey returns a Key over fakeConns: every conn's signatures fail with
// what signErr returns for the n-th signature overall; each reopen (the
// n-th) fails with what openErr returns.
func fakeKey(t *testing.T, signErr func(n int64) error, openErr func(n int64) error) (*Key, *atomic.Int64) {
	priv, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	var signs, opens atomic.Int64
	mk := func() *fakeConn {
		return &fakeConn{key: priv, fail: func() error { return signErr(signs.Add(1)) }}
	}
	logger, _ := captureLogs()
	k := newKey(&prepared{
		uri: &URI{Token: "T", Object: "root", ID: []byte{1}, ModulePath: "/m.so"},
		pin: "1234-fake",
		cfg: Config{Retries: DefaultRetries, Logger: logger},
	}, mk(), KeyInfo{TokenLabel: "T", Label: "root", ID: []byte{1}})
	k.sleep = func(time.Duration) {}
	k.open = func() (conn, KeyInfo, error) {
		if err := openErr(opens.Add(1)); err != nil {
			return nil, KeyInfo{}, err
		}
		return mk(), KeyInfo{TokenLabel: "T", Label: "root"}, nil
	}
	t.Cleanup(func() { k.Close() })
	return k, &opens
}

// TestRecoverScripted injects the failures SoftHSM2 cannot produce on
// demand (a removed device, a token not present) and checks the retry
// policy: how many times the token is reopened, and which errors end it.
func TestRecoverScripted(t *testing.T) {
	ckrErr := func(rv uint) error { return pkcs11.Error(rv) }
	never := func(int64) error { return nil }
	for _, tc := range []struct {
		name      string
		signErr   func(n int64) error
		openErr   func(n int64) error
		wantOpens int64
		wantErr   error  // nil means the signature succeeds
		says      string // in the error
	}{
		{"NoFault", never, never, 0, nil, ""},
		{"DeviceRemovedOnce", func(n int64) error {
			if n == 1 {
				return ckrErr(pkcs11.CKR_DEVICE_REMOVED)
			}
			return nil
		}, never, 1, nil, ""},
		{"TokenNotPresentWhileReinserted", func(n int64) error {
			if n == 1 {
				return ckrErr(pkcs11.CKR_TOKEN_NOT_PRESENT)
			}
			return nil
		}, func(n int64) error {
			if n == 1 {
				return &Error{Kind: ErrTokenNotFound, Msg: "no token"}
			}
			return nil
		}, 2, nil, ""},
		{"SessionInvalidForever", func(int64) error { return ckrErr(pkcs11.CKR_SESSION_HANDLE_INVALID) }, never,
			DefaultRetries, pkcs11.Error(pkcs11.CKR_SESSION_HANDLE_INVALID), "failed after 3 attempts to reopen"},
		{"TokenGone", func(int64) error { return ckrErr(pkcs11.CKR_DEVICE_REMOVED) },
			func(int64) error { return &Error{Kind: ErrTokenNotFound, Msg: "no token"} },
			DefaultRetries, ErrTokenNotFound, "check that the token is present"},
		{"WrongPINOnReopen", func(int64) error { return ckrErr(pkcs11.CKR_USER_NOT_LOGGED_IN) },
			func(int64) error { return &Error{Kind: ErrWrongPIN, Msg: "token refused the PIN"} },
			1, ErrWrongPIN, "refused the PIN"},
		{"KeyGoneOnReopen", func(int64) error { return ckrErr(pkcs11.CKR_KEY_HANDLE_INVALID) },
			func(int64) error { return &Error{Kind: ErrKeyNotFound, Msg: "no key"} },
			1, ErrKeyNotFound, "no key"},
		{"OtherErrorNotRetried", func(int64) error { return ckrErr(pkcs11.CKR_MECHANISM_INVALID) }, never,
			0, pkcs11.Error(pkcs11.CKR_MECHANISM_INVALID), "failed to sign"},
		{"PINInCauseRedacted", func(int64) error { return errors.New("module echoed 1234-fake") }, never,
			0, nil, "[PIN]"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			k, opens := fakeKey(t, tc.signErr, tc.openErr)
			digest := sha256.Sum256([]byte("x"))
			sig, err := k.Sign(rand.Reader, digest[:], crypto.SHA256)
			if got := opens.Load(); got != tc.wantOpens {
				t.Errorf("reopened %d times, want %d", got, tc.wantOpens)
			}
			switch {
			case tc.says == "" && tc.wantErr == nil:
				if err != nil {
					t.Fatalf("Sign: %v", err)
				}
				if !ecdsa.VerifyASN1(k.Public().(*ecdsa.PublicKey), digest[:], sig) {
					t.Error("bad signature")
				}
			default:
				if err == nil {
					t.Fatal("Sign succeeded")
				}
				if tc.wantErr != nil && !errors.Is(err, tc.wantErr) {
					t.Errorf("error %v does not match %v", err, tc.wantErr)
				}
				if !strings.Contains(shown(err), tc.says) || !strings.HasPrefix(err.Error(), "pkcs11: ") {
					t.Errorf("error %q does not say %q", shown(err), tc.says)
				}
				if strings.Contains(shown(err), "1234-fake") {
					t.Errorf("error shows the PIN: %v", err)
				}
			}
		})
	}
}

// TestRecoverOnceForManySigners checks that signers that lose their
// sessions together reopen the token once, not once each.
func TestRecoverOnceForManySigners(t *testing.T) {
	var broken atomic.Bool
	broken.Store(true)
	var once sync.Once
	k, opens := fakeKey(t, func(int64) error {
		if broken.Load() {
			return pkcs11.Error(pkcs11.CKR_SESSION_HANDLE_INVALID)
		}
		return nil
	}, func(int64) error {
		once.Do(func() { broken.Store(false) })
		return nil
	})
	var wg sync.WaitGroup
	for i := 0; i < 16; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			digest := sha256.Sum256([]byte("x"))
			if _, err := k.Sign(rand.Reader, digest[:], crypto.SHA256); err != nil {
				t.Error(err)
			}
		}()
	}
	wg.Wait()
	if n := opens.Load(); n != 1 {
		t.Errorf("reopened %d times, want 1", n)
	}
}

func TestRecoverRefusesReplacedKey(t *testing.T) {
	other, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	k, _ := fakeKey(t, func(n int64) error {
		if n == 1 {
			return pkcs11.Error(pkcs11.CKR_DEVICE_REMOVED)
		}
		return nil
	}, func(int64) error { return nil })
	open := k.open
	k.open = func() (conn, KeyInfo, error) {
		c, info, err := open()
		c.(*fakeConn).key = other
		return c, info, err
	}
	digest := sha256.Sum256([]byte("x"))
	_, err = k.Sign(rand.Reader, digest[:], crypto.SHA256)
	if !errors.Is(err, errKeyChanged) || !strings.Contains(err.Error(), "is not the key") {
		t.Fatalf("Sign after the key was replaced: %v", err)
	}
}

func TestClosedKey(t *testing.T) {
	k, _ := fakeKey(t, func(int64) error { return nil }, func(int64) error { return nil })
	if err := k.Close(); err != nil {
		t.Fatal(err)
	}
	if err := k.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
	digest := sha256.Sum256([]byte("x"))
	if _, err := k.Sign(rand.Reader, digest[:], crypto.SHA256); !errors.Is(err, ErrClosed) {
		t.Errorf("Sign after Close: %v, want ErrClosed", err)
	}
}

// checkIssued checks that a certificate issued by s parses and verifies
// under s's root: nothing half-made came out of a failed signature.
func checkIssued(raw []byte, s *Signer) error {
	cert, err := x509.ParseCertificate(raw)
	if err != nil {
		return err
	}
	root := s.Chain()[0]
	pool := x509.NewCertPool()
	pool.AddCert(root)
	_, err = cert.Verify(x509.VerifyOptions{Roots: pool, CurrentTime: cert.NotBefore.Add(time.Minute),
		KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}})
	return err
}
