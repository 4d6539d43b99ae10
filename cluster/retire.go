package cluster

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"maps"
	"time"

	"github.com/chancery-pki/chancery/audit"
	"github.com/chancery-pki/chancery/backends"
	"github.com/chancery-pki/chancery/store"
)

// This file forgets the keys of roots that rotations retire. A rotation
// queues the root it stops using in store.Cluster.RetiredKeys, in the same
// update (FinishRotation, AbortRotation, a re-targeting StartRotation), so
// that a crash between the two cannot leave a key behind unrecorded;
// ForgetRetired then forgets each one where its backend can, and removes
// it from the queue with an audit entry that says what became of it.

// MaxForgetAttempts is how many times ForgetRetired tries to delete a
// retired key before it gives up, records the failure in the audit log and
// leaves the key to the operator.
const MaxForgetAttempts = 6

// What became of a retired key (the audit entry's "outcome").
const (
	// ForgetDeleted: the key is deleted.
	ForgetDeleted = "deleted"
	// ForgetKept: the key is kept, on purpose (the entry says why).
	ForgetKept = "kept"
	// ForgetRetry: deleting it failed; it will be tried again.
	ForgetRetry = "retry"
	// ForgetFailed: deleting it failed MaxForgetAttempts times; it is
	// left to the operator.
	ForgetFailed = "failed"
)

// retire queues r's key in c, unless it is queued already.
func retire(c *store.Cluster, r store.Root, reason string, deleteKey bool) {
	for _, k := range c.RetiredKeys {
		if bytes.Equal(k.Root.CertPEM, r.CertPEM) {
			return
		}
	}
	c.RetiredKeys = append(c.RetiredKeys, store.RetiredKey{Root: r, Reason: reason, Delete: deleteKey})
}

// forgetNow runs ForgetRetired after an update that retired a key, and
// returns the record as it then stands; a key that could not be forgotten
// stays queued for the leader, so its error is not the caller's.
func forgetNow(ctx context.Context, st store.Store, dataDir string, c store.Cluster, now time.Time) (store.Cluster, error) {
	if len(c.RetiredKeys) == 0 {
		return c, nil
	}
	if out, err := ForgetRetired(ctx, st, dataDir, now); err == nil {
		return out, nil
	}
	return c, nil
}

// ForgetRetired forgets the retired keys whose time has come, in
// store.Cluster.RetiredKeys order, and returns the record as it then stands:
//
//   - a key file chancery made is deleted;
//   - an HSM key or a Vault issuer (or transit key) is deleted only if
//     chancery generated it and the operator consented
//     (RetiredKey.Delete); otherwise it is kept, and the audit entry says
//     why and how to delete it by hand;
//   - an external CA is left alone.
//
// A deletion that fails is tried again later, with a growing delay, and
// given up after MaxForgetAttempts. Each outcome but a retry removes the
// key from the queue, with a root.rotation audit entry (step
// "forget-key") in the same update. It runs on the leader, and also just
// after an abort or a re-target; two callers at once forget a key once.
func ForgetRetired(ctx context.Context, st store.Store, dataDir string, now time.Time) (store.Cluster, error) {
	c, err := st.Cluster(ctx)
	if err != nil {
		return c, err
	}
	var errs []error
	for _, k := range c.RetiredKeys {
		if k.NextAttempt.After(now) {
			continue
		}
		outcome, why, ferr := forgetKey(ctx, dataDir, c, k)
		if ferr != nil {
			outcome, why = ForgetRetry, ferr.Error()
			if k.Attempts+1 >= MaxForgetAttempts {
				outcome = ForgetFailed
				why = fmt.Sprintf("%s (after %d attempts; delete the key by hand)", why, MaxForgetAttempts)
			}
			errs = append(errs, fmt.Errorf("forgetting the retired root %s: %w", FingerprintPEM(k.Root.CertPEM), ferr))
		}
		out, err := st.UpdateCluster(ctx, func(cur *store.Cluster) error {
			i := retiredIndex(cur.RetiredKeys, k.Root.CertPEM)
			if i < 0 || cur.RetiredKeys[i].Attempts != k.Attempts {
				return errForgotten
			}
			if outcome == ForgetRetry {
				e := &cur.RetiredKeys[i]
				e.Attempts++
				e.NextAttempt = now.Add(forgetBackoff(e.Attempts))
				e.LastError = truncate(why, 512)
				return nil
			}
			cur.RetiredKeys = append(cur.RetiredKeys[:i:i], cur.RetiredKeys[i+1:]...)
			return nil
		}, forgetEvent(ctx, k, outcome, why))
		switch {
		case errors.Is(err, errForgotten):
			// Another caller recorded this key's outcome meanwhile.
		case err != nil:
			return c, err
		default:
			c = out
		}
	}
	if c, err = st.Cluster(ctx); err != nil {
		return c, err
	}
	return c, errors.Join(errs...)
}

