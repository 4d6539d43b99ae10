package etcddev_test

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"net/http"
	"os"
	"testing"
	"time"

	"github.com/chancery-pki/chancery/internal/etcddev"
)

func TestMain(m *testing.M) {
	code := m.Run()
	etcddev.StopShared()
	os.Exit(code)
}

// kv puts or reads a key through etcd's JSON gateway, so that this test
// needs no etcd client. A member that has no leader yet (just started, or
// electing one after another member died) may not answer in time on a
// loaded machine, so a call that gets no answer or a 5xx is tried again
// for up to 30 s: both operations are idempotent here.
func kv(t *testing.T, c *http.Client, endpoint, op string, req map[string]string) map[string]any {
	t.Helper()
	for k, v := range req {
		req[k] = base64.StdEncoding.EncodeToString([]byte(v))
	}
	body, _ := json.Marshal(req)
	deadline := time.Now().Add(30 * time.Second)
	for {
		out, status, err := kvOnce(c, endpoint+"/v3/kv/"+op, body)
		switch {
		case err == nil && status == http.StatusOK:
			return out
		case (err != nil || status >= 500) && time.Now().Before(deadline):
			time.Sleep(200 * time.Millisecond)
			continue
		}
		t.Fatalf("%s %s: status %d, %v", op, endpoint, status, err)
	}
}

func kvOnce(c *http.Client, url string, body []byte) (map[string]any, int, error) {
	resp, err := c.Post(url, "application/json", bytes.NewReader(body))
	if err != nil {
		return nil, 0, err
	}
	defer resp.Body.Close()
	var out map[string]any
	if err := json.NewDecoder(resp.Body).Decode(&out); err != nil {
		return nil, resp.StatusCode, err
	}
	return out, resp.StatusCode, nil
}

func value(t *testing.T, rangeResp map[string]any) string {
	t.Helper()
	kvs, _ := rangeResp["kvs"].([]any)
	if len(kvs) != 1 {
		return ""
	}
	v, _ := base64.StdEncoding.DecodeString(kvs[0].(map[string]any)["value"].(string))
	return string(v)
}

func TestShared(t *testing.T) {
	c := etcddev.Require(t)
	if len(c.Endpoints) != 1 || c.TLS != nil {
		t.Fatalf("shared cluster: %+v", c)
	}
	hc := &http.Client{Timeout: 5 * time.Second}
	kv(t, hc, c.Endpoints[0], "put", map[string]string{"key": "/etcddev/a", "value": "1"})
	if got := value(t, kv(t, hc, c.Endpoints[0], "range", map[string]string{"key": "/etcddev/a"})); got != "1" {
		t.Errorf("read back %q, want 1", got)
	}
	if again := etcddev.Require(t); again != c {
		t.Error("Require started a second shared cluster")
	}
}

func TestThreeMembers(t *testing.T) {
	c := etcddev.StartForTest(t, etcddev.Options{Members: 3, NoFsync: true})
	if len(c.Endpoints) != 3 {
		t.Fatalf("endpoints %v, want 3", c.Endpoints)
	}
	hc := &http.Client{Timeout: 5 * time.Second}
	kv(t, hc, c.Endpoints[0], "put", map[string]string{"key": "k", "value": "v"})
	// A linearizable read on another member sees the write.
	if got := value(t, kv(t, hc, c.Endpoints[2], "range", map[string]string{"key": "k"})); got != "v" {
		t.Errorf("member 2 read %q, want v", got)
	}
	// Two of three keep a quorum.
	c.Kill(0)
	kv(t, hc, c.Endpoints[1], "put", map[string]string{"key": "k", "value": "w"})
	if got := value(t, kv(t, hc, c.Endpoints[2], "range", map[string]string{"key": "k"})); got != "w" {
		t.Errorf("after a member was killed, member 2 read %q, want w", got)
	}
}

func TestTLS(t *testing.T) {
	c := etcddev.StartForTest(t, etcddev.Options{TLS: true, NoFsync: true})
	cfg, err := c.TLS.ClientConfig()
	if err != nil {
		t.Fatal(err)
	}
	hc := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{TLSClientConfig: cfg}}
	kv(t, hc, c.Endpoints[0], "put", map[string]string{"key": "k", "value": "v"})

	// Without a client certificate the member refuses the connection.
	anon := cfg.Clone()
	anon.Certificates = nil
	hc = &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{TLSClientConfig: anon}}
	if resp, err := hc.Post(c.Endpoints[0]+"/v3/kv/range", "application/json", bytes.NewReader([]byte(`{"key":"aw=="}`))); err == nil {
		resp.Body.Close()
		t.Errorf("a client without a certificate got status %d, want a refused handshake", resp.StatusCode)
	}
	if fi, err := os.Stat(c.TLS.ClientKey); err != nil || fi.Mode().Perm() != 0o600 {
		t.Errorf("client key mode %v, %v; want 0600", fi.Mode().Perm(), err)
	}
}
