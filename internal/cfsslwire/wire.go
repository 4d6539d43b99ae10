// Package cfsslwire holds CFSSL's JSON API as chancery speaks it, both as a
// client (backends/cfssl, which asks an external CFSSL CA) and as a server
// (extca, chancery's CFSSL-compatible endpoint): the sign request, the
// authsign envelope and its HMAC auth key, the info request and the response
// envelope. It only describes the wire; neither side's rules live here.
package cfsslwire

import "encoding/json"

// Profile names on the wire.
const (
	// ProfileNode is the CFSSL profile of node certificates: the default
	// profile, as swarm asks.
	ProfileNode = ""
	// ProfileCA is the CFSSL profile of CA certificates (signer.ProfileCA),
	// as swarm asks when it cross-signs.
	ProfileCA = "CA"
)

// SignRequest is CFSSL's sign request (signer.SignRequest), as
// /api/v1/cfssl/sign and the request inside /authsign read it. CFSSL's
// clients send more fields (label, serial, NotBefore, NotAfter,
// ReturnPrecert, crl_override, metadata); a server that reads them embeds
// this type in a struct of its own.
type SignRequest struct {
	// Hosts replaces the CSR's SANs. backends/cfssl never sends it nil, so
	// that no SAN of the CSR reaches the certificate; CFSSL reads null as
	// "the CSR's SANs".
	Hosts []string `json:"hosts"`
	// Request is the CSR, PEM.
	Request string `json:"certificate_request"`
	// Subject replaces the CSR's subject, attribute by attribute: CFSSL
	// fills those it leaves empty from the CSR.
	Subject *Subject `json:"subject,omitempty"`
	// Profile is ProfileNode ("", the default profile) for node
	// certificates, ProfileCA ("CA") for CA certificates.
	Profile string `json:"profile"`
	// Extensions are added to the certificate by CFSSL versions that honour
	// them, when the profile's allowed_extensions lists them.
	Extensions []Extension `json:"extensions,omitempty"`
}

// Subject is CFSSL's signer.Subject: a common name and a list of name
// entries.
type Subject struct {
	CN    string        `json:"CN"`
	Names []SubjectName `json:"names"`
}

// SubjectName is CFSSL's csr.Name: one value of each attribute.
type SubjectName struct {
	C  string `json:"C,omitempty"`
	ST string `json:"ST,omitempty"`
	L  string `json:"L,omitempty"`
	O  string `json:"O,omitempty"`
	OU string `json:"OU,omitempty"`
}

// Extension is CFSSL's signer.Extension: an OID in dotted form and the
// extension's DER value in hex.
type Extension struct {
	ID       string `json:"id"`
	Critical bool   `json:"critical"`
	Value    string `json:"value"`
}

// AuthRequest is CFSSL's auth.AuthenticatedRequest, the body of
// /authsign: Token is HMAC-SHA-256(key, Request) (see AuthKey.Token) and
// Request is the sign request's JSON, both base64 in JSON. Timestamp and
// RemoteAddress are not covered by the token; CFSSL ignores both.
type AuthRequest struct {
	Timestamp     int64  `json:"timestamp,omitempty"`
	RemoteAddress []byte `json:"remote_address,omitempty"`
	Token         []byte `json:"token"`
	Request       []byte `json:"request"`
}

// InfoRequest is the body of /info. Both fields are optional.
type InfoRequest struct {
	Label   string `json:"label"`
	Profile string `json:"profile"`
}

// Response is CFSSL's api.Response, the envelope of every answer: Result
// is null when Success is false, and Errors says why.
type Response struct {
	Success  bool            `json:"success"`
	Result   json.RawMessage `json:"result"`
	Errors   []Message       `json:"errors"`
	Messages []Message       `json:"messages"`
}

// Message is one entry of a CFSSL answer's errors or messages.
type Message struct {
	// Code is CFSSL's error code (an HTTP status or a CFSSL error number
	// such as 9002).
	Code int `json:"code"`
	// Message is the CA's own text.
	Message string `json:"message"`
}

// SignResult is the result of /sign and /authsign: the certificate, PEM,
// possibly followed by intermediates.
type SignResult struct {
	Certificate string `json:"certificate"`
}

// InfoResult is the result of /info: the certificate the CA signs with,
// PEM, and the profile's usages and expiry.
type InfoResult struct {
	Certificate string   `json:"certificate"`
	Usages      []string `json:"usages"`
	Expiry      string   `json:"expiry"`
}
