package swarmkit

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"io"
	"log/slog"
	"net"
	"slices"
	"testing"
	"time"

	"github.com/moby/swarmkit/v2/api"
	swarmca "github.com/moby/swarmkit/v2/ca"

	chca "github.com/chancery-pki/chancery/ca"
	"github.com/chancery-pki/chancery/extca"
	"github.com/chancery-pki/chancery/rotation"
	"github.com/chancery-pki/chancery/signer"
)

const (
	clusterID = "7z3w4lnz8n1b9qj5xrkw2e0cd"
	managerID = "ax2cmh63ik3ypqeo3xntvjp8t"
	nodeID    = "kgwuvt1oqhqjsht0qcsq67rvu"
)

// swarmEnv is a swarm that starts, as every swarm does, with its own
// internal root, and chancery's endpoint whose root the swarm is moving
// to: the endpoint trusts the swarm's internal root for client
// certificates, and swarm trusts the endpoint through chancery's root.
type swarmEnv struct {
	// SwarmRoot is the swarm's internal root, made by swarmkit.
	SwarmRoot swarmca.RootCA
	// Manager is a manager's node certificate from SwarmRoot, made by
	// swarmkit: what a manager presents to the external CA.
	Manager *tls.Certificate
	// Chancery is the root chancery signs with.
	Chancery *signer.LocalIssuer
	// ChanceryPEM is its certificate, PEM.
	ChanceryPEM []byte
	// URL is the endpoint's sign URL, as given to --external-ca.
	URL string
	// External is swarmkit's external CA client, as a manager makes it.
	External *swarmca.ExternalCA
}

func startSwarmEnv(t *testing.T) *swarmEnv {
	t.Helper()
	swarmRoot, err := swarmca.CreateRootCA(swarmca.DefaultRootCN)
	if err != nil {
		t.Fatal(err)
	}
	paths := swarmca.NewConfigPaths(t.TempDir())
	manager, _, err := swarmRoot.IssueAndSaveNewCertificates(swarmca.NewKeyReadWriter(paths.Node, nil, nil), managerID, swarmca.ManagerRole, clusterID)
	if err != nil {
		t.Fatal(err)
	}

	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	root, err := signer.SelfSign(nil, key, chca.NewRootTemplate("chancery-ca", time.Now()))
	if err != nil {
		t.Fatal(err)
	}
	iss, err := signer.NewLocalIssuer(signer.LocalConfig{Key: key, Chain: []*x509.Certificate{root}})
	if err != nil {
		t.Fatal(err)
	}
	// Swarm's root rotation asks the external CA to cross-sign: granted
	// explicitly, as DefaultPolicy does not.
	policy, err := extca.ParsePolicy([]byte("allow cert OU=swarm-manager clusters=own roles=manager,worker cross-sign\n"), "rotation", "")
	if err != nil {
		t.Fatal(err)
	}
	clientCAs := x509.NewCertPool()
	if !clientCAs.AppendCertsFromPEM(swarmRoot.Certs) {
		t.Fatal("the swarm root does not parse")
	}
	srv, err := extca.New(context.Background(), extca.Config{
		Signer: iss, Policy: policy, ClientCAs: clientCAs,
		IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)},
		Logger:      slog.New(slog.NewTextHandler(io.Discard, nil)),
	})
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ctx, ln) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Error(err)
		}
	})

	rootPEM := chca.EncodeCertificatesPEM(root)
	// As swarm's CA server configures its external CA: the manager's
	// certificate for TLS, the cluster's (here: chancery's) root as the
	// only trust.
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(rootPEM)
	url := "https://" + ln.Addr().String() + extca.PathSign
	ext := swarmca.NewExternalCA(nil, swarmca.NewExternalCATLSConfig([]tls.Certificate{*manager}, pool), url)
	return &swarmEnv{SwarmRoot: swarmRoot, Manager: manager, Chancery: iss, ChanceryPEM: rootPEM, URL: url, External: ext}
}

