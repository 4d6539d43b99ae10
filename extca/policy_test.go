package extca

import (
	"crypto/x509"
	"crypto/x509/pkix"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/chancery-pki/chancery/ca"
)

func TestParsePolicy(t *testing.T) {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "k.hex"), []byte(testAuthKeyHex), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "bad.hex"), []byte("not hex"), 0o600); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name  string
		text  string
		rules []string // the rules, as String writes them
		err   string
	}{
		{"Default", DefaultPolicy, []string{"allow cert OU=swarm-manager clusters=own roles=manager,worker"}, ""},
		{"CommentsAndBlankLines", "# policy\n\n  allow cert * # any\n", []string{"allow cert * clusters=own roles=manager,worker"}, ""},
		{"Matchers", "allow cert CN=" + testNode + " O=" + testCluster + " OU=swarm-manager clusters=" + otherCluster + ",own roles=swarm-worker",
			[]string{"allow cert CN=" + testNode + " O=" + testCluster + " OU=swarm-manager clusters=own," + otherCluster + " roles=worker"}, ""},
		{"AnyCluster", "allow cert * clusters=* roles=none cross-sign", []string{"allow cert * clusters=* roles=none cross-sign"}, ""},
		{"AuthKey", "authkey ci k.hex\nallow key ci clusters=" + testCluster + " roles=worker",
			[]string{"allow key ci clusters=" + testCluster + " roles=worker"}, ""},
		{"Empty", "# nothing\n", nil, "no allow rule"},
		{"UnknownDirective", "deny cert *", nil, `policy.conf:1: unknown directive "deny"`},
		{"AllowWhat", "allow", nil, "policy.conf:1: want: allow cert"},
		{"AllowUser", "allow user x", nil, `allow "user"`},
		{"CertMatchesNothing", "allow cert clusters=own", nil, "matches no client"},
		{"StarAndAttribute", "allow cert * OU=swarm-manager", nil, "* matches any certificate"},
		{"UnknownField", "allow cert * ttl=1h", nil, `unknown field "ttl=1h"`},
		{"EmptyValue", "allow cert OU=", nil, "OU=: empty value"},
		{"TwiceAttribute", "allow cert OU=a OU=b", nil, "OU is given twice"},
		{"BadCluster", "allow cert * clusters=prod", nil, `"prod" is not a cluster ID`},
		{"BadRole", "allow cert * roles=admin", nil, `unknown role "admin"`},
		{"NothingAllowed", "allow cert * roles=none", nil, "neither a role nor cross-signing"},
		{"KeyUndefined", "allow key ci clusters=*", nil, `auth key "ci" is not defined`},
		{"KeyUnused", "authkey ci k.hex\nallow cert *", nil, `auth key "ci" is defined but no rule admits it`},
		{"KeyTwice", "authkey ci k.hex\nauthkey ci k.hex", nil, "policy.conf:2: auth key \"ci\" is defined twice"},
		{"KeyBadName", "authkey c/i k.hex", nil, `auth key name "c/i"`},
		{"KeyFileMissing", "authkey ci missing.hex", nil, "failed to read the auth key file"},
		{"KeyNotHex", "authkey ci bad.hex", nil, "not hex"},
		{"KeyOwnCluster", "authkey ci k.hex\nallow key ci clusters=own", nil, `"own" cluster is for certificate clients`},
		{"KeyNoCluster", "authkey ci k.hex\nallow key ci", nil, "allows roles but no cluster"},
		{"KeyWithAttribute", "authkey ci k.hex\nallow key ci OU=x clusters=*", nil, "an auth key rule matches no certificate attribute"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p, err := ParsePolicy([]byte(tt.text), "policy.conf", dir)
			if tt.err != "" {
				if err == nil || !strings.Contains(err.Error(), tt.err) {
					t.Fatalf("error %v, want one with %q", err, tt.err)
				}
				if strings.Contains(err.Error(), testAuthKeyHex) {
					t.Error("the error shows the auth key")
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			var got []string
			for _, r := range p.Rules {
				got = append(got, r.String())
			}
			if strings.Join(got, "\n") != strings.Join(tt.rules, "\n") {
				t.Errorf("rules\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(tt.rules, "\n"))
			}
		})
	}
}

func TestLoadPolicy(t *testing.T) {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "ci.hex"), []byte(testAuthKeyHex), 0o600); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, "extca.policy")
	if err := os.WriteFile(path, []byte(testPolicy), 0o600); err != nil {
		t.Fatal(err)
	}
	p, err := LoadPolicy(path)
	if err != nil {
		t.Fatal(err)
	}
	if p.Rules[1].Source != "extca.policy:4" || p.AuthKeys["ci"] == nil {
		t.Errorf("rules %+v, keys %v", p.Rules, p.AuthKeys)
	}
	if _, err := LoadPolicy(filepath.Join(dir, "missing")); err == nil || !strings.Contains(err.Error(), "failed to read the policy file") {
		t.Errorf("missing file: %v", err)
	}
}

