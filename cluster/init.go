package cluster

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"time"

	"github.com/chancery-pki/chancery/audit"
	"github.com/chancery-pki/chancery/backends"
	"github.com/chancery-pki/chancery/ca"
	"github.com/chancery-pki/chancery/certdir"
	"github.com/chancery-pki/chancery/datadir"
	"github.com/chancery-pki/chancery/internal/advertise"
	"github.com/chancery-pki/chancery/issuer"
	"github.com/chancery-pki/chancery/signer"
	"github.com/chancery-pki/chancery/store"
	"github.com/chancery-pki/chancery/store/boltstore"
)

// DefaultPort is the manager API's default port, next to swarm's 2377 so
// that both can run on one host.
const DefaultPort = 2378

// DefaultListenAddr is where the manager listens unless told otherwise.
var DefaultListenAddr = net.JoinHostPort("0.0.0.0", strconv.Itoa(DefaultPort))

// InitRequest creates a cluster.
type InitRequest struct {
	// DataDir is the data directory; created 0700 if missing. It must not
	// hold a cluster or a node's certificates already.
	DataDir string
	// Backend names the backend that holds the root key; empty means
	// "file". BackendSettings are its settings.
	Backend         string
	BackendSettings backends.Settings
	// RootCN is a new root's common name; empty means ca.DefaultRootCN.
	RootCN string
	// KeyAlgorithm is a new root key's algorithm; empty means the backend's
	// default (P-256).
	KeyAlgorithm string
	// ImportCertPEM and ImportKeyPEM are an existing root to use instead of
	// a new one; ImportKeyPassphrase decrypts the key if it is encrypted.
	ImportCertPEM, ImportKeyPEM []byte
	ImportKeyPassphrase         []byte
	// CertExpiry is the node certificate lifetime; zero means
	// ca.DefaultCertExpiry.
	CertExpiry time.Duration
	// ListenAddr is the manager API's address; empty means
	// DefaultListenAddr. AdvertiseAddr is the address given to joining
	// nodes: HOST:PORT, an IP address or a network interface name (eth0),
	// the last two taking ListenAddr's port unless given one (package
	// internal/advertise); empty means ListenAddr, or this host's first
	// non-loopback address when ListenAddr's host is unspecified.
	ListenAddr, AdvertiseAddr string
	// Hostname is this node's host name; empty means os.Hostname.
	Hostname string
	// Store says which store holds the cluster's state; the zero value
	// means the embedded store (boltstore) in the data directory.
	Store store.Settings
	// Now and Rand default to time.Now and crypto/rand.
	Now  func() time.Time
	Rand io.Reader
}

// InitResult is what init prints.
type InitResult struct {
	ClusterID       string
	NodeID          string
	WorkerToken     string
	ManagerToken    string
	AdvertiseAddr   string
	RootFingerprint string
	// BackendSettings are the settings the backend recorded for the root
	// (never a secret), as the cluster record keeps them.
	BackendSettings backends.Settings
}

// beforeCreateCluster, when set, runs just before Init writes the cluster
// record: tests race another init there.
var beforeCreateCluster func()

