package main

import (
	"errors"
	"fmt"

	"github.com/spf13/cobra"

	"github.com/chancery-pki/chancery/api"
	"github.com/chancery-pki/chancery/ca"
	"github.com/chancery-pki/chancery/hint"
)

func newUpdateCmd(a *app) *cobra.Command {
	var certExpiry string
	cmd := &cobra.Command{
		Use:   "update --cert-expiry DURATION",
		Short: "Change the cluster's settings",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if !cmd.Flags().Changed("cert-expiry") {
				return hint.With(errors.New("nothing to update"), "give --cert-expiry DURATION, for example --cert-expiry 168h")
			}
			d, err := ca.ParseCertExpiry(certExpiry)
			if err != nil {
				return err
			}
			c, done, err := a.admin(cmd.Context())
			if err != nil {
				return err
			}
			defer done()
			if err := c.Update(cmd.Context(), api.Update{CertExpiry: d}); err != nil {
				return apiError(err)
			}
			fmt.Fprintln(a.stdout, "Cluster updated.")
			return nil
		},
	}
	cmd.Flags().StringVar(&certExpiry, "cert-expiry", "", "validity period for node certificates issued from now on (ns|us|ms|s|m|h), at least 1h")
	return cmd
}
