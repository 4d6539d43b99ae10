package etcdstore_test

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chancery-pki/chancery/internal/etcddev"
	"github.com/chancery-pki/chancery/store"
	"github.com/chancery-pki/chancery/store/etcdstore"
	"github.com/chancery-pki/chancery/store/storetest"
)

func TestParseOptions(t *testing.T) {
	dir := t.TempDir()
	key := filepath.Join(dir, "client-key.pem")
	os.WriteFile(key, []byte("not a key"), 0o600)
	loose := filepath.Join(dir, "loose-key.pem")
	os.WriteFile(loose, []byte("not a key"), 0o644)
	os.Chmod(loose, 0o644)
	tests := []struct {
		name      string
		opts      map[string]string
		endpoints []string
		prefix    string
		tls       bool
		err       string // a substring of the error, or "" for success
		timeout   time.Duration
	}{
		{"one", map[string]string{"endpoints": "http://127.0.0.1:2379"}, []string{"http://127.0.0.1:2379"}, etcdstore.DefaultPrefix, false, "", 0},
		{"several", map[string]string{"endpoints": "https://a:2379, https://b:2379/,", "prefix": "/c1/"}, []string{"https://a:2379", "https://b:2379"}, "/c1/", true, "", 0},
		{"none", map[string]string{}, nil, "", false, "no endpoints", 0},
		{"empty", map[string]string{"endpoints": " , "}, nil, "", false, "no endpoints", 0},
		{"no scheme", map[string]string{"endpoints": "127.0.0.1:2379"}, nil, "", false, "not an etcd client URL", 0},
		{"other scheme", map[string]string{"endpoints": "unix:///run/etcd.sock"}, nil, "", false, "not an etcd client URL", 0},
		{"user", map[string]string{"endpoints": "https://root:s3cret@a:2379"}, nil, "", false, "holds a user name or password", 0},
		{"path", map[string]string{"endpoints": "https://a:2379/v3"}, nil, "", false, "not an etcd client URL", 0},
		{"mixed", map[string]string{"endpoints": "https://a:2379,http://b:2379"}, nil, "", false, "mix http and https", 0},
		{"unknown option", map[string]string{"endpoints": "http://a:2379", "password": "x"}, nil, "", false, `unknown store option "password"`, 0},
		{"bad prefix", map[string]string{"endpoints": "http://a:2379", "prefix": "chancery"}, nil, "", false, "must start and end with /", 0},
		{"TLS files over http", map[string]string{"endpoints": "http://a:2379", "cacert": "ca.pem"}, nil, "", false, "use https URLs", 0},
		{"missing CA", map[string]string{"endpoints": "https://a:2379", "cacert": "nope.pem"}, nil, "", false, "the CA file", 0},
		{"not a CA", map[string]string{"endpoints": "https://a:2379", "cacert": key}, nil, "", false, "holds no PEM certificate", 0},
		{"cert without key", map[string]string{"endpoints": "https://a:2379", "cert": "c.pem"}, nil, "", false, "go together", 0},
		{"loose key", map[string]string{"endpoints": "https://a:2379", "cert": "c.pem", "key": loose}, nil, "", false, "chmod 600", 0},
		{"bad pair", map[string]string{"endpoints": "https://a:2379", "cert": key, "key": "client-key.pem"}, nil, "", false, "the client certificate", 0},
		{"call timeout", map[string]string{"endpoints": "http://a:2379", "call-timeout": "3s"}, []string{"http://a:2379"}, etcdstore.DefaultPrefix, false, "", 3 * time.Second},
		{"call timeout not a duration", map[string]string{"endpoints": "http://a:2379", "call-timeout": "3"}, nil, "", false, "not a duration", 0},
		{"call timeout too short", map[string]string{"endpoints": "http://a:2379", "call-timeout": "10ms"}, nil, "", false, "out of range", 0},
		{"call timeout too long", map[string]string{"endpoints": "http://a:2379", "call-timeout": "1h"}, nil, "", false, "out of range", 0},
		{"call timeout negative", map[string]string{"endpoints": "http://a:2379", "call-timeout": "-1s"}, nil, "", false, "out of range", 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg, err := etcdstore.ParseOptions(dir, tt.opts)
			if tt.err != "" {
				if err == nil || !strings.Contains(err.Error(), tt.err) {
					t.Fatalf("ParseOptions = %v, want an error with %q", err, tt.err)
				}
				if strings.Contains(err.Error(), "not a key") {
					t.Errorf("the error shows a key file's content: %v", err)
				}
				if strings.Contains(err.Error(), "s3cret") {
					t.Errorf("the error shows the endpoint's password: %v", err)
				}
				return
			}
			if err != nil {
				t.Fatalf("ParseOptions: %v", err)
			}
			if strings.Join(cfg.Endpoints, " ") != strings.Join(tt.endpoints, " ") || cfg.Prefix != tt.prefix || (cfg.TLS != nil) != tt.tls || cfg.CallTimeout != tt.timeout {
				t.Errorf("ParseOptions = %+v", cfg)
			}
		})
	}
}