// errForgotten says that another caller recorded a retired key's outcome.
var errForgotten = errors.New("cluster: the retired key's outcome is recorded already")

// forgetKey forgets one retired key, or says why it is kept.
func forgetKey(ctx context.Context, dataDir string, c store.Cluster, k store.RetiredKey) (outcome, why string, err error) {
	// A key that a root in use names too is never deleted.
	inUse := []store.BackendConfig{c.Backend}
	if c.Rotation != nil {
		inUse = append(inUse, c.Rotation.Target.Backend)
	}
	for _, u := range inUse {
		if u.Type == k.Root.Backend.Type && maps.Equal(u.Settings, k.Root.Backend.Settings) {
			return ForgetKept, "a root in use names the same key", nil
		}
	}
	b, err := backends.Get(k.Root.Backend.Type)
	if err != nil {
		return "", "", err
	}
	settings := backends.Settings(k.Root.Backend.Settings)
	if f, ok := b.(backends.RootForgetter); ok {
		if err := f.ForgetRoot(ctx, dataDir, settings); err != nil {
			return "", "", err
		}
		return ForgetDeleted, "chancery made this key file", nil
	}
	d, ok := b.(backends.RootDeleter)
	switch {
	case !ok:
		return ForgetKept, "the " + k.Root.Backend.Type + " backend's CA is not chancery's to delete", nil
	case !backends.Generated(settings):
		return ForgetKept, "chancery did not make this key; it is the operator's to delete", nil
	case !k.Delete:
		return ForgetKept, "the operator did not ask to delete it (ca --rotate --delete-old-key); it is the operator's to delete", nil
	}
	if err := d.DeleteRoot(ctx, dataDir, settings); err != nil {
		return "", "", err
	}
	return ForgetDeleted, "chancery made this key, and the operator asked to delete it", nil
}

// forgetBackoff is the wait after the n-th failed attempt: 30 s, doubled
// each time, at most 10 minutes.
func forgetBackoff(n int) time.Duration {
	d := 30 * time.Second
	for ; n > 1 && d < 10*time.Minute; n-- {
		d *= 2
	}
	return min(d, 10*time.Minute)
}

func retiredIndex(keys []store.RetiredKey, certPEM []byte) int {
	for i, k := range keys {
		if bytes.Equal(k.Root.CertPEM, certPEM) {
			return i
		}
	}
	return -1
}

// forgetEvent is the audit entry of a retired key's outcome.
func forgetEvent(ctx context.Context, k store.RetiredKey, outcome, why string) audit.Event {
	d := map[string]string{
		"step":             "forget-key",
		"root_fingerprint": FingerprintPEM(k.Root.CertPEM),
		"root_backend":     k.Root.Backend.Type,
		"reason":           k.Reason,
		"outcome":          outcome,
		"detail":           truncate(why, 512),
		"delete_asked":     fmt.Sprint(k.Delete),
	}
	return audit.Event{Action: audit.ActionRootRotation, Actor: audit.ActorFrom(ctx), Backend: k.Root.Backend.Type, Details: d}
}

// deleteOldKeyDetail is the start entry's record of the operator's
// consent.
func deleteOldKeyDetail(asked bool) map[string]string {
	if !asked {
		return nil
	}
	return map[string]string{"delete_old_key": "true"}
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}