// Init creates a cluster in req.DataDir: the root (made or imported by the
// backend), the store with the cluster record and both join tokens, and
// this node as the first manager, with its key and certificate in
// D/certificates/ as swarm writes them. On any error nothing is left
// behind: what Init created is removed.
func Init(ctx context.Context, req InitRequest) (res *InitResult, err error) {
	if req.Now == nil {
		req.Now = timeNow
	}
	if req.Rand == nil {
		req.Rand = rand.Reader
	}
	if req.Backend == "" {
		req.Backend = "file"
	}
	if req.CertExpiry == 0 {
		req.CertExpiry = ca.DefaultCertExpiry
	}
	if req.CertExpiry < ca.MinCertExpiry {
		return nil, fmt.Errorf("cluster: cert-expiry %s is below the minimum of %s", req.CertExpiry, ca.MinCertExpiry)
	}
	if req.DataDir == "" {
		return nil, errors.New("cluster: no data directory given")
	}
	if err := datadir.Check(req.DataDir); err != nil {
		return nil, err
	}
	if req.ListenAddr == "" {
		req.ListenAddr = DefaultListenAddr
	}
	if err := checkHostPort("listen address", req.ListenAddr); err != nil {
		return nil, err
	}
	if req.AdvertiseAddr == "" {
		req.AdvertiseAddr = advertiseFor(req.ListenAddr)
		if err := checkHostPort("advertise address", req.AdvertiseAddr); err != nil {
			return nil, err
		}
	} else if req.AdvertiseAddr, err = ResolveAdvertise(req.AdvertiseAddr, req.ListenAddr); err != nil {
		return nil, err
	}
	if req.Hostname == "" {
		if req.Hostname, err = os.Hostname(); err != nil {
			return nil, fmt.Errorf("cluster: failed to read the host name: %w", err)
		}
	}
	backend, err := backends.Get(req.Backend)
	if err != nil {
		return nil, err
	}
	if req.Store.Type == "" {
		req.Store.Type = boltstore.Name
	}
	driver, err := store.DriverFor(req.Store.Type)
	if err != nil {
		return nil, err
	}
	dir := certdir.In(req.DataDir)
	for _, p := range []string{filepath.Join(req.DataDir, store.SettingsFile), boltstore.Path(req.DataDir, nil), dir.Path(certdir.NodeCertFile), dir.Path(certdir.NodeKeyFile)} {
		if _, err := os.Stat(p); err == nil {
			return nil, fmt.Errorf("%w: %s exists; use another --data-dir, or remove the old cluster's directory first", ErrClusterExists, p)
		}
	}
	storeReq := store.OpenRequest{DataDir: req.DataDir, Options: req.Store.Options, Create: true, Now: req.Now}
	if found, err := driver.Exists(ctx, storeReq); err != nil {
		return nil, err
	} else if found {
		return nil, fmt.Errorf("%w: the %s store the settings name holds a cluster already", ErrClusterExists, req.Store.Type)
	}

	// Undo on failure: everything below is created by Init.
	var undo []func()
	defer func() {
		if err != nil {
			for i := len(undo) - 1; i >= 0; i-- {
				undo[i]()
			}
		}
	}()
	if _, statErr := os.Stat(req.DataDir); errors.Is(statErr, os.ErrNotExist) {
		created := firstMissing(req.DataDir)
		if err := os.MkdirAll(req.DataDir, 0o700); err != nil {
			return nil, fmt.Errorf("cluster: failed to create the data directory: %w", err)
		}
		undo = append(undo, func() { os.RemoveAll(created) })
	}
	if err := store.WriteSettings(req.DataDir, req.Store); err != nil {
		return nil, err
	}
	undo = append(undo, func() { os.Remove(filepath.Join(req.DataDir, store.SettingsFile)) })
	st, err := driver.Open(ctx, storeReq)
	if err != nil {
		return nil, err
	}
	// Closed here on success; on failure, by its undo below, which must
	// still reach the store.
	defer func() {
		if err == nil {
			st.Close()
		}
	}()
	// created is set once this Init's cluster record is in the store.
	var created bool
	undo = append(undo, func() {
		// A shared store (etcd) is emptied again only if it holds this
		// Init's cluster: when another init raced this one and created its
		// cluster first, CreateCluster failed and wrote nothing, and the
		// other cluster is left alone.
		if d, ok := st.(store.Destroyer); ok && created {
			d.Destroy(context.Background())
		}
		st.Close()
		if req.Store.Type == boltstore.Name {
			os.Remove(boltstore.Path(req.DataDir, req.Store.Options))
		}
	})

	clusterID, err := ca.NewID(req.Rand)
	if err != nil {
		return nil, err
	}
	nodeID, err := ca.NewID(req.Rand)
	if err != nil {
		return nil, err
	}
	nodeKey, err := ecdsa.GenerateKey(elliptic.P256(), req.Rand)
	if err != nil {
		return nil, fmt.Errorf("cluster: failed to generate the node key: %w", err)
	}
	csr, err := x509.CreateCertificateRequest(req.Rand, &x509.CertificateRequest{}, nodeKey)
	if err != nil {
		return nil, fmt.Errorf("cluster: failed to create the node's CSR: %w", err)
	}

	sg, settings, err := backend.CreateRoot(ctx, backends.CreateRootRequest{
		DataDir:             req.DataDir,
		Settings:            req.BackendSettings,
		CommonName:          req.RootCN,
		KeyAlgorithm:        req.KeyAlgorithm,
		ImportCertPEM:       req.ImportCertPEM,
		ImportKeyPEM:        req.ImportKeyPEM,
		ImportKeyPassphrase: req.ImportKeyPassphrase,
		Now:                 req.Now(),
		Rand:                req.Rand,
	})
	if err != nil {
		return nil, err
	}
	// Undone in reverse: the root is deleted first, then its Signer closed.
	closeSigner := func() {
		if c, ok := sg.(io.Closer); ok {
			c.Close()
		}
	}
	undo = append(undo, closeSigner)
	if d, ok := backend.(backends.RootDeleter); ok {
		undo = append(undo, func() { d.DeleteRoot(context.Background(), req.DataDir, settings) })
	}
	chain := sg.Chain()
	root := chain[len(chain)-1]
	rootPEM := ca.EncodeCertificatesPEM(root)
	var intermediatesPEM []byte
	if len(chain) > 1 {
		intermediatesPEM = ca.EncodeCertificatesPEM(chain[:len(chain)-1]...)
	}
	workerToken, err := ca.GenerateJoinToken(rootPEM, req.Rand)
	if err != nil {
		return nil, err
	}
	managerToken, err := ca.GenerateJoinToken(rootPEM, req.Rand)
	if err != nil {
		return nil, err
	}
	desc := signer.Description{Backend: req.Backend}
	if d, ok := sg.(signer.Describer); ok {
		desc = d.Describe()
	}
	keyDetails := map[string]string{"root_fingerprint": Fingerprint(root), "imported": fmt.Sprint(req.ImportCertPEM != nil)}
	for _, kv := range desc.Details {
		keyDetails[kv[0]] = kv[1]
	}
	ctx = audit.WithActor(ctx, nodeID)
	if beforeCreateCluster != nil {
		beforeCreateCluster()
	}
	if err := st.CreateCluster(ctx, store.Cluster{
		ID:               clusterID,
		CreatedAt:        req.Now(),
		RootCAPEM:        rootPEM,
		IntermediatesPEM: intermediatesPEM,
		Backend:          store.BackendConfig{Type: req.Backend, Settings: settings},
		WorkerToken:      workerToken,
		ManagerToken:     managerToken,
		CertExpiry:       req.CertExpiry,
		ListenAddr:       req.ListenAddr,
		AdvertiseAddr:    req.AdvertiseAddr,
		LeaderID:         nodeID,
	},
		audit.Event{Action: audit.ActionInit, Actor: nodeID, Details: map[string]string{
			"cluster_id": clusterID, "cert_expiry": req.CertExpiry.String(), "root_subject": root.Subject.String(),
		}},
		audit.Event{Action: audit.ActionKeyCreated, Actor: nodeID, Backend: desc.Backend, Details: keyDetails},
	); err != nil {
		if errors.Is(err, store.ErrExists) {
			return nil, fmt.Errorf("%w: another init created one in the %s store meanwhile", ErrClusterExists, req.Store.Type)
		}
		return nil, err
	}
	created = true
	iss, err := issuer.New(sg, issuer.Options{Now: req.Now})
	if err != nil {
		return nil, err
	}
	issued, err := NewAuthority(st, issuer.NewHolder(iss), req.Now).IssueNodeCertificate(ctx, IssueRequest{
		NodeID: nodeID, Role: ca.RoleManager, Hostname: req.Hostname, CSR: csr,
	})
	if err != nil {
		return nil, err
	}
	undo = append(undo, func() {
		for _, f := range []string{certdir.RootCAFile, certdir.NodeCertFile, certdir.NodeKeyFile} {
			os.Remove(dir.Path(f))
		}
		os.Remove(string(dir))
	})
	if err := dir.WriteRoot(rootPEM); err != nil {
		return nil, err
	}
	if err := dir.WriteNode(nodeKey, issued.Chain); err != nil {
		return nil, err
	}
	closeSigner()
	return &InitResult{
		ClusterID:       clusterID,
		NodeID:          nodeID,
		WorkerToken:     workerToken,
		ManagerToken:    managerToken,
		AdvertiseAddr:   req.AdvertiseAddr,
		RootFingerprint: Fingerprint(root),
		BackendSettings: settings.Clone(),
	}, nil
}

