package main

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chancery-pki/chancery/backends/cfssl"
	"github.com/chancery-pki/chancery/ca"
	"github.com/chancery-pki/chancery/certdir"
	"github.com/chancery-pki/chancery/manager"
	"github.com/chancery-pki/chancery/signer"
)

// TestManagerServesExternalCA runs a manager with the external CA endpoint,
// as `chancery run --external-ca-listen-addr` does, and has chancery's own
// cfssl backend (authsign, with a key from the policy file) get a node
// certificate from it: the two halves of the CFSSL support meet, and the
// issuance is on the manager's audit log.
func TestManagerServesExternalCA(t *testing.T) {
	const hexKey = "00112233445566778899aabbccddeeff"
	var extAddr string
	dir, data, _ := runTestManager(t, func(dir string) *manager.ExternalCAConfig {
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
		extAddr = eln.Addr().String()
		eln.Close()
		cfg, err := (&extCAFlags{listen: extAddr, policy: policy}).config()
		if err != nil {
			t.Fatal(err)
		}
		return cfg
	})
	ctx := context.Background()

	roots, rootPEM, err := certdir.In(data).Root()
	if err != nil {
		t.Fatal(err)
	}
	bundle := filepath.Join(dir, "root.pem")
	os.WriteFile(bundle, rootPEM, 0o644)
	spec, err := cfssl.ParseExternalCA("protocol=cfssl,url=https://" + extAddr + "/api/v1/cfssl/sign,cacert=" + bundle)
	if err != nil {
		t.Fatal(err)
	}
	key, err := cfssl.ParseAuthKey([]byte(hexKey))
	if err != nil {
		t.Fatal(err)
	}
	var sg *cfssl.Signer
	eventually(t, "the external CA endpoint", func() bool {
		sg, err = cfssl.New(ctx, cfssl.Config{CAs: []cfssl.ExternalCA{spec}, AuthKey: key, Chain: roots})
		return err == nil
	})
	defer sg.Close()
	nodeKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	csr, _ := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{}, nodeKey)
	req, err := ca.NodeCertificateRequest(ca.NodeRequest{ClusterID: "ohgi9ctpbev24dl6daf7insou", NodeID: "kgwuvt1oqhqjsht0qcsq67rvu",
		Role: ca.RoleWorker, CSR: csr, Now: time.Now()}, roots[0])
	if err != nil {
		t.Fatal(err)
	}
	cert, err := sg.Sign(ctx, req)
	if err != nil {
		t.Fatalf("sign through the manager's external CA: %v", err)
	}
	// It chains to the root through the endpoint's own intermediate, which
	// /info reports as the CA's certificate.
	if c := sg.Chain(); len(c) != 2 || !ca.IsExternalCA(c[0]) {
		t.Errorf("the endpoint's CA chain has %d certificates, want its intermediate and the root", len(c))
	}
	if err := ca.VerifyChain(append([]*x509.Certificate{cert}, sg.Chain()[:len(sg.Chain())-1]...), roots, time.Now()); err != nil {
		t.Errorf("the certificate does not chain to the manager's root: %v", err)
	}
	// A manager role is outside the key's policy.
	req.Template.Subject = ca.NodeSubject("ohgi9ctpbev24dl6daf7insou", "kgwuvt1oqhqjsht0qcsq67rvu", ca.RoleManager)
	req.Template.DNSNames = ca.NodeDNSNames("kgwuvt1oqhqjsht0qcsq67rvu", ca.RoleManager)
	if _, err := sg.Sign(ctx, req); err == nil || !strings.Contains(err.Error(), "policy") {
		t.Errorf("a manager certificate outside the policy: %v", err)
	}
	// The manager's own cluster is reserved, whatever the policy allows:
	// its node identities come only from its own API.
	info, _ := (&lab{t: t}).cli(false, "info", "--data-dir", data)
	ownID := info[strings.Index(info, "ClusterID: ")+len("ClusterID: "):][:25]
	req.Template.Subject = ca.NodeSubject(ownID, "kgwuvt1oqhqjsht0qcsq67rvu", ca.RoleWorker)
	req.Template.DNSNames = ca.NodeDNSNames("kgwuvt1oqhqjsht0qcsq67rvu", ca.RoleWorker)
	if _, err := sg.Sign(ctx, req); err == nil || !strings.Contains(err.Error(), "own cluster") {
		t.Errorf("a node certificate of the manager's own cluster: %v", err)
	}
	out, _ := (&lab{t: t}).cli(false, "audit", "show", "--serial", signer.SerialHex(cert.SerialNumber), "--data-dir", data)
	if !strings.Contains(out, "certificate.issued") {
		t.Errorf("the external CA's issuance is not on the audit log:\n%s", out)
	}
}
