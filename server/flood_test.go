package server

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/json"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chancery-pki/chancery/api"
	"github.com/chancery-pki/chancery/audit"
	"github.com/chancery-pki/chancery/client"
)

// floodResult is what a bad-token flood did, and whether the refusals of
// two other callers during it were recorded.
type floodResult struct {
	// Answers to the flood's joins, by status; RetryAfter counts the 429s
	// that carried a Retry-After header.
	Status     map[int]int
	RetryAfter int
	// Refusals is how many refusal entries the audit log gained; Log how
	// many bytes the server's log did.
	Refusals int
	Log      int
	// WorkerAudited says the worker's refused admin call has its entry;
	// OtherAudited that the bad-token join of another address has.
	WorkerAudited, OtherAudited bool
	// OtherStatus is the status of that other address's join.
	OtherStatus int
	Elapsed     time.Duration
}

// httpFrom returns an HTTPS client of the manager that dials from the
// local address ip, without a client certificate unless cert is given.
func (e *env) httpFrom(ip string, cert *tls.Certificate, conns int) *http.Client {
	cfg := &tls.Config{RootCAs: e.roots, ServerName: client.ServerName, MinVersion: tls.VersionTLS12}
	if cert != nil {
		cfg.Certificates = []tls.Certificate{*cert}
	}
	d := &net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(ip)}, Timeout: 10 * time.Second}
	return &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{
		DialContext: d.DialContext, TLSClientConfig: cfg, MaxIdleConnsPerHost: conns,
	}}
}

// badJoin sends a join with token and answers the status and whether a
// Retry-After came with it.
func (e *env) badJoin(hc *http.Client, token string) (int, bool, error) {
	return badJoinAt(hc, e.addr, token)
}

func badJoinAt(hc *http.Client, addr, token string) (int, bool, error) {
	body, _ := json.Marshal(api.JoinRequest{Token: token, CSR: "x", Hostname: "flood"})
	resp, err := hc.Post("https://"+addr+api.PathJoin, "application/json", bytes.NewReader(body))
	if err != nil {
		return 0, false, err
	}
	defer resp.Body.Close()
	return resp.StatusCode, resp.Header.Get("Retry-After") != "", nil
}

// flood sends n joins with a well-formed token of a wrong secret from
// 127.0.0.1, concurrency at a time; then a worker calls an administration
// path and another address (127.0.0.2) joins with a bad token, and it
// reads which refusals the audit log recorded.
func (e *env) flood(t testing.TB, n, concurrency int) floodResult {
	t.Helper()
	ctx := context.Background()
	worker, workerOut := e.join(t, e.init.WorkerToken)
	head, err := e.st.AuditHead(ctx)
	if err != nil {
		t.Fatal(err)
	}
	logStart := len(e.logs.String())
	tok := e.init.WorkerToken
	bad := tok[:len(tok)-25] + strings.Repeat("0", 25)

	res := floodResult{Status: map[int]int{}}
	hc := e.httpFrom("127.0.0.1", nil, concurrency)
	defer hc.CloseIdleConnections()
	var mu sync.Mutex
	var firstErr error
	jobs := make(chan struct{})
	var wg sync.WaitGroup
	start := time.Now()
	for range concurrency {
		wg.Go(func() {
			for range jobs {
				status, ra, err := e.badJoin(hc, bad)
				mu.Lock()
				if err != nil && firstErr == nil {
					firstErr = err
				}
				res.Status[status]++
				if status == http.StatusTooManyRequests && ra {
					res.RetryAfter++
				}
				mu.Unlock()
			}
		})
	}
	for range n {
		jobs <- struct{}{}
	}
	close(jobs)
	wg.Wait()
	res.Elapsed = time.Since(start)
	if firstErr != nil {
		t.Fatalf("flood: %v", firstErr)
	}

	wc := e.httpFrom("127.0.0.1", worker, 1)
	defer wc.CloseIdleConnections()
	resp, err := wc.Get("https://" + e.addr + api.PathAdminNodes)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusForbidden {
		t.Errorf("the worker's admin call: status %d, want 403", resp.StatusCode)
	}
	oc := e.httpFrom("127.0.0.2", nil, 1)
	defer oc.CloseIdleConnections()
	if res.OtherStatus, _, err = e.badJoin(oc, bad); err != nil {
		t.Fatal(err)
	}

	recs, err := e.st.AuditRecords(ctx, head.Seq+1, 0)
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range recs {
		ent, err := audit.Unmarshal(r.Data)
		if err != nil {
			t.Fatal(err)
		}
		if ent.Action != audit.ActionRefused {
			continue
		}
		res.Refusals++
		host, _, _ := net.SplitHostPort(ent.Remote)
		switch {
		case ent.NodeID == workerOut.NodeID && ent.Reason == "not_manager":
			res.WorkerAudited = true
		case host == "127.0.0.2" && ent.Reason == "invalid_token":
			res.OtherAudited = true
		}
	}
	res.Log = len(e.logs.String()) - logStart
	return res
}

