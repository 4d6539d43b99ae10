// Package agent is a node's side of the cluster: it joins with a token,
// keeps its certificate fresh (renewing at a random point between 50% and
// 80% of its lifetime, with backoff on failure), reports to the manager,
// renews at once when its role changes, and takes a new root when the
// manager announces one.
//
// The node's key is generated on the node and never leaves it; the key,
// certificate and root are kept in D/certificates/ (package certdir).
package agent

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/chancery-pki/chancery/api"
	"github.com/chancery-pki/chancery/ca"
	"github.com/chancery-pki/chancery/certdir"
	"github.com/chancery-pki/chancery/client"
	"github.com/chancery-pki/chancery/datadir"
	"github.com/chancery-pki/chancery/internal/atomicfile"
)

// StateFile is the node's own record in its data directory: the managers it
// talks to.
const StateFile = "node.json"

// State is what a node remembers besides its certificates.
type State struct {
	// Managers are manager API addresses (HOST:PORT): the one the node
	// calls first (the leader, as the managers announce it, or the one it
	// joined through), then the others its manager's status answers list,
	// which it tries in turn when the first cannot be reached.
	Managers []string `json:"managers"`
	// Hostname is the host name the node joined with.
	Hostname string `json:"hostname,omitempty"`
	// ListenAddr is where the node serves the manager API while it is a
	// manager.
	ListenAddr string `json:"listen_addr,omitempty"`
	// AdvertiseAddr is the API address (HOST:PORT) a manager on a shared
	// store tells nodes to reach it on.
	AdvertiseAddr string `json:"advertise_addr,omitempty"`
}

// ReadState reads D/node.json.
func ReadState(dataDir string) (State, error) {
	var s State
	data, err := os.ReadFile(filepath.Join(dataDir, StateFile))
	if err != nil {
		return s, fmt.Errorf("agent: %w", err)
	}
	if err := json.Unmarshal(data, &s); err != nil {
		return s, fmt.Errorf("agent: %s is corrupt: %w", filepath.Join(dataDir, StateFile), err)
	}
	if len(s.Managers) == 0 {
		return s, fmt.Errorf("agent: %s names no manager", filepath.Join(dataDir, StateFile))
	}
	return s, nil
}

// WriteState writes D/node.json (mode 0644) atomically: a crash or a failed
// write leaves the old file whole.
func WriteState(dataDir string, s State) error {
	data, err := json.MarshalIndent(s, "", "  ")
	if err != nil {
		return fmt.Errorf("agent: failed to encode the node state: %w", err)
	}
	if err := atomicfile.Write(filepath.Join(dataDir, StateFile), data, 0o644); err != nil {
		return fmt.Errorf("agent: %w", err)
	}
	return nil
}

// ErrAlreadyMember means the data directory already holds a node.
var ErrAlreadyMember = errors.New("agent: this data directory already holds a node of a cluster")

// JoinRequest joins a cluster.
type JoinRequest struct {
	// DataDir is the node's data directory; created 0700 if missing.
	DataDir string
	// Addr is a manager's API address (HOST:PORT).
	Addr string
	// Token is the join token; its role decides the node's.
	Token string
	// Hostname is recorded by the manager; empty means os.Hostname.
	Hostname string
	// ListenAddr is where the node serves the manager API while it is a
	// manager; recorded in the state file.
	ListenAddr string
	// AdvertiseAddr, a resolved HOST:PORT, is recorded in the state file:
	// the address a manager on a shared store tells nodes.
	AdvertiseAddr string
	// ClusterID, when set, is the cluster the node must join: a
	// certificate for another is refused, and nothing is written.
	ClusterID string
}

// Joined is the outcome of a join.
type Joined struct {
	NodeID    string
	ClusterID string
	Role      ca.Role
	Chain     []*x509.Certificate
}

