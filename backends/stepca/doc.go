// Package stepca is the signer backend for a smallstep step-ca: the root
// key stays in step-ca (with whatever HSM or KMS is behind it), and
// chancery asks it to sign over step-ca's HTTP API, with a one-time token
// per request from a JWK provisioner. It registers itself in the backends
// registry as "stepca".
//
// # Why not smallstep's client package
//
// The backend speaks step-ca's API with net/http and go-jose (already in
// chancery's module graph through Vault's client), not with the
// github.com/smallstep/certificates/ca client package: that package would
// add about 90 modules to chancery's build and raise the version of
// hashicorp/vault/api that the vault backend is tested with. The API it
// uses is small: GET /root/{fingerprint}, /intermediates and /provisioners,
// and POST /1.0/sign. step-ca itself is built for the tests from the nested
// module tools/stepca.
//
// # Configuration
//
// Settings (and the flags that give them): url (--stepca-url,
// https://HOST:PORT), root_fingerprint (--stepca-root-fingerprint, the
// SHA-256 of the root's DER in hex, as `step certificate fingerprint`
// prints it), provisioner (--stepca-provisioner, a JWK provisioner's name),
// password_file (--stepca-password-file, a file of mode 0600 holding the
// provisioner's password), and optionally provisioner_key_file
// (--stepca-provisioner-key-file, the provisioner's encrypted key as a
// compact JWE; without it, the encrypted key step-ca lists with the
// provisioner is used, as `step ca token` does). No secret is a setting or
// a flag.
//
// An X5C provisioner may be used instead (Config.X5CCertFile): x5c_cert_file
// (--stepca-x5c-cert-file, a certificate under one of the provisioner's
// roots, with its intermediates) and x5c_key_file (--stepca-x5c-key-file,
// its private key in PEM, mode 0600, encrypted PKCS#8 decrypted with the
// password file when given). Its tokens carry the chain in their x5c
// header, and their audience names the provisioner (#x5c/NAME). step-ca
// issues under it only within the certificate's validity: a node
// certificate, backdated an hour, or a cross-signed one, lasting as long
// as the new root, must fit in it, or step-ca refuses it.
//
// # Trust
//
// The root is pinned as `step ca bootstrap` pins it: the root is asked of
// step-ca by its fingerprint over a connection whose certificate is not
// checked, and kept only if its SHA-256 is the pinned fingerprint; every
// other request uses TLS 1.2 or later, verified under that root, with no
// proxy and no redirects. The chain is step-ca's first intermediate and the
// root, or the root alone when step-ca signs with its root. Opening an
// existing cluster checks that the root is the cluster's.
//
// # Tokens
//
// The provisioner's key is decrypted once, when the Signer is made, with
// the password from the file; it must be the private half of the public
// key step-ca lists for the provisioner (an X5C certificate must verify
// under the roots step-ca lists for it, and its key be the certificate's). Each Sign mints a token of its
// own: a JWS by that key (header kid, the key's ID), issuer the
// provisioner, audience https://HOST:PORT/1.0/sign, valid 5 minutes, a
// random jti (step-ca refuses a token twice), and the claim "chancery"
// holding what the certificate states:
//
//	"chancery": {
//	  "profile": "node" or "ca",
//	  "serial": the serial number, 20 random bytes, in decimal,
//	  "skid": the subject key ID, base64 (SHA-1 of a node's key; a CA's own),
//	  "o", "ou", "cn": a node's cluster ID, role and node ID,
//	  "dns", "ips": a node's DNS names and IP addresses,
//	  "subject": a CA certificate's subject, DER in base64,
//	  "maxPathLen": a CA certificate's path length limit, -1 for none
//	}
//
// step-ca checks a CSR's own names against the token's sub and sans, so
// these repeat the CSR's common name and SANs; the template reads neither,
// and of the CSR only its key (and its signature) is used.
//
// # The provisioner's template
//
// The provisioner must use Template (its options.x509.template), which
// builds the certificate from the token's "chancery" claim alone, never
// from the sign request's unsigned template data nor from the CSR: a node
// certificate has swarm's subject O=cluster ID, OU=role, CN=node ID, the
// claimed DNS names and IP addresses, digital signature and key
// encipherment, server and client authentication, CA:FALSE. Its validity
// is the sign request's notBefore and notAfter (chancery's cert expiry),
// which the provisioner's claims must allow: minTLSCertDuration at most the
// shortest certificate chancery asks for, and maxTLSCertDuration at least
// the longest (a cross-signed certificate lasts as long as the new root,
// up to 20 years). The claims must also set "disableSmallstepExtensions":
// true.
//
// # What comes back is checked
//
// Every certificate step-ca returns is checked with signer.CheckIssued
// against the request, its signature always verified: issuer, public key,
// subject byte for byte, basic constraints, usages, SANs, key IDs,
// validity, no other extension; and its serial must be the token's. One
// that differs is discarded, revoked at step-ca (passively, with a token
// whose subject is its serial, as `step ca revoke` does; this needs a
// step-ca with a database), and Sign returns a *MismatchError naming the
// field and saying whether the revocation succeeded.
//
// # Capabilities
//
// step-ca signs only CSRs (Capabilities.NeedsCSR), and cannot make a CSR
// with its own key. So, in a root rotation (package rotation):
//
//   - out of step-ca, it cross-signs the CSR the new root's backend makes
//     with its key (file, pkcs11, vault: rotation.PathCSR), or, to another
//     external CA, a one-time bridge key's CSR when allowed
//     (rotation.PathBridge). It issues CA certificates only when the
//     provisioner's options.x509.templateData is CrossSignTemplateData
//     ({"chanceryCrossSign": true}), which step-ca lists publicly, so the
//     backend knows (CrossSigns); and the step-ca's signing certificate
//     must allow a CA below it (an intermediate without a path length
//     limit of 0). Without that data a rotation out of it is refused
//     before it starts (the Signer is a rotation.CrossSignChecker), and a
//     CA request before step-ca is asked, with ErrNoCrossSign.
//   - into step-ca, the current root's backend signs step-ca's root: when
//     step-ca signs with its root (no intermediate), a backend that signs a
//     public key (file, pkcs11, vault) signs it alone
//     (rotation.PathPublicKey), and an external CA (cfssl, step-ca) needs
//     the bridge. A step-ca that signs with an intermediate cannot be
//     rotated into: rotation.CrossSign refuses a new root that is a chain
//     ("the new root must be a root alone").
//
// # Failures
//
// Each request is bounded by Config.Timeout (10s) and its answer by
// Config.MaxResponseBytes (1 MiB). Nothing is retried: a token is good
// once. step-ca's refusals are *RemoteError values with its message (a
// refused token, 401, says what usually causes it); no answer is a
// *TransportError; a wrong fingerprint a *FingerprintError; a password
// that does not decrypt the key a *PasswordError, which never holds the
// password.
package stepca
