package cluster

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chancery-pki/chancery/audit"
	"github.com/chancery-pki/chancery/backends/file"
	_ "github.com/chancery-pki/chancery/backends/pkcs11" // registers the pkcs11 backend
	_ "github.com/chancery-pki/chancery/backends/vault"  // registers the vault backend
	"github.com/chancery-pki/chancery/rotation"
	"github.com/chancery-pki/chancery/store"
	"github.com/chancery-pki/chancery/store/storetest"
)

// forgetEntries returns the details of the forget-key audit entries.
func forgetEntries(t *testing.T, st store.Store) []map[string]string {
	t.Helper()
	recs, err := st.AuditRecords(context.Background(), 0, 0)
	if err != nil {
		t.Fatal(err)
	}
	var out []map[string]string
	for _, r := range recs {
		var e audit.Entry
		if err := json.Unmarshal(r.Data, &e); err != nil {
			t.Fatal(err)
		}
		if e.Action == audit.ActionRootRotation && e.Details["step"] == "forget-key" {
			out = append(out, e.Details)
		}
	}
	return out
}

// TestForgetRetiredOutcomes queues retired keys of every kind and checks
// what ForgetRetired makes of each: a key file chancery made is deleted;
// an HSM key or a Vault issuer is kept unless chancery made it and the
// operator asked; an external CA is kept; a key that a root in use names
// is never deleted. Each outcome leaves the queue with its audit entry.
func TestForgetRetiredOutcomes(t *testing.T) {
	ctx := context.Background()
	dataDir, st, _ := newCluster(t)
	cur := clusterRecord(t, st)
	keyFile := filepath.Join(dataDir, "ca", "root-ca-old.key")
	if err := os.WriteFile(keyFile, []byte("stand-in"), 0o600); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name    string
		key     store.RetiredKey
		outcome string
		detail  string
	}{
		{"a key file chancery made", store.RetiredKey{Root: store.Root{Backend: store.BackendConfig{Type: "file",
			Settings: map[string]string{file.SettingKeyPath: "ca/root-ca-old.key"}}}, Reason: store.RetiredDone},
			ForgetDeleted, "chancery made this key file"},
		{"an HSM key, not asked", store.RetiredKey{Root: store.Root{Backend: store.BackendConfig{Type: "pkcs11",
			Settings: map[string]string{"uri": "pkcs11:token=t;object=old", "generated": "true"}}}, Reason: store.RetiredDone},
			ForgetKept, "did not ask"},
		{"an HSM key chancery did not make, asked", store.RetiredKey{Root: store.Root{Backend: store.BackendConfig{Type: "pkcs11",
			Settings: map[string]string{"uri": "pkcs11:token=t;object=old", "generated": "false"}}}, Reason: store.RetiredDone, Delete: true},
			ForgetKept, "chancery did not make this key"},
		{"a Vault issuer, not asked", store.RetiredKey{Root: store.Root{Backend: store.BackendConfig{Type: "vault",
			Settings: map[string]string{"address": "https://vault.invalid:8200", "generated": "true"}}}, Reason: store.RetiredAborted},
			ForgetKept, "did not ask"},
		{"an external CA, asked", store.RetiredKey{Root: store.Root{Backend: store.BackendConfig{Type: "cfssl",
			Settings: map[string]string{"external_ca.1": "protocol=cfssl,url=https://ca.invalid/api/v1/cfssl/sign"}}}, Reason: store.RetiredDone, Delete: true},
			ForgetKept, "not chancery's to delete"},
		{"the current root's key, under another certificate", store.RetiredKey{Root: store.Root{Backend: cur.Backend}, Reason: store.RetiredReplaced, Delete: true},
			ForgetKept, "a root in use names the same key"},
	}
	for i := range tests {
		tests[i].key.Root.CertPEM = storetest.CertPEM("MIK" + string(rune('a'+i)))
	}
	if _, err := st.UpdateCluster(ctx, func(c *store.Cluster) error {
		for _, tt := range tests {
			c.RetiredKeys = append(c.RetiredKeys, tt.key)
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	c, err := ForgetRetired(ctx, st, dataDir, testNow)
	if err != nil {
		t.Fatalf("ForgetRetired: %v", err)
	}
	if len(c.RetiredKeys) != 0 {
		t.Errorf("%d keys still queued: %+v", len(c.RetiredKeys), c.RetiredKeys)
	}
	entries := forgetEntries(t, st)
	if len(entries) != len(tests) {
		t.Fatalf("%d forget-key audit entries, want %d", len(entries), len(tests))
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := entries[i]
			if e["outcome"] != tt.outcome || !strings.Contains(e["detail"], tt.detail) || e["reason"] != tt.key.Reason ||
				e["root_backend"] != tt.key.Root.Backend.Type {
				t.Errorf("audit entry %v, want outcome %q with a detail containing %q", e, tt.outcome, tt.detail)
			}
		})
	}
	if _, err := os.Stat(keyFile); !os.IsNotExist(err) {
		t.Errorf("the retired key file is still there (%v)", err)
	}
	// The current root's key file is untouched.
	if _, err := OpenSigner(ctx, dataDir, c, nil, nil); err != nil {
		t.Errorf("the current root no longer opens: %v", err)
	}
}

