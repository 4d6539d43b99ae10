package audit

import (
	"crypto"
	"crypto/x509"
	"crypto/x509/pkix"
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
	// Torn means the last record is unreadable, as after a crash in the
	// middle of an append; everything before it is reported as usual.
	Torn bool
	// Problem is the first entry that does not verify; nil if none.
	Problem *Problem
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
	} else {
		fmt.Fprintf(&b, "checkpoints: none yet\n")
	}
	return b.String()
}

// Verify checks records, in key order: each decodes, is stored under its
// sequence number, follows the previous entry without a gap, links to its
// hash, and hashes to its own Hash; each checkpoint is checked against
// roots (the CA certificates the log's checkpoints may chain to). It stops
// at the first problem. An unreadable last record is reported as torn.
func Verify(records []Record, roots []*x509.Certificate) Report {
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
			if err := verifyCheckpoint(e, hashes, roots); err != nil {
				rep.Problem = &Problem{Seq: e.Seq, Reason: "checkpoint: " + err.Error()}
			} else {
				rep.Checkpoints++
				rep.CheckpointHead, _ = checkpointHead(e)
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

// verifyCheckpoint checks that a checkpoint entry binds an earlier entry's
// hash with a certificate from one of roots.
func verifyCheckpoint(e Entry, hashes map[uint64]string, roots []*x509.Certificate) error {
	h, err := checkpointHead(e)
	if err != nil {
		return err
	}
	if want, ok := hashes[h.Seq]; !ok || want != h.Hash {
		return fmt.Errorf("it signs entry %d with a hash that is not that entry's", h.Seq)
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
			return fmt.Errorf("unreadable certificate: %w", err)
		}
		chain = append(chain, c)
	}
	if len(chain) == 0 {
		return errors.New("no certificate")
	}
	cert := chain[0]
	if len(cert.DNSNames) != 1 || cert.DNSNames[0] != CheckpointName(h) {
		return fmt.Errorf("its certificate names %q, not entry %d's hash", cert.DNSNames, h.Seq)
	}
	pool, inter := x509.NewCertPool(), x509.NewCertPool()
	for _, r := range roots {
		pool.AddCert(r)
	}
	for _, c := range chain[1:] {
		inter.AddCert(c)
	}
	if _, err := cert.Verify(x509.VerifyOptions{Roots: pool, Intermediates: inter, CurrentTime: e.Time,
		KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageAny}}); err != nil {
		return fmt.Errorf("its certificate was not issued by the cluster's CA: %w", err)
	}
	return nil
}
