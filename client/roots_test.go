package client

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"io"
	"log"
	"math/big"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// testRoot is a self-signed root and its key.
type testRoot struct {
	cert *x509.Certificate
	key  *ecdsa.PrivateKey
}

func newTestRoot(t *testing.T, cn string) testRoot {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: cn},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return testRoot{cert, key}
}

// serverCert is a manager's serving certificate under r.
func (r testRoot) serverCert(t *testing.T) tls.Certificate {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(2), Subject: pkix.Name{CommonName: "m1"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		DNSNames: []string{ServerName}, KeyUsage: x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, r.cert, key.Public(), r.key)
	if err != nil {
		t.Fatal(err)
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}
}

func poolWith(certs ...*x509.Certificate) *x509.CertPool {
	p := x509.NewCertPool()
	for _, c := range certs {
		p.AddCert(c)
	}
	return p
}

// TestSetRoots checks that new roots apply to the connections made after
// SetRoots, over HTTP/2, and that the connection already made is kept.
func TestSetRoots(t *testing.T) {
	oldRoot, newRoot := newTestRoot(t, "old root"), newTestRoot(t, "new root")
	var conns atomic.Int32
	var proto atomic.Int32
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		proto.Store(int32(r.ProtoMajor))
		w.Write([]byte("{}"))
	}))
	srv.EnableHTTP2 = true
	srv.Config.ErrorLog = log.New(io.Discard, "", 0)
	srv.TLS = &tls.Config{MinVersion: tls.VersionTLS12, Certificates: []tls.Certificate{oldRoot.serverCert(t)}}
	srv.Config.ConnState = func(_ net.Conn, s http.ConnState) {
		if s == http.StateNew {
			conns.Add(1)
		}
	}
	srv.StartTLS()
	defer srv.Close()
	addr := strings.TrimPrefix(srv.URL, "https://")
	c := New(addr, poolWith(oldRoot.cert), nil)
	defer c.Close()
	ctx := context.Background()
	call := func() error { return c.do(ctx, http.MethodGet, "/", nil, nil) }

	if err := call(); err != nil {
		t.Fatalf("first call: %v", err)
	}
	if p := proto.Load(); p != 2 {
		t.Errorf("the call went over HTTP/%d, want HTTP/2", p)
	}
	// The server's certificate does not chain to the new root: only a new
	// connection can tell.
	c.SetRoots(poolWith(newRoot.cert))
	if err := call(); err != nil {
		t.Fatalf("a call on the connection made before SetRoots: %v", err)
	}
	if n := conns.Load(); n != 1 {
		t.Errorf("%d connections after SetRoots, want the first one kept", n)
	}
	c.Close()
	err := call()
	var unknown x509.UnknownAuthorityError
	if err == nil || !errors.As(err, &unknown) {
		t.Fatalf("a new connection to a manager outside the new roots: got %v, want an unknown authority", err)
	}
	c.SetRoots(poolWith(oldRoot.cert, newRoot.cert))
	if err := call(); err != nil {
		t.Fatalf("a new connection under both roots: %v", err)
	}
	// A client that pins nothing (FetchRoot's) keeps doing so.
	bare := New(addr, nil, nil)
	defer bare.Close()
	bare.SetRoots(poolWith(newRoot.cert))
	if err := bare.do(ctx, http.MethodGet, "/", nil, nil); err != nil {
		t.Fatalf("SetRoots changed a client made without roots: %v", err)
	}
}
