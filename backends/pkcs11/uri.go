package pkcs11

import (
	"bytes"
	"fmt"
	"strings"
	"unicode/utf8"
)

// URI is an RFC 7512 PKCS#11 URI, restricted to the attributes chancery
// reads. Its String method never includes pin-value.
//
// Path attributes (separated by ";"):
//
//	token=LABEL    the token's label
//	serial=SERIAL  the token's serial number
//	object=LABEL   the key's label (CKA_LABEL)
//	id=BYTES       the key's id (CKA_ID), percent-encoded bytes: id=%01%02
//	type=private   the object type; only private keys are used
//
// Query attributes (after "?", separated by "&"):
//
//	module-path=PATH  the PKCS#11 module (shared library) to load
//	pin-source=FILE   a file holding the user PIN (a path or a file: URI)
//	pin-value=PIN     the user PIN itself (accepted, never stored; prefer
//	                  pin-source or pin-env)
//	pin-env=NAME      chancery's extension: the environment variable that
//	                  holds the user PIN
//
// Attribute names are case-sensitive; values are percent-decoded. Unknown
// and repeated attributes are refused, as are more than one PIN attribute.
type URI struct {
	// Token is the token's label.
	Token string
	// Serial is the token's serial number.
	Serial string
	// Object is the key's label, CKA_LABEL.
	Object string
	// ID is the key's id, CKA_ID.
	ID []byte
	// Type is the object type: empty or "private".
	Type string
	// ModulePath is the PKCS#11 module to load.
	ModulePath string
	// PINSource names a file that holds the user PIN.
	PINSource string
	// PINEnv names an environment variable that holds the user PIN.
	PINEnv string

	// pinValue is the pin-value attribute; it never leaves the package.
	pinValue secret
}

// secret is a string that never prints.
type secret string

func (secret) String() string   { return "[redacted]" }
func (secret) GoString() string { return "[redacted]" }

// maxURILength bounds the URIs ParseURI reads.
const maxURILength = 8 << 10

// Attribute names.
const (
	attrToken      = "token"
	attrSerial     = "serial"
	attrObject     = "object"
	attrID         = "id"
	attrType       = "type"
	attrModulePath = "module-path"
	attrPINSource  = "pin-source"
	attrPINValue   = "pin-value"
	attrPINEnv     = "pin-env"
)

// unsupported are RFC 7512 attributes that chancery does not read; naming
// them gets a more helpful refusal than an unknown attribute does.
var unsupported = map[string]string{
	"manufacturer":         "select the token with token= or serial=",
	"model":                "select the token with token= or serial=",
	"library-manufacturer": "select the module with module-path=",
	"library-description":  "select the module with module-path=",
	"library-version":      "select the module with module-path=",
	"slot-description":     "select the token with token= or serial=, never by slot",
	"slot-manufacturer":    "select the token with token= or serial=, never by slot",
	"slot-id":              "slot IDs change; select the token with token= or serial=",
	"module-name":          "give the module's full path with module-path=",
}

// URIError says what is wrong with a PKCS#11 URI. It never quotes the
// value of an attribute, which could be a PIN.
type URIError struct {
	// Attr is the attribute concerned, or empty for the URI as a whole.
	Attr string
	// Reason says what is wrong.
	Reason string
}

func (e *URIError) Error() string {
	if e.Attr == "" {
		return "pkcs11: invalid PKCS#11 URI: " + e.Reason
	}
	return fmt.Sprintf("pkcs11: invalid PKCS#11 URI: attribute %q: %s", e.Attr, e.Reason)
}

// Is reports whether target is ErrInvalidURI.
func (e *URIError) Is(target error) bool { return target == ErrInvalidURI }

func uriErr(attr, format string, args ...any) error {
	return &URIError{Attr: attr, Reason: fmt.Sprintf(format, args...)}
}

// ParseURI parses an RFC 7512 PKCS#11 URI. It checks syntax only; see
// Config for what chancery needs in it.
func ParseURI(s string) (*URI, error) {
	if len(s) > maxURILength {
		return nil, uriErr("", "longer than %d bytes", maxURILength)
	}
	scheme, rest, ok := strings.Cut(s, ":")
	if !ok || !strings.EqualFold(scheme, "pkcs11") {
		return nil, uriErr("", `it must start with "pkcs11:"`)
	}
	path, query, hasQuery := strings.Cut(rest, "?")
	u := &URI{}
	seen := map[string]bool{}
	if path != "" {
		for i, attr := range strings.Split(path, ";") {
			if err := u.set(attr, i+1, false, seen); err != nil {
				return nil, err
			}
		}
	}
	if hasQuery && query != "" {
		for i, attr := range strings.Split(query, "&") {
			if err := u.set(attr, i+1, true, seen); err != nil {
				return nil, err
			}
		}
	}
	var pins []string
	for _, a := range []string{attrPINValue, attrPINSource, attrPINEnv} {
		if seen[a] {
			pins = append(pins, a)
		}
	}
	if len(pins) > 1 {
		return nil, uriErr("", "%s contradict each other: give only one way to get the PIN", strings.Join(pins, " and "))
	}
	return u, nil
}

