package extca

import (
	"crypto/x509/pkix"
	"strings"
	"testing"

	"github.com/chancery-pki/chancery/ca"
)

// FuzzParseSignRequest feeds the sign request parser arbitrary bytes: it
// never panics, and what it accepts is a well-formed request.
func FuzzParseSignRequest(f *testing.F) {
	csr := csrPEM(f, newKey(f), pkix.Name{CommonName: "x"})
	f.Add(nodeRequestJSON(f, csr, testCluster, testNode, ca.RoleWorker))
	f.Add(nodeRequestJSON(f, csr, testCluster, testNode, ca.RoleManager))
	f.Add(crossSignRequestJSON(f, csr))
	f.Add([]byte(`{"hostname":"swarm-worker,` + testNode + `","certificate_request":"` + strings.ReplaceAll(string(csr), "\n", `\n`) +
		`","subject":{"CN":"` + testNode + `","names":[{"C":"","O":"` + testCluster + `","OU":"swarm-worker","SerialNumber":""}],"SerialNumber":""},"profile":"","label":""}`))
	f.Add([]byte(`{"profile":"CA","extensions":[{"id":"2.5.29.14","critical":false,"value":"0401ff"}]}`))
	f.Add([]byte(`{"subject":{"names":[{"OID":{}}]}}`))
	f.Add([]byte(`{"NotBefore":null,"serial":null,"metadata":{"a":1}}`))
	f.Add([]byte(`[]`))
	f.Add([]byte(`{`))
	f.Fuzz(func(t *testing.T, body []byte) {
		req, rf := parseSignRequest(body)
		if rf != nil {
			if req != nil || rf.Message == "" || rf.Status != 400 {
				t.Fatalf("refusal %+v with request %v", rf, req)
			}
			return
		}
		if len(req.csrDER) == 0 || req.maxPathLen < -1 {
			t.Fatalf("accepted %+v", req)
		}
		switch req.profile {
		case ProfileDefault:
			if !ca.ValidID(req.clusterID) || !ca.ValidID(req.nodeID) || !req.role.Valid() {
				t.Fatalf("accepted node request %+v", req)
			}
		case ProfileCA:
		default:
			t.Fatalf("accepted profile %q", req.profile)
		}
	})
}

// FuzzParsePolicy feeds the policy parser arbitrary text: it never
// panics, and what it accepts validates.
func FuzzParsePolicy(f *testing.F) {
	f.Add(DefaultPolicy)
	f.Add("allow cert CN=a O=b OU=c clusters=own," + testCluster + " roles=worker,manager cross-sign\n")
	f.Add("allow cert * clusters=* roles=none cross-sign # c\n")
	f.Add("authkey k /nonexistent\nallow key k clusters=*\n")
	f.Fuzz(func(t *testing.T, text string) {
		p, err := ParsePolicy([]byte(text), "fuzz", t.TempDir())
		if err != nil {
			return
		}
		if err := p.Validate(); err != nil {
			t.Fatalf("ParsePolicy accepted a policy Validate refuses: %v", err)
		}
	})
}
