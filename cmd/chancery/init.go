package main

import (
	"errors"
	"fmt"
	"os"

	"github.com/spf13/cobra"

	"github.com/chancery-pki/chancery/backends"
	"github.com/chancery-pki/chancery/backends/cfssl"
	"github.com/chancery-pki/chancery/backends/file"
	"github.com/chancery-pki/chancery/backends/vault"
	"github.com/chancery-pki/chancery/ca"
	"github.com/chancery-pki/chancery/cluster"
)

func newInitCmd(a *app) *cobra.Command {
	var (
		certExpiry, caCert, caKey, caKeyPassFile string
		passFile, keyAlg, listen, advertise      string
		backend, rootCN, metricsAddr, hostname   string
		noRun                                    bool
		externalCAs                              []string
		externalCAKeyFile, pkcs11URI             string
		vaultOpts                                vaultFlags
		ext                                      *extCAFlags
	)
	cmd := &cobra.Command{
		Use:   "init",
		Short: "Create a cluster (a root CA, two join tokens, this node as its first manager) and run the manager",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			expiry, err := ca.ParseCertExpiry(certExpiry)
			if err != nil {
				return err
			}
			extCfg, err := ext.config()
			if err != nil {
				return err
			}
			vaultSettings, useVault := vaultOpts.settings(cmd.Flags())
			selectors := 0
			for _, on := range []bool{useVault, pkcs11URI != "", len(externalCAs) > 0} {
				if on {
					selectors++
				}
			}
			if selectors > 1 {
				return withHint(errors.New("--vault-*, --pkcs11-uri and --external-ca each choose a backend: give one"),
					"the root lives in one place: Vault, an HSM, or an external CA")
			}
			if selectors == 1 && cmd.Flags().Changed("ca-passphrase-file") {
				return errors.New("--ca-passphrase-file applies to the file backend only")
			}
			if useVault {
				if cmd.Flags().Changed("backend") && backend != vault.Name {
					return fmt.Errorf("the --vault-* flags use the %s backend, not %q", vault.Name, backend)
				}
				if caKey != "" || caCert != "" {
					return withHint(errors.New("--ca-cert and --ca-key cannot be used with the vault backend"),
						"import the root into Vault, then give its issuer with --vault-issuer (PKI) or its key with --vault-key (transit)")
				}
				backend = vault.Name
			}
			if len(externalCAs) > 0 {
				if cmd.Flags().Changed("backend") && backend != cfssl.Name {
					return fmt.Errorf("--external-ca uses the %s backend, not %q", cfssl.Name, backend)
				}
				if caKey != "" {
					return withHint(errors.New("--ca-key cannot be used with --external-ca: the external CA holds the key"),
						"give --ca-cert alone to name the root the external CA issues under")
				}
				for _, f := range []string{"ca-common-name", "ca-key-algorithm", "ca-passphrase-file"} {
					if cmd.Flags().Changed(f) {
						return fmt.Errorf("--%s does not apply to an external CA", f)
					}
				}
				backend = cfssl.Name
			} else if pkcs11URI != "" {
				if cmd.Flags().Changed("backend") && backend != "pkcs11" {
					return fmt.Errorf("--pkcs11-uri uses the pkcs11 backend, not %q", backend)
				}
				if caKey != "" {
					return withHint(errors.New("--ca-key cannot be used with the pkcs11 backend: the key must be in the token"),
						"import the key with pkcs11-tool --write-object, then give --ca-cert alone")
				}
				backend = "pkcs11"
			} else if backend == "pkcs11" {
				return withHint(errors.New("the pkcs11 backend needs --pkcs11-uri"),
					"for example --pkcs11-uri 'pkcs11:token=T;object=L?module-path=M&pin-source=F'")
			} else if (caCert == "") != (caKey == "") {
				return withHint(errors.New("--ca-cert and --ca-key go together"), "give both to import an existing root, or neither to create one")
			}
			req := cluster.InitRequest{
				DataDir:         a.dataDir,
				Backend:         backend,
				BackendSettings: backends.Settings{},
				RootCN:          rootCN,
				KeyAlgorithm:    keyAlg,
				CertExpiry:      expiry,
				ListenAddr:      listen,
				AdvertiseAddr:   advertise,
				Hostname:        hostname,
			}
			if passFile != "" {
				req.BackendSettings[file.SettingPassphraseFile] = passFile
			}
			switch backend {
			case vault.Name:
				if !useVault {
					return withHint(errors.New("the vault backend needs --vault-addr"), "see 'chancery init --help' for the --vault-* flags")
				}
				req.BackendSettings = vaultSettings
				if !cmd.Flags().Changed("ca-key-algorithm") {
					req.KeyAlgorithm = ""
				}
			case cfssl.Name:
				req.BackendSettings = cfssl.NewSettings(externalCAs, externalCAKeyFile)
			case "pkcs11":
				req.BackendSettings = backends.Settings{"uri": pkcs11URI}
				if !cmd.Flags().Changed("ca-key-algorithm") {
					req.KeyAlgorithm = ""
				}
			}
			if caCert != "" {
				if req.ImportCertPEM, err = os.ReadFile(caCert); err != nil {
					return fmt.Errorf("failed to read --ca-cert: %w", err)
				}
			}
			if caKey != "" {
				if req.ImportKeyPEM, err = os.ReadFile(caKey); err != nil {
					return fmt.Errorf("failed to read --ca-key: %w", err)
				}
				if req.ImportKeyPassphrase, err = file.ReadPassphrase(caKeyPassFile, ""); err != nil {
					return err
				}
			}
			res, err := cluster.Init(cmd.Context(), req)
			switch {
			case errors.Is(err, cluster.ErrClusterExists):
				return withHint(err, "'chancery info --data-dir "+a.dataDir+"' shows the existing cluster")
			case errors.Is(err, file.ErrPassphraseNeeded):
				return withHint(err, "give the imported key's passphrase with --ca-key-passphrase-file FILE")
			case err != nil:
				return err
			}
			fmt.Fprintf(a.stdout, "Cluster initialized: current node (%s) is now a manager.\n\n", res.NodeID)
			printJoinCommand(a, ca.RoleWorker, res.WorkerToken, res.AdvertiseAddr)
			fmt.Fprintf(a.stdout, "To add a manager to this cluster, run 'chancery join-token manager' and follow the instructions.\n\n")
			if backend == vault.Name {
				printVaultRunPolicyHint(a, res.BackendSettings)
			}
			if noRun {
				return nil
			}
			// The manager opens the root with the settings init stored, which
			// hold no secret (a pin-value given to init is not among them).
			return a.runManager(cmd.Context(), "", metricsAddr, nil, extCfg)
		},
	}
	f := cmd.Flags()
	vaultOpts = addVaultFlags(f)
	ext = addExtCAFlags(f)
	f.StringVar(&certExpiry, "cert-expiry", "2160h0m0s", "validity period for node certificates (ns|us|ms|s|m|h), at least 1h")
	f.StringVar(&caCert, "ca-cert", "", "import this root CA certificate (PEM) instead of creating one; needs --ca-key")
	f.StringVar(&caKey, "ca-key", "", "the private key (PEM) of the --ca-cert root")
	f.StringVar(&caKeyPassFile, "ca-key-passphrase-file", "", "file holding the passphrase of an encrypted --ca-key")
	f.StringVar(&passFile, "ca-passphrase-file", "", "encrypt the root key file with the passphrase in this file (else $"+file.PassphraseEnv+" when set)")
	f.StringVar(&keyAlg, "ca-key-algorithm", string(file.DefaultAlgorithm), "key algorithm of a new root: P-256, P-384 or RSA-3072")
	f.StringVar(&rootCN, "ca-common-name", ca.DefaultRootCN, "common name of a new root")
	f.StringVar(&listen, "listen-addr", cluster.DefaultListenAddr, "manager API listen address (HOST:PORT)")
	f.StringVar(&advertise, "advertise-addr", "", "address joining nodes use to reach this manager (default: the listen address, or this host's first address)")
	f.StringVar(&hostname, "hostname", "", "host name to register for this node (default: this host's)")
	f.BoolVar(&noRun, "no-run", false, "create the cluster and exit, without running the manager (start it later with 'chancery run')")
	f.StringVar(&metricsAddr, "metrics-addr", "", "serve Prometheus metrics over plain HTTP on this address (they are always on the data directory's socket)")
	f.StringVar(&pkcs11URI, "pkcs11-uri", "", "keep the root key in a PKCS#11 token: an RFC 7512 URI, pkcs11:token=T;object=L?module-path=M&pin-source=F (the key is generated there if missing)")
	f.StringArrayVar(&externalCAs, "external-ca", nil, "use an external CFSSL CA: protocol=cfssl,url=https://HOST:PORT/api/v1/cfssl/sign[,cacert=FILE] (repeatable: tried in order)")
	f.StringVar(&externalCAKeyFile, "external-ca-auth-key-file", "", "file holding the external CA's hex auth key, for authsign (else $"+cfssl.AuthKeyEnv+")")
	f.StringVar(&backend, "backend", "file", "where the root key lives: "+fmt.Sprint(backends.Names()))
	return cmd
}

// printJoinCommand prints the command that joins a node with token.
func printJoinCommand(a *app, role ca.Role, token, addr string) {
	fmt.Fprintf(a.stdout, "To add a %s to this cluster, run the following command:\n\n", role.Short())
	fmt.Fprintf(a.stdout, "    chancery join --token %s %s\n\n", token, addr)
}