// set parses one attribute, the n-th of the path or the query.
func (u *URI) set(attr string, n int, inQuery bool, seen map[string]bool) error {
	part, sep := "path", ";"
	if inQuery {
		part, sep = "query", "&"
	}
	name, raw, ok := strings.Cut(attr, "=")
	if !validName(name) {
		if attr == "" {
			return uriErr("", "empty attribute %d in the %s (a stray %q?)", n, part, sep)
		}
		return uriErr("", "attribute %d of the %s has no valid name (want name=value)", n, part)
	}
	known := map[string]bool{attrToken: !inQuery, attrSerial: !inQuery, attrObject: !inQuery, attrID: !inQuery, attrType: !inQuery,
		attrModulePath: inQuery, attrPINSource: inQuery, attrPINValue: inQuery, attrPINEnv: inQuery}
	isKnown, exists := known[name]
	switch {
	case exists && !isKnown:
		other := "query (after ?)"
		if inQuery {
			other = "path (before ?)"
		}
		return uriErr(name, "belongs in the %s", other)
	case !exists:
		if hint, ok := unsupported[name]; ok {
			return uriErr(name, "not supported by chancery: %s", hint)
		}
		const reads = "chancery reads token, serial, object, id and type in the path; module-path, pin-source, pin-value and pin-env in the query"
		if !nameLike(name) {
			// Not quoted: a misplaced PIN would land here.
			return uriErr("", "attribute %d of the %s has an unknown name (attribute names are lower case; %s)", n, part, reads)
		}
		return uriErr(name, "unknown attribute (%s)", reads)
	}
	if !ok {
		return uriErr(name, "has no value (want %s=...)", name)
	}
	if seen[name] {
		return uriErr(name, "given more than once")
	}
	seen[name] = true
	v, err := pctDecode(raw, inQuery)
	if err != nil {
		return uriErr(name, "%s", err)
	}
	if len(v) == 0 {
		return uriErr(name, "empty value")
	}
	if name != attrID && name != attrPINValue && !utf8.Valid(v) {
		return uriErr(name, "not valid UTF-8")
	}
	switch name {
	case attrToken:
		u.Token = string(v)
	case attrSerial:
		u.Serial = string(v)
	case attrObject:
		u.Object = string(v)
	case attrID:
		u.ID = v
	case attrType:
		switch string(v) {
		case "private":
			u.Type = "private"
		case "public", "cert", "secret-key", "data":
			return uriErr(name, "type=%s: chancery uses a private key (write type=private, or leave type out)", v)
		default:
			return uriErr(name, "unknown object type (RFC 7512 types are public, private, cert, secret-key and data)")
		}
	case attrModulePath:
		if bytes.IndexByte(v, 0) >= 0 {
			return uriErr(name, "contains a NUL byte")
		}
		u.ModulePath = string(v)
	case attrPINSource:
		if v[0] == '|' {
			return uriErr(name, "running a program for the PIN is not supported; give a file")
		}
		u.PINSource = string(v)
	case attrPINValue:
		u.pinValue = secret(v)
	case attrPINEnv:
		if !validEnvName(string(v)) {
			return uriErr(name, "not an environment variable name (letters, digits and _, not starting with a digit)")
		}
		u.PINEnv = string(v)
	}
	return nil
}

// HasPINValue reports whether the URI carries a pin-value attribute.
func (u URI) HasPINValue() bool { return u.pinValue != "" }

// WithoutPINValue returns a copy of u without pin-value.
func (u URI) WithoutPINValue() *URI {
	u.pinValue = ""
	u.ID = bytes.Clone(u.ID)
	return &u
}

