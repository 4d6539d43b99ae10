// Package extca serves chancery as a CFSSL-compatible external CA: Docker
// swarm (docker swarm init/update --external-ca
// protocol=cfssl,url=https://HOST:PORT/api/v1/cfssl/sign), the cfssl CLI
// (cfssl sign -remote, cfssl info -remote) and chancery's own cfssl backend
// get certificates that chain to the root chancery holds, whichever
// backend holds it (a key file, a PKCS#11 HSM, Vault).
//
// The endpoint never issues with the cluster's own issuer: the cluster's
// Signer signs an intermediate of the endpoint's own (ca.IsExternalCA:
// CN=chancery external CA, OU=chancery-external-ca, O=cluster ID, path
// length 1), whose key is held in memory and made again whenever the
// Issuer in force changes, and every certificate the endpoint issues goes
// through it. chancery's nodes refuse a manager certificate that chains
// through it (client.CheckIssuer), so the endpoint's certificates can never
// pass for the cluster's own.
//
// It speaks CFSSL's HTTP API, version 1, as swarmkit's client (cfssl
// v1.6.4's types) and cfssl 1.2.0's CLI send it: POST /api/v1/cfssl/sign,
// /api/v1/cfssl/authsign and /api/v1/cfssl/info, over TLS 1.2 or later. It
// does not serve CFSSL's other endpoints (bundle, scan, ocsp, ...), build
// bundles, sign CRLs or OCSP answers, or issue precertificates.
//
// # Profiles
//
// The default profile ("") issues node certificates, under chancery's node
// certificate contract (ca.NodeCertificateRequest): subject O=cluster ID,
// OU=role, CN=node ID, taken from the request's subject (never from the
// CSR, which must be named in the request: {"CN": node ID, "names":
// [{"O": cluster ID, "OU": role}]}); DNS names [OU, CN], and swarm-ca for
// managers, which the request's hosts, when given, must list in that order;
// digital signature and key encipherment, server and client
// authentication, CA:FALSE; valid from an hour before issuance for
// Config.CertExpiry. Only the CSR's public key is used, after its signature
// is checked.
//
// The "CA" profile cross-signs a CA: the certificate carries the CSR's
// subject byte for byte and its public key, CA:TRUE, certificate and CRL
// signing, and is valid from an hour before issuance for Config.CAExpiry.
// CFSSL ignores a CSR's extensions, so the request's extensions say the
// rest: basic constraints (2.5.29.19, critical, CA:TRUE, with a path length
// if any: swarm sends "30030101ff") and the subject key ID (2.5.29.14); no
// other. Without a subject key ID, the certificate gets the SHA-1 one that
// swarm's and CFSSL's roots carry. The request's subject, when given, must
// agree with the CSR's; its hosts must be empty.
//
// Both profiles' validity ends no later than the signing CA's. The
// answer's certificate is followed by the signing chain's intermediates,
// if any (not the root).
//
// What swarm always sends is accepted and ignored: NotBefore and NotAfter
// when zero, ReturnPrecert false, metadata, crl_override "", label. What
// asks for more is refused, with a message naming the field: a non-zero
// NotBefore or NotAfter, a serial, expiry, ReturnPrecert, crl_override,
// bundle, subject attributes other than CN, C, ST, L, O and OU.
//
// # Authentication
//
// /sign admits clients by their certificate, verified against
// Config.ClientCAs: for a swarm, its current root (and during its own root
// rotation, both roots; see Server.SetClientCAs), whose managers present
// their node certificates. These CAs are not chancery's root: a swarm
// starts with its own internal root and reaches chancery's by rotation.
//
// /authsign admits the holders of an HMAC auth key, CFSSL's "standard"
// auth keys: the body is {"token": base64(HMAC-SHA-256(key, request)),
// "request": base64(sign request JSON), "timestamp": Unix seconds}. Every
// configured key is tried, each comparison in constant time. Keys never
// appear in answers, errors or logs.
//
// /info needs no authentication: it answers the signing certificate and
// the profile's usages and expiry, which are public.
//
// # Replay protection
//
// CFSSL's token covers the request alone: the timestamp beside it is not
// covered, and CFSSL ignores it. A captured authsign request therefore
// verifies forever, with any timestamp. The endpoint refuses requests
// without a timestamp, or whose timestamp is more than Config.ReplayWindow
// (5 minutes) from its clock, which stops naive replays; and it remembers
// the token of every request that got a certificate for Config.ReplayTTL
// (24 hours), refusing it again, which stops replays whose timestamp was
// rewritten, for that long. The memory survives a restart: the audit entry
// of a certificate issued through /authsign holds the SHA-256 of its token
// (DetailAuthSignToken), and New reads the last ReplayTTL of the audit log
// back into the cache when Config.Audit can be read (AuditReader; the
// store can). A token is spent only by success: a request the
// endpoint refused, or that failed in the CA, can be sent again with the
// same token, as CFSSL's client and chancery's retry after a failure; while
// one is being served, the same token is answered 503 (retry later). A
// client whose answer was lost after its certificate was issued is refused
// on retry, and sends a new request (a new CSR). The cache holds at most
// Config.ReplayCacheSize tokens; when full of live tokens it answers 503
// rather than forget one early. A replay older than ReplayTTL gets a second
// certificate for the same public key and identity: no key is gained, and
// the audit log shows both.
//
// # Policy
//
// A Policy says which client may ask for what: which clusters (a node
// certificate's O), which roles (its OU), and whether it may cross-sign.
// Its rules are tried in order; the first that admits the client decides;
// a client no rule admits is refused. Refusals name the rule. The policy
// file format (LoadPolicy), one directive per line, '#' to the end of a
// line is a comment:
//
//	authkey NAME FILE
//	allow cert MATCH... [clusters=LIST] [roles=LIST] [cross-sign]
//	allow key NAME [clusters=LIST] [roles=LIST] [cross-sign]
//
// authkey defines the auth key NAME (letters, digits, '.', '_', '-'), read
// from FILE, hex as in CFSSL's auth_keys; a relative FILE is relative to
// the policy file's directory. "allow cert" admits the holders of client
// certificates whose subject has every MATCH given: CN=VALUE, O=VALUE,
// OU=VALUE; or * for any certificate the client CAs verify. "allow key"
// admits the holders of the auth key NAME. clusters= lists cluster IDs,
// "own" (the O of the client's certificate) or "*" (any); it defaults to
// own for certificate rules and is required for key rules. roles= lists
// manager and worker (or swarm-manager, swarm-worker), or none; it defaults
// to both. cross-sign allows the "CA" profile. DefaultPolicy admits a
// swarm's managers for node certificates of their own cluster:
//
//	allow cert OU=swarm-manager clusters=own roles=manager,worker
//
// It does not allow cross-signing: a cross-signed certificate is a CA under
// the root, as powerful as the root for whoever trusts it, so a policy
// file grants cross-sign explicitly, for the time of a swarm's rotation.
//
// # TLS
//
// New issues the endpoint's TLS certificate through the same Signer, for
// Config.DNSNames and Config.IPAddresses (the names clients put in the
// URL: swarm checks them, and trusts the endpoint through the cluster root
// only), and Serve renews it at two thirds of its life
// (Config.TLSCertExpiry, 7 days). It is presented with the signing chain's
// intermediates.
//
// # Answers
//
// Answers are CFSSL's envelope: {"success": true, "result":
// {"certificate": PEM}, "errors": [], "messages": []}, or {"success":
// false, "result": null, "errors": [{"code": N, "message": "..."}],
// "messages": []} with a message saying what is wrong. The statuses are
// CFSSL's: 400 for every refusal (code 400, or CFSSL's numbers: 5200
// unknown profile, 5300 policy violation, 9002 and 9003 bad CSR), 405 for
// a method other than POST, 413 for a body over Config.MaxBodyBytes (256
// KiB), 500 when the CA failed (details in the log, not the answer), 503
// for a request to retry. Swarm retries any answer but 200 later.
//
// # Audit
//
// With Config.Audit (the store), every certificate issued (node, CA and
// the endpoint's own TLS certificates) and every refusal is recorded, with
// the client, the remote address and the reason. A certificate that cannot
// be recorded is withheld.
package extca
