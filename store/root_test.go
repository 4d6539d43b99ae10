package store_test

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/chancery-pki/chancery/store"
	"github.com/chancery-pki/chancery/store/storetest"
)

// body is the base64 of a storetest.CertPEM stand-in, "" for none.
func body(pemBytes []byte) string {
	f := strings.Fields(string(pemBytes))
	if len(f) < 3 {
		return ""
	}
	return f[2]
}

func TestRoots(t *testing.T) {
	created := storetest.Cluster().CreatedAt
	tests := []struct {
		name string
		c    func() store.Cluster
		want []string // bodies, oldest first
		from []time.Time
	}{
		{"one root", storetest.Cluster, []string{"MIIB"}, []time.Time{created}},
		{"bundle: the first certificate", func() store.Cluster {
			c := storetest.Cluster()
			c.RootCAPEM = append(append([]byte("-----BEGIN EC PARAMETERS-----\nBggqhkjOPQMBBw==\n-----END EC PARAMETERS-----\n"),
				storetest.CertPEM("MIIG")...), storetest.CertPEM("MIIB")...)
			return c
		}, []string{"MIIG"}, []time.Time{created}},
		{"history", storetest.RotatedCluster, []string{"MIIB", "MIIC", "MIID"},
			[]time.Time{created, created.Add(30 * 24 * time.Hour), created.Add(60 * 24 * time.Hour)}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := tt.c()
			roots := c.Roots()
			var got []string
			for i, r := range roots {
				got = append(got, body(r.CertPEM))
				if !r.ActiveFrom.Equal(tt.from[i]) {
					t.Errorf("root %d active from %v, want %v", i, r.ActiveFrom, tt.from[i])
				}
			}
			if strings.Join(got, " ") != strings.Join(tt.want, " ") {
				t.Errorf("Roots() = %v, want %v", got, tt.want)
			}
			cur := roots[len(roots)-1]
			if !cur.ActiveUntil.IsZero() || cur.Backend.Type != c.Backend.Type {
				t.Errorf("current root %+v: want no ActiveUntil and backend %q", cur, c.Backend.Type)
			}
			// Roots returns a new slice: changing it leaves c alone.
			roots[0] = store.Root{}
			if len(c.RootHistory) > 0 && c.RootHistory[0].CertPEM == nil {
				t.Error("Roots shares its slice with RootHistory")
			}
		})
	}
}

func TestRootAt(t *testing.T) {
	c := storetest.RotatedCluster()
	t0 := c.CreatedAt
	day := 24 * time.Hour
	// A gap between the two old roots.
	gapped := storetest.RotatedCluster()
	gapped.RootHistory[0].ActiveUntil = t0.Add(29 * day)
	tests := []struct {
		name string
		c    store.Cluster
		at   time.Time
		want string // body, "" for none
	}{
		{"before the first root", c, t0.Add(-time.Nanosecond), ""},
		{"first root's start", c, t0, "MIIB"},
		{"inside the first root", c, t0.Add(10 * day), "MIIB"},
		{"the switch belongs to the next root", c, t0.Add(30 * day), "MIIC"},
		{"just before the switch", c, t0.Add(30*day - time.Nanosecond), "MIIB"},
		{"second root", c, t0.Add(45 * day), "MIIC"},
		{"current root from RootSince", c, t0.Add(60 * day), "MIID"},
		{"current root has no end", c, t0.Add(100 * 365 * day), "MIID"},
		{"in a gap", gapped, t0.Add(29*day + time.Hour), ""},
		{"a rotation's target is not current", c, c.Rotation.UpdatedAt, "MIID"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r, ok := tt.c.RootAt(tt.at)
			if ok != (tt.want != "") || body(r.CertPEM) != tt.want {
				t.Errorf("RootAt(%v) = %q, %v; want %q", tt.at, body(r.CertPEM), ok, tt.want)
			}
		})
	}
}

func TestValidateCluster(t *testing.T) {
	t.Run("valid", func(t *testing.T) {
		valid := map[string]func() store.Cluster{
			"one root":    storetest.Cluster,
			"rotated":     storetest.RotatedCluster,
			"no rotation": func() store.Cluster { c := storetest.RotatedCluster(); c.Rotation = nil; return c },
			"zero-length era": func() store.Cluster {
				c := storetest.RotatedCluster()
				c.RootHistory[1].ActiveUntil = c.RootHistory[1].ActiveFrom
				c.RootSince = c.RootHistory[1].ActiveFrom
				return c
			},
			"gap in history": func() store.Cluster {
				c := storetest.RotatedCluster()
				c.RootHistory[0].ActiveUntil = c.RootHistory[0].ActiveUntil.Add(-time.Hour)
				return c
			},
			"prepare before the cross-sign": func() store.Cluster {
				c := storetest.RotatedCluster()
				c.Rotation.Phase, c.Rotation.AppendixPEM, c.Rotation.Path = store.PhasePrepare, nil, ""
				return c
			},
			"switch-trust over a bridge": func() store.Cluster {
				c := storetest.RotatedCluster()
				c.Rotation.Phase, c.Rotation.Path = store.PhaseSwitchTrust, store.CrossSignBridge
				return c
			},
		}
		for name, c := range valid {
			if err := store.ValidateCluster(c()); err != nil {
				t.Errorf("%s: %v", name, err)
			}
		}
	})
	invalid := append(storetest.InvalidClusters(), storetest.InvalidCluster{
		Name: "no ID", Edit: func(c *store.Cluster) { c.ID = "" }, Want: "no ID",
	})
	for _, tt := range invalid {
		t.Run(tt.Name, func(t *testing.T) {
			c := storetest.RotatedCluster()
			tt.Edit(&c)
			err := store.ValidateCluster(c)
			if !errors.Is(err, store.ErrInvalidCluster) || !strings.Contains(err.Error(), tt.Want) {
				t.Fatalf("got %v, want ErrInvalidCluster naming %q", err, tt.Want)
			}
			if strings.Contains(err.Error(), c.WorkerToken) || strings.Contains(err.Error(), c.ManagerToken) {
				t.Errorf("error contains a join token: %v", err)
			}
		})
	}
}
