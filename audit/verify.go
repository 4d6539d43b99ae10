package audit

import (
	"crypto"
	"crypto/sha256"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/chancery-pki/chancery/signer"
)

// Record is an entry as stored: its key (the sequence number it was stored
// under) and its bytes.
type Record struct {
	Key  uint64
	Data []byte
}

// Problem names the first entry that is wrong, and why.
type Problem struct {
	Seq    uint64
	Reason string
}

func (p *Problem) String() string { return fmt.Sprintf("entry %d: %s", p.Seq, p.Reason) }

// Report is what Verify found.
type Report struct {
	// Entries is how many records were read; Verified how many verified,
	// from the first, before the first problem.
	Entries, Verified int
	// Head is the last verified entry's head.
	Head Head
	// Checkpoints counts verified checkpoints; CheckpointHead is the head
	// the last one binds.
	Checkpoints    int
	CheckpointHead Head
	// Signers says which root each verified checkpoint chains to, as runs
	// of consecutive checkpoints with the same root, in log order.
	Signers []CheckpointRun
	// Torn means the last record is unreadable, as after a crash in the
	// middle of an append; everything before it is reported as usual.
	Torn bool
	// Problem is the first entry that does not verify; nil if none.
	Problem *Problem
}

// CheckpointRun is a run of consecutive verified checkpoints whose
// certificates chain to the same root.
type CheckpointRun struct {
	// Root is the root CA certificate the checkpoints chain to, and
	// RootFingerprint its SHA-256 fingerprint ("sha256:" and lower case
	// hex of its DER).
	Root            *x509.Certificate
	RootFingerprint string
	// First and Last are the sequence numbers of the run's first and last
	// checkpoint entries; Count is how many checkpoints the run holds.
	First, Last uint64
	Count       int
}

// Root is a root CA certificate and when it was the cluster's root.
// Verify checks each checkpoint against the roots that were current when
// the checkpoint entry was written.
type Root struct {
	Cert *x509.Certificate
	// ActiveFrom is when the root became the cluster's root; zero means
	// from the start.
	ActiveFrom time.Time
	// ActiveUntil is when the next root replaced it; zero means it is
	// still the root.
	ActiveUntil time.Time
}

// Active reports whether r was the cluster's root at t: ActiveFrom <= t <
// ActiveUntil, with zero bounds open.
func (r Root) Active(t time.Time) bool {
	return !t.Before(r.ActiveFrom) && (r.ActiveUntil.IsZero() || t.Before(r.ActiveUntil))
}

// rootsAt returns the roots active at t. A time before every root's
// ActiveFrom gets the earliest root: no root came before it.
func rootsAt(roots []Root, t time.Time) []Root {
	var out []Root
	for _, r := range roots {
		if r.Cert != nil && r.Active(t) {
			out = append(out, r)
		}
	}
	if len(out) > 0 || len(roots) == 0 {
		return out
	}
	first := roots[0]
	for _, r := range roots[1:] {
		if r.ActiveFrom.Before(first.ActiveFrom) {
			first = r
		}
	}
	if first.Cert != nil && t.Before(first.ActiveFrom) {
		out = append(out, first)
	}
	return out
}

// fingerprint is the SHA-256 fingerprint of a certificate's DER, as
// "sha256:" and lower case hex.
func fingerprint(c *x509.Certificate) string {
	sum := sha256.Sum256(c.Raw)
	return "sha256:" + hex.EncodeToString(sum[:])
}

// OK reports whether the whole log verified (a torn last entry is not OK).
func (r Report) OK() bool { return r.Problem == nil && !r.Torn }

// String summarizes r for people.
func (r Report) String() string {
	var b strings.Builder
	switch {
	case r.Problem != nil:
		fmt.Fprintf(&b, "audit log INVALID at entry %d: %s\n", r.Problem.Seq, r.Problem.Reason)
		fmt.Fprintf(&b, "entries 1-%d verify\n", r.Verified)
	case r.Torn:
		fmt.Fprintf(&b, "audit log has a torn last entry (%d): entries 1-%d verify\n", r.Entries, r.Verified)
	default:
		fmt.Fprintf(&b, "audit log OK: %d entries verify\n", r.Verified)
	}
	fmt.Fprintf(&b, "head: %d %s\n", r.Head.Seq, r.Head.Hash)
	if r.Checkpoints > 0 {
		fmt.Fprintf(&b, "checkpoints: %d, the last signed by the CA over entry %d\n", r.Checkpoints, r.CheckpointHead.Seq)
		for _, run := range r.Signers {
			if run.Count == 1 {
				fmt.Fprintf(&b, "  checkpoint at entry %d: signed under root %s\n", run.First, run.RootFingerprint)
			} else {
				fmt.Fprintf(&b, "  checkpoints at entries %d-%d (%d): signed under root %s\n", run.First, run.Last, run.Count, run.RootFingerprint)
			}
		}
	} else {
		fmt.Fprintf(&b, "checkpoints: none yet\n")
	}
	return b.String()
}

