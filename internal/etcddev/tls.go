package etcddev

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"math/big"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"time"
)

// TLSFiles are the PEM files of a cluster started with Options.TLS: a CA
// made for it, the members' server certificate (for 127.0.0.1 and
// localhost), and a client certificate the members accept. Keys are 0600.
type TLSFiles struct {
	// CA is the CA certificate that signed the others.
	CA string
	// ServerCert and ServerKey are the members' certificate and key.
	ServerCert, ServerKey string
	// ClientCert and ClientKey are a client certificate and its key.
	ClientCert, ClientKey string
	// OtherClientCert and OtherClientKey are a client certificate from
	// another CA, which the members refuse.
	OtherClientCert, OtherClientKey string
}

func writeTLSFiles(dir string) (*TLSFiles, error) {
	dir = filepath.Join(dir, "tls")
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, err
	}
	f := &TLSFiles{
		CA:              filepath.Join(dir, "ca.pem"),
		ServerCert:      filepath.Join(dir, "server.pem"),
		ServerKey:       filepath.Join(dir, "server-key.pem"),
		ClientCert:      filepath.Join(dir, "client.pem"),
		ClientKey:       filepath.Join(dir, "client-key.pem"),
		OtherClientCert: filepath.Join(dir, "other-client.pem"),
		OtherClientKey:  filepath.Join(dir, "other-client-key.pem"),
	}
	ca, caKey, err := issue(nil, nil, &x509.Certificate{
		Subject: pkix.Name{CommonName: "etcddev test CA"}, IsCA: true, BasicConstraintsValid: true,
		KeyUsage: x509.KeyUsageCertSign,
	}, f.CA, "")
	if err != nil {
		return nil, err
	}
	if _, _, err := issue(ca, caKey, &x509.Certificate{
		Subject:     pkix.Name{CommonName: "etcd"},
		IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)}, DNSNames: []string{"localhost"},
		KeyUsage:    x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
	}, f.ServerCert, f.ServerKey); err != nil {
		return nil, err
	}
	client := &x509.Certificate{
		Subject:     pkix.Name{CommonName: "chancery"},
		KeyUsage:    x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
	}
	if _, _, err := issue(ca, caKey, client, f.ClientCert, f.ClientKey); err != nil {
		return nil, err
	}
	other, otherKey, err := issue(nil, nil, &x509.Certificate{
		Subject: pkix.Name{CommonName: "another CA"}, IsCA: true, BasicConstraintsValid: true,
		KeyUsage: x509.KeyUsageCertSign,
	}, "", "")
	if err != nil {
		return nil, err
	}
	if _, _, err := issue(other, otherKey, client, f.OtherClientCert, f.OtherClientKey); err != nil {
		return nil, err
	}
	return f, nil
}

// issue makes a key and a certificate from tmpl signed by parent (itself
// when parent is nil), and writes them to certPath and keyPath unless they
// are "".
func issue(parent *x509.Certificate, parentKey *ecdsa.PrivateKey, tmpl *x509.Certificate, certPath, keyPath string) (*x509.Certificate, *ecdsa.PrivateKey, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, nil, err
	}
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 64))
	if err != nil {
		return nil, nil, err
	}
	tmpl.SerialNumber = serial
	tmpl.NotBefore = time.Now().Add(-time.Hour)
	tmpl.NotAfter = time.Now().Add(24 * time.Hour)
	if parent == nil {
		parent, parentKey = tmpl, key
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, parent, &key.PublicKey, parentKey)
	if err != nil {
		return nil, nil, err
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, nil, err
	}
	if certPath != "" {
		if err := os.WriteFile(certPath, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o644); err != nil {
			return nil, nil, err
		}
	}
	if keyPath != "" {
		kder, err := x509.MarshalPKCS8PrivateKey(key)
		if err != nil {
			return nil, nil, err
		}
		if err := os.WriteFile(keyPath, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: kder}), 0o600); err != nil {
			return nil, nil, err
		}
	}
	return cert, key, nil
}

// ClientConfig returns a TLS configuration with the cluster's CA and client
// certificate.
func (f *TLSFiles) ClientConfig() (*tls.Config, error) {
	pair, err := tls.LoadX509KeyPair(f.ClientCert, f.ClientKey)
	if err != nil {
		return nil, err
	}
	caPEM, err := os.ReadFile(f.CA)
	if err != nil {
		return nil, err
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(caPEM) {
		return nil, errors.New("etcddev: no CA certificate in " + f.CA)
	}
	return &tls.Config{Certificates: []tls.Certificate{pair}, RootCAs: pool, MinVersion: tls.VersionTLS12}, nil
}

func (f *TLSFiles) httpClient() (*http.Client, error) {
	cfg, err := f.ClientConfig()
	if err != nil {
		return nil, err
	}
	return &http.Client{Timeout: 2 * time.Second, Transport: &http.Transport{TLSClientConfig: cfg}}, nil
}
