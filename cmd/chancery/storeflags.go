package main

import (
	"errors"
	"fmt"
	"path/filepath"
	"time"

	"github.com/spf13/pflag"

	"github.com/chancery-pki/chancery/store"
	"github.com/chancery-pki/chancery/store/boltstore"
	"github.com/chancery-pki/chancery/store/etcdstore"
)

// storeFlags choose where init keeps the cluster's state.
type storeFlags struct {
	// typ is the store type, from the flag named typFlag ("store", or
	// "to" for store migrate).
	typ, typFlag                     string
	endpoints, prefix, ca, cert, key string
	callTimeout                      time.Duration
}

func addStoreFlags(f *pflag.FlagSet) *storeFlags {
	s := &storeFlags{typFlag: "store"}
	f.StringVar(&s.typ, "store", boltstore.Name, "where the cluster's state is kept: bbolt (a file in the data directory, for one manager) or etcd (an etcd cluster that managers share)")
	s.addEtcdFlags(f, "with --store etcd: ")
	return s
}

// addJoinStoreFlags declares join's store flags: none for a worker, or a
// manager of a cluster on the embedded store; --store etcd and how to reach
// it for a manager that shares the cluster's store.
func addJoinStoreFlags(f *pflag.FlagSet) *storeFlags {
	s := &storeFlags{typFlag: "store"}
	f.StringVar(&s.typ, "store", "", "with a manager token: etcd, the store the cluster's state is in (as the first manager's init was given it)")
	s.addEtcdFlags(f, "with --store etcd: ")
	return s
}

// joinSettings returns the store settings join's flags give, and whether
// they name a shared store; no --store names none.
func (s *storeFlags) joinSettings() (store.Settings, bool, error) {
	switch s.typ {
	case "":
		s.typ = boltstore.Name
		_, err := s.settings() // refuses etcd flags without --store etcd
		s.typ = ""
		return store.Settings{}, false, err
	case boltstore.Name:
		return store.Settings{}, false, errors.New("--store bbolt: a joining manager shares the cluster's store; give --store etcd and its settings, or no --store (a worker, or a manager of a cluster on the embedded store)")
	}
	st, err := s.settings()
	return st, err == nil, err
}

// addEtcdFlags declares the flags that say how to reach etcd, each usage
// starting with when (which flag they go with).
func (s *storeFlags) addEtcdFlags(f *pflag.FlagSet, when string) {
	f.StringVar(&s.endpoints, "etcd-endpoints", "", when+"etcd's client URLs, comma-separated (https://HOST:2379,...)")
	f.StringVar(&s.prefix, "etcd-prefix", "", when+"the key prefix of this cluster's state (default "+etcdstore.DefaultPrefix+")")
	f.StringVar(&s.ca, "etcd-cacert", "", when+"the PEM file of the CA that signed etcd's certificates (default: the system's)")
	f.StringVar(&s.cert, "etcd-cert", "", when+"the PEM file of the client certificate to present to etcd")
	f.StringVar(&s.key, "etcd-key", "", when+"the PEM file of that certificate's key (mode 0600)")
	f.DurationVar(&s.callTimeout, "etcd-call-timeout", 0, fmt.Sprintf("%show long a call waits for etcd before it fails, %s to %s (default %s)",
		when, etcdstore.MinCallTimeout, etcdstore.MaxCallTimeout, etcdstore.DefaultCallTimeout))
}

// settings returns the store settings the flags give. Files are recorded
// by absolute path, as the data directory's store.json is read from
// anywhere.
func (s *storeFlags) settings() (store.Settings, error) {
	etcdFlags := []struct{ flag, option, value string }{
		{"etcd-endpoints", etcdstore.OptionEndpoints, s.endpoints},
		{"etcd-prefix", etcdstore.OptionPrefix, s.prefix},
		{"etcd-cacert", etcdstore.OptionCACert, s.ca},
		{"etcd-cert", etcdstore.OptionCert, s.cert},
		{"etcd-key", etcdstore.OptionKey, s.key},
		{"etcd-call-timeout", etcdstore.OptionCallTimeout, ""},
	}
	if s.callTimeout != 0 {
		etcdFlags[len(etcdFlags)-1].value = s.callTimeout.String()
	}
	switch s.typ {
	case boltstore.Name:
		for _, e := range etcdFlags {
			if e.value != "" {
				return store.Settings{}, fmt.Errorf("--%s needs --%s etcd", e.flag, s.typFlag)
			}
		}
		return store.Settings{}, nil
	case etcdstore.Name:
		if s.endpoints == "" {
			return store.Settings{}, fmt.Errorf("--%s etcd needs --etcd-endpoints", s.typFlag)
		}
		opts := map[string]string{}
		for _, e := range etcdFlags {
			v := e.value
			if v == "" {
				continue
			}
			if e.option == etcdstore.OptionCallTimeout {
				if _, err := etcdstore.ParseCallTimeout(v); err != nil {
					return store.Settings{}, fmt.Errorf("--etcd-call-timeout %s is out of range: give %s to %s", v, etcdstore.MinCallTimeout, etcdstore.MaxCallTimeout)
				}
			}
			if e.option == etcdstore.OptionCACert || e.option == etcdstore.OptionCert || e.option == etcdstore.OptionKey {
				abs, err := filepath.Abs(v)
				if err != nil {
					return store.Settings{}, err
				}
				v = abs
			}
			opts[e.option] = v
		}
		return store.Settings{Type: etcdstore.Name, Options: opts}, nil
	}
	return store.Settings{}, fmt.Errorf("unknown --%s %q: bbolt or etcd", s.typFlag, s.typ)
}