// firstMissing returns the outermost directory of path that does not exist,
// the one MkdirAll(path) creates first.
func firstMissing(path string) string {
	path = filepath.Clean(path)
	for {
		parent := filepath.Dir(path)
		if parent == path {
			return path
		}
		if _, err := os.Stat(parent); err == nil || !errors.Is(err, os.ErrNotExist) {
			return path
		}
		path = parent
	}
}

// ResolveAdvertise returns the HOST:PORT an --advertise-addr stands for,
// as docker takes it: HOST:PORT, an IP address alone or an interface name,
// the last two with the port of listen (a HOST:PORT) unless given :PORT.
// Init and a joining manager take it alike.
func ResolveAdvertise(value, listen string) (string, error) {
	if err := checkHostPort("listen address", listen); err != nil {
		return "", err
	}
	out, err := advertise.Resolve(value, listen)
	if err != nil {
		return "", fmt.Errorf("cluster: %w", err)
	}
	if err := checkHostPort("advertise address", out); err != nil {
		return "", err
	}
	return out, nil
}

func checkHostPort(what, addr string) error {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return fmt.Errorf("cluster: invalid %s %q: want HOST:PORT", what, addr)
	}
	if p, err := strconv.Atoi(port); err != nil || p < 1 || p > 65535 {
		return fmt.Errorf("cluster: invalid %s %q: port must be 1-65535", what, addr)
	}
	if host != "" && net.ParseIP(host) == nil {
		if _, err := checkHostName(host); err != nil {
			return fmt.Errorf("cluster: invalid %s %q: %v", what, addr, err)
		}
	}
	return nil
}

// checkHostName accepts DNS host names of letters, digits, dots and dashes.
func checkHostName(host string) (string, error) {
	if len(host) > 253 {
		return "", errors.New("host name too long")
	}
	for _, r := range host {
		if !(r == '.' || r == '-' || r >= '0' && r <= '9' || r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z') {
			return "", fmt.Errorf("host name has the character %q", r)
		}
	}
	return host, nil
}

// advertiseFor picks the address joining nodes are told to use for a
// manager listening on listen.
func advertiseFor(listen string) string {
	host, port, err := net.SplitHostPort(listen)
	if err != nil {
		return listen
	}
	if ip := net.ParseIP(host); host != "" && (ip == nil || !ip.IsUnspecified()) {
		return listen
	}
	addrs, err := net.InterfaceAddrs()
	if err == nil {
		for _, a := range addrs {
			if n, ok := a.(*net.IPNet); ok && !n.IP.IsLoopback() && n.IP.To4() != nil && n.IP.IsGlobalUnicast() {
				return net.JoinHostPort(n.IP.String(), port)
			}
		}
	}
	return net.JoinHostPort("127.0.0.1", port)
}
