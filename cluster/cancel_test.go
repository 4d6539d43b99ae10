package cluster

import (
	"context"
	"crypto/x509"
	"encoding/json"
	"testing"

	"github.com/chancery-pki/chancery/audit"
	"github.com/chancery-pki/chancery/ca"
	"github.com/chancery-pki/chancery/signer"
)

// cancelAfterSign is the real Signer, with the caller giving up just after
// the signature: a fault a real client produces only by chance.
type cancelAfterSign struct {
	signer.Signer
	cancel context.CancelFunc
}

func (s cancelAfterSign) Sign(ctx context.Context, req *signer.Request) (*x509.Certificate, error) {
	cert, err := s.Signer.Sign(ctx, req)
	s.cancel()
	return cert, err
}

// TestSignedIsRecordedWhenCallerLeaves: a certificate signed for a caller
// that then goes away is still recorded, with its audit entry, so that
// every signature the CA made is accounted for.
func TestSignedIsRecordedWhenCallerLeaves(t *testing.T) {
	_, st, auth := newCluster(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	a := NewAuthority(st, holderOf(t, cancelAfterSign{Signer: auth.Signer(), cancel: cancel}), fixedNow)
	nodeID := newNodeID(t)
	_, csr := newCSR(t)
	issued, err := a.IssueNodeCertificate(ctx, IssueRequest{NodeID: nodeID, Role: ca.RoleWorker, CSR: csr})
	if err != nil {
		t.Fatalf("IssueNodeCertificate after the caller left: %v", err)
	}
	if ctx.Err() == nil {
		t.Fatal("the caller's context was not canceled: the test proves nothing")
	}
	bg := context.Background()
	rec, err := st.IssuedCertificate(bg, issued.Node.CertSerial)
	if err != nil {
		t.Fatalf("the signed certificate is not recorded: %v", err)
	}
	if rec.NodeID != nodeID {
		t.Errorf("record's node = %s, want %s", rec.NodeID, nodeID)
	}
	n, err := st.Node(bg, nodeID)
	if err != nil || n.CertSerial != issued.Node.CertSerial {
		t.Errorf("node record = %+v, %v; want serial %s", n, err, issued.Node.CertSerial)
	}
	recs, err := st.AuditRecords(bg, 1, 0)
	if err != nil {
		t.Fatal(err)
	}
	var found bool
	for _, r := range recs {
		var e audit.Entry
		if err := json.Unmarshal(r.Data, &e); err != nil {
			t.Fatal(err)
		}
		found = found || (e.Serial == issued.Node.CertSerial && e.Action == audit.ActionIssued)
	}
	if !found {
		t.Error("no audit entry for the signed certificate")
	}
}
