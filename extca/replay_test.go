package extca

import (
	"context"
	"crypto/sha256"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/hex"
	"errors"
	"net/http"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/chancery-pki/chancery/audit"
	"github.com/chancery-pki/chancery/ca"
	"github.com/chancery-pki/chancery/signer"
)

func TestReplayCache(t *testing.T) {
	t0 := time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)
	tok := func(b byte) [32]byte { return [32]byte{b} }
	type step struct {
		op     string // reserve, spend, release
		token  byte
		at     time.Duration
		reason string // for reserve: "" or the refusal's reason
	}
	tests := []struct {
		name  string
		max   int
		steps []step
	}{
		{"SpentIsReplayed", 8, []step{
			{"reserve", 1, 0, ""}, {"spend", 1, 0, ""}, {"reserve", 1, time.Minute, reasonReplayed},
		}},
		{"ReleasedIsServedAgain", 8, []step{
			{"reserve", 1, 0, ""}, {"release", 1, 0, ""}, {"reserve", 1, time.Second, ""},
		}},
		{"InFlightIsRetryLater", 8, []step{
			{"reserve", 1, 0, ""}, {"reserve", 1, 0, reasonInFlight},
		}},
		{"ExpiresAfterTTL", 8, []step{
			{"reserve", 1, 0, ""}, {"spend", 1, 0, ""},
			{"reserve", 1, time.Hour - time.Second, reasonReplayed}, {"reserve", 1, time.Hour, ""},
		}},
		{"FullRefusesRatherThanForgets", 2, []step{
			{"reserve", 1, 0, ""}, {"spend", 1, 0, ""}, {"reserve", 2, 0, ""}, {"spend", 2, 0, ""},
			{"reserve", 3, time.Minute, reasonReplayFull},
			{"reserve", 1, time.Minute, reasonReplayed},
			// Once the first token expires there is room again.
			{"reserve", 3, time.Hour, ""},
		}},
		{"OtherTokensIndependent", 8, []step{
			{"reserve", 1, 0, ""}, {"spend", 1, 0, ""}, {"reserve", 2, 0, ""},
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := newReplayCache(time.Hour, tt.max)
			for i, s := range tt.steps {
				now := t0.Add(s.at)
				switch s.op {
				case "reserve":
					r := c.reserve(tok(s.token), now)
					got := ""
					if r != nil {
						got = r.Reason
					}
					if got != s.reason {
						t.Fatalf("step %d: reserve %d: refusal %q, want %q", i, s.token, got, s.reason)
					}
				case "spend":
					c.spend(tok(s.token), now)
				case "release":
					c.release(tok(s.token))
				}
			}
		})
	}
}

// flakySigner fails its first n signatures, then signs.
type flakySigner struct {
	signer.Signer
	fails atomic.Int32
	block chan struct{} // when set, Sign waits on it
}

func (f *flakySigner) Sign(ctx context.Context, req *signer.Request) (*x509.Certificate, error) {
	if f.block != nil && req.Profile == signer.ProfileNode && len(req.Template.IPAddresses) == 0 {
		<-f.block
	}
	if f.fails.Add(-1) >= 0 {
		return nil, errors.New("the HSM is unreachable")
	}
	return f.Signer.Sign(ctx, req)
}

// TestAuthSignRetryAfterFailure has a client send the same authsign
// request again after the CA failed it (as CFSSL's client and chancery's
// retry, with the same token): the retry is served, and only then is the
// token spent.
func TestAuthSignRetryAfterFailure(t *testing.T) {
	var flaky *flakySigner
	env := startEnv(t, envOptions{Config: func(c *Config) {
		c.wrapIntermediate = func(s signer.Signer) signer.Signer {
			flaky = &flakySigner{Signer: s}
			return flaky
		}
	}})
	flaky.fails.Store(1)
	c := env.client(t)
	body := authBody(t, testAuthKeyHex, nodeRequestJSON(t, csrPEM(t, newKey(t), pkix.Name{}), otherCluster, testNode, ca.RoleWorker), time.Now())
	checkRefusal(t, post(t, c, env.URL+PathAuthSign, body), http.StatusInternalServerError, 500, "the CA failed to sign")
	if n := env.Server.replay.len(); n != 0 {
		t.Fatalf("a failed request left %d tokens in the replay cache", n)
	}
	post(t, c, env.URL+PathAuthSign, body).certificates(t)
	checkRefusal(t, post(t, c, env.URL+PathAuthSign, body), 400, 400, "replayed authsign request")
}

