package cfssl

import "encoding/json"

// This file holds CFSSL's JSON API as chancery speaks it: the sign request,
// the authsign envelope and the response envelope.

// signRequest is CFSSL's sign request (signer.SignRequest, as
// /api/v1/cfssl/sign and the request inside /authsign read it).
type signRequest struct {
	// Hosts replaces the CSR's SANs. It is never nil, so that no SAN of
	// the CSR reaches the certificate.
	Hosts []string `json:"hosts"`
	// Request is the CSR, PEM.
	Request string `json:"certificate_request"`
	// Subject replaces the CSR's subject, attribute by attribute: CFSSL
	// fills those it leaves empty from the CSR.
	Subject *wireSubject `json:"subject,omitempty"`
	// Profile is "" (the default profile) for node certificates, "CA" for
	// CA certificates.
	Profile string `json:"profile"`
	// Extensions are added to the certificate by CFSSL versions that honour
	// them, when the profile's allowed_extensions lists them.
	Extensions []wireExtension `json:"extensions,omitempty"`
}

// wireSubject is CFSSL's signer.Subject.
type wireSubject struct {
	CN    string     `json:"CN"`
	Names []wireName `json:"names"`
}

// wireName is CFSSL's csr.Name: one value of each attribute.
type wireName struct {
	C  string `json:"C,omitempty"`
	ST string `json:"ST,omitempty"`
	L  string `json:"L,omitempty"`
	O  string `json:"O,omitempty"`
	OU string `json:"OU,omitempty"`
}

// wireExtension is CFSSL's signer.Extension: an OID in dotted form and the
// extension's DER value in hex.
type wireExtension struct {
	ID       string `json:"id"`
	Critical bool   `json:"critical"`
	Value    string `json:"value"`
}

// authRequest is CFSSL's auth.AuthenticatedRequest: Token is
// HMAC-SHA-256(key, Request) and Request is the sign request's JSON, both
// base64 in JSON. CFSSL ignores Timestamp.
type authRequest struct {
	Timestamp int64  `json:"timestamp,omitempty"`
	Token     []byte `json:"token"`
	Request   []byte `json:"request"`
}

// envelope is CFSSL's api.Response.
type envelope struct {
	Success  bool            `json:"success"`
	Result   json.RawMessage `json:"result"`
	Errors   []Message       `json:"errors"`
	Messages []Message       `json:"messages"`
}

// Message is one entry of a CFSSL answer's errors.
type Message struct {
	// Code is CFSSL's error code (an HTTP status or a CFSSL error number
	// such as 9002).
	Code int `json:"code"`
	// Message is the CA's own text.
	Message string `json:"message"`
}

// signResult is the result of /sign and /authsign.
type signResult struct {
	Certificate string `json:"certificate"`
}

// infoResult is the result of /info.
type infoResult struct {
	Certificate string   `json:"certificate"`
	Usages      []string `json:"usages"`
	Expiry      string   `json:"expiry"`
}
