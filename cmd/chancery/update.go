package main

import (
	"errors"
	"fmt"
	"time"

	"github.com/spf13/cobra"

	"github.com/chancery-pki/chancery/api"
	"github.com/chancery-pki/chancery/ca"
	"github.com/chancery-pki/chancery/hint"
)

func newUpdateCmd(a *app) *cobra.Command {
	var certExpiry string
	var retention time.Duration
	cmd := &cobra.Command{
		Use:   "update [--cert-expiry DURATION] [--cert-record-retention DURATION]",
		Short: "Change the cluster's settings",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			var u api.Update
			if !cmd.Flags().Changed("cert-expiry") && !cmd.Flags().Changed("cert-record-retention") {
				return hint.With(errors.New("nothing to update"), "give --cert-expiry DURATION, for example --cert-expiry 168h, or --cert-record-retention DURATION")
			}
			if cmd.Flags().Changed("cert-expiry") {
				d, err := ca.ParseCertExpiry(certExpiry)
				if err != nil {
					return err
				}
				u.CertExpiry = d
			}
			if cmd.Flags().Changed("cert-record-retention") {
				u.CertRecordRetention = &retention
			}
			c, done, err := a.admin(cmd.Context())
			if err != nil {
				return err
			}
			defer done()
			if err := c.Update(cmd.Context(), u); err != nil {
				return apiError(err)
			}
			fmt.Fprintln(a.stdout, "Cluster updated.")
			return nil
		},
	}
	cmd.Flags().StringVar(&certExpiry, "cert-expiry", "", "validity period for node certificates issued from now on (ns|us|ms|s|m|h), at least 1h")
	cmd.Flags().DurationVar(&retention, "cert-record-retention", 0, "keep the records of issued certificates this long after they expired, then prune them (at least 24h; 0 keeps them all; the audit log keeps every issuance)")
	return cmd
}