// TestAuthSignInFlight answers 503 to the same authsign request while the
// first is being signed.
func TestAuthSignInFlight(t *testing.T) {
	var flaky *flakySigner
	block := make(chan struct{})
	env := startEnv(t, envOptions{Config: func(c *Config) {
		c.wrapIntermediate = func(s signer.Signer) signer.Signer {
			flaky = &flakySigner{Signer: s}
			return flaky
		}
	}})
	flaky.block = block
	c := env.client(t)
	body := authBody(t, testAuthKeyHex, nodeRequestJSON(t, csrPEM(t, newKey(t), pkix.Name{}), otherCluster, testNode, ca.RoleWorker), time.Now())
	first := make(chan answer, 1)
	go func() { first <- post(t, c, env.URL+PathAuthSign, body) }()
	for env.Server.replay.len() == 0 {
		time.Sleep(time.Millisecond)
	}
	checkRefusal(t, post(t, c, env.URL+PathAuthSign, body), http.StatusServiceUnavailable, 503, "retry in a moment")
	close(block)
	(<-first).certificates(t)
}

// TestConcurrentIssuance has 16 managers' requests signed at once, each
// with its own serial.
func TestConcurrentIssuance(t *testing.T) {
	env := startEnv(t, envOptions{})
	c := env.client(t, env.Manager)
	const n = 16
	bodies := make([][]byte, n)
	for i := range bodies {
		bodies[i] = nodeRequestJSON(t, csrPEM(t, newKey(t), pkix.Name{}), testCluster, testNode, ca.RoleWorker)
	}
	serials := make([]string, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			serials[i] = serialHex(post(t, c, env.URL+PathSign, bodies[i]).certificates(t)[0])
		}()
	}
	wg.Wait()
	seen := map[string]bool{}
	for _, s := range serials {
		if seen[s] {
			t.Errorf("serial %s issued twice", s)
		}
		seen[s] = true
	}
}

// logReader is an audit log in memory that AuditReader reads.
type logReader struct{ entries []audit.Entry }

func (l *logReader) AuditHead(context.Context) (audit.Head, error) {
	if len(l.entries) == 0 {
		return audit.Genesis, nil
	}
	return l.entries[len(l.entries)-1].Head(), nil
}

func (l *logReader) AuditRecords(_ context.Context, from uint64, limit int) ([]audit.Record, error) {
	var out []audit.Record
	for _, e := range l.entries {
		if e.Seq >= from && (limit <= 0 || len(out) < limit) {
			out = append(out, audit.Record{Key: e.Seq, Data: e.Marshal()})
		}
	}
	return out, nil
}

// The tokens spent within the TTL come back from the audit log; older
// ones, other entries and malformed details do not.
func TestRecoverReplays(t *testing.T) {
	now := time.Date(2026, 1, 2, 0, 0, 0, 0, time.UTC)
	ttl := 24 * time.Hour
	tok := func(b byte) [32]byte { return sha256.Sum256([]byte{b}) }
	issued := func(token string) audit.Event {
		return audit.Event{Action: audit.ActionIssued, Details: map[string]string{DetailAuthSignToken: token}}
	}
	log := &logReader{}
	head := audit.Genesis
	add := func(at time.Time, ev audit.Event) {
		e := audit.Seal(head, at, ev)
		head = e.Head()
		log.entries = append(log.entries, e)
	}
	t1, t2, t3 := tok(1), tok(2), tok(3)
	for i := range 3000 { // an old, long log before
		add(now.Add(-72*time.Hour+time.Duration(i)*time.Second), audit.Event{Action: audit.ActionRenewed})
	}
	add(now.Add(-25*time.Hour), issued(hex.EncodeToString(t1[:])))
	add(now.Add(-23*time.Hour), issued(hex.EncodeToString(t2[:])))
	add(now.Add(-time.Hour), audit.Event{Action: audit.ActionRefused, Details: map[string]string{DetailAuthSignToken: hex.EncodeToString(t3[:])}})
	add(now.Add(-time.Minute), issued("not hex"))
	add(now.Add(-time.Second), issued(hex.EncodeToString(t3[:])))

	c := newReplayCache(ttl, 100)
	n, err := c.recoverReplays(context.Background(), log, now)
	if err != nil {
		t.Fatal(err)
	}
	if n != 2 {
		t.Errorf("recovered %d tokens, want 2", n)
	}
	for _, tc := range []struct {
		name   string
		token  [32]byte
		replay bool
	}{{"Expired", t1, false}, {"Young", t2, true}, {"Newest", t3, true}} {
		rf := c.reserve(tc.token, now)
		if got := rf != nil && rf.Reason == reasonReplayed; got != tc.replay {
			t.Errorf("%s: refused as a replay %v, want %v", tc.name, got, tc.replay)
		}
	}
	// The young one expires with its original time.
	c.release(t1)
	if rf := c.reserve(t2, now.Add(2*time.Hour)); rf != nil {
		t.Errorf("a recovered token did not expire at its time: %v", rf.Message)
	}
}
