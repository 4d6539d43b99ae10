package main

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/chancery-pki/chancery/api"
	"github.com/chancery-pki/chancery/ca"
	"github.com/chancery-pki/chancery/client"
	"github.com/chancery-pki/chancery/hint"
)

// caPollInterval is how often `ca --rotate` reads the rotation's progress.
var caPollInterval = time.Second

func newCACmd(a *app) *cobra.Command {
	var (
		rotate, abort, detach, quiet, force, allowBridge, deleteOldKey bool
		certExpiry                                                     string
		root                                                           *rootFlags
	)
	cmd := &cobra.Command{
		Use:   "ca [--rotate [backend flags] [--detach] [-q] | --abort]",
		Short: "Print the root CA certificate, or rotate the root CA",
		Long: `Without flags, ca prints the root CA certificate that nodes trust (PEM),
and during a rotation where it stands, with its stragglers, on stderr.

ca --rotate replaces the root: the new root is made (by default a new key in
the current backend, or where the backend flags say, as for init), cross-signed
by the current one, and every node renews under the new key, then trusts the new
root; no node is shown a certificate it cannot verify. Both join tokens change
when nodes switch trust. Without --detach it shows the progress on stderr until
the rotation is done; Ctrl-C leaves it running. --abort goes back to the current
root, until nodes have switched trust.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx := cmd.Context()
			if rotate && abort {
				return errors.New("--rotate and --abort ask for opposite things: give one")
			}
			if !rotate && (root.backends.Given() || allowBridge || deleteOldKey || cmd.Flags().Changed("ca-common-name") || cmd.Flags().Changed("ca-key-algorithm")) {
				return hint.With(errors.New("backend flags, --allow-bridge and --delete-old-key are for a root rotation"), "add --rotate")
			}
			var expiry time.Duration
			if certExpiry != "" {
				d, err := ca.ParseCertExpiry(certExpiry)
				if err != nil {
					return err
				}
				expiry = d
			}
			var req api.RotateRequest
			if rotate && root.backends.Given() {
				name, cr, err := root.request()
				if err != nil {
					return err
				}
				if cr.ImportKeyPEM != nil {
					return hint.With(errors.New("ca --rotate does not take --ca-key: a root key is not sent to the manager"),
						"rotate to a new key in a backend (the current one by default, or --pkcs11-uri, --vault-*), or give --ca-cert with --external-ca for an external CA's root")
				}
				req = api.RotateRequest{Backend: name, Settings: cr.Settings, CertPEM: string(cr.ImportCertPEM)}
			}
			if rotate {
				if cmd.Flags().Changed("ca-common-name") {
					req.CommonName = root.cn
				}
				if cmd.Flags().Changed("ca-key-algorithm") {
					req.KeyAlgorithm = root.alg
				}
				req.AllowBridge, req.ExcludeStragglers, req.DeleteOldKey = allowBridge, force, deleteOldKey
			}
			c, done, err := a.admin(ctx)
			if err != nil {
				return err
			}
			defer done()
			if expiry > 0 {
				if err := c.Update(ctx, api.Update{CertExpiry: expiry}); err != nil {
					return apiError(err)
				}
			}
			var st *api.CAStatus
			switch {
			case abort:
				if st, err = c.AbortRotation(ctx); err != nil {
					return apiError(err)
				}
				if !quiet {
					fmt.Fprintln(a.stderr, "Root rotation aborted: the current root signs again, and nodes renew back to it.")
				}
				return nil
			case rotate:
				if st, err = c.RotateCA(ctx, req); err != nil {
					return apiError(err)
				}
				if st.Rotation == nil {
					// A rotation to the current root aborts the one in
					// progress, as in docker.
					if !quiet {
						fmt.Fprintf(a.stderr, "Root rotation aborted: the current root %s signs again, and nodes renew back to it.\n", st.RootFingerprint)
					}
					return nil
				}
			case force:
				// Without --rotate, --force only excludes the stragglers of
				// the rotation in progress: with none, the request would
				// start one.
				if st, err = c.CA(ctx); err != nil {
					return apiError(err)
				}
				if st.Rotation == nil {
					return errors.New("no root rotation is in progress: --force has no straggler to exclude")
				}
				if st, err = c.RotateCA(ctx, api.RotateRequest{ExcludeOnly: true}); err != nil {
					return apiError(err)
				}
			default:
				if st, err = c.CA(ctx); err != nil {
					return apiError(err)
				}
				fmt.Fprint(a.stdout, st.RootCAPEM)
				if !quiet {
					if st.Rotation != nil {
						printRotation(a, st)
					}
					printRetired(a, st)
				}
				return nil
			}
			if detach {
				if !quiet {
					printRotation(a, st)
				}
				return nil
			}
			return a.followRotation(ctx, c, st, quiet)
		},
	}
	f := cmd.Flags()
	f.BoolVar(&rotate, "rotate", false, "rotate the root CA: to a new key in the current backend, or to the root the backend flags give")
	f.BoolVar(&abort, "abort", false, "abort the root rotation in progress (before nodes switch trust)")
	f.BoolVarP(&detach, "detach", "d", false, "exit as soon as the rotation is started, without waiting for it to finish")
	f.BoolVarP(&quiet, "quiet", "q", false, "print no progress")
	f.BoolVar(&force, "force", false, "exclude the nodes that have not reported for longer than the grace: they stop blocking the rotation and must join again")
	f.BoolVar(&deleteOldKey, "delete-old-key", false, "once the rotation is done, delete the old root's key from the HSM or Vault if chancery made it (a key file chancery made is always deleted; an external CA is left alone)")
	f.BoolVar(&allowBridge, "allow-bridge", false, "allow a one-time bridge key, where the current and the new root's backends need one (from one external CA to another)")
	f.StringVar(&certExpiry, "cert-expiry", "", "also set the validity period of node certificates issued from now on, as 'update --cert-expiry' does")
	root = addRootFlags(f)
	return cmd
}

// followRotation prints the rotation's progress on stderr until it is done
// (exit 0) or aborted (an error). A cancelled context leaves it running.
func (a *app) followRotation(ctx context.Context, c *client.Client, st *api.CAStatus, quiet bool) error {
	last := ""
	target := ""
	if st.Rotation != nil {
		target = st.Rotation.TargetFingerprint
	}
	for {
		if st.Rotation == nil {
			switch {
			case target != "" && st.RootFingerprint == target:
				if !quiet {
					fmt.Fprintf(a.stderr, "Root rotation done: nodes trust %s.\n", st.RootFingerprint)
				}
				return nil
			case st.LastRotation == "aborted":
				return errors.New("the root rotation was aborted")
			default:
				return fmt.Errorf("the root rotation ended without reaching %s (root now %s)", target, st.RootFingerprint)
			}
		}
		if st.Rotation.TargetFingerprint != target {
			return fmt.Errorf("the root rotation was replaced by one to %s", st.Rotation.TargetFingerprint)
		}
		if line := rotationLine(st.Rotation); !quiet && line != last {
			fmt.Fprintln(a.stderr, line)
			last = line
		}
		select {
		case <-ctx.Done():
			if !quiet {
				fmt.Fprintln(a.stderr, "Stopped following; the rotation goes on. 'chancery ca' shows where it stands ('chancery ca --rotate' would start it over, to another new root).")
			}
			return nil
		case <-time.After(caPollInterval):
		}
		var err error
		if st, err = c.CA(ctx); err != nil {
			if ctx.Err() != nil {
				continue
			}
			return apiError(err)
		}
	}
}

func printRotation(a *app, st *api.CAStatus) {
	if st.Rotation == nil {
		fmt.Fprintf(a.stderr, "No root rotation in progress; nodes trust %s.\n", st.RootFingerprint)
		return
	}
	fmt.Fprintln(a.stderr, rotationLine(st.Rotation))
}

// printRetired lists the retired roots whose key the leader has yet to
// forget.
func printRetired(a *app, st *api.CAStatus) {
	for _, k := range st.RetiredKeys {
		fmt.Fprintf(a.stderr, "retired root %s (%s, %s): its key is still to be forgotten", shortFP(k.Fingerprint), k.Backend, k.Reason)
		if k.LastError != "" {
			fmt.Fprintf(a.stderr, "; %d failed attempts, the last: %s", k.Attempts, k.LastError)
		}
		fmt.Fprintln(a.stderr)
	}
}

// rotationLine is one line of progress.
func rotationLine(r *api.RotationStatus) string {
	var b strings.Builder
	fmt.Fprintf(&b, "rotating to %s: %s; %d/%d nodes hold a certificate from the new key, %d/%d trust the new root",
		shortFP(r.TargetFingerprint), r.Phase, r.Converged, r.Total, r.TrustingNew, r.Total)
	if len(r.Stragglers) > 0 {
		fmt.Fprintf(&b, "; stragglers (silent, blocking; --force excludes them): %s", strings.Join(r.Stragglers, ", "))
	}
	if len(r.Excluded) > 0 {
		fmt.Fprintf(&b, "; excluded: %d", len(r.Excluded))
	}
	if r.DeleteOldKey {
		b.WriteString("; the old root's key is deleted when done")
	}
	return b.String()
}

// shortFP is a fingerprint cut to its first 16 hex digits.
func shortFP(fp string) string {
	if len(fp) > len("sha256:")+16 {
		return fp[:len("sha256:")+16] + "…"
	}
	return fp
}