// writeSettings makes a data directory whose store.json names the etcd
// store with opts.
func writeSettings(t *testing.T, opts map[string]string) string {
	t.Helper()
	dir := t.TempDir()
	if err := store.WriteSettings(dir, store.Settings{Type: etcdstore.Name, Options: opts}); err != nil {
		t.Fatal(err)
	}
	return dir
}

// TestSettingsChooseTheStore opens the store through store.json, over TLS
// with a client certificate, and checks what a data directory whose prefix
// holds nothing says.
func TestSettingsChooseTheStore(t *testing.T) {
	c := etcddev.StartForTest(t, etcddev.Options{TLS: true, NoFsync: true})
	ctx := t.Context()
	opts := map[string]string{
		"endpoints": strings.Join(c.Endpoints, ","), "prefix": prefix(),
		"cacert": c.TLS.CA, "cert": c.TLS.ClientCert, "key": c.TLS.ClientKey,
	}
	dir := writeSettings(t, opts)
	if ok, err := store.Exists(ctx, dir); err != nil || ok {
		t.Fatalf("Exists on an empty prefix = %v, %v; want false", ok, err)
	}
	if _, err := store.Open(ctx, dir, nil); !errors.Is(err, store.ErrNoStore) {
		t.Fatalf("Open on an empty prefix: %v, want ErrNoStore", err)
	}
	d, err := store.DriverFor(etcdstore.Name)
	if err != nil {
		t.Fatal(err)
	}
	st, err := d.Open(ctx, store.OpenRequest{DataDir: dir, Options: opts, Create: true})
	if err != nil {
		t.Fatalf("Open(Create): %v", err)
	}
	if err := st.CreateCluster(ctx, storetest.Cluster()); err != nil {
		t.Fatal(err)
	}
	st.Close()
	if ok, err := store.Exists(ctx, dir); err != nil || !ok {
		t.Fatalf("Exists after CreateCluster = %v, %v; want true", ok, err)
	}
	st, err = store.Open(ctx, dir, nil)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	defer st.Close()
	if cl, err := st.Cluster(ctx); err != nil || cl.ID != storetest.Cluster().ID {
		t.Errorf("Cluster = %+v, %v", cl, err)
	}

	// A client certificate from another CA, or none, is refused, in
	// seconds and without the key's content in the error.
	for name, o := range map[string]map[string]string{
		"other CA": {"cert": c.TLS.OtherClientCert, "key": c.TLS.OtherClientKey},
		"none":     {"cert": "", "key": ""},
	} {
		t.Run(name, func(t *testing.T) {
			bad := map[string]string{}
			for k, v := range opts {
				bad[k] = v
			}
			for k, v := range o {
				if v == "" {
					delete(bad, k)
				} else {
					bad[k] = v
				}
			}
			start := time.Now()
			st, err := store.Open(ctx, writeSettings(t, bad), nil)
			if err == nil {
				st.Close()
				t.Fatal("Open succeeded")
			}
			if d := time.Since(start); d > 20*time.Second {
				t.Errorf("Open took %v to fail", d)
			}
			t.Logf("refused: %v", err)
			if strings.Contains(err.Error(), "PRIVATE KEY") {
				t.Errorf("the error shows a key: %v", err)
			}
		})
	}
}

// TestUnreachable checks that an etcd nobody listens on fails Open within
// its timeout, with the endpoints in the error.
func TestUnreachable(t *testing.T) {
	start := time.Now()
	_, err := etcdstore.Open(t.Context(), etcdstore.Config{Endpoints: []string{"http://127.0.0.1:1"}, Prefix: "/x/"}, nil)
	if err == nil || !strings.Contains(err.Error(), "http://127.0.0.1:1") {
		t.Fatalf("Open = %v, want an error naming the endpoint", err)
	}
	if d := time.Since(start); d > 20*time.Second {
		t.Errorf("Open took %v to fail", d)
	}
}