// TestAuthorize checks the decisions of rules for certificate and key
// clients.
func TestAuthorize(t *testing.T) {
	p, err := ParsePolicy([]byte(`allow cert OU=swarm-manager O=`+testCluster+` clusters=own cross-sign
allow cert CN=`+testNode+` clusters=`+otherCluster+` roles=worker
allow cert * roles=none cross-sign clusters=*
`), "p", "")
	if err != nil {
		t.Fatal(err)
	}
	cert := func(cn, o, ou string) Client {
		return Client{Cert: &x509.Certificate{Subject: pkix.Name{CommonName: cn, Organization: []string{o}, OrganizationalUnit: []string{ou}}}}
	}
	node := func(cluster string, role ca.Role) *signRequest {
		return &signRequest{profile: ProfileDefault, clusterID: cluster, nodeID: testNode, role: role}
	}
	cross := &signRequest{profile: ProfileCA}
	manager := cert(testManagerNode, testCluster, "swarm-manager")
	tests := []struct {
		name   string
		client Client
		req    *signRequest
		rule   string // the rule's source, or "" when no rule admits
		err    string
	}{
		{"OwnClusterWorker", manager, node(testCluster, ca.RoleWorker), "p:1", ""},
		{"OwnClusterManager", manager, node(testCluster, ca.RoleManager), "p:1", ""},
		{"ManagerCrossSigns", manager, cross, "p:1", ""},
		{"ManagerOtherCluster", manager, node(otherCluster, ca.RoleWorker), "p:1", `subject O "` + otherCluster + `" refused by rule p:1`},
		{"ByCN", cert(testNode, "x", "swarm-worker"), node(otherCluster, ca.RoleWorker), "p:2", ""},
		{"ByCNRoleRefused", cert(testNode, "x", "swarm-worker"), node(otherCluster, ca.RoleManager), "p:2", "may ask for roles swarm-worker"},
		{"ByCNNoCrossSign", cert(testNode, "x", "swarm-worker"), cross, "p:2", "may not cross-sign"},
		{"AnyCertCrossSignsOnly", cert("other", "x", "y"), node(testCluster, ca.RoleWorker), "p:3", "may ask for roles none"},
		{"AnyCertCrossSign", cert("other", "x", "y"), cross, "p:3", ""},
		{"UnknownKey", Client{AuthKey: "nope"}, cross, "", `no policy rule admits auth key "nope"`},
		{"Unauthenticated", Client{}, cross, "", "no policy rule admits an unauthenticated client"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r, rf := p.ruleFor(tt.client)
			if tt.rule == "" {
				if rf == nil || !strings.Contains(rf.Message, tt.err) {
					t.Fatalf("ruleFor: %v, want a refusal with %q", rf, tt.err)
				}
				return
			}
			if rf != nil || r.Source != tt.rule {
				t.Fatalf("ruleFor: rule %v, refusal %v; want rule %s", r, rf, tt.rule)
			}
			rf = r.authorize(tt.client, tt.req)
			switch {
			case tt.err == "" && rf != nil:
				t.Errorf("refused: %s", rf.Message)
			case tt.err != "" && (rf == nil || !strings.Contains(rf.Message, tt.err)):
				t.Errorf("refusal %v, want one with %q", rf, tt.err)
			case rf != nil && rf.Code != CodePolicyViolation:
				t.Errorf("code %d, want %d", rf.Code, CodePolicyViolation)
			}
		})
	}
}

// DefaultPolicy never grants cross-signing: a cross-signed certificate is a
// CA under the root, granted only explicitly.
func TestDefaultPolicyDoesNotCrossSign(t *testing.T) {
	if !strings.Contains(DefaultPolicy, "roles=") || strings.Contains(DefaultPolicy, "cross-sign") {
		t.Errorf("DefaultPolicy %q grants cross-signing", DefaultPolicy)
	}
}

// The package documentation shows DefaultPolicy as it is.
func TestDocShowsDefaultPolicy(t *testing.T) {
	doc, err := os.ReadFile("doc.go")
	if err != nil {
		t.Fatal(err)
	}
	_, after, ok := strings.Cut(string(doc), "DefaultPolicy admits")
	if !ok {
		t.Fatal("doc.go does not describe DefaultPolicy")
	}
	var shown string
	for line := range strings.Lines(after) {
		if l, ok := strings.CutPrefix(line, "//\t"); ok {
			shown = strings.TrimSpace(l)
			break
		}
	}
	if want := strings.TrimSpace(DefaultPolicy); shown != want {
		t.Errorf("doc.go shows DefaultPolicy as %q, want %q", shown, want)
	}
}