// Verify checks records, in key order: each decodes, is stored under its
// sequence number, follows the previous entry without a gap, links to its
// hash, and hashes to its own Hash; each checkpoint must chain to a root
// that was current when the checkpoint entry was written (its Time), and
// Report.Signers says which. A checkpoint written before every root's
// ActiveFrom is checked against the earliest root, since no root came
// before it. A Root with zero times is always current, so
// []Root{{Cert: c}} checks every checkpoint against c. Verify stops at the
// first problem. An unreadable last record is reported as torn.
func Verify(records []Record, roots []Root) Report {
	rep := Report{Entries: len(records), Head: Genesis}
	hashes := map[uint64]string{}
	for i, rec := range records {
		e, err := Unmarshal(rec.Data)
		if err != nil {
			if i == len(records)-1 {
				rep.Torn = true
				return rep
			}
			rep.Problem = &Problem{Seq: rec.Key, Reason: "unreadable: " + err.Error()}
			return rep
		}
		want := rep.Head.Seq + 1
		switch {
		case e.Seq != rec.Key:
			rep.Problem = &Problem{Seq: rec.Key, Reason: fmt.Sprintf("stored under %d but numbered %d: entries were moved", rec.Key, e.Seq)}
		case e.Seq != want:
			rep.Problem = &Problem{Seq: e.Seq, Reason: fmt.Sprintf("expected entry %d here: entries %d-%d are missing or out of order", want, want, e.Seq-1)}
		case e.Prev != rep.Head.Hash:
			rep.Problem = &Problem{Seq: e.Seq, Reason: "its link to the previous entry is broken: an entry before it was changed, removed or reordered"}
		case e.ComputeHash() != e.Hash:
			rep.Problem = &Problem{Seq: e.Seq, Reason: "its content does not match its hash: it was edited"}
		case e.Action == ActionCheckpoint:
			if root, err := verifyCheckpoint(e, hashes, roots); err != nil {
				rep.Problem = &Problem{Seq: e.Seq, Reason: "checkpoint: " + err.Error()}
			} else {
				rep.Checkpoints++
				rep.CheckpointHead, _ = checkpointHead(e)
				rep.addSigner(e.Seq, root)
			}
		}
		if rep.Problem != nil {
			return rep
		}
		hashes[e.Seq] = e.Hash
		rep.Head = e.Head()
		rep.Verified++
	}
	return rep
}

// Checkpoint details keys.
const (
	DetailHeadSeq     = "head_seq"
	DetailHeadHash    = "head_hash"
	DetailCertificate = "certificate"
)

// CheckpointOU is the OU of checkpoint certificates; no node has it, so a
// checkpoint certificate is never a node identity.
const CheckpointOU = "chancery-audit"

// CheckpointName is the DNS name a checkpoint certificate carries for
// head: the hash in two labels, the sequence number, and a reserved
// domain.
func CheckpointName(h Head) string {
	return fmt.Sprintf("%s.%s.%d.audit.chancery.invalid", h.Hash[:32], h.Hash[32:], h.Seq)
}

// CheckpointLifetime is a checkpoint certificate's validity.
const CheckpointLifetime = 24 * time.Hour

// CheckpointRequest is the signer request for a checkpoint certificate
// over head: subject O=cluster, OU=CheckpointOU, CN=the sequence number;
// DNS name CheckpointName(head); valid from a minute before now (for clock
// skew) for CheckpointLifetime, clamped to the issuer. pub is a throwaway key whose private half the
// caller discards, so the certificate can never serve as a TLS identity.
func CheckpointRequest(clusterID string, head Head, pub crypto.PublicKey, csr *x509.CertificateRequest, issuer *x509.Certificate, now time.Time) *signer.Request {
	nb, na := now.Add(-time.Minute).Truncate(time.Second), now.Add(CheckpointLifetime).Truncate(time.Second)
	if nb.Before(issuer.NotBefore) {
		nb = issuer.NotBefore
	}
	if na.After(issuer.NotAfter) {
		na = issuer.NotAfter
	}
	return &signer.Request{
		PublicKey: pub,
		CSR:       csr,
		Profile:   signer.ProfileNode,
		Template: &x509.Certificate{
			Subject:               pkix.Name{Organization: []string{clusterID}, OrganizationalUnit: []string{CheckpointOU}, CommonName: strconv.FormatUint(head.Seq, 10)},
			DNSNames:              []string{CheckpointName(head)},
			NotBefore:             nb,
			NotAfter:              na,
			KeyUsage:              x509.KeyUsageDigitalSignature,
			BasicConstraintsValid: true,
		},
	}
}

