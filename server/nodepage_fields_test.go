package server

import (
	"bytes"
	"encoding/json"
	"reflect"
	"testing"
	"time"

	"github.com/chancery-pki/chancery/api"
)

// TestAppendNodePageEveryField: a node with every field of api.Node set is
// encoded as encoding/json encodes it, so that a field added to api.Node
// and forgotten by appendNodePage fails here instead of vanishing from
// listings.
func TestAppendNodePageEveryField(t *testing.T) {
	var n api.Node
	v := reflect.ValueOf(&n).Elem()
	at := time.Date(2026, 1, 2, 3, 4, 5, 6, time.UTC)
	for i := 0; i < v.NumField(); i++ {
		f := v.Field(i)
		switch f.Interface().(type) {
		case string:
			f.SetString("v-" + v.Type().Field(i).Name)
		case time.Time:
			f.Set(reflect.ValueOf(at.Add(time.Duration(i) * time.Hour)))
		case bool:
			f.SetBool(true)
		case int, int64:
			f.SetInt(int64(i + 1))
		default:
			t.Fatalf("api.Node.%s has a type (%s) this test cannot set: teach the test and appendNodePage", v.Type().Field(i).Name, f.Type())
		}
	}
	p := api.NodePage{Nodes: []api.Node{n}, Next: "n1.x"}
	var want bytes.Buffer
	if err := json.NewEncoder(&want).Encode(p); err != nil {
		t.Fatal(err)
	}
	if got := appendNodePage(nil, p, false); !bytes.Equal(got, want.Bytes()) {
		t.Errorf("appendNodePage and encoding/json differ: a field of api.Node is missing from appendNodePage?\ngot  %s\nwant %s", got, want.Bytes())
	}
}
