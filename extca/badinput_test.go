package extca

import (
	"bytes"
	"crypto"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/chancery-pki/chancery/audit"
	"github.com/chancery-pki/chancery/ca"
	"github.com/chancery-pki/chancery/internal/weakcsr"
)

// TestBadInputs sends what the endpoint must refuse. Each is answered
// with CFSSL's error envelope (success false, result null, one error with
// a code and a message saying what is wrong), the HTTP status CFSSL uses,
// no certificate, and no change of state: the replay cache is as before
// and the audit log gains only the refusal.
func TestBadInputs(t *testing.T) {
	env := startEnv(t, envOptions{})
	mgr := env.client(t, env.Manager)
	anon := env.client(t)
	worker := env.client(t, nodeCert(t, env.SwarmRoot, testCluster, testNode, ca.RoleWorker))

	csr := csrPEM(t, newKey(t), pkix.Name{})
	node := func(mod func(m map[string]any)) []byte {
		var m map[string]any
		if err := json.Unmarshal(nodeRequestJSON(t, csr, testCluster, testNode, ca.RoleWorker), &m); err != nil {
			t.Fatal(err)
		}
		if mod != nil {
			mod(m)
		}
		return mustJSON(t, m)
	}
	keyNode := func(mod func(m map[string]any)) []byte {
		return node(func(m map[string]any) {
			m["subject"] = map[string]any{"CN": testNode, "names": []map[string]string{{"O": otherCluster, "OU": "swarm-worker"}}}
			if mod != nil {
				mod(m)
			}
		})
	}
	newRoot, rootKey := newIssuer(t, "swarm-ca")
	cross := func(mod func(m map[string]any)) []byte {
		var m map[string]any
		if err := json.Unmarshal(crossSignRequestJSON(t, csrPEMRaw(t, rootKey, newRoot.Chain()[0].RawSubject)), &m); err != nil {
			t.Fatal(err)
		}
		if mod != nil {
			mod(m)
		}
		return mustJSON(t, m)
	}
	block, _ := pem.Decode(csr)
	badSig := append([]byte(nil), block.Bytes...)
	badSig[len(badSig)-3] ^= 0xff
	badSigPEM := string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE REQUEST", Bytes: badSig}))

	rsaKey, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	sha1CSR, err := weakcsr.SignedWith(rsaKey, crypto.SHA1, testNode)
	if err != nil {
		t.Fatal(err)
	}
	md5CSR, err := weakcsr.SignedWith(rsaKey, crypto.MD5, testNode)
	if err != nil {
		t.Fatal(err)
	}
	e3Key, err := weakcsr.RSAKey(2048, 3)
	if err != nil {
		t.Fatal(err)
	}
	e3CSR, err := weakcsr.CSR(e3Key, testNode)
	if err != nil {
		t.Fatal(err)
	}

	now := time.Now()
	auth := func(req []byte) []byte { return authBody(t, testAuthKeyHex, req, now) }
	tests := []struct {
		name   string
		client *http.Client
		path   string
		body   []byte
		status int
		code   int
		want   string
	}{
		{"MalformedJSON", mgr, PathSign, []byte(`{"hosts":`), 400, 400, "malformed sign request: not JSON"},
		{"NotAnObject", mgr, PathSign, []byte(`[1,2]`), 400, 400, "want an object"},
		{"WrongType", mgr, PathSign, node(func(m map[string]any) { m["hosts"] = "swarm-worker" }), 400, 400, `field "hosts" is a JSON string`},
		{"NoCSR", mgr, PathSign, node(func(m map[string]any) { delete(m, "certificate_request") }), 400, 400, "missing parameter 'certificate_request'"},
		{"CSRNotPEM", mgr, PathSign, node(func(m map[string]any) { m["certificate_request"] = "MIIB" }), 400, CodeCSRDecode, "is not PEM"},
		{"CSRWrongPEMType", mgr, PathSign, node(func(m map[string]any) {
			m["certificate_request"] = string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: block.Bytes}))
		}), 400, CodeCSRDecode, `"CERTIFICATE" PEM block`},
		{"CSRGarbage", mgr, PathSign, node(func(m map[string]any) {
			m["certificate_request"] = string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE REQUEST", Bytes: []byte("garbage")}))
		}), 400, CodeCSRParse, "certificate_request: invalid CSR"},
		{"CSRBadSignature", mgr, PathSign, node(func(m map[string]any) { m["certificate_request"] = badSigPEM }), 400, CodeCSRParse, "bad signature"},
		{"CrossSignCSRBadSignature", mgr, PathSign, cross(func(m map[string]any) { m["certificate_request"] = badSigPEM }), 400, CodeCSRParse, "bad signature"},
		{"CSRSHA1", mgr, PathSign, node(func(m map[string]any) { m["certificate_request"] = string(sha1CSR) }), 400, CodeCSRParse, "signed with SHA1-RSA: MD5 and SHA-1 signatures are refused"},
		{"CSRMD5", mgr, PathSign, node(func(m map[string]any) { m["certificate_request"] = string(md5CSR) }), 400, CodeCSRParse, "signed with MD5-RSA: MD5 and SHA-1 signatures are refused"},
		{"CrossSignCSRSHA1", mgr, PathSign, cross(func(m map[string]any) { m["certificate_request"] = string(sha1CSR) }), 400, CodeCSRParse, "signed with SHA1-RSA: MD5 and SHA-1 signatures are refused"},
		{"CSRExponent3", mgr, PathSign, node(func(m map[string]any) { m["certificate_request"] = string(e3CSR) }), 400, CodeCSRParse, "RSA public exponent 3 is refused (want 65537)"},
		{"CrossSignCSRExponent3", mgr, PathSign, cross(func(m map[string]any) { m["certificate_request"] = string(e3CSR) }), 400, CodeCSRParse, "RSA public exponent 3 is refused (want 65537)"},
		{"UnknownProfile", mgr, PathSign, node(func(m map[string]any) { m["profile"] = "ca" }), 400, CodeUnknownProfile, `unknown profile "ca"`},
		{"NoClientCertificate", anon, PathSign, node(nil), 400, 400, "authentication required"},
		{"NoRuleForClient", worker, PathSign, node(nil), 400, 400, "no policy rule admits certificate"},
		{"OtherCluster", mgr, PathSign, node(func(m map[string]any) {
			m["subject"] = map[string]any{"CN": testNode, "names": []map[string]string{{"O": otherCluster, "OU": "swarm-worker"}}}
		}), 400, CodePolicyViolation, `subject O "` + otherCluster + `" refused by rule policy.conf:2`},
		{"RoleNotAllowed", anon, PathAuthSign, auth(keyNode(func(m map[string]any) {
			m["subject"] = map[string]any{"CN": testNode, "names": []map[string]string{{"O": otherCluster, "OU": "swarm-manager"}}}
			m["hosts"] = ca.NodeDNSNames(testNode, ca.RoleManager)
		})), 400, CodePolicyViolation, `subject OU "swarm-manager" refused by rule policy.conf:4`},
		{"CrossSignNotAllowed", anon, PathAuthSign, auth(cross(nil)), 400, CodePolicyViolation, `profile "CA" refused by rule policy.conf:4 (allow key ci clusters=` + otherCluster + ` roles=worker): auth key "ci" may not cross-sign`},
		{"BadToken", anon, PathAuthSign, authBody(t, "ffffffffffffffffffffffffffffffff", keyNode(nil), now), 400, 400, "invalid token"},
		{"TamperedRequest", anon, PathAuthSign, func() []byte {
			var ar map[string]any
			json.Unmarshal(auth(keyNode(nil)), &ar)
			ar["request"] = keyNode(func(m map[string]any) { m["label"] = "x" })
			return mustJSON(t, ar)
		}(), 400, 400, "invalid token"},
		{"ShortToken", anon, PathAuthSign, []byte(`{"timestamp":1,"token":"AAAA","request":"e30="}`), 400, 400, "invalid token"},
		{"MalformedAuthEnvelope", anon, PathAuthSign, []byte(`{"token":`), 400, 400, "malformed authsign request"},
		{"AuthEnvelopeNoRequest", anon, PathAuthSign, []byte(`{"token":"AAAA"}`), 400, 400, "request is missing"},
		{"NoTimestamp", anon, PathAuthSign, authBody(t, testAuthKeyHex, keyNode(nil), time.Time{}), 400, 400, "has no timestamp"},
		{"StaleTimestamp", anon, PathAuthSign, authBody(t, testAuthKeyHex, keyNode(nil), now.Add(-time.Hour)), 400, 400, "is more than 5m0s from this CA's clock"},
		{"OversizedBody", mgr, PathSign, bytes.Repeat([]byte(" "), testBodyCapBytes+1), 413, 413, "larger than 262144 bytes"},
		{"GET", mgr, PathSign, nil, 405, 405, `method "GET" is not allowed`},
		{"UnknownPath", mgr, "/api/v1/cfssl/bundle", []byte(`{}`), 404, 404, "no such endpoint"},
		{"NotBeforeSet", mgr, PathSign, node(func(m map[string]any) { m["NotBefore"] = "2030-01-01T00:00:00Z" }), 400, 400, "NotBefore: this CA sets the validity itself"},
		{"NotAfterBad", mgr, PathSign, node(func(m map[string]any) { m["NotAfter"] = "tomorrow" }), 400, 400, "NotAfter is not a time"},
		{"Serial", mgr, PathSign, node(func(m map[string]any) { m["serial"] = 42 }), 400, 400, "serial: this CA draws serial numbers"},
		{"Precert", mgr, PathSign, node(func(m map[string]any) { m["ReturnPrecert"] = true }), 400, 400, "ReturnPrecert"},
		{"CRLOverride", mgr, PathSign, node(func(m map[string]any) { m["crl_override"] = "http://crl" }), 400, 400, "crl_override"},
		{"Expiry", mgr, PathSign, node(func(m map[string]any) { m["expiry"] = "1h" }), 400, 400, "expiry: this CA sets"},
		{"Bundle", mgr, PathSign, node(func(m map[string]any) { m["bundle"] = true }), 400, 400, "bundle"},
		{"HostsAndHostname", mgr, PathSign, node(func(m map[string]any) { m["hostname"] = "a,b" }), 400, 400, "both hosts and hostname"},
		{"WrongHosts", mgr, PathSign, node(func(m map[string]any) { m["hosts"] = []string{"swarm-worker", testNode, "evil.example"} }), 400, CodePolicyViolation, "hosts: got"},
		{"NoSubject", mgr, PathSign, node(func(m map[string]any) { delete(m, "subject") }), 400, CodePolicyViolation, "subject is missing"},
		{"SubjectCountry", mgr, PathSign, node(func(m map[string]any) {
			m["subject"] = map[string]any{"CN": testNode, "names": []map[string]string{{"O": testCluster, "OU": "swarm-worker", "C": "US"}}}
		}), 400, CodePolicyViolation, "without C, ST or L"},
		{"SubjectSerialNumber", mgr, PathSign, node(func(m map[string]any) {
			m["subject"] = map[string]any{"CN": testNode, "SerialNumber": "7", "names": []map[string]string{{"O": testCluster, "OU": "swarm-worker"}}}
		}), 400, 400, `attribute "SerialNumber" is not supported`},
		{"SubjectBadCN", mgr, PathSign, node(func(m map[string]any) {
			m["subject"] = map[string]any{"CN": "node1", "names": []map[string]string{{"O": testCluster, "OU": "swarm-worker"}}}
		}), 400, CodePolicyViolation, `subject CN "node1" is not a node ID`},
		{"SubjectTwoOUs", mgr, PathSign, node(func(m map[string]any) {
			m["subject"] = map[string]any{"CN": testNode, "names": []map[string]string{{"O": testCluster, "OU": "swarm-worker"}, {"OU": "swarm-manager"}}}
		}), 400, CodePolicyViolation, "2 OU values"},
		{"SubjectUnknownRole", mgr, PathSign, node(func(m map[string]any) {
			m["subject"] = map[string]any{"CN": testNode, "names": []map[string]string{{"O": testCluster, "OU": "swarm-admin"}}}
		}), 400, CodePolicyViolation, `subject OU "swarm-admin" is not a role`},
		{"NodeExtensions", mgr, PathSign, node(func(m map[string]any) {
			m["extensions"] = []map[string]any{{"id": "2.5.29.19", "critical": true, "value": "30030101ff"}}
		}), 400, CodePolicyViolation, "a node certificate takes none"},
		{"CrossSignOtherExtension", mgr, PathSign, cross(func(m map[string]any) {
			m["extensions"] = []map[string]any{{"id": "2.5.29.17", "critical": false, "value": "3000"}}
		}), 400, CodePolicyViolation, `extension "2.5.29.17" is not allowed`},
		{"CrossSignCAFalse", mgr, PathSign, cross(func(m map[string]any) {
			m["extensions"] = []map[string]any{{"id": "2.5.29.19", "critical": true, "value": "3000"}}
		}), 400, CodePolicyViolation, "say CA:FALSE"},
		{"CrossSignExtensionNotHex", mgr, PathSign, cross(func(m map[string]any) {
			m["extensions"] = []map[string]any{{"id": "2.5.29.19", "critical": true, "value": "zz"}}
		}), 400, 400, "value is not hex"},
		{"CrossSignSubjectDiffers", mgr, PathSign, cross(func(m map[string]any) {
			m["subject"] = map[string]any{"CN": "other-ca", "names": []any{}}
		}), 400, CodePolicyViolation, "differs from the CSR's"},
		{"CrossSignHosts", mgr, PathSign, cross(func(m map[string]any) { m["hosts"] = []string{"ca.example"} }), 400, CodePolicyViolation, "a CA certificate carries no SANs"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cached := env.Server.replay.len()
			events := len(env.Audit.all())
			var a answer
			if tt.body == nil {
				resp, err := tt.client.Get(env.URL + tt.path)
				if err != nil {
					t.Fatal(err)
				}
				a = decodeAnswer(t, resp)
			} else {
				a = post(t, tt.client, env.URL+tt.path, tt.body)
			}
			checkRefusal(t, a, tt.status, tt.code, tt.want)
			if n := env.Server.replay.len(); n != cached {
				t.Errorf("replay cache holds %d tokens, had %d", n, cached)
			}
			for _, ev := range env.Audit.all()[events:] {
				if ev.Action != audit.ActionRefused {
					t.Errorf("audit log gained %s", ev.Action)
				}
			}
		})
	}
}

