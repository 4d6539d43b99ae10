package audit

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/chancery-pki/chancery/signer"
)

// testCA is a root and its local issuer.
func testCA(t *testing.T, now time.Time) (*signer.LocalIssuer, *x509.Certificate) {
	t.Helper()
	iss, root, _ := testCAKey(t, now)
	return iss, root
}

// testCAKey is a root, its local issuer and its key.
func testCAKey(t *testing.T, now time.Time) (*signer.LocalIssuer, *x509.Certificate, *ecdsa.PrivateKey) {
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
	return iss, root, key
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
	roots := []Root{{Cert: root}}
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

// crossSign returns next's root certificate signed by the old root, as a
// root rotation appends it to what the new key signs.
func crossSign(t *testing.T, oldKey *ecdsa.PrivateKey, oldRoot, next *x509.Certificate) *x509.Certificate {
	t.Helper()
	tmpl := *next
	tmpl.NotBefore, tmpl.NotAfter = oldRoot.NotBefore, oldRoot.NotAfter
	der, err := x509.CreateCertificate(rand.Reader, &tmpl, oldRoot, next.PublicKey, oldKey)
	if err != nil {
		t.Fatal(err)
	}
	cross, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return cross
}

// TestVerifyAcrossRoots checks each checkpoint against the root that was
// current when it was written, and that the report names that root.
func TestVerifyAcrossRoots(t *testing.T) {
	base := time.Now().Truncate(time.Second)
	switchAt := base.Add(2 * time.Hour)
	oldIss, oldRoot, oldKey := testCAKey(t, base)
	newIss, newRoot, _ := testCAKey(t, base)
	cross := crossSign(t, oldKey, oldRoot, newRoot)
	oldFP, newFP := fingerprint(oldRoot), fingerprint(newRoot)
	history := []Root{{Cert: oldRoot, ActiveFrom: base, ActiveUntil: switchAt}, {Cert: newRoot, ActiveFrom: switchAt}}

	type cp struct {
		iss      signer.Signer
		appendix []*x509.Certificate
		at       time.Time
	}
	var (
		beforeByOld     = cp{oldIss, nil, base.Add(time.Hour)}
		rotationByNew   = cp{newIss, []*x509.Certificate{cross}, base.Add(90 * time.Minute)}
		afterByNew      = cp{newIss, nil, switchAt.Add(time.Hour)}
		beforeByNew     = cp{newIss, nil, base.Add(time.Hour)}
		afterByOld      = cp{oldIss, nil, switchAt.Add(time.Hour)}
		beforeAnyRoot   = cp{oldIss, nil, base.Add(-30 * time.Minute)}
		atTheSwitch     = cp{newIss, nil, switchAt}
		justBeforeByNew = cp{newIss, nil, switchAt.Add(-time.Second)}
	)
	type run struct {
		fp                 string
		first, last, count int
	}
	tests := []struct {
		name  string
		roots []Root
		cps   []cp
		want  []run  // when the log verifies
		bad   int    // else the checkpoint, 1-based, that fails
		why   string // and what its problem says
	}{
		{name: "old, rotation, new", roots: history, cps: []cp{beforeByOld, rotationByNew, afterByNew},
			want: []run{{oldFP, 2, 4, 2}, {newFP, 6, 6, 1}}},
		{name: "at the switch, the new root", roots: history, cps: []cp{beforeByOld, atTheSwitch}, want: []run{{oldFP, 2, 2, 1}, {newFP, 4, 4, 1}}},
		{name: "runs of the same root", roots: history, cps: []cp{beforeByOld, afterByNew, afterByNew},
			want: []run{{oldFP, 2, 2, 1}, {newFP, 4, 6, 2}}},
		{name: "before the first root, the earliest", roots: history, cps: []cp{beforeAnyRoot, beforeByOld}, want: []run{{oldFP, 2, 4, 2}}},
		{name: "one root for all time", roots: []Root{{Cert: oldRoot}}, cps: []cp{beforeByOld, afterByOld}, want: []run{{oldFP, 2, 4, 2}}},
		{name: "new key before the switch without the appendix", roots: history, cps: []cp{beforeByOld, beforeByNew, afterByNew},
			bad: 2, why: "not issued by the cluster's CA (root " + oldFP},
		{name: "new key just before the switch", roots: history, cps: []cp{justBeforeByNew}, bad: 1, why: oldFP},
		{name: "old key after the switch", roots: history, cps: []cp{beforeByOld, afterByOld}, bad: 2, why: "not issued by the cluster's CA (root " + newFP},
		{name: "a gap in the history", roots: []Root{{Cert: oldRoot, ActiveFrom: base, ActiveUntil: base.Add(time.Hour)}, {Cert: newRoot, ActiveFrom: switchAt}},
			cps: []cp{beforeByOld}, bad: 1, why: "no root was the cluster's root"},
		{name: "no roots", cps: []cp{beforeByOld}, bad: 1, why: "no root was given"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			head := Genesis
			var recs []Record
			seal := func(at time.Time, ev Event) {
				e := Seal(head, at, ev)
				recs = append(recs, Record{Key: e.Seq, Data: e.Marshal()})
				head = e.Head()
			}
			for _, c := range tt.cps {
				seal(c.at.Add(-time.Second), Event{Action: ActionIssued, Serial: "0a"})
				ev := checkpoint(t, c.iss, head, c.at)
				if c.appendix != nil {
					ev = CheckpointEvent("kgwuvt1oqhqjsht0qcsq67rvu", "file", head, append([]*x509.Certificate{mustCert(t, ev)}, c.appendix...))
				}
				seal(c.at, ev)
			}
			rep := Verify(recs, tt.roots)
			if tt.bad != 0 {
				if rep.Problem == nil || rep.Problem.Seq != uint64(2*tt.bad) || !strings.Contains(rep.Problem.Reason, tt.why) {
					t.Fatalf("problem %v, want entry %d: ...%s...\n%s", rep.Problem, 2*tt.bad, tt.why, rep)
				}
				return
			}
			if !rep.OK() {
				t.Fatalf("the log does not verify:\n%s", rep)
			}
			var got []run
			for _, r := range rep.Signers {
				got = append(got, run{r.RootFingerprint, int(r.First), int(r.Last), r.Count})
				if fingerprint(r.Root) != r.RootFingerprint {
					t.Errorf("run %+v: fingerprint is not its root's", r)
				}
			}
			if fmt.Sprint(got) != fmt.Sprint(tt.want) {
				t.Errorf("signers %v, want %v", got, tt.want)
			}
			out := rep.String()
			for _, r := range tt.want {
				if !strings.Contains(out, "signed under root "+r.fp) {
					t.Errorf("report does not name root %s:\n%s", r.fp, out)
				}
			}
		})
	}
}

// mustCert returns the checkpoint certificate of a checkpoint event.
func mustCert(t *testing.T, ev Event) *x509.Certificate {
	t.Helper()
	block, _ := pem.Decode([]byte(ev.Details[DetailCertificate]))
	if block == nil {
		t.Fatal("checkpoint event without a certificate")
	}
	c, err := x509.ParseCertificate(block.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func TestRootActive(t *testing.T) {
	t0 := time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC)
	tests := []struct {
		name string
		root Root
		at   time.Time
		want bool
	}{
		{"open both ways", Root{}, t0, true},
		{"at its start", Root{ActiveFrom: t0}, t0, true},
		{"before its start", Root{ActiveFrom: t0}, t0.Add(-time.Nanosecond), false},
		{"at its end", Root{ActiveFrom: t0, ActiveUntil: t0.Add(time.Hour)}, t0.Add(time.Hour), false},
		{"just before its end", Root{ActiveUntil: t0.Add(time.Hour)}, t0.Add(time.Hour - time.Nanosecond), true},
	}
	for _, tt := range tests {
		if got := tt.root.Active(tt.at); got != tt.want {
			t.Errorf("%s: Active = %v, want %v", tt.name, got, tt.want)
		}
	}
}
