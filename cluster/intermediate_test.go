package cluster

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/chancery-pki/chancery/backends/cfssl"
	"github.com/chancery-pki/chancery/ca"
	"github.com/chancery-pki/chancery/certdir"
	"github.com/chancery-pki/chancery/internal/cfssldev"
)

// TestIntermediateKeptAndHandedOut makes a cluster on a real cfssl serve
// that signs with an intermediate: the cluster record keeps the
// intermediate (OpenSigner passes it to the backend with the root, where it
// passed the root alone), every node is handed it after its certificate,
// and the manager still opens its Signer once the external CA's cacert
// bundle carries only the TLS trust.
func TestIntermediateKeptAndHandedOut(t *testing.T) {
	srv := cfssldev.Start(t, cfssldev.Options{Intermediate: true})
	dataDir := filepath.Join(t.TempDir(), "data")
	spec := cfssl.ExternalCA{URL: srv.SignURL, CACertFile: srv.BundleFile}
	req := initRequest(dataDir)
	req.Now = nil // cfssl serve signs at the wall clock's time
	req.Backend = cfssl.Name
	req.BackendSettings = cfssl.NewSettings([]string{spec.String()}, "")
	mustInit(t, req)
	st := openStore(t, dataDir)
	c := clusterRecord(t, st)
	inter, err := ca.ParseCertificatesPEM(c.IntermediatesPEM)
	if err != nil || len(inter) != 1 || !inter[0].Equal(srv.Cert) {
		t.Fatalf("the record's intermediates are %d certificates (%v), want the signing CA", len(inter), err)
	}
	if roots, _ := Roots(c); len(roots) != 1 || !roots[0].Equal(srv.Root) {
		t.Fatal("the record's root is not the external CA's root")
	}
	_, chain, err := certdir.In(dataDir).LoadNode()
	if err != nil {
		t.Fatal(err)
	}
	if len(chain) != 2 || !chain[1].Equal(srv.Cert) {
		t.Fatalf("the first manager holds %d certificates, want its own and the intermediate", len(chain))
	}

	// The bundle keeps only the certificate that the TLS connection needs.
	bundle, err := ca.ParseCertificatesPEM(mustRead(t, srv.BundleFile))
	if err != nil {
		t.Fatal(err)
	}
	var tlsOnly []byte
	for _, b := range bundle {
		if !b.Equal(srv.Root) && !b.Equal(srv.Cert) {
			tlsOnly = append(tlsOnly, ca.EncodeCertificatesPEM(b)...)
		}
	}
	if err := os.WriteFile(srv.BundleFile, tlsOnly, 0o600); err != nil {
		t.Fatal(err)
	}
	sg, err := OpenSigner(context.Background(), dataDir, c, nil, nil)
	if err != nil {
		t.Fatalf("OpenSigner without the chain in the bundle: %v", err)
	}
	defer sg.(*cfssl.Signer).Close()
	auth := NewAuthority(st, holderOf(t, sg), nil)
	_, csr := newCSR(t)
	issued, err := auth.IssueNodeCertificate(context.Background(), IssueRequest{NodeID: newNodeID(t), Role: ca.RoleWorker, CSR: csr})
	if err != nil {
		t.Fatal(err)
	}
	if len(issued.Chain) != 2 || !issued.Chain[1].Equal(srv.Cert) {
		t.Errorf("a worker is handed %d certificates, want its own and the intermediate", len(issued.Chain))
	}
}

func mustRead(t *testing.T, p string) []byte {
	t.Helper()
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestRotationToAnIntermediateRefused: a rotation to an external CA that
// signs with an intermediate is refused before anything changes, since the
// appendix vouches for the key that signs leaves.
func TestRotationToAnIntermediateRefused(t *testing.T) {
	srv := cfssldev.Start(t, cfssldev.Options{Intermediate: true})
	dataDir, st, _ := newCluster(t)
	before := clusterRecord(t, st)
	spec := cfssl.ExternalCA{URL: srv.SignURL, CACertFile: srv.BundleFile}
	_, err := StartRotation(context.Background(), st, RotateRequest{DataDir: dataDir, Backend: cfssl.Name,
		Settings: cfssl.NewSettings([]string{spec.String()}, "")})
	if err == nil || !strings.Contains(err.Error(), "signs with an intermediate") {
		t.Fatalf("StartRotation to an intermediate: %v", err)
	}
	if after := clusterRecord(t, st); after.Rotation != nil || after.Version != before.Version {
		t.Errorf("the refused rotation changed the record: %+v", after.Rotation)
	}
}
