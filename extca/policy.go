package extca

import (
	"crypto/x509"
	"errors"
	"fmt"
	"slices"
	"sort"
	"strings"

	"github.com/chancery-pki/chancery/ca"
	"github.com/chancery-pki/chancery/internal/cfsslwire"
)

// This file holds the policy: which client may ask for which certificates.
// policyfile.go reads it from a file.

// Policy says which clients may ask the endpoint for what. Its rules are
// tried in order, and the first whose Match admits the client decides; a
// client no rule admits is refused.
type Policy struct {
	// Rules are the allow rules, in order.
	Rules []Rule
	// AuthKeys are the HMAC auth keys of /authsign, by name. A rule admits
	// the holder of one with ClientMatch.AuthKey. LoadPolicy and
	// ParsePolicy read them from the files a policy names; in Go,
	// backends/cfssl's ParseAuthKey makes one (its AuthKey is this type).
	AuthKeys map[string]*cfsslwire.AuthKey
}

// Rule admits the clients its Match selects, for the clusters, roles and
// profiles it names.
type Rule struct {
	// Source says where the rule came from ("policy.conf:3"), for
	// refusals; empty for rules built in Go.
	Source string
	// Match selects the clients the rule is for.
	Match ClientMatch
	// Clusters are the cluster IDs (a node certificate's O) the client may
	// ask for.
	Clusters []string
	// OwnCluster also allows the O values of the client's own certificate:
	// a swarm manager asks for its own cluster.
	OwnCluster bool
	// AnyCluster allows every cluster ID.
	AnyCluster bool
	// Roles are the roles (a node certificate's OU) the client may ask
	// for; empty means none, for a client that only cross-signs.
	Roles []ca.Role
	// CrossSign allows the "CA" profile: cross-signing a CA's CSR.
	CrossSign bool
}

// ClientMatch selects clients: the holders of an auth key (AuthKey), or
// the holders of a client certificate that chains to the client CAs and
// whose subject has every attribute given (CN, O, OU; any one of several
// values matches), or any such certificate (AnyCert).
type ClientMatch struct {
	// AuthKey is the name of an auth key in Policy.AuthKeys.
	AuthKey string
	// AnyCert matches every verified client certificate.
	AnyCert bool
	// CN, O and OU, when not empty, must appear in the client
	// certificate's subject.
	CN, O, OU string
}

// isCert reports whether m selects certificate holders.
func (m ClientMatch) isCert() bool { return m.AuthKey == "" }

// matches reports whether m admits c.
func (m ClientMatch) matches(c Client) bool {
	if m.AuthKey != "" {
		return c.AuthKey == m.AuthKey
	}
	if c.Cert == nil {
		return false
	}
	if m.AnyCert {
		return true
	}
	s := c.Cert.Subject
	return (m.CN == "" || s.CommonName == m.CN) &&
		(m.O == "" || slices.Contains(s.Organization, m.O)) &&
		(m.OU == "" || slices.Contains(s.OrganizationalUnit, m.OU))
}

// String writes m as a policy file writes it.
func (m ClientMatch) String() string {
	if m.AuthKey != "" {
		return "key " + m.AuthKey
	}
	if m.AnyCert {
		return "cert *"
	}
	parts := []string{"cert"}
	for _, kv := range [][2]string{{"CN", m.CN}, {"O", m.O}, {"OU", m.OU}} {
		if kv[1] != "" {
			parts = append(parts, kv[0]+"="+kv[1])
		}
	}
	return strings.Join(parts, " ")
}

// String writes r as a policy file line.
func (r Rule) String() string {
	parts := []string{"allow", r.Match.String()}
	var clusters []string
	switch {
	case r.AnyCluster:
		clusters = []string{"*"}
	default:
		if r.OwnCluster {
			clusters = append(clusters, "own")
		}
		clusters = append(clusters, r.Clusters...)
	}
	if len(clusters) > 0 {
		parts = append(parts, "clusters="+strings.Join(clusters, ","))
	}
	roles := make([]string, len(r.Roles))
	for i, role := range r.Roles {
		roles[i] = role.Short()
	}
	if len(roles) == 0 {
		roles = []string{"none"}
	}
	parts = append(parts, "roles="+strings.Join(roles, ","))
	if r.CrossSign {
		parts = append(parts, "cross-sign")
	}
	return strings.Join(parts, " ")
}

// describe names r in a refusal.
func (r *Rule) describe() string {
	if r.Source != "" {
		return fmt.Sprintf("rule %s (%s)", r.Source, r)
	}
	return fmt.Sprintf("rule %q", r.String())
}

// Client is who asks: the holder of a verified client certificate (on
// /sign) or of an auth key (on /authsign).
type Client struct {
	// Cert is the client's verified certificate.
	Cert *x509.Certificate
	// AuthKey is the name of the auth key whose token verified.
	AuthKey string
}

// String names the client in messages and logs, never with a secret.
func (c Client) String() string {
	switch {
	case c.AuthKey != "":
		return fmt.Sprintf("auth key %q", c.AuthKey)
	case c.Cert != nil:
		return fmt.Sprintf("certificate %q", c.Cert.Subject.String())
	}
	return "an unauthenticated client"
}