// TestSwarmKitNodeCertificates has swarmkit's ExternalCA.Sign get node
// certificates, with the request swarm's CA server makes (PrepareCSR), and
// checks them with swarm's own validation and TLS configuration. They
// carry what swarm's internal CA would issue for the same CSR.
func TestSwarmKitNodeCertificates(t *testing.T) {
	env := startSwarmEnv(t)
	chanceryRoot, err := swarmca.NewRootCA(env.ChanceryPEM, nil, nil, swarmca.DefaultNodeCertExpiration, nil)
	if err != nil {
		t.Fatalf("swarm refuses chancery's root: %v", err)
	}
	certs := map[string]tls.Certificate{}
	for _, role := range []string{swarmca.WorkerRole, swarmca.ManagerRole} {
		t.Run(role, func(t *testing.T) {
			csr, key, err := swarmca.GenerateNewCSR()
			if err != nil {
				t.Fatal(err)
			}
			certPEM, err := env.External.Sign(context.Background(), swarmca.PrepareCSR(csr, nodeID, role, clusterID))
			if err != nil {
				t.Fatalf("swarm's ExternalCA.Sign: %v", err)
			}
			parsed, _, err := swarmca.ValidateCertChain(chanceryRoot.Pool, certPEM, false)
			if err != nil {
				t.Fatalf("swarm's ValidateCertChain: %v", err)
			}
			got := parsed[0]
			internalPEM, err := env.SwarmRoot.ParseValidateAndSignCSR(csr, nodeID, role, clusterID)
			if err != nil {
				t.Fatal(err)
			}
			internal, err := chca.ParseCertificatesPEM(internalPEM)
			if err != nil {
				t.Fatal(err)
			}
			compareNodeCerts(t, got, internal[0])
			pair, err := tls.X509KeyPair(certPEM, key)
			if err != nil {
				t.Fatal(err)
			}
			certs[role] = pair
		})
	}
	if len(certs) != 2 {
		t.FailNow()
	}
	// A worker reaches a manager as swarm's nodes do, with swarm's TLS
	// configurations: mutual TLS, server name swarm-ca, trust in the root.
	serverTLS, err := swarmca.NewServerTLSConfig([]tls.Certificate{certs[swarmca.ManagerRole]}, chanceryRoot.Pool)
	if err != nil {
		t.Fatal(err)
	}
	clientTLS, err := swarmca.NewClientTLSConfig([]tls.Certificate{certs[swarmca.WorkerRole]}, chanceryRoot.Pool, swarmca.CARole)
	if err != nil {
		t.Fatal(err)
	}
	handshake(t, serverTLS, clientTLS)
}

// compareNodeCerts checks that chancery's certificate has the fields of
// swarm's internal one for the same CSR; validity and serial differ by
// nature.
func compareNodeCerts(t *testing.T, got, want *x509.Certificate) {
	t.Helper()
	if !bytes.Equal(got.RawSubject, want.RawSubject) {
		t.Errorf("subject %s, swarm's %s", got.Subject, want.Subject)
	}
	if !slices.Equal(got.DNSNames, want.DNSNames) {
		t.Errorf("DNS names %v, swarm's %v", got.DNSNames, want.DNSNames)
	}
	if got.KeyUsage != want.KeyUsage {
		t.Errorf("key usage %v, swarm's %v", got.KeyUsage, want.KeyUsage)
	}
	if !slices.Equal(got.ExtKeyUsage, want.ExtKeyUsage) {
		t.Errorf("extended key usage %v, swarm's %v", got.ExtKeyUsage, want.ExtKeyUsage)
	}
	if got.IsCA != want.IsCA || got.BasicConstraintsValid != want.BasicConstraintsValid {
		t.Errorf("basic constraints CA %v valid %v, swarm's CA %v valid %v", got.IsCA, got.BasicConstraintsValid, want.IsCA, want.BasicConstraintsValid)
	}
	if !bytes.Equal(got.RawSubjectPublicKeyInfo, want.RawSubjectPublicKeyInfo) {
		t.Error("public key differs from the CSR's")
	}
	// Swarm's CA (CFSSL's signer) gives every certificate a subject key ID.
	if len(want.SubjectKeyId) == 0 || !bytes.Equal(got.SubjectKeyId, want.SubjectKeyId) {
		t.Errorf("subject key ID %x, swarm's %x", got.SubjectKeyId, want.SubjectKeyId)
	}
}

