// Package cfssl is the signer backend for an external CFSSL CA: the root key
// stays in the CA, and chancery asks it to sign over CFSSL's HTTP API, as
// Docker swarm does with --external-ca. It registers itself in the backends
// registry as "cfssl".
//
// # Configuration
//
// Each external CA is an --external-ca value, parsed as Docker parses it
// (ParseExternalCA): protocol=cfssl,url=https://HOST:PORT/api/v1/cfssl/sign
// and optionally cacert=FILE, a PEM bundle of the CA certificates to trust
// for the TLS connection (the system's roots otherwise). Several values are
// several URLs of one CA, asked in order. Connections use TLS 1.2 or later,
// no proxy, and follow no redirect.
//
// With an HMAC auth key (CFSSL's "standard" auth keys: hex, from a file or
// an environment variable, see ReadAuthKey), every request goes to
// /authsign as {"token": HMAC-SHA-256(key, request), "request": request},
// both base64; without one, to /sign. The key never appears in settings,
// errors or descriptions.
//
// # Chain
//
// New asks /api/v1/cfssl/info (POST {}) for the certificate the CA signs
// with: Chain()[0]. When it is a self-signed root, the chain is that one
// certificate. When it is an intermediate, the rest of the chain up to a
// self-signed root is taken from the cacert bundle of the CA that answered
// and from the chain the cluster record holds (Config.Chain), so an
// intermediate CA's cacert must hold its intermediates and root. When
// Config.Chain is given (opening an existing cluster), the CA's chain must
// end in the same root, or New fails.
//
// # Requests
//
// The backend signs only CSRs (Capabilities.NeedsCSR): Sign runs
// signer.CheckRequest, refuses a request without a CSR, and sends CFSSL's
// sign request:
//
//   - node certificates: profile "" (the default profile), the CSR in PEM,
//     subject {"CN": node ID, "names": [{"O": cluster ID, "OU": role}]},
//     and hosts = the template's DNS names (and IP addresses), never null so
//     that no SAN of the CSR survives;
//   - CA certificates (cross-signing): profile "CA", the CSR made with the
//     new root's key, the new root's subject, hosts [], and in extensions the
//     BasicConstraints ({"id": "2.5.29.19", "critical": true, "value":
//     "30030101ff"} for no path length limit) and the new root's subject key
//     ID (2.5.29.14), for CFSSL versions that honour extensions listed in the
//     profile's allowed_extensions.
//
// A subject CFSSL cannot reproduce byte for byte (it builds subjects from CN,
// C, ST, L, O and OU only, in Go's order) is refused before the CA is asked.
//
// # What comes back is checked
//
// A returned certificate is compared with the request: issuer equal to
// Chain()[0]'s subject and signature by its key, public key equal to the
// request's, subject equal byte for byte, DNS names and IP addresses equal
// and in order, no other SANs, key usage and extended key usages equal,
// basic constraints present with the request's CA flag (and path length for
// CA certificates), the new root's subject key ID for CA certificates, no
// extension other than key usage, extended key usage, basic constraints,
// SANs and key IDs, version 3. A certificate that differs is discarded and
// Sign returns a *MismatchError naming the field; no other CA is asked.
//
// Validity is the exception: CFSSL takes it from its profile (expiry,
// backdate), not from the request, so chancery's --cert-expiry does not
// apply to certificates from an external CA; Describe says so. The backend
// checks only that a certificate is valid when it arrives (allowing 5
// minutes of clock skew) and does not outlive Chain()[0].
//
// CFSSL draws serial numbers of 20 random bytes with the top bit cleared, so
// one in 128 is shorter than the 20 bytes chancery's certificates carry;
// such a certificate is discarded and asked again, at most 4 times.
//
// # Failures
//
// Each request is bounded by Config.Timeout (5s, as swarm) and its answer by
// Config.MaxResponseBytes (256 KiB, as swarm). Errors that may pass (no
// answer, HTTP 5xx, 408, 429: *TransportError, *RemoteError) are retried
// with backoff, for at most Config.MaxAttempts rounds over the CAs that gave
// them. A CA's refusal ("success": false, or another HTTP status) is a
// *RemoteError with the CA's own message, and is not retried on that CA. An
// answer that is not CFSSL's (too large, not JSON, no certificate) is an
// *AnswerError.
//
// # What cfssl 1.2.0 (Debian golang-cfssl) does
//
// The tests run against it. It ignores the request's extensions and has no
// copy_extensions or csr_whitelist, so:
//
//   - CA:TRUE comes from the CA profile's "ca_constraint": {"is_ca": true};
//   - it computes the subject key ID itself, as SHA-1 of the public key
//     (RFC 5280 method 1). A new root whose key ID was computed otherwise,
//     such as a root made by Go 1.25 or later (truncated SHA-256), gets a
//     cross-signed certificate with another key ID, which is refused
//     ("subject key id"); roots made by swarm, cfssl, OpenSSL or Go with
//     GODEBUG=x509sha256skid=0 are cross-signed;
//   - it reads the CSR's basic constraints, and refuses ("Policy violation
//     request") to sign a CSR asking for CA:TRUE with the default profile;
//   - it copies into the subject the attributes the request leaves empty
//     (C, ST, L) from the CSR, which the subject check refuses.
//
// The configuration an external CFSSL CA needs is the one the tests serve
// (internal/cfssldev's Config), without its "authenticated" profile: a
// default profile with usages "digital signature", "key encipherment",
// "server auth", "client auth", an expiry (2160h), backdate 1h, and no OCSP,
// CRL or issuer URLs; a profile named "CA" with usages "cert sign", "crl
// sign", ca_constraint is_ca, backdate 1h, an expiry within the CA's own
// validity, and allowed_extensions 2.5.29.19 and 2.5.29.14; and, for
// authsign, "auth_key" on both profiles naming a key in auth_keys.
package cfssl
