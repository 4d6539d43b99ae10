package audit

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"strings"
	"testing"
	"time"

	"github.com/chancery-pki/chancery/signer"
)

// testCA is a root and its local issuer.
func testCA(t *testing.T, now time.Time) (*signer.LocalIssuer, *x509.Certificate) {
	t.Helper()
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	root, err := signer.SelfSign(rand.Reader, key, &x509.Certificate{
		Subject: pkix.Name{CommonName: "swarm-ca"}, NotBefore: now.Add(-time.Hour), NotAfter: now.Add(24 * 365 * time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
	})
	if err != nil {
		t.Fatal(err)
	}
	iss, err := signer.NewLocalIssuer(signer.LocalConfig{Key: key, Chain: []*x509.Certificate{root}})
	if err != nil {
		t.Fatal(err)
	}
	return iss, root
}

// checkpoint seals a checkpoint entry over head, signed by iss.
func checkpoint(t *testing.T, iss signer.Signer, head Head, now time.Time) Event {
	t.Helper()
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	cert, err := iss.Sign(context.Background(), CheckpointRequest("ohgi9ctpbev24dl6daf7insou", head, key.Public(), nil, iss.Chain()[0], now))
	if err != nil {
		t.Fatal(err)
	}
	return CheckpointEvent("kgwuvt1oqhqjsht0qcsq67rvu", "file", head, []*x509.Certificate{cert})
}

// buildLog makes n entries with a checkpoint after entry 5.
func buildLog(t *testing.T, iss signer.Signer, n int) []Record {
	t.Helper()
	now := time.Now()
	head := Genesis
	var recs []Record
	for i := 1; i <= n; i++ {
		ev := Event{Action: ActionIssued, Actor: "kgwuvt1oqhqjsht0qcsq67rvu", NodeID: "node", Serial: strings.Repeat("ab", 10)}
		if i == 6 {
			ev = checkpoint(t, iss, head, now)
		}
		e := Seal(head, now.Add(time.Duration(i)*time.Second), ev)
		recs = append(recs, Record{Key: e.Seq, Data: e.Marshal()})
		head = e.Head()
	}
	return recs
}

func TestVerify(t *testing.T) {
	iss, root := testCA(t, time.Now())
	otherIss, _ := testCA(t, time.Now())
	roots := []*x509.Certificate{root}
	edit := func(recs []Record, i int, f func(*Entry)) {
		e, _ := Unmarshal(recs[i].Data)
		f(&e)
		recs[i].Data = e.Marshal()
	}
	tests := []struct {
		name      string
		tamper    func(recs []Record) []Record
		wantSeq   uint64
		wantWhy   string
		wantTorn  bool
		wantCheck int
		// wantVerified is how many entries verify before the problem;
		// zero means wantSeq-1.
		wantVerified int
	}{
		{name: "Intact", tamper: func(r []Record) []Record { return r }, wantCheck: 1},
		{name: "EditedField", tamper: func(r []Record) []Record {
			edit(r, 3, func(e *Entry) { e.Role = "swarm-manager" })
			return r
		}, wantSeq: 4, wantWhy: "edited"},
		{name: "EditedAndRehashed", tamper: func(r []Record) []Record {
			edit(r, 3, func(e *Entry) { e.Role = "swarm-manager"; e.Hash = e.ComputeHash() })
			return r
		}, wantSeq: 5, wantWhy: "link to the previous entry is broken"},
		{name: "Deleted", tamper: func(r []Record) []Record { return append(r[:2:2], r[3:]...) }, wantSeq: 4, wantWhy: "missing or out of order", wantVerified: 2},
		{name: "Reordered", tamper: func(r []Record) []Record {
			r[2].Data, r[3].Data = r[3].Data, r[2].Data
			return r
		}, wantSeq: 3, wantWhy: "moved"},
		{name: "TornLast", tamper: func(r []Record) []Record {
			r[len(r)-1].Data = r[len(r)-1].Data[:20]
			return r
		}, wantTorn: true, wantCheck: 1},
		{name: "GarbageInMiddle", tamper: func(r []Record) []Record {
			r[1].Data = []byte("{not json")
			return r
		}, wantSeq: 2, wantWhy: "unreadable"},
		{name: "ForgedCheckpoint", tamper: func(r []Record) []Record {
			// A checkpoint signed by another CA, rehashed and relinked
			// from there on: the chain holds, the signature does not.
			prev, _ := Unmarshal(r[4].Data)
			forged := Seal(prev.Head(), time.Now(), checkpoint(t, otherIss, prev.Head(), time.Now()))
			r[5].Data = forged.Marshal()
			head := forged.Head()
			for i := 6; i < len(r); i++ {
				e, _ := Unmarshal(r[i].Data)
				e.Prev = head.Hash
				e.Hash = e.ComputeHash()
				r[i].Data = e.Marshal()
				head = e.Head()
			}
			return r
		}, wantSeq: 6, wantWhy: "not issued by the cluster's CA"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			recs := tt.tamper(buildLog(t, iss, 10))
			rep := Verify(recs, roots)
			if tt.wantTorn != rep.Torn {
				t.Errorf("torn = %v, want %v", rep.Torn, tt.wantTorn)
			}
			if tt.wantSeq == 0 {
				if rep.Problem != nil {
					t.Fatalf("problem %s, want none", rep.Problem)
				}
				if rep.Checkpoints != tt.wantCheck {
					t.Errorf("checkpoints = %d, want %d", rep.Checkpoints, tt.wantCheck)
				}
				if tt.wantTorn && rep.Verified != len(recs)-1 {
					t.Errorf("verified %d entries before the torn one, want %d", rep.Verified, len(recs)-1)
				}
				return
			}
			if rep.Problem == nil {
				t.Fatalf("tampering not detected: %s", rep)
			}
			if rep.Problem.Seq != tt.wantSeq || !strings.Contains(rep.Problem.Reason, tt.wantWhy) {
				t.Errorf("problem %s, want entry %d: ...%s...", rep.Problem, tt.wantSeq, tt.wantWhy)
			}
			wantVerified := tt.wantVerified
			if wantVerified == 0 {
				wantVerified = int(tt.wantSeq) - 1
			}
			if rep.Verified != wantVerified {
				t.Errorf("verified %d entries before the problem, want %d", rep.Verified, wantVerified)
			}
			if !strings.Contains(rep.String(), "INVALID") {
				t.Errorf("report %q does not say INVALID", rep.String())
			}
		})
	}
}

func TestCheckpointNameHoldsTheHead(t *testing.T) {
	h := Head{Seq: 42, Hash: strings.Repeat("0123456789abcdef", 4)}
	name := CheckpointName(h)
	labels := strings.Split(name, ".")
	if labels[0]+labels[1] != h.Hash || labels[2] != "42" {
		t.Errorf("CheckpointName = %q", name)
	}
	for _, l := range labels {
		if len(l) > 63 {
			t.Errorf("label %q is longer than DNS allows", l)
		}
	}
}
