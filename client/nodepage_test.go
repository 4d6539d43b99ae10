package client

import (
	"encoding/json"
	"reflect"
	"testing"
	"time"

	"github.com/chancery-pki/chancery/api"
)

// nodePages are pages of the node listing: the first ones as managers
// write them, which decodeNodePage reads on its fast path, then ones it
// hands to encoding/json.
func nodePages(t testing.TB) (fast, slow []string) {
	at := time.Date(2026, 12, 5, 12, 30, 1, 123456789, time.UTC)
	full := api.NodePage{Nodes: []api.Node{
		{ID: "a1", Hostname: "m1", Role: "swarm-manager", Status: "Ready", Availability: "Active", ManagerStatus: "Leader",
			CertSerial: "7f", CertNotAfter: at, LastSeen: at.Add(time.Second), CreatedAt: at.In(time.FixedZone("x", -3600))},
		{ID: "b2", Hostname: "w1", Role: "swarm-worker", Status: "Down", Availability: "Active"},
	}, Next: "n1.YjI"}
	for _, p := range []api.NodePage{full, {Nodes: []api.Node{}}} {
		b, err := json.Marshal(p)
		if err != nil {
			t.Fatal(err)
		}
		fast = append(fast, string(b))
	}
	fast = append(fast,
		`{"nodes":[{"id":"a","role":"other","status":"Gone"}],"next":"x","next":"y"}`+"\n",
		` { "nodes" : [ { } , {"id":"a","id":"b"} ] } `,
	)
	slow = []string{
		``, `null`, `[]`, `{"nodes":null}`, `{"nodes":{}}`, `{"nodes":[1]}`, `{"nodes":[null]}`, `{"nodes":[{}],}`,
		`{"nodes":[{},]}`, `{"nodes":[{}]`, `{"nodes":[{"ID":"a"}]}`, `{"nodes":[{"id":"a\u0041"}]}`,
		"{\"nodes\":[{\"id\":\"\xc3\"}]}", `{"nodes":[{"cert_not_after":"yesterday"}]}`, `{"Next":"x"}`,
		`{"nodes":[{"id":"a","status":"Ready"}],"nodes":[{"id":"b"}]}`, `{"nodes":[{"extra":1}]}`, `{"nodes":[]}x`,
	}
	return fast, slow
}

// TestDecodeNodePage holds decodeNodePage to json.Unmarshal into a zero
// api.NodePage, and the pages managers write take the fast path.
func TestDecodeNodePage(t *testing.T) {
	fast, slow := nodePages(t)
	for _, in := range append(fast, slow...) {
		checkDecodeNodePage(t, []byte(in))
	}
	for _, in := range fast {
		if _, ok := readNodePage([]byte(in)); !ok {
			t.Errorf("readNodePage(%q) left it to encoding/json", in)
		}
	}
	for _, in := range slow {
		if _, ok := readNodePage([]byte(in)); ok {
			t.Errorf("readNodePage(%q) read it; encoding/json should have", in)
		}
	}
}

func checkDecodeNodePage(t *testing.T, in []byte) {
	t.Helper()
	got, err := decodeNodePage(in)
	var want api.NodePage
	wantErr := json.Unmarshal(in, &want)
	switch {
	case (err == nil) != (wantErr == nil):
		t.Errorf("decodeNodePage(%q) error %v, encoding/json's %v", in, err, wantErr)
	case err == nil && !reflect.DeepEqual(*got, want):
		t.Errorf("decodeNodePage(%q) = %+v\nencoding/json:        %+v", in, *got, want)
	}
}

// FuzzDecodeNodePage holds decodeNodePage to json.Unmarshal on any input.
func FuzzDecodeNodePage(f *testing.F) {
	fast, slow := nodePages(f)
	for _, in := range append(fast, slow...) {
		f.Add([]byte(in))
	}
	f.Fuzz(func(t *testing.T, in []byte) { checkDecodeNodePage(t, in) })
}