// TestReplayedAuthSign refuses an authsign request sent again after it
// got a certificate, whatever its timestamp; an identical request that
// was refused first is served when it comes back.
func TestReplayedAuthSign(t *testing.T) {
	env := startEnv(t, envOptions{})
	c := env.client(t)
	req := nodeRequestJSON(t, csrPEM(t, newKey(t), pkix.Name{}), otherCluster, testNode, ca.RoleWorker)
	body := authBody(t, testAuthKeyHex, req, time.Now())
	post(t, c, env.URL+PathAuthSign, body).certificates(t)

	a := post(t, c, env.URL+PathAuthSign, body)
	checkRefusal(t, a, 400, 400, "replayed authsign request")
	// The timestamp is not covered by the token: a fresh one does not
	// help a replay.
	a = post(t, c, env.URL+PathAuthSign, authBody(t, testAuthKeyHex, req, time.Now().Add(time.Second)))
	checkRefusal(t, a, 400, 400, "replayed authsign request")
	if last := env.Audit.all()[len(env.Audit.all())-1]; last.Action != audit.ActionRefused || last.Reason != reasonReplayed {
		t.Errorf("last audit event %+v, want a refused replay", last)
	}
}

func decodeAnswer(t *testing.T, resp *http.Response) answer {
	t.Helper()
	defer resp.Body.Close()
	var buf bytes.Buffer
	buf.ReadFrom(resp.Body)
	a := answer{Status: resp.StatusCode, Raw: buf.Bytes()}
	if err := json.Unmarshal(a.Raw, &a.Body); err != nil {
		t.Fatalf("answer is not CFSSL's JSON: %v\n%s", err, a.Raw)
	}
	return a
}

// checkRefusal checks a CFSSL-shaped refusal.
func checkRefusal(t *testing.T, a answer, status, code int, want string) {
	t.Helper()
	if a.Status != status {
		t.Errorf("status %d, want %d: %s", a.Status, status, a.Raw)
	}
	if a.Body.Success || string(a.Body.Result) != "null" || a.Body.Messages == nil {
		t.Errorf("answer %s, want success false, result null, messages []", a.Raw)
	}
	if len(a.Body.Errors) != 1 {
		t.Fatalf("errors %v, want one", a.Body.Errors)
	}
	if e := a.Body.Errors[0]; e.Code != code || !strings.Contains(e.Message, want) {
		t.Errorf("error {%d %q}, want code %d and a message with %q", e.Code, e.Message, code, want)
	}
	if bytes.Contains(a.Raw, []byte("BEGIN CERTIFICATE")) {
		t.Error("the refusal carries a certificate")
	}
}
