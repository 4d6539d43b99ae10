package store

import (
	"encoding/json"
	"reflect"
	"testing"
	"time"
)

// nodeRecords are stored node records: the first ones as stores write
// them, which DecodeNode reads on its fast path, then ones it hands to
// encoding/json.
func nodeRecords(t testing.TB) (fast, slow []string) {
	at := time.Date(2026, 12, 5, 12, 30, 1, 123456789, time.UTC)
	full := Node{
		ID: "0a1b2c3d4e5f6g7h8i9j0k1l2", Hostname: "host-1", Role: "swarm-manager", State: StateDown,
		CertSerial: "7f00aa", CertNotAfter: at.Add(90 * 24 * time.Hour), CertIssuerKeyID: "5eed",
		RenewalTokens: 2.5, RenewalTokensAt: at.In(time.FixedZone("x", 3600)), CreatedAt: at, UpdatedAt: at,
	}
	for _, n := range []Node{full, {ID: "n"}, {ID: "w", Role: "swarm-worker", State: StateReady, RenewalTokens: 1e-7}} {
		b, err := json.Marshal(n)
		if err != nil {
			t.Fatal(err)
		}
		fast = append(fast, string(b))
	}
	fast = append(fast,
		`{}`,
		` { "id" : "a" , "role":"other-role", "state":"left" } `+"\n",
		`{"id":"a","id":"b"}`,
		`{"renewal_tokens":-0.5e+3,"created_at":"2026-01-02T03:04:05+01:00"}`,
		`{"hostname":"<b>&amp;","updated_at":"2026-01-01T00:00:00+24:00"}`,
	)
	slow = []string{
		``, `null`, `[]`, `"id"`, `{`, `{"id":"a"`, `{"id":"a",}`, `{,"id":"a"}`, `{"id" "a"}`, `{"id":"a"}x`,
		`{"id":"a"}{}`, `{"id":null}`, `{"id":1}`, `{"id":true}`, `{"ID":"a"}`, `{"Hostname":"h"}`,
		`{"unknown":"x"}`, `{"unknown":{"a":[1,2]}}`, `{"id":"a\"b"}`, `{"id":"a\u0041"}`, `{"id":"\u00e9"}`,
		"{\"id\":\"é\"}", "{\"id\":\"\xff\"}", "{\"id\":\"a\tb\"}",
		`{"renewal_tokens":"1"}`, `{"renewal_tokens":1.}`, `{"renewal_tokens":01}`, `{"renewal_tokens":-}`,
		`{"renewal_tokens":1e}`, `{"renewal_tokens":.5}`, `{"renewal_tokens":+1}`, `{"renewal_tokens":1e999}`,
		`{"renewal_tokens":0x10}`, `{"renewal_tokens":Infinity}`, `{"renewal_tokens":null}`,
		`{"created_at":"2026-13-01T00:00:00Z"}`, `{"created_at":"2026-01-01"}`, `{"created_at":""}`,
		`{"created_at":null}`, `{"created_at":"2026-01-01T24:00:00Z"}`,
		`{"created_at":1}`, `{"id":"a","nodes":[]}`,
	}
	return fast, slow
}

// TestDecodeNode holds DecodeNode to json.Unmarshal into a zero Node: the
// same node, or an error where it errs; and the records stores write take
// the fast path.
func TestDecodeNode(t *testing.T) {
	fast, slow := nodeRecords(t)
	for _, in := range append(fast, slow...) {
		checkDecodeNode(t, []byte(in))
	}
	for _, in := range fast {
		if _, ok := decodeNode([]byte(in)); !ok {
			t.Errorf("decodeNode(%q) left it to encoding/json", in)
		}
	}
	for _, in := range slow {
		if _, ok := decodeNode([]byte(in)); ok {
			t.Errorf("decodeNode(%q) read it; encoding/json should have", in)
		}
	}
}

func checkDecodeNode(t *testing.T, in []byte) {
	t.Helper()
	got, err := DecodeNode(in)
	var want Node
	wantErr := json.Unmarshal(in, &want)
	switch {
	case (err == nil) != (wantErr == nil):
		t.Errorf("DecodeNode(%q) error %v, encoding/json's %v", in, err, wantErr)
	case err == nil && !reflect.DeepEqual(got, want):
		t.Errorf("DecodeNode(%q) = %+v\nencoding/json:      %+v", in, got, want)
	}
}

// FuzzDecodeNode holds DecodeNode to json.Unmarshal on any input.
func FuzzDecodeNode(f *testing.F) {
	fast, slow := nodeRecords(f)
	for _, in := range append(fast, slow...) {
		f.Add([]byte(in))
	}
	f.Fuzz(func(t *testing.T, in []byte) { checkDecodeNode(t, in) })
}

func BenchmarkDecodeNode(b *testing.B) {
	fast, _ := nodeRecords(b)
	in := []byte(fast[0])
	b.Run("flatjson", func(b *testing.B) {
		for b.Loop() {
			if _, err := DecodeNode(in); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("encoding-json", func(b *testing.B) {
		for b.Loop() {
			var n Node
			if err := json.Unmarshal(in, &n); err != nil {
				b.Fatal(err)
			}
		}
	})
}
