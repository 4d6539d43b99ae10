package server

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"net/http"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/chancery-pki/chancery/api"
	"github.com/chancery-pki/chancery/ca"
	"github.com/chancery-pki/chancery/client"
	"github.com/chancery-pki/chancery/internal/etcddev"
	"github.com/chancery-pki/chancery/internal/faultproxy"
)

// TestStoreCutOff: a manager whose store is cut off from etcd answers a
// join, a renewal and an administration call with 503 "unavailable" once
// the store's call timeout passes, not after the caller's deadline and not
// with a 500; it counts them as store_unavailable and logs the store's
// error, which the callers are not told. Once etcd answers again, so does
// the manager.
func TestStoreCutOff(t *testing.T) {
	c := etcddev.Require(t)
	p := faultproxy.For(t, c.Endpoints[0])
	b := make([]byte, 8)
	rand.Read(b)
	e := newEnv(t, envOptions{shared: true, storeOptions: map[string]string{
		"endpoints": p.URL(), "prefix": "/cutoff-" + hex.EncodeToString(b) + "/", "call-timeout": "1s",
	}})
	nodeCert, _ := e.join(t, e.init.WorkerToken)
	renew := func(ctx context.Context) error {
		_, err := e.client(t, nodeCert).Renew(ctx, api.RenewRequest{CSR: csrPEM(t, newKey(t))})
		return err
	}
	join := func(ctx context.Context) error {
		_, err := e.client(t, nil).Join(ctx, api.JoinRequest{Token: e.init.WorkerToken, CSR: csrPEM(t, newKey(t)), Hostname: "late"})
		return err
	}

	p.Cut()
	for _, tc := range []struct {
		name string
		call func(ctx context.Context) error
	}{{"join", join}, {"renew", renew}} {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		err := tc.call(ctx)
		if ctx.Err() != nil {
			t.Fatalf("%s: answered only after the caller's deadline: %v", tc.name, err)
		}
		cancel()
		aerr := apiError(t, err, http.StatusServiceUnavailable, api.CodeUnavailable)
		if strings.Contains(aerr.Message, p.Addr()) || strings.Contains(aerr.Message, "etcd") {
			t.Errorf("%s: the caller is told the store's internals: %q", tc.name, aerr.Message)
		}
	}
	if status, body := e.socketGet(t, api.PathAdminNodes); status != http.StatusServiceUnavailable || !strings.Contains(body, api.CodeUnavailable) {
		t.Errorf("node ls while cut off: %d %s", status, body)
	}
	_, metrics := e.socketGet(t, "/metrics")
	m := regexp.MustCompile(`(?m)^chancery_failures_total\{reason="store_unavailable"\} (\d+)$`).FindStringSubmatch(metrics)
	if m == nil {
		t.Errorf("no store_unavailable failures counted:\n%s", metrics)
	} else if n, _ := strconv.Atoi(m[1]); n < 3 {
		t.Errorf("%d store_unavailable failures counted, want 3 at least", n)
	}
	if logs := e.logs.String(); !strings.Contains(logs, "the store did not answer") || !strings.Contains(logs, p.Addr()) {
		t.Errorf("the log does not say the store did not answer, with its endpoint:\n%s", logs)
	}

	p.Restore()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := renew(ctx); err != nil {
		t.Errorf("renew after the partition: %v", err)
	}
	if err := join(ctx); err != nil {
		t.Errorf("join after the partition: %v", err)
	}
}

// TestStoreWithoutQuorum: a manager whose etcd lost its quorum (two of
// three members stopped) gets etcd's own refusal of a write ("request
// timed out", gRPC Unavailable) well before the store's call timeout; the
// API answers it 503 "unavailable" without the store's internals, not 500,
// and counts it as store_unavailable.
func TestStoreWithoutQuorum(t *testing.T) {
	c := etcddev.StartForTest(t, etcddev.Options{Members: 3, NoFsync: true})
	e := newEnv(t, envOptions{shared: true, storeOptions: map[string]string{
		"endpoints": strings.Join(c.Endpoints, ","), "prefix": "/noquorum/", "call-timeout": "2m",
	}})
	adm := client.NewSocket(e.socket())
	defer adm.Close()
	if _, err := adm.JoinToken(context.Background(), ca.RoleWorker, true); err != nil {
		t.Fatal(err)
	}
	c.Kill(0)
	c.Kill(1)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	_, err := adm.JoinToken(ctx, ca.RoleWorker, true)
	if ctx.Err() != nil {
		t.Fatalf("answered only after the caller's deadline: %v", err)
	}
	aerr := apiError(t, err, http.StatusServiceUnavailable, api.CodeUnavailable)
	if strings.Contains(aerr.Message, "etcd") || strings.Contains(aerr.Message, "127.0.0.1") {
		t.Errorf("the caller is told the store's internals: %q", aerr.Message)
	}
	_, metrics := e.socketGet(t, "/metrics")
	if !regexp.MustCompile(`(?m)^chancery_failures_total\{reason="store_unavailable"\} [1-9]`).MatchString(metrics) {
		t.Errorf("the failure is not counted as store_unavailable:\n%s", metrics)
	}
	if logs := e.logs.String(); !strings.Contains(logs, "etcd is unavailable") {
		t.Errorf("the log does not say etcd is unavailable:\n%s", logs)
	}
}
