package extca

import (
	"bytes"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"net/http"
	"slices"
	"testing"
	"time"

	"github.com/chancery-pki/chancery/audit"
	"github.com/chancery-pki/chancery/ca"
	"github.com/chancery-pki/chancery/internal/cfsslwire"
)

// TestSignNodeCertificates has a swarm manager, authenticated by its node
// certificate from the swarm's own root, ask for node certificates shaped
// as swarm asks; they follow chancery's node certificate contract.
func TestSignNodeCertificates(t *testing.T) {
	env := startEnv(t, envOptions{})
	c := env.client(t, env.Manager)
	for _, role := range []ca.Role{ca.RoleWorker, ca.RoleManager} {
		t.Run(role.Short(), func(t *testing.T) {
			key := newKey(t)
			// The CSR's own subject is ignored.
			csr := csrPEM(t, key, pkix.Name{CommonName: "ignored", Organization: []string{"evil"}})
			before := time.Now()
			a := post(t, c, env.URL+PathSign, nodeRequestJSON(t, csr, testCluster, testNode, role))
			certs := a.certificates(t)
			if len(certs) != 2 || !ca.IsExternalCA(certs[1]) {
				t.Fatalf("%d certificates, want 2: the leaf and the endpoint's intermediate", len(certs))
			}
			cert := certs[0]
			id, err := ca.IdentityOf(cert, testCluster)
			if err != nil || id.NodeID != testNode || id.Role != role {
				t.Fatalf("identity %+v, %v", id, err)
			}
			if !slices.Equal(cert.DNSNames, ca.NodeDNSNames(testNode, role)) {
				t.Errorf("DNS names %v, want %v", cert.DNSNames, ca.NodeDNSNames(testNode, role))
			}
			if cert.KeyUsage != x509.KeyUsageDigitalSignature|x509.KeyUsageKeyEncipherment {
				t.Errorf("key usage %v", cert.KeyUsage)
			}
			if !slices.Equal(cert.ExtKeyUsage, []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth}) {
				t.Errorf("extended key usage %v", cert.ExtKeyUsage)
			}
			if cert.IsCA || !cert.BasicConstraintsValid {
				t.Errorf("basic constraints: CA %v, valid %v; want CA:FALSE", cert.IsCA, cert.BasicConstraintsValid)
			}
			if !key.PublicKey.Equal(cert.PublicKey) {
				t.Error("the certificate's key is not the CSR's")
			}
			wantNB := before.Add(-ca.CertBackdate).Truncate(time.Second)
			if d := cert.NotBefore.Sub(wantNB); d < 0 || d > 5*time.Second {
				t.Errorf("not before %s, want about %s", cert.NotBefore, wantNB)
			}
			if d := cert.NotAfter.Sub(cert.NotBefore); d != ca.DefaultCertExpiry+ca.CertBackdate {
				t.Errorf("lifetime %s, want cert-expiry %s plus the backdate", d, ca.DefaultCertExpiry)
			}
			if err := ca.VerifyChain(certs, env.Issuer.Chain(), time.Now()); err != nil {
				t.Error(err)
			}
		})
	}
	if got := env.Audit.actions(); !slices.Equal(got, []audit.Action{audit.ActionIssued, audit.ActionIssued, audit.ActionIssued, audit.ActionIssued}) {
		t.Errorf("audit actions %v, want the intermediate, the TLS certificate and two issuances", got)
	}
	ev := env.Audit.all()[2]
	if ev.NodeID != testNode || ev.Role != string(ca.RoleWorker) || ev.Serial == "" || ev.Details["cluster_id"] != testCluster ||
		ev.Actor != testManagerNode || ev.Details["via"] != "external-ca" {
		t.Errorf("audit event %+v", ev)
	}
}