// Validate checks that p can be used: at least one rule, each with a
// match, known roles and cluster IDs, auth key rules naming a defined key
// and no "own" cluster, and every auth key used by a rule.
func (p *Policy) Validate() error {
	if p == nil || len(p.Rules) == 0 {
		return errors.New("extca: the policy has no allow rule: no client could ask for anything")
	}
	used := map[string]bool{}
	for i := range p.Rules {
		r := &p.Rules[i]
		where := r.Source
		if where == "" {
			where = fmt.Sprintf("rule %d", i+1)
		}
		m := r.Match
		switch {
		case m.AuthKey != "" && (m.AnyCert || m.CN != "" || m.O != "" || m.OU != ""):
			return fmt.Errorf("extca: %s: a rule matches an auth key or certificates, not both", where)
		case m.AuthKey == "" && !m.AnyCert && m.CN == "" && m.O == "" && m.OU == "":
			return fmt.Errorf("extca: %s: the rule matches no client: give CN=, O=, OU= or * for certificates, or an auth key", where)
		case m.AuthKey != "" && p.AuthKeys[m.AuthKey] == nil:
			return fmt.Errorf("extca: %s: auth key %q is not defined", where, m.AuthKey)
		case m.AuthKey != "" && r.OwnCluster:
			return fmt.Errorf("extca: %s: \"own\" cluster is for certificate clients (the O of their certificate); an auth key has none", where)
		case !r.AnyCluster && !r.OwnCluster && len(r.Clusters) == 0 && len(r.Roles) > 0:
			return fmt.Errorf("extca: %s: the rule allows roles but no cluster: give clusters=", where)
		case len(r.Roles) == 0 && !r.CrossSign:
			return fmt.Errorf("extca: %s: the rule allows neither a role nor cross-signing", where)
		}
		for _, c := range r.Clusters {
			if !ca.ValidID(c) {
				return fmt.Errorf("extca: %s: %q is not a cluster ID (25 lower-case base-36 characters)", where, c)
			}
		}
		for _, role := range r.Roles {
			if !role.Valid() {
				return fmt.Errorf("extca: %s: unknown role %q", where, role)
			}
		}
		used[m.AuthKey] = true
	}
	for name, k := range p.AuthKeys {
		if k == nil {
			return fmt.Errorf("extca: auth key %q is nil", name)
		}
		if !used[name] {
			return fmt.Errorf("extca: auth key %q is defined but no rule admits it: add \"allow key %s clusters=...\"", name, name)
		}
	}
	return nil
}

// usesCerts reports whether a rule admits certificate holders.
func (p *Policy) usesCerts() bool {
	for _, r := range p.Rules {
		if r.Match.isCert() {
			return true
		}
	}
	return false
}

// keyNames returns the auth keys' names, sorted.
func (p *Policy) keyNames() []string {
	names := make([]string, 0, len(p.AuthKeys))
	for n := range p.AuthKeys {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}

// ruleFor returns the first rule that admits c.
func (p *Policy) ruleFor(c Client) (*Rule, *Refusal) {
	for i := range p.Rules {
		if p.Rules[i].Match.matches(c) {
			return &p.Rules[i], nil
		}
	}
	return nil, badRequest(reasonUnknownClient, "no policy rule admits %s: ask the CA's operator to allow it", c)
}

// authorize checks req against the rule that admitted c.
func (r *Rule) authorize(c Client, req *signRequest) *Refusal {
	if req.profile == ProfileCA {
		if !r.CrossSign {
			return policyRefusal("profile %q refused by %s: %s may not cross-sign", ProfileCA, r.describe(), c)
		}
		return nil
	}
	if !slices.Contains(r.Roles, req.role) {
		return policyRefusal("subject OU %s refused by %s: %s may ask for roles %s", quote(string(req.role)), r.describe(), c, r.rolesText())
	}
	if !r.allowsCluster(c, req.clusterID) {
		return policyRefusal("subject O %s refused by %s: %s may ask for clusters %s", quote(req.clusterID), r.describe(), c, r.clustersText(c))
	}
	return nil
}

func (r *Rule) allowsCluster(c Client, id string) bool {
	switch {
	case r.AnyCluster, slices.Contains(r.Clusters, id):
		return true
	case r.OwnCluster && c.Cert != nil:
		return slices.Contains(c.Cert.Subject.Organization, id)
	}
	return false
}

func (r *Rule) rolesText() string {
	if len(r.Roles) == 0 {
		return "none"
	}
	s := make([]string, len(r.Roles))
	for i, role := range r.Roles {
		s[i] = string(role)
	}
	return strings.Join(s, ", ")
}

func (r *Rule) clustersText(c Client) string {
	if r.AnyCluster {
		return "any"
	}
	var s []string
	if r.OwnCluster && c.Cert != nil {
		for _, o := range c.Cert.Subject.Organization {
			s = append(s, o+" (its own)")
		}
	}
	s = append(s, r.Clusters...)
	if len(s) == 0 {
		return "none"
	}
	return strings.Join(s, ", ")
}