// TestFloodHidesNoRefusal floods the join path with 2,000 bad tokens from
// one address: its joins are throttled (429 with Retry-After) after
// JoinRefusalBurst refusals, the audit log and the log grow by little, and
// neither a worker's refused admin call nor another address's refused join
// goes unrecorded.
func TestFloodHidesNoRefusal(t *testing.T) {
	e := newEnv(t, envOptions{})
	res := e.flood(t, 2000, 16)
	t.Logf("%+v", res)
	// One more refusal per JoinRefusalEvery may pass while the flood runs.
	maxRefused := JoinRefusalBurst + int(res.Elapsed/JoinRefusalEvery) + 1
	if got := res.Status[http.StatusUnauthorized]; got < JoinRefusalBurst || got > maxRefused {
		t.Errorf("%d joins answered 401, want %d to %d", got, JoinRefusalBurst, maxRefused)
	}
	if got := res.Status[http.StatusUnauthorized] + res.Status[http.StatusTooManyRequests]; got != 2000 {
		t.Errorf("answers %v, want only 401 and 429", res.Status)
	}
	if res.RetryAfter != res.Status[http.StatusTooManyRequests] {
		t.Errorf("%d of %d 429 answers carried Retry-After", res.RetryAfter, res.Status[http.StatusTooManyRequests])
	}
	if !res.WorkerAudited {
		t.Error("the worker's refused admin call has no audit entry")
	}
	if !res.OtherAudited || res.OtherStatus != http.StatusUnauthorized {
		t.Errorf("the other address's bad join: status %d, audited %v; want 401, audited", res.OtherStatus, res.OtherAudited)
	}
	if res.Refusals > 20 {
		t.Errorf("the flood added %d refusal entries, want at most 20", res.Refusals)
	}
	if res.Log > 16<<10 {
		t.Errorf("the flood logged %d bytes, want at most 16 KiB", res.Log)
	}
}

// TestForwardedJoinsThrottledByCaller sends bad joins through a manager
// that forwards them: the leader throttles the address the forwarder
// reports, not the forwarder, so that one caller's flood does not throttle
// every caller of that manager.
func TestForwardedJoinsThrottledByCaller(t *testing.T) {
	e := newEnv(t, envOptions{quiet: true})
	mgr, _ := e.join(t, e.init.ManagerToken)
	fwd := e.forwarder(t, mgr)
	tok := e.init.WorkerToken
	bad := tok[:len(tok)-25] + strings.Repeat("0", 25)
	flooder := e.httpFrom("127.0.0.1", nil, 1)
	defer flooder.CloseIdleConnections()
	statuses := map[int]int{}
	for range JoinRefusalBurst + 5 {
		status, _, err := badJoinAt(flooder, fwd, bad)
		if err != nil {
			t.Fatal(err)
		}
		statuses[status]++
	}
	if statuses[http.StatusTooManyRequests] == 0 {
		t.Errorf("forwarded flood answered %v, want some 429", statuses)
	}
	other := e.httpFrom("127.0.0.2", nil, 1)
	defer other.CloseIdleConnections()
	if status, _, err := badJoinAt(other, fwd, bad); err != nil || status != http.StatusUnauthorized {
		t.Errorf("another address's bad join through the forwarder: %d %v, want 401", status, err)
	}
}

// BenchmarkRefusalFlood reports what a flood of 2,000 bad-token joins from
// one address does: answers 401 and 429, refusal entries in the audit log,
// bytes of log, and whether a worker's refused admin call during it was
// recorded (worker-audited, 1 or 0).
func BenchmarkRefusalFlood(b *testing.B) {
	for b.Loop() {
		e := newEnv(b, envOptions{})
		res := e.flood(b, 2000, 16)
		b.ReportMetric(float64(res.Status[http.StatusUnauthorized]), "401s")
		b.ReportMetric(float64(res.Status[http.StatusTooManyRequests]), "429s")
		b.ReportMetric(float64(res.Refusals), "entries")
		b.ReportMetric(float64(res.Log), "log-bytes")
		b.ReportMetric(float64(boolInt(res.WorkerAudited)), "worker-audited")
	}
}

func boolInt(b bool) int {
	if b {
		return 1
	}
	return 0
}
