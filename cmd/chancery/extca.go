package main

import (
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"os"

	"github.com/spf13/pflag"

	"github.com/chancery-pki/chancery/ca"
	"github.com/chancery-pki/chancery/extca"
	"github.com/chancery-pki/chancery/manager"
)

// extCAFlags are the flags that make a running manager also serve the
// CFSSL-compatible external CA endpoint.
type extCAFlags struct {
	listen, clientCA, policy, certExpiry string
	sans                                 []string
}

func addExtCAFlags(f *pflag.FlagSet) *extCAFlags {
	e := &extCAFlags{}
	f.StringVar(&e.listen, "external-ca-listen-addr", "", "also serve a CFSSL-compatible external CA (/api/v1/cfssl/sign, authsign, info) here, for swarm's --external-ca")
	f.StringVar(&e.clientCA, "external-ca-client-ca", "", "PEM bundle of the CAs that client certificates must chain to (for a swarm: its current root)")
	f.StringVar(&e.policy, "external-ca-policy", "", "policy file: what each client may ask for (see 'go doc ./extca'; default: swarm managers of their own cluster)")
	f.StringArrayVar(&e.sans, "external-ca-san", nil, "extra DNS name or IP address for the endpoint's TLS certificate (repeatable; the advertise address is always in)")
	f.StringVar(&e.certExpiry, "external-ca-cert-expiry", "", "lifetime of the node certificates the endpoint issues (default 2160h)")
	return e
}

// config returns the endpoint's configuration, or nil when it is off.
func (e *extCAFlags) config() (*manager.ExternalCAConfig, error) {
	if e.listen == "" {
		if e.clientCA != "" || e.policy != "" || len(e.sans) > 0 || e.certExpiry != "" {
			return nil, errors.New("the --external-ca-* flags need --external-ca-listen-addr")
		}
		return nil, nil
	}
	cfg := &manager.ExternalCAConfig{ListenAddr: e.listen}
	if e.clientCA != "" {
		data, err := os.ReadFile(e.clientCA)
		if err != nil {
			return nil, fmt.Errorf("failed to read --external-ca-client-ca: %w", err)
		}
		certs, err := ca.ParseCertificatesPEM(data)
		if err != nil {
			return nil, fmt.Errorf("--external-ca-client-ca: %w", err)
		}
		cfg.ClientCAs = x509.NewCertPool()
		for _, c := range certs {
			cfg.ClientCAs.AddCert(c)
		}
	}
	var err error
	if e.policy != "" {
		cfg.Policy, err = extca.LoadPolicy(e.policy)
	} else {
		cfg.Policy, err = extca.ParsePolicy([]byte(extca.DefaultPolicy), "default policy", ".")
	}
	if err != nil {
		return nil, err
	}
	for _, san := range e.sans {
		if ip := net.ParseIP(san); ip != nil {
			cfg.IPAddresses = append(cfg.IPAddresses, ip)
		} else {
			cfg.DNSNames = append(cfg.DNSNames, san)
		}
	}
	if e.certExpiry != "" {
		if cfg.CertExpiry, err = ca.ParseCertExpiry(e.certExpiry); err != nil {
			return nil, err
		}
	}
	return cfg, nil
}