// Join fetches the manager's root without trusting the connection, accepts
// it only if its digest matches the token's, then generates the node's key,
// sends a CSR with the token over a connection that trusts that root, checks
// the certificate it gets back, and writes the key (0600), certificate and
// root into D/certificates/ and the managers' addresses into D/node.json.
// Nothing is written until every network step has succeeded, and a failed
// write removes what Join wrote.
func Join(ctx context.Context, req JoinRequest) (*Joined, error) {
	tok, err := ca.ParseJoinToken(req.Token)
	if err != nil {
		return nil, err
	}
	if err := datadir.Check(req.DataDir); err != nil {
		return nil, err
	}
	dir := certdir.In(req.DataDir)
	if _, err := os.Stat(dir.Path(certdir.NodeCertFile)); err == nil {
		return nil, fmt.Errorf("%w (%s); use another --data-dir, or remove it to join again", ErrAlreadyMember, dir.Path(certdir.NodeCertFile))
	}
	if req.Hostname == "" {
		req.Hostname, _ = os.Hostname()
	}
	rootPEM, err := client.New(req.Addr, nil, nil).FetchRoot(ctx)
	if err != nil {
		return nil, fmt.Errorf("failed to fetch the root CA from %s: %w", req.Addr, err)
	}
	if err := tok.CheckRoot(rootPEM); err != nil {
		return nil, err
	}
	roots, err := ca.ParseCertificatesPEM(rootPEM)
	if err != nil {
		return nil, fmt.Errorf("the manager's root CA: %w", err)
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("agent: failed to generate the node key: %w", err)
	}
	csr, err := newCSR(key)
	if err != nil {
		return nil, err
	}
	c := client.New(req.Addr, pool(roots), nil)
	defer c.Close()
	resp, err := c.Join(ctx, api.JoinRequest{Token: req.Token, CSR: string(csr), Hostname: req.Hostname})
	if err != nil {
		return nil, fmt.Errorf("failed to join the cluster at %s: %w", req.Addr, err)
	}
	chain, id, err := checkIssued(resp, roots, key, time.Now())
	if err != nil {
		return nil, err
	}
	if id.NodeID != resp.NodeID || string(id.Role) != resp.Role {
		return nil, fmt.Errorf("agent: the manager returned a certificate for %s/%s, not %s/%s", id.NodeID, id.Role, resp.NodeID, resp.Role)
	}
	if req.ClusterID != "" && id.ClusterID != req.ClusterID {
		return nil, fmt.Errorf("agent: the manager at %s is of the cluster %s, not %s", req.Addr, id.ClusterID, req.ClusterID)
	}
	if err := os.MkdirAll(req.DataDir, 0o700); err != nil {
		return nil, fmt.Errorf("agent: failed to create the data directory: %w", err)
	}
	managers := []string{req.Addr}
	if resp.LeaderAddr != "" {
		managers = withFirst(resp.LeaderAddr, managers)
	}
	err = dir.WriteRoot(rootPEM)
	if err == nil {
		err = dir.WriteNode(key, chain)
	}
	if err == nil {
		err = WriteState(req.DataDir, State{Managers: managers, Hostname: req.Hostname, ListenAddr: req.ListenAddr, AdvertiseAddr: req.AdvertiseAddr})
	}
	if err != nil {
		RemoveJoined(req.DataDir)
		return nil, err
	}
	return &Joined{NodeID: id.NodeID, ClusterID: id.ClusterID, Role: id.Role, Chain: chain}, nil
}

// RemoveJoined removes what Join wrote in dataDir (the node's key,
// certificate and root, and the state file), for a join that fails after
// it: the data directory is left as it was before.
func RemoveJoined(dataDir string) {
	dir := certdir.In(dataDir)
	for _, f := range []string{certdir.RootCAFile, certdir.NodeCertFile, certdir.NodeKeyFile} {
		os.Remove(dir.Path(f))
	}
	os.Remove(string(dir))
	os.Remove(filepath.Join(dataDir, StateFile))
}

func newCSR(key *ecdsa.PrivateKey) ([]byte, error) {
	der, err := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{}, key)
	if err != nil {
		return nil, fmt.Errorf("agent: failed to create a CSR: %w", err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE REQUEST", Bytes: der}), nil
}

func pool(roots []*x509.Certificate) *x509.CertPool {
	p := x509.NewCertPool()
	for _, r := range roots {
		p.AddCert(r)
	}
	return p
}

// checkIssued checks a certificate the manager returned: it chains to the
// roots, carries a node identity (the cluster is the certificate's own O),
// and is for key.
func checkIssued(resp *api.Certificate, roots []*x509.Certificate, key *ecdsa.PrivateKey, now time.Time) ([]*x509.Certificate, ca.NodeIdentity, error) {
	chain, err := ca.ParseCertificatesPEM([]byte(resp.CertificatePEM))
	if err != nil {
		return nil, ca.NodeIdentity{}, fmt.Errorf("the manager's certificate: %w", err)
	}
	leaf := chain[0]
	if !key.PublicKey.Equal(leaf.PublicKey) {
		return nil, ca.NodeIdentity{}, errors.New("agent: the manager returned a certificate for another key")
	}
	if len(leaf.Subject.Organization) != 1 {
		return nil, ca.NodeIdentity{}, errors.New("agent: the manager returned a certificate without a cluster ID")
	}
	id, err := ca.IdentityOf(leaf, leaf.Subject.Organization[0])
	if err != nil {
		return nil, ca.NodeIdentity{}, fmt.Errorf("the manager's certificate: %w", err)
	}
	if err := ca.VerifyChain(chain, roots, now); err != nil {
		return nil, ca.NodeIdentity{}, fmt.Errorf("the manager's certificate: %w", err)
	}
	return chain, id, nil
}
