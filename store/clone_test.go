package store

import (
	"encoding/json"
	"fmt"
	"reflect"
	"sync"
	"testing"
	"time"
)

// fill sets every field that v reaches to a value that is not zero:
// slices and maps of two elements, pointers to filled values. seed makes
// the values differ between calls.
func fill(t *testing.T, v reflect.Value, seed *int) {
	t.Helper()
	*seed++
	switch v.Kind() {
	case reflect.String:
		v.SetString(fmt.Sprintf("s%d", *seed))
	case reflect.Bool:
		v.SetBool(true)
	case reflect.Int, reflect.Int64, reflect.Int32:
		v.SetInt(int64(*seed))
	case reflect.Uint, reflect.Uint64, reflect.Uint32:
		v.SetUint(uint64(*seed))
	case reflect.Uint8:
		v.SetUint(uint64(*seed % 256))
	case reflect.Slice:
		s := reflect.MakeSlice(v.Type(), 2, 2)
		for i := range 2 {
			fill(t, s.Index(i), seed)
		}
		v.Set(s)
	case reflect.Map:
		m := reflect.MakeMap(v.Type())
		for range 2 {
			k, e := reflect.New(v.Type().Key()).Elem(), reflect.New(v.Type().Elem()).Elem()
			fill(t, k, seed)
			fill(t, e, seed)
			m.SetMapIndex(k, e)
		}
		v.Set(m)
	case reflect.Pointer:
		p := reflect.New(v.Type().Elem())
		fill(t, p.Elem(), seed)
		v.Set(p)
	case reflect.Struct:
		if v.Type() == reflect.TypeFor[time.Time]() {
			v.Set(reflect.ValueOf(time.Unix(int64(*seed), 0).UTC()))
			return
		}
		for i := range v.NumField() {
			if v.Type().Field(i).IsExported() {
				fill(t, v.Field(i), seed)
			}
		}
	default:
		t.Fatalf("fill: a field of kind %s: teach fill and Cluster.Clone about it", v.Kind())
	}
}

// shared reports the path of the first slice, map or pointer that a and b
// share.
func shared(a, b reflect.Value, path string) string {
	switch a.Kind() {
	case reflect.Slice:
		if a.Len() > 0 && a.Pointer() == b.Pointer() {
			return path
		}
		for i := range a.Len() {
			if p := shared(a.Index(i), b.Index(i), fmt.Sprintf("%s[%d]", path, i)); p != "" {
				return p
			}
		}
	case reflect.Map:
		if !a.IsNil() && a.UnsafePointer() == b.UnsafePointer() {
			return path
		}
	case reflect.Pointer:
		if a.IsNil() {
			return ""
		}
		if a.Pointer() == b.Pointer() {
			return path
		}
		return shared(a.Elem(), b.Elem(), "*"+path)
	case reflect.Struct:
		for i := range a.NumField() {
			if a.Type().Field(i).IsExported() {
				if p := shared(a.Field(i), b.Field(i), path+"."+a.Type().Field(i).Name); p != "" {
					return p
				}
			}
		}
	}
	return ""
}

func TestClusterClone(t *testing.T) {
	var c Cluster
	seed := 0
	fill(t, reflect.ValueOf(&c).Elem(), &seed)
	tests := []struct {
		name string
		c    Cluster
	}{
		{"every field set", c},
		{"zero", Cluster{}},
		{"no rotation", Cluster{ID: "c", RootCAPEM: []byte("pem"), RootHistory: []Root{{CertPEM: []byte("old")}}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := tt.c.Clone()
			if !reflect.DeepEqual(got, tt.c) {
				t.Fatalf("the clone differs:\n got %+v\nwant %+v", got, tt.c)
			}
			if p := shared(reflect.ValueOf(got), reflect.ValueOf(tt.c), "Cluster"); p != "" {
				t.Fatalf("the clone shares %s with the original", p)
			}
		})
	}
}

func TestClusterCache(t *testing.T) {
	var c Cluster
	seed := 0
	fill(t, reflect.ValueOf(&c).Elem(), &seed)
	raw, err := json.Marshal(c)
	if err != nil {
		t.Fatal(err)
	}
	var want Cluster
	if err := json.Unmarshal(raw, &want); err != nil {
		t.Fatal(err)
	}
	var cc ClusterCache
	first, err := cc.Decode(raw)
	if err != nil {
		t.Fatal(err)
	}
	// A caller that changes what it was given changes nothing for the
	// next one.
	first.RootHistory[0].CertPEM[0] ^= 0xff
	first.Rotation.ExcludedNodes[0] = "changed"
	first.Backend.Settings["new"] = "x"
	second, err := cc.Decode(raw)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(second, want) {
		t.Fatalf("the second decode differs from json.Unmarshal's:\n got %+v\nwant %+v", second, want)
	}
	// Another record is decoded, not served from the cache.
	c.Version++
	other, _ := json.Marshal(c)
	third, err := cc.Decode(other)
	if err != nil {
		t.Fatal(err)
	}
	if third.Version != want.Version+1 {
		t.Fatalf("version %d after a changed record, want %d", third.Version, want.Version+1)
	}
	if _, err := cc.Decode([]byte(`{"id":`)); err == nil {
		t.Fatal("a broken record decoded without an error")
	}
	// Concurrent callers (go test -race).
	var wg sync.WaitGroup
	for i := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			r := raw
			if i%2 == 1 {
				r = other
			}
			got, err := cc.Decode(r)
			if err != nil {
				t.Error(err)
				return
			}
			got.RootCAPEM[0] ^= 0xff
		}()
	}
	wg.Wait()
}
