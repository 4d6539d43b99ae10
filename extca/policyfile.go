package extca

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"

	"github.com/chancery-pki/chancery/ca"
	"github.com/chancery-pki/chancery/internal/cfsslwire"
)

// This file reads a policy file. Its format is in the package
// documentation.

// DefaultPolicy is the policy for a swarm whose managers present their
// node certificates: a manager may ask for node certificates of its own
// cluster, both roles. It may not cross-sign: a cross-signed certificate is
// a CA under this root, as powerful as the root for whoever trusts it, so
// cross-signing is granted only explicitly, in a policy file, for the time
// of a rotation.
const DefaultPolicy = "allow cert OU=swarm-manager clusters=own roles=manager,worker\n"

// MaxPolicyFileSize bounds a policy file.
const MaxPolicyFileSize = 1 << 20

var keyNameRE = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$`)

// LoadPolicy reads the policy file at path. Auth key files it names are
// read relative to its directory.
func LoadPolicy(path string) (*Policy, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("extca: failed to read the policy file: %w", err)
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, MaxPolicyFileSize+1))
	if err != nil {
		return nil, fmt.Errorf("extca: failed to read the policy file %s: %w", path, err)
	}
	if len(data) > MaxPolicyFileSize {
		return nil, fmt.Errorf("extca: the policy file %s is larger than %d bytes", path, MaxPolicyFileSize)
	}
	return ParsePolicy(data, filepath.Base(path), filepath.Dir(path))
}

// ParsePolicy parses a policy file's text. name is the file's name in
// messages and rule sources ("policy.conf:3"); dir is the directory that
// relative auth key file names are read from. The policy is validated.
func ParsePolicy(data []byte, name, dir string) (*Policy, error) {
	p := &Policy{AuthKeys: map[string]*cfsslwire.AuthKey{}}
	sc := bufio.NewScanner(bytes.NewReader(data))
	sc.Buffer(make([]byte, 0, 4096), MaxPolicyFileSize)
	for n := 1; sc.Scan(); n++ {
		where := fmt.Sprintf("%s:%d", name, n)
		line, _, _ := strings.Cut(sc.Text(), "#")
		fields := strings.Fields(line)
		if len(fields) == 0 {
			continue
		}
		var err error
		switch fields[0] {
		case "authkey":
			err = p.parseAuthKey(fields[1:], dir)
		case "allow":
			var r Rule
			if r, err = parseAllow(fields[1:]); err == nil {
				r.Source = where
				p.Rules = append(p.Rules, r)
			}
		default:
			err = fmt.Errorf("unknown directive %q (want allow or authkey)", fields[0])
		}
		if err != nil {
			return nil, fmt.Errorf("extca: %s: %w", where, err)
		}
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("extca: %s: %w", name, err)
	}
	if err := p.Validate(); err != nil {
		return nil, fmt.Errorf("%w (in %s)", err, name)
	}
	return p, nil
}

// parseAuthKey reads "authkey NAME FILE".
func (p *Policy) parseAuthKey(args []string, dir string) error {
	if len(args) != 2 {
		return errors.New("want: authkey NAME FILE")
	}
	name, file := args[0], args[1]
	if !keyNameRE.MatchString(name) {
		return fmt.Errorf("auth key name %q: use letters, digits, '.', '_' and '-' (at most 64)", name)
	}
	if p.AuthKeys[name] != nil {
		return fmt.Errorf("auth key %q is defined twice", name)
	}
	if !filepath.IsAbs(file) {
		file = filepath.Join(dir, file)
	}
	k, err := cfsslwire.ReadAuthKey(file, "")
	if err != nil {
		return fmt.Errorf("auth key %q: %w", name, err)
	}
	p.AuthKeys[name] = k
	return nil
}

// parseAllow reads the fields of "allow cert MATCH... OPTIONS" or "allow
// key NAME OPTIONS".
func parseAllow(args []string) (Rule, error) {
	var r Rule
	if len(args) == 0 {
		return r, errors.New("want: allow cert MATCH... [clusters=...] [roles=...] [cross-sign], or allow key NAME [...]")
	}
	kind, args := args[0], args[1:]
	switch kind {
	case "key":
		if len(args) == 0 {
			return r, errors.New("want: allow key NAME [clusters=...] [roles=...] [cross-sign]")
		}
		r.Match.AuthKey, args = args[0], args[1:]
	case "cert":
	default:
		return r, fmt.Errorf("allow %q: want \"allow cert\" or \"allow key\"", kind)
	}
	r.Roles = []ca.Role{ca.RoleManager, ca.RoleWorker}
	var sawClusters, sawRoles bool
	for _, a := range args {
		key, value, hasValue := strings.Cut(a, "=")
		set := func(dst *string) error {
			if !r.Match.isCert() {
				return fmt.Errorf("%s: an auth key rule matches no certificate attribute", a)
			}
			if *dst != "" {
				return fmt.Errorf("%s is given twice", key)
			}
			if value == "" {
				return fmt.Errorf("%s: empty value", a)
			}
			*dst = value
			return nil
		}
		var err error
		switch {
		case a == "*" && kind == "cert":
			if r.Match.AnyCert {
				return r, errors.New("* is given twice")
			}
			r.Match.AnyCert = true
		case a == "cross-sign":
			r.CrossSign = true
		case key == "CN" && hasValue:
			err = set(&r.Match.CN)
		case key == "O" && hasValue:
			err = set(&r.Match.O)
		case key == "OU" && hasValue:
			err = set(&r.Match.OU)
		case key == "clusters" && hasValue:
			if sawClusters {
				return r, errors.New("clusters= is given twice")
			}
			sawClusters = true
			err = r.parseClusters(value)
		case key == "roles" && hasValue:
			if sawRoles {
				return r, errors.New("roles= is given twice")
			}
			sawRoles = true
			err = r.parseRoles(value)
		default:
			err = fmt.Errorf("unknown field %q (want CN=, O=, OU= or * for certificates, then clusters=, roles=, cross-sign)", a)
		}
		if err != nil {
			return r, err
		}
	}
	if r.Match.AnyCert && (r.Match.CN != "" || r.Match.O != "" || r.Match.OU != "") {
		return r, errors.New("* matches any certificate: give it alone, or CN=, O=, OU=")
	}
	if !sawClusters && r.Match.isCert() {
		r.OwnCluster = true
	}
	return r, nil
}

func (r *Rule) parseClusters(list string) error {
	for _, c := range strings.Split(list, ",") {
		switch c {
		case "*":
			r.AnyCluster = true
		case "own":
			r.OwnCluster = true
		case "":
			return errors.New("clusters=: empty entry")
		default:
			if !ca.ValidID(c) {
				return fmt.Errorf("clusters=: %q is not a cluster ID (25 lower-case base-36 characters), own or *", c)
			}
			r.Clusters = append(r.Clusters, c)
		}
	}
	return nil
}

func (r *Rule) parseRoles(list string) error {
	r.Roles = nil
	if list == "none" {
		return nil
	}
	for _, s := range strings.Split(list, ",") {
		role, err := ca.ParseRole(s)
		if err != nil {
			return fmt.Errorf("roles=: unknown role %q (want manager, worker or none)", s)
		}
		if !slices.Contains(r.Roles, role) {
			r.Roles = append(r.Roles, role)
		}
	}
	return nil
}