func handshake(t *testing.T, server, client *tls.Config) {
	t.Helper()
	ln, err := tls.Listen("tcp", "127.0.0.1:0", server)
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	errc := make(chan error, 1)
	go func() {
		c, err := ln.Accept()
		if err == nil {
			err = c.(*tls.Conn).Handshake()
			c.Close()
		}
		errc <- err
	}()
	c, err := tls.Dial("tcp", ln.Addr().String(), client)
	if err != nil {
		t.Fatalf("a worker's TLS connection to a manager, both with certificates from chancery: %v", err)
	}
	c.Close()
	if err := <-errc; err != nil {
		t.Fatalf("the manager's side of the handshake: %v", err)
	}
}

// TestSwarmKitCrossSign has swarmkit's ExternalCA.CrossSignRootCA, which
// swarm calls to rotate from an external root (chancery's) to a new
// internal one, get the cross-signed certificate, and swarm's root
// rotation accept it: RootCAFromAPI builds the signing CA of the rotation
// from it, and node certificates issued during the rotation verify against
// both the old root (through the cross-signed certificate) and the new.
func TestSwarmKitCrossSign(t *testing.T) {
	env := startSwarmEnv(t)
	newRoot, err := swarmca.CreateRootCA(swarmca.DefaultRootCN)
	if err != nil {
		t.Fatal(err)
	}
	cross, err := env.External.CrossSignRootCA(context.Background(), newRoot)
	if err != nil {
		t.Fatalf("swarm's CrossSignRootCA: %v", err)
	}
	crossCerts, err := chca.ParseCertificatesPEM(cross)
	if err != nil {
		t.Fatal(err)
	}
	newCerts, err := chca.ParseCertificatesPEM(newRoot.Certs)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(crossCerts[0].RawSubject, newCerts[0].RawSubject) {
		t.Errorf("cross-signed subject %x, want the new root's %x byte for byte", crossCerts[0].RawSubject, newCerts[0].RawSubject)
	}
	newSigner, err := newRoot.Signer()
	if err != nil {
		t.Fatal(err)
	}
	rotating, err := swarmca.RootCAFromAPI(&api.RootCA{
		CACert: env.ChanceryPEM,
		RootRotation: &api.RootRotation{
			CACert:            newRoot.Certs,
			CAKey:             newSigner.Key,
			CrossSignedCACert: swarmca.NormalizePEMs(cross),
		},
	}, swarmca.DefaultNodeCertExpiration)
	if err != nil {
		t.Fatalf("swarm refuses the cross-signed certificate for its root rotation: %v", err)
	}
	csr, _, err := swarmca.GenerateNewCSR()
	if err != nil {
		t.Fatal(err)
	}
	leaf, err := rotating.ParseValidateAndSignCSR(csr, nodeID, swarmca.WorkerRole, clusterID)
	if err != nil {
		t.Fatal(err)
	}
	// Nodes that trust only the old root validate the leaf through the
	// cross-signed certificate appended to it.
	if _, _, err := swarmca.ValidateCertChain(rotating.Pool, leaf, false); err != nil {
		t.Errorf("a node certificate of the rotation against chancery's root: %v", err)
	}
	newPool := x509.NewCertPool()
	newPool.AppendCertsFromPEM(newRoot.Certs)
	leafOnly, err := chca.ParseCertificatesPEM(leaf)
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := swarmca.ValidateCertChain(newPool, chca.EncodeCertificatesPEM(leafOnly[0]), false); err != nil {
		t.Errorf("a node certificate of the rotation against the new root: %v", err)
	}
}

// TestSwarmKitRefusedForOtherCluster shows a manager refused for another
// cluster: swarm sees a non-200 answer, which it retries later.
func TestSwarmKitRefusedForOtherCluster(t *testing.T) {
	env := startSwarmEnv(t)
	csr, _, err := swarmca.GenerateNewCSR()
	if err != nil {
		t.Fatal(err)
	}
	_, err = env.External.Sign(context.Background(), swarmca.PrepareCSR(csr, nodeID, swarmca.WorkerRole, "0a1b2c3d4e5f6g7h8i9j0k1l2"))
	if err == nil {
		t.Fatal("a manager got a certificate for another cluster")
	}
	if !bytes.Contains([]byte(err.Error()), []byte("refused by rule rotation:1")) {
		t.Errorf("error %v, want the policy's refusal", err)
	}
}

