// Package vault is the backend that keeps the root CA in HashiCorp Vault's
// PKI secrets engine, or its key in Vault's transit engine (see below),
// through github.com/hashicorp/vault/api. The root key is
// generated inside Vault (key type internal) and never leaves it; chancery
// asks Vault to sign, with a least-privilege policy: Policy for `chancery
// init`, which generates the root, and RunPolicy for a running manager,
// pinned to the root's issuer, which neither generates nor deletes anything.
//
// # Which endpoint, and why
//
// The design asks every backend for certificates of the local issuer's
// shape (signer.NewLocalIssuer). Vault offers three ways to sign, and
// chancery uses two of them:
//
//   - Node certificates go through MOUNT/sign/ROLE, with a role that
//     chancery configures itself, one per certificate shape (subject O, OU
//     and the other role-held attributes, key usages, extended key usages,
//     basic constraints, signature algorithm), named
//     chancery-ISSUER-HASH and pinned to the root's issuer (issuer_ref).
//     The role takes nothing from the CSR but its key: use_csr_common_name
//     and use_csr_sans are false, serial_number_source is json, no user
//     IDs, URI or other SANs are allowed. The request passes the CN, the
//     DNS names (alt_names, with exclude_cn_from_sans) and the exact
//     NotAfter (not_after). key_usage and ext_key_usage are the request's
//     (server_flag and client_flag off, so Vault adds none of its own),
//     basic_constraints_valid_for_non_ca writes CA:FALSE, signature_bits
//     follows the root's key, and no_store keeps Vault's storage from
//     growing with every renewal (chancery's audit log records each
//     certificate). not_before_duration is the request's backdate, in
//     whole seconds (see below).
//   - sign-verbatim is not used: it copies the subject, SANs and extensions
//     from the CSR, which the node writes and chancery must ignore. (With
//     an empty-subject CSR it yields a certificate with no subject, SANs or
//     EKU.)
//   - CA certificates (the cross-signed root of a rotation) go through
//     MOUNT/issuer/ISSUER/sign-self-issued: the shared local issuer builds
//     the whole certificate (its own 20-byte serial, the exact validity,
//     subject bytes, subject key ID and path length), self-issued under a
//     throwaway CA named as the subject, and Vault re-signs it with
//     the root's key, changing only the signature and the authority key ID.
//     This signs a public key alone (Capabilities.SignsPublicKey), and the
//     result is what the local issuer makes but for the (random) serial, the
//     signature and the authority key ID.
//     sign-intermediate with use_csr_values would need the new root's CSR
//     and still choose the serial and NotBefore itself.
//
// CreateCSR makes a CSR for the root's own key with
// MOUNT/intermediate/cross-sign (key_ref), so that another backend can
// cross-sign the Vault root. CreateRoot generates the root with
// MOUNT/issuers/generate/root/internal, or adopts an existing root issuer
// (SettingIssuer).
//
// # Where Vault's node certificates differ from the local issuer's
//
// Each certificate Vault returns is checked field by field against the
// request before it is used (ErrMismatch otherwise), and requests Vault
// cannot honour are refused before Vault is asked (ErrUnsupported). What
// remains different, by Vault's design and nowhere else:
//
//   - NotBefore: Vault sets it to its own time minus the role's
//     not_before_duration. chancery sets that duration to the request's
//     backdate, rewriting the role when it drifts, so NotBefore comes out
//     the same second as the request's or up to two seconds later, never
//     earlier (with clocks in step; Config.NotBeforeSkew bounds what is
//     accepted). Vault's smallest backdate is a second, so a request that
//     starts now waits up to a second. NotAfter is exact.
//   - DNS names: Vault sorts alt_names, so a manager's [swarm-manager,
//     NODE, swarm-ca] comes out as the same names sorted. No Vault endpoint
//     that takes names from chancery rather than from the CSR keeps their
//     order.
//   - A node CSR whose subject carries a user ID (UID) is refused
//     (ErrUnsupported): Vault's sign endpoint copies it into the certificate
//     or refuses the CSR, whatever the role says. chancery's own nodes make
//     CSRs with an empty subject.
//   - Serial numbers: Vault draws them below 2^159 as the local issuer
//     does, but keeps the 1 in 128 shorter than 20 bytes, which the local
//     issuer draws again; chancery asks Vault again in that case, and the
//     dropped certificate is never used (no_store: Vault keeps no copy).
//
// The conformance suite runs against a real Vault with the two options
// that say so (conformance.Options.NotBeforeTolerance and DNSNamesSorted).
//
// # The transit engine: exactly the local issuer's certificates
//
// No PKI endpoint keeps the order of the DNS names chancery gives it
// (Vault's issuance code sorts them), and a manager's certificate names
// [swarm-manager, NODE, swarm-ca] in that order, as swarm's do. Where
// certificates must match the other backends' exactly, the root key can
// live in Vault's transit engine instead (SettingEngine EngineTransit,
// `--vault-engine transit`): chancery's local issuer builds every
// certificate (signer.NewLocalIssuer, as for a key file or an HSM) and Vault
// signs its digest with MOUNT/sign/KEY (prehashed, the key version pinned,
// ASN.1 ECDSA or PKCS #1 v1.5 RSA signatures). A node certificate, or a
// cross-signed root, then differs from the file backend's for the same
// request only in serial, signature and authority key ID, and the
// conformance suite runs with no option.
//
//   - init creates the key inside Vault (MOUNT/keys/KEY, KEY from
//     SettingKey, DefaultTransitKey by default), never exportable and
//     without plaintext backups, so that it never leaves Vault, and pins
//     its latest version (SettingKeyVersion), so that a rotation of the
//     transit key never changes the cluster's root key. A key init created
//     is deleted when init fails. A key of that name that exists already is
//     used only when named explicitly, and must not be exportable, allow
//     plaintext backups, or have been imported; so that two clusters never
//     share a root key by accident.
//   - Open reads the key and checks the pinned version against the
//     cluster's root, and that the key still cannot leave Vault and still
//     signs with that version (min_encryption_version).
//   - TransitPolicy is what init needs: exact paths for that key alone, its
//     parameters pinned (no exportable key, no config but deletion_allowed,
//     no rotate, trim, export or backup). TransitRunPolicy lets a manager
//     read the key and sign with it, nothing else, and is also all that init
//     needs to use a key made beforehand.
//
// The trade-off: with transit, Vault sees digests, not certificates, so
// Vault's own PKI records (issuers, CRLs, its issuance audit) do not show
// chancery's certificates; chancery's audit log does, as on every backend.
//
// # A root rotation's new root
//
// `chancery ca --rotate` without flags makes the new root beside the current
// one (Backend.NextRootSettings): a new issuer generated in the same PKI
// mount, or a new transit key in the same transit mount, named after the
// current key with the rotation's time. That needs the init policy's rights
// (Policy, or TransitPolicy for the new key's name); with a policy pinned to
// one key, name the new key yourself with --vault-key. The retired root's
// issuer or key is left in Vault when the rotation is done: it is the
// operator's to delete.
//
// # Settings and authentication
//
// The settings (SettingAddress and the other Setting* keys) hold no secret:
// the token comes from a file (SettingTokenFile) or an environment variable
// (SettingTokenEnv, VAULT_TOKEN by default), or chancery logs in with
// AppRole, its role ID and secret ID read from files. A renewable token is
// renewed at two thirds of its TTL; when Vault caps a renewal at the
// token's max TTL, chancery logs in again with AppRole (or reads the token
// file again, where an agent may have written a new token). A token Vault
// refuses mid-request causes one new login and one retry.
//
// # Errors
//
// Every error about Vault is an *Error that matches one of ErrSealed,
// ErrUnreachable, ErrPermissionDenied, ErrTokenInvalid, ErrMountNotFound,
// ErrIssuerNotFound, ErrUnsupported, ErrMismatch, ErrConfig or ErrVault with
// errors.Is, names the operation and Vault path, and says what to do in its
// Hint (package hint). No error, hint or log line contains a token, role ID
// or secret ID. Transient
// failures (Vault unreachable, 5xx other than sealed, 429) are retried with
// exponential backoff and jitter (Config.Retry); a call that creates
// something (the root) is retried only when the connection was refused.
// Each root generation names its issuer and key with a fresh random name,
// so that when Vault may have acted but chancery has no usable answer (a
// 5xx, a timeout after sending, an unreadable certificate, no IDs),
// CreateRoot deletes whatever carries that name: on error nothing is left.
package vault