// TestCrossSign cross-signs a new root's CSR as swarm asks: the
// certificate has the CSR's subject byte for byte, its key, CA:TRUE, and
// chains to chancery's root.
func TestCrossSign(t *testing.T) {
	env := startEnv(t, envOptions{})
	newRoot, newKey := newIssuer(t, "swarm-ca")
	// As swarm makes it: the root's raw subject, no extensions.
	csr := csrPEMRaw(t, newKey, newRoot.Chain()[0].RawSubject)
	a := post(t, env.client(t, env.Manager), env.URL+PathSign, crossSignRequestJSON(t, csr))
	certs := a.certificates(t)
	cross := certs[0]
	root := newRoot.Chain()[0]
	if !bytes.Equal(cross.RawSubject, root.RawSubject) {
		t.Errorf("subject %x, want the new root's %x", cross.RawSubject, root.RawSubject)
	}
	if !bytes.Equal(cross.RawSubjectPublicKeyInfo, root.RawSubjectPublicKeyInfo) {
		t.Error("public key differs from the new root's")
	}
	if !cross.IsCA || cross.MaxPathLen != -1 || cross.KeyUsage != x509.KeyUsageCertSign|x509.KeyUsageCRLSign {
		t.Errorf("CA %v, path length %d, key usage %v", cross.IsCA, cross.MaxPathLen, cross.KeyUsage)
	}
	if !bytes.Equal(cross.SubjectKeyId, root.SubjectKeyId) {
		t.Errorf("subject key id %x, want the new root's %x", cross.SubjectKeyId, root.SubjectKeyId)
	}
	if err := ca.VerifyChain(certs, env.Issuer.Chain(), time.Now()); err != nil {
		t.Error(err)
	}
	// A leaf of the new root verifies through the cross-signed
	// certificate to chancery's root.
	leaf := nodeCert(t, newRoot, testCluster, testNode, ca.RoleWorker).Leaf
	if err := ca.VerifyChain(slices.Concat([]*x509.Certificate{leaf}, certs), env.Issuer.Chain(), time.Now()); err != nil {
		t.Errorf("a leaf of the new root does not chain through the cross-signed certificate: %v", err)
	}
	last := env.Audit.all()[len(env.Audit.all())-1]
	if last.Action != audit.ActionIssued || last.Details["profile"] != "CA" || last.Details["subject"] != "CN=swarm-ca" {
		t.Errorf("audit event %+v", last)
	}
}

// TestAuthSign issues through /authsign with an HMAC auth key, as CFSSL's
// clients send it, with a timestamp within the window.
func TestAuthSign(t *testing.T) {
	env := startEnv(t, envOptions{})
	c := env.client(t)
	for _, ts := range []time.Time{time.Now(), time.Now().Add(-4 * time.Minute)} {
		req := nodeRequestJSON(t, csrPEM(t, newKey(t), pkix.Name{}), otherCluster, testNode, ca.RoleWorker)
		a := post(t, c, env.URL+PathAuthSign, authBody(t, testAuthKeyHex, req, ts))
		cert := a.certificates(t)[0]
		if cert.Subject.Organization[0] != otherCluster {
			t.Errorf("O %v", cert.Subject.Organization)
		}
	}
	if n := env.Server.replay.len(); n != 2 {
		t.Errorf("replay cache holds %d tokens, want 2", n)
	}
}

// TestInfo answers CFSSL's info request with the signing certificate.
func TestInfo(t *testing.T) {
	env := startEnv(t, envOptions{})
	c := env.client(t)
	tests := []struct {
		body   string
		usages []string
		expiry string
	}{
		{``, nodeUsages, "2160h0m0s"},
		{`{}`, nodeUsages, "2160h0m0s"},
		{`{"label":"","profile":""}`, nodeUsages, "2160h0m0s"},
		{`{"profile":"CA"}`, caUsages, ca.RootCAExpiry.String()},
	}
	for _, tt := range tests {
		a := post(t, c, env.URL+PathInfo, []byte(tt.body))
		if a.Status != http.StatusOK || !a.Body.Success {
			t.Fatalf("info %s: %d %s", tt.body, a.Status, a.Raw)
		}
		var res cfsslwire.InfoResult
		if err := json.Unmarshal(a.Body.Result, &res); err != nil {
			t.Fatal(err)
		}
		certs, err := ca.ParseCertificatesPEM([]byte(res.Certificate))
		if err != nil || !ca.IsExternalCA(certs[0]) || certs[0].CheckSignatureFrom(env.Issuer.Chain()[0]) != nil {
			t.Errorf("info %s: certificate is not the signing CA's (%v)", tt.body, err)
		}
		if !slices.Equal(res.Usages, tt.usages) || res.Expiry != tt.expiry {
			t.Errorf("info %s: usages %v expiry %s, want %v %s", tt.body, res.Usages, res.Expiry, tt.usages, tt.expiry)
		}
	}
}