// CheckpointEvent is the entry that records a checkpoint certificate and
// the intermediates it chains through (chain[0] is the certificate).
func CheckpointEvent(actor, backend string, head Head, chain []*x509.Certificate) Event {
	var certs []byte
	for _, c := range chain {
		certs = append(certs, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: c.Raw})...)
	}
	return Event{
		Action: ActionCheckpoint, Actor: actor, Backend: backend,
		Serial: signer.SerialHex(chain[0].SerialNumber), NotAfter: chain[0].NotAfter,
		Details: map[string]string{
			DetailHeadSeq:     strconv.FormatUint(head.Seq, 10),
			DetailHeadHash:    head.Hash,
			DetailCertificate: string(certs),
		},
	}
}

func checkpointHead(e Entry) (Head, error) {
	seq, err := strconv.ParseUint(e.Details[DetailHeadSeq], 10, 64)
	if err != nil {
		return Head{}, errors.New("no head sequence number")
	}
	return Head{Seq: seq, Hash: e.Details[DetailHeadHash]}, nil
}

// addSigner records that checkpoint seq chains to root.
func (r *Report) addSigner(seq uint64, root *x509.Certificate) {
	if n := len(r.Signers); n > 0 && r.Signers[n-1].Root.Equal(root) {
		r.Signers[n-1].Last = seq
		r.Signers[n-1].Count++
		return
	}
	r.Signers = append(r.Signers, CheckpointRun{Root: root, RootFingerprint: fingerprint(root), First: seq, Last: seq, Count: 1})
}

// verifyCheckpoint checks that a checkpoint entry binds an earlier entry's
// hash with a certificate from a root current at the entry's time, and
// returns that root.
func verifyCheckpoint(e Entry, hashes map[uint64]string, roots []Root) (*x509.Certificate, error) {
	h, err := checkpointHead(e)
	if err != nil {
		return nil, err
	}
	if want, ok := hashes[h.Seq]; !ok || want != h.Hash {
		return nil, fmt.Errorf("it signs entry %d with a hash that is not that entry's", h.Seq)
	}
	current := rootsAt(roots, e.Time)
	if len(current) == 0 {
		return nil, fmt.Errorf("no root was the cluster's root at %s, when it was written: the root history has a gap there, or no root was given", e.Time.UTC().Format(time.RFC3339Nano))
	}
	var chain []*x509.Certificate
	rest := []byte(e.Details[DetailCertificate])
	for {
		var block *pem.Block
		if block, rest = pem.Decode(rest); block == nil {
			break
		}
		c, err := x509.ParseCertificate(block.Bytes)
		if err != nil {
			return nil, fmt.Errorf("unreadable certificate: %w", err)
		}
		chain = append(chain, c)
	}
	if len(chain) == 0 {
		return nil, errors.New("no certificate")
	}
	cert := chain[0]
	if len(cert.DNSNames) != 1 || cert.DNSNames[0] != CheckpointName(h) {
		return nil, fmt.Errorf("its certificate names %q, not entry %d's hash", cert.DNSNames, h.Seq)
	}
	pool, inter := x509.NewCertPool(), x509.NewCertPool()
	var fps []string
	for _, r := range current {
		pool.AddCert(r.Cert)
		fps = append(fps, fingerprint(r.Cert))
	}
	for _, c := range chain[1:] {
		inter.AddCert(c)
	}
	chains, err := cert.Verify(x509.VerifyOptions{Roots: pool, Intermediates: inter, CurrentTime: e.Time,
		KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageAny}})
	if err != nil {
		return nil, fmt.Errorf("its certificate was not issued by the cluster's CA (root %s, the cluster's root at %s): %w",
			strings.Join(fps, " or "), e.Time.UTC().Format(time.RFC3339), err)
	}
	return chains[0][len(chains[0])-1], nil
}
