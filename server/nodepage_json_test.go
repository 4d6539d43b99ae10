package server

import (
	"bytes"
	"encoding/json"
	"testing"
	"time"

	"github.com/chancery-pki/chancery/api"
)

// TestAppendNodePage: the hand-written encoding of a node page is
// encoding/json's, byte for byte.
func TestAppendNodePage(t *testing.T) {
	at := time.Date(2026, 3, 4, 5, 6, 7, 890123456, time.UTC)
	zone := time.FixedZone("X", -5*3600-30*60)
	tests := []api.NodePage{
		{Nodes: []api.Node{}},
		{Nodes: []api.Node{{ID: "abc", Hostname: "h-1.example", Role: "swarm-worker", Status: "Ready", Availability: "Active",
			CertSerial: "0a1b", CertNotAfter: at}}, Next: "n1.YWJj"},
		{Nodes: []api.Node{
			{ID: "x", Hostname: `we"ird\name<&>`, ManagerStatus: "Leader", CertNotAfter: at.In(zone), LastSeen: time.Now(), CreatedAt: at.Add(time.Hour)},
			{ID: "y", Hostname: "ünïcode\u2028\x01", CertNotAfter: time.Time{}, LastSeen: at.Truncate(time.Second)},
		}},
	}
	for i, p := range tests {
		var want bytes.Buffer
		if err := json.NewEncoder(&want).Encode(p); err != nil {
			t.Fatal(err)
		}
		if got := appendNodePage(nil, p, false); !bytes.Equal(got, want.Bytes()) {
			t.Errorf("page %d:\ngot  %s\nwant %s", i, got, want.Bytes())
		}
		// Brief: the same page without the certificate and times decodes
		// as the nodes with those fields zero.
		var brief api.NodePage
		if err := json.Unmarshal(appendNodePage(nil, p, true), &brief); err != nil {
			t.Fatalf("brief page %d: %v", i, err)
		}
		for j, n := range p.Nodes {
			n.CertSerial, n.CertNotAfter, n.LastSeen, n.CreatedAt = "", time.Time{}, time.Time{}, time.Time{}
			if brief.Nodes[j] != n {
				t.Errorf("brief page %d node %d: %+v, want %+v", i, j, brief.Nodes[j], n)
			}
		}
	}
}

func BenchmarkAppendNodePage(b *testing.B) {
	p := api.NodePage{Next: "n1.abc"}
	for range 2000 {
		p.Nodes = append(p.Nodes, api.Node{ID: "0123456789abcdefghijklmno", Hostname: "host-12345", Role: "swarm-worker",
			Status: "Down", Availability: "Active", CertSerial: "00112233445566778899aabbccddeeff", CertNotAfter: time.Now(), CreatedAt: time.Now()})
	}
	b.Run("append", func(b *testing.B) {
		for b.Loop() {
			appendNodePage(make([]byte, 0, 320*len(p.Nodes)+64), p, false)
		}
	})
	b.Run("encoding-json", func(b *testing.B) {
		for b.Loop() {
			json.NewEncoder(&bytes.Buffer{}).Encode(p)
		}
	})
}