// String returns u in canonical form: path attributes in the order token,
// serial, object, id, type; query attributes module-path, pin-source,
// pin-env. It never includes pin-value.
func (u URI) String() string {
	var path, query []string
	add := func(list *[]string, name, v string, safe func(byte) bool) {
		if v != "" {
			*list = append(*list, name+"="+pctEncode([]byte(v), safe))
		}
	}
	add(&path, attrToken, u.Token, pathSafe)
	add(&path, attrSerial, u.Serial, pathSafe)
	add(&path, attrObject, u.Object, pathSafe)
	if len(u.ID) > 0 {
		path = append(path, attrID+"="+pctEncode(u.ID, func(byte) bool { return false }))
	}
	add(&path, attrType, u.Type, pathSafe)
	add(&query, attrModulePath, u.ModulePath, querySafe)
	add(&query, attrPINSource, u.PINSource, querySafe)
	add(&query, attrPINEnv, u.PINEnv, querySafe)
	s := "pkcs11:" + strings.Join(path, ";")
	if len(query) > 0 {
		s += "?" + strings.Join(query, "&")
	}
	return s
}

// GoString is String, so that %#v does not print pin-value either.
func (u URI) GoString() string { return u.String() }

// validName reports whether name is an attribute name: letters, digits,
// "-" and "_" (RFC 7512's pk11-v-attr-nm-char).
func validName(name string) bool {
	if name == "" || len(name) > 64 {
		return false
	}
	for i := 0; i < len(name); i++ {
		c := name[i]
		if !isAlpha(c) && !isDigit(c) && c != '-' && c != '_' {
			return false
		}
	}
	return true
}

// nameLike reports whether an unknown attribute name looks like one (lower
// case letters, "-" and "_"), so that an error may quote it without
// risking quoting a PIN.
func nameLike(name string) bool {
	if len(name) > 32 {
		return false
	}
	for i := 0; i < len(name); i++ {
		if c := name[i]; !('a' <= c && c <= 'z') && c != '-' && c != '_' {
			return false
		}
	}
	return true
}

func validEnvName(s string) bool {
	if s == "" || isDigit(s[0]) {
		return false
	}
	for i := 0; i < len(s); i++ {
		if c := s[i]; !isAlpha(c) && !isDigit(c) && c != '_' {
			return false
		}
	}
	return true
}

func isAlpha(c byte) bool { return 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' }
func isDigit(c byte) bool { return '0' <= c && c <= '9' }

// unreserved is RFC 3986's unreserved set, which RFC 7512 keeps.
func unreserved(c byte) bool {
	return isAlpha(c) || isDigit(c) || c == '-' || c == '.' || c == '_' || c == '~'
}

// resAvail is RFC 7512's pk11-res-avail.
func resAvail(c byte) bool { return strings.IndexByte(":[]@!$'()*+,=", c) >= 0 }

// pchar reports whether c may appear unencoded in a path value
// (pk11-pchar, without pct-encoded).
func pchar(c byte) bool { return unreserved(c) || resAvail(c) || c == '&' }

// qchar reports whether c may appear unencoded in a query value
// (pk11-qchar, without pct-encoded).
func qchar(c byte) bool { return unreserved(c) || resAvail(c) || c == '/' || c == '?' || c == '|' }

// pathSafe and querySafe are the characters String leaves unencoded.
func pathSafe(c byte) bool  { return unreserved(c) || c == ':' || c == '@' }
func querySafe(c byte) bool { return unreserved(c) || c == ':' || c == '@' || c == '/' }

// pctDecode decodes a percent-encoded value, refusing characters that the
// path (or query) grammar does not allow unencoded. Its errors never quote
// the value.
func pctDecode(s string, inQuery bool) ([]byte, error) {
	allowed := pchar
	if inQuery {
		allowed = qchar
	}
	out := make([]byte, 0, len(s))
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c == '%':
			if i+2 >= len(s) || !isHex(s[i+1]) || !isHex(s[i+2]) {
				return nil, fmt.Errorf("bad percent-encoding at byte %d (want %%XX with two hex digits)", i+1)
			}
			out = append(out, unhex(s[i+1])<<4|unhex(s[i+2]))
			i += 2
		case allowed(c):
			out = append(out, c)
		default:
			return nil, fmt.Errorf("byte %d must be percent-encoded", i+1)
		}
	}
	return out, nil
}

// pctEncode percent-encodes every byte of b for which safe is false.
func pctEncode(b []byte, safe func(byte) bool) string {
	const hex = "0123456789ABCDEF"
	var sb strings.Builder
	for _, c := range b {
		if safe(c) {
			sb.WriteByte(c)
			continue
		}
		sb.WriteByte('%')
		sb.WriteByte(hex[c>>4])
		sb.WriteByte(hex[c&15])
	}
	return sb.String()
}

func isHex(c byte) bool { return isDigit(c) || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F' }

func unhex(c byte) byte {
	switch {
	case isDigit(c):
		return c - '0'
	case 'a' <= c && c <= 'f':
		return c - 'a' + 10
	}
	return c - 'A' + 10
}