// csrOnlyCA is a CA that signs only CSRs, as an external CFSSL CA does, so
// that rotation.CrossSign takes its CSR or bridge path.
type csrOnlyCA struct{ *signer.LocalIssuer }

func (csrOnlyCA) Capabilities() signer.Capabilities { return signer.Capabilities{NeedsCSR: true} }

// keyOnlyRoot is a new root whose backend cannot make a CSR.
type keyOnlyRoot struct{ *signer.LocalIssuer }

func (keyOnlyRoot) Capabilities() signer.Capabilities { return signer.Capabilities{NeedsCSR: true} }

// TestSwarmKitAcceptsRotationAppendix gives swarm's own root rotation what
// chancery's rotation.CrossSign returns, on each of its paths: swarm takes
// it as the cross-signed CA certificate of a rotation, and a node
// certificate it issues during the rotation validates, with swarm's code,
// against the old root alone.
func TestSwarmKitAcceptsRotationAppendix(t *testing.T) {
	now := time.Now()
	newLocal := func(t *testing.T) (*signer.LocalIssuer, *ecdsa.PrivateKey) {
		key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		if err != nil {
			t.Fatal(err)
		}
		root, err := signer.SelfSign(nil, key, chca.NewRootTemplate(swarmca.DefaultRootCN, now))
		if err != nil {
			t.Fatal(err)
		}
		iss, err := signer.NewLocalIssuer(signer.LocalConfig{Key: key, Chain: []*x509.Certificate{root}})
		if err != nil {
			t.Fatal(err)
		}
		return iss, key
	}
	for _, tc := range []struct {
		name      string
		path      rotation.Path
		old, next func(*signer.LocalIssuer) signer.Signer
	}{
		{"PublicKey", rotation.PathPublicKey, func(l *signer.LocalIssuer) signer.Signer { return l }, func(l *signer.LocalIssuer) signer.Signer { return l }},
		{"CSR", rotation.PathCSR, func(l *signer.LocalIssuer) signer.Signer { return csrOnlyCA{l} }, func(l *signer.LocalIssuer) signer.Signer { return l }},
		{"Bridge", rotation.PathBridge, func(l *signer.LocalIssuer) signer.Signer { return csrOnlyCA{l} }, func(l *signer.LocalIssuer) signer.Signer { return keyOnlyRoot{l} }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			oldIss, _ := newLocal(t)
			nextIss, nextKey := newLocal(t)
			old, next := tc.old(oldIss), tc.next(nextIss)
			if p := rotation.ChoosePath(old, next); p != tc.path {
				t.Fatalf("path %v, want %v", p, tc.path)
			}
			appendix, err := rotation.CrossSign(context.Background(), old, next, rotation.Options{Now: now, AllowBridge: true})
			if err != nil {
				t.Fatal(err)
			}
			keyDER, err := x509.MarshalECPrivateKey(nextKey)
			if err != nil {
				t.Fatal(err)
			}
			oldPEM := chca.EncodeCertificatesPEM(oldIss.Chain()...)
			rotating, err := swarmca.RootCAFromAPI(&api.RootCA{
				CACert: oldPEM,
				RootRotation: &api.RootRotation{
					CACert:            chca.EncodeCertificatesPEM(nextIss.Chain()...),
					CAKey:             pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: keyDER}),
					CrossSignedCACert: chca.EncodeCertificatesPEM(appendix...),
				},
			}, swarmca.DefaultNodeCertExpiration)
			if err != nil {
				t.Fatalf("swarm refuses the appendix for its root rotation: %v", err)
			}
			csr, _, err := swarmca.GenerateNewCSR()
			if err != nil {
				t.Fatal(err)
			}
			leaf, err := rotating.ParseValidateAndSignCSR(csr, nodeID, swarmca.WorkerRole, clusterID)
			if err != nil {
				t.Fatal(err)
			}
			oldRoot, err := swarmca.NewRootCA(oldPEM, nil, nil, swarmca.DefaultNodeCertExpiration, nil)
			if err != nil {
				t.Fatal(err)
			}
			if _, _, err := swarmca.ValidateCertChain(oldRoot.Pool, leaf, false); err != nil {
				t.Errorf("a node certificate of the rotation against the old root alone, with swarm's validation: %v", err)
			}
		})
	}
}
