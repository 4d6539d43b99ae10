package main

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chancery-pki/chancery/ca"
	"github.com/chancery-pki/chancery/certdir"
	"github.com/chancery-pki/chancery/internal/cfsslwire"
	"github.com/chancery-pki/chancery/manager"
)

// TestAuthSignReplayAfterRestart captures an authsign request that got a
// certificate from a manager's external CA endpoint, restarts the manager,
// and sends the request again with a fresh timestamp (which CFSSL's token
// does not cover): the restarted endpoint refuses it as a replay, as the
// first one would have.
func TestAuthSignReplayAfterRestart(t *testing.T) {
	const hexKey = "00112233445566778899aabbccddeeff"
	dir, err := os.MkdirTemp("", "rpl")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	data := filepath.Join(dir, "m")
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	(&lab{t: t}).cli(false, "init", "--no-run", "--data-dir", data, "--listen-addr", addr, "--advertise-addr", addr)
	if err := os.WriteFile(filepath.Join(dir, "k1.hex"), []byte(hexKey+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	policy := filepath.Join(dir, "policy.conf")
	if err := os.WriteFile(policy, []byte("authkey k1 k1.hex\nallow key k1 clusters=* roles=worker\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	eln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	extAddr := eln.Addr().String()
	eln.Close()

	// start runs the manager until the returned function stops it.
	start := func(ln net.Listener) func() {
		t.Helper()
		ext, err := (&extCAFlags{listen: extAddr, policy: policy}).config()
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithCancel(context.Background())
		done, ready := make(chan error, 1), make(chan struct{})
		go func() {
			done <- manager.Run(ctx, manager.Config{DataDir: data, Listener: ln, Logger: quietLogger(), ExternalCA: ext,
				CheckpointInterval: time.Hour, Ready: func(string) { close(ready) }})
		}()
		select {
		case <-ready:
		case err := <-done:
			t.Fatalf("manager: %v", err)
		}
		return func() {
			cancel()
			if err := <-done; err != nil {
				t.Errorf("manager: %v", err)
			}
		}
	}
	stop := start(ln)

	_, rootPEM, err := certdir.In(data).Root()
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(rootPEM)
	key, err := cfsslwire.ParseAuthKey([]byte(hexKey))
	if err != nil {
		t.Fatal(err)
	}
	nodeKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	csrDER, _ := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{}, nodeKey)
	const cluster, node = "ohgi9ctpbev24dl6daf7insou", "kgwuvt1oqhqjsht0qcsq67rvu"
	signReq, _ := json.Marshal(cfsslwire.SignRequest{
		Hosts:   ca.NodeDNSNames(node, ca.RoleWorker),
		Request: string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE REQUEST", Bytes: csrDER})),
		Subject: &cfsslwire.Subject{CN: node, Names: []cfsslwire.SubjectName{{O: cluster, OU: string(ca.RoleWorker)}}},
	})
	token := key.Token(signReq)
	// send posts the captured request with the current time.
	send := func() cfsslwire.Response {
		t.Helper()
		body, _ := json.Marshal(cfsslwire.AuthRequest{Timestamp: time.Now().Unix(), Token: token, Request: signReq})
		hc := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}}}
		defer hc.CloseIdleConnections()
		var out cfsslwire.Response
		eventually(t, "an answer from the external CA endpoint", func() bool {
			resp, err := hc.Post("https://"+extAddr+"/api/v1/cfssl/authsign", "application/json", bytes.NewReader(body))
			if err != nil {
				return false
			}
			defer resp.Body.Close()
			out = cfsslwire.Response{}
			return json.NewDecoder(resp.Body).Decode(&out) == nil
		})
		return out
	}
	if first := send(); !first.Success {
		t.Fatalf("the first request was refused: %+v", first.Errors)
	}
	if again := send(); again.Success {
		t.Fatal("the request was served twice before the restart")
	}

	stop()
	ln2, err := net.Listen("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	stop = start(ln2)
	defer stop()
	replayed := send()
	if replayed.Success {
		t.Fatal("after a restart, the captured request got a second certificate")
	}
	if len(replayed.Errors) != 1 || !strings.Contains(replayed.Errors[0].Message, "replayed authsign request") {
		t.Errorf("after a restart: %+v, want a refusal as a replay", replayed.Errors)
	}
}