// TestForgetRetiredRetries: a deletion that fails stays queued, with the
// error, and is tried again after a growing delay, not before; after
// MaxForgetAttempts it is given up, with an audit entry that says to
// delete the key by hand. A deletion that succeeds on a later attempt
// leaves the queue as deleted.
func TestForgetRetiredRetries(t *testing.T) {
	ctx := context.Background()
	dataDir, st, _ := newCluster(t)
	// A key "file" that cannot be removed: a directory that is not empty.
	stuck := filepath.Join(dataDir, "ca", "root-ca-stuck.key")
	if err := os.MkdirAll(filepath.Join(stuck, "x"), 0o700); err != nil {
		t.Fatal(err)
	}
	later := filepath.Join(dataDir, "ca", "root-ca-later.key")
	if err := os.MkdirAll(filepath.Join(later, "x"), 0o700); err != nil {
		t.Fatal(err)
	}
	queue := func(name, body string) store.RetiredKey {
		return store.RetiredKey{Root: store.Root{CertPEM: storetest.CertPEM(body), Backend: store.BackendConfig{Type: "file",
			Settings: map[string]string{file.SettingKeyPath: "ca/" + name}}}, Reason: store.RetiredDone}
	}
	if _, err := st.UpdateCluster(ctx, func(c *store.Cluster) error {
		c.RetiredKeys = append(c.RetiredKeys, queue("root-ca-stuck.key", "MIIS"), queue("root-ca-later.key", "MIIL"))
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	now := testNow
	for attempt := 1; attempt < MaxForgetAttempts; attempt++ {
		c, err := ForgetRetired(ctx, st, dataDir, now)
		if err == nil || !strings.Contains(err.Error(), "failed to remove the key file") {
			t.Fatalf("attempt %d: %v, want the removal's error", attempt, err)
		}
		want := 2
		if attempt > 3 {
			want = 1 // the second was deleted at the fourth attempt
		}
		if len(c.RetiredKeys) != want || c.RetiredKeys[0].Attempts != attempt || c.RetiredKeys[0].LastError == "" ||
			!c.RetiredKeys[0].NextAttempt.Equal(now.Add(forgetBackoff(attempt))) {
			t.Fatalf("attempt %d: queue %+v", attempt, c.RetiredKeys)
		}
		// Not tried again before its time.
		if _, err := ForgetRetired(ctx, st, dataDir, now.Add(forgetBackoff(attempt)-time.Second)); err != nil {
			t.Fatalf("attempt %d: tried again before its time: %v", attempt, err)
		}
		now = now.Add(forgetBackoff(attempt))
		if attempt == 3 {
			// The operator fixes the second one meanwhile.
			if err := os.RemoveAll(filepath.Join(later, "x")); err != nil {
				t.Fatal(err)
			}
		}
	}
	c, err := ForgetRetired(ctx, st, dataDir, now)
	if err == nil {
		t.Fatal("the last attempt did not fail")
	}
	if len(c.RetiredKeys) != 0 {
		t.Fatalf("after the last attempt, queue %+v", c.RetiredKeys)
	}
	var retries, failed, deleted int
	for _, e := range forgetEntries(t, st) {
		switch e["outcome"] {
		case ForgetRetry:
			retries++
		case ForgetFailed:
			failed++
			if !strings.Contains(e["detail"], "delete the key by hand") {
				t.Errorf("the give-up entry: %v", e)
			}
		case ForgetDeleted:
			deleted++
		}
	}
	if retries != MaxForgetAttempts-1+3 || failed != 1 || deleted != 1 {
		t.Errorf("audit entries: %d retries, %d failed, %d deleted; want %d, 1, 1", retries, failed, deleted, MaxForgetAttempts+2)
	}
	if _, err := os.Stat(later); !os.IsNotExist(err) {
		t.Errorf("the second key was not deleted once it could be (%v)", err)
	}
}

// TestFinishRotationRetiresOldKey: the old root's key is queued in the same
// update that finishes the rotation, with the operator's consent, so that
// a manager killed right after still forgets it when it comes back.
func TestFinishRotationRetiresOldKey(t *testing.T) {
	ctx := context.Background()
	dataDir, st, auth := newCluster(t)
	oldKey := filepath.Join(dataDir, clusterRecord(t, st).Backend.Settings[file.SettingKeyPath])
	c, err := StartRotation(ctx, st, RotateRequest{DataDir: dataDir, DeleteOldKey: true, Now: fixedNow})
	if err != nil {
		t.Fatal(err)
	}
	if !c.Rotation.DeleteOldKey {
		t.Error("the rotation does not record the consent to delete the old key")
	}
	target := c.Rotation.Target
	next, err := OpenRoot(ctx, dataDir, target, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	appendix, err := rotation.CrossSign(ctx, auth.Signer(), next, rotation.Options{Now: testNow})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := RecordAppendix(ctx, st, target.CertPEM, appendix, rotation.PathPublicKey, testNow); err != nil {
		t.Fatal(err)
	}
	if _, err := SwitchTrust(ctx, st, target.CertPEM, testNow, nil); err != nil {
		t.Fatal(err)
	}
	c, old, err := FinishRotation(ctx, st, target.CertPEM, testNow.Add(time.Minute))
	if err != nil {
		t.Fatal(err)
	}
	if len(c.RetiredKeys) != 1 || string(c.RetiredKeys[0].Root.CertPEM) != string(old.CertPEM) ||
		c.RetiredKeys[0].Reason != store.RetiredDone || !c.RetiredKeys[0].Delete {
		t.Fatalf("retired keys after the rotation: %+v", c.RetiredKeys)
	}
	if _, err := os.Stat(oldKey); err != nil {
		t.Fatalf("the old key went before the leader forgot it: %v", err)
	}
	// A manager that starts again (a new store handle) forgets it.
	if c, err = ForgetRetired(ctx, st, dataDir, testNow.Add(time.Hour)); err != nil || len(c.RetiredKeys) != 0 {
		t.Fatalf("ForgetRetired: %v, queue %+v", err, c.RetiredKeys)
	}
	if _, err := os.Stat(oldKey); !os.IsNotExist(err) {
		t.Errorf("the old root's key file is still there (%v)", err)
	}
}
