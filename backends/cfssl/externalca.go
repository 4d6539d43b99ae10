package cfssl

import (
	"encoding/csv"
	"errors"
	"fmt"
	"io"
	"net/url"
	"strings"
)

// Keys of an --external-ca value.
const (
	specProtocol = "protocol"
	specURL      = "url"
	specCACert   = "cacert"
)

// Protocol is the only external CA protocol: CFSSL's HTTP API.
const Protocol = "cfssl"

// signPath is how the path of an external CA's URL ends: the URL names
// CFSSL's sign endpoint, and the authsign and info endpoints sit beside it.
const signPath = "/sign"

// ExternalCA is one parsed --external-ca value.
type ExternalCA struct {
	// URL is the CA's sign endpoint, such as
	// https://ca.example:8888/api/v1/cfssl/sign. The authsign and info
	// endpoints are its siblings (.../authsign, .../info).
	URL string
	// CACertFile, when set, names a PEM bundle of the CA certificates to
	// trust for the TLS connection to URL, instead of the system's. Its
	// certificates also complete the signing chain when the CA's own
	// certificate is not a root (see the package documentation).
	CACertFile string
}

// SpecError says why an --external-ca value was refused.
type SpecError struct {
	// Spec is the value as given.
	Spec string
	// Reason says what is wrong with it.
	Reason string
}

func (e *SpecError) Error() string {
	return fmt.Sprintf("cfssl: invalid external CA %q: %s", e.Spec, e.Reason)
}

// ParseExternalCA parses an --external-ca value as Docker parses it: one
// CSV record of key=value fields. Keys are case-insensitive; protocol (whose
// value is case-insensitive too) must be cfssl; url is required, and must
// be an https URL with a host, no user information, query or fragment,
// whose path ends in /sign; cacert optionally names a file. Unlike Docker,
// it refuses unknown keys, keys given twice, and anything after the first
// record. The cacert file is not read here.
func ParseExternalCA(spec string) (ExternalCA, error) {
	refuse := func(format string, args ...any) (ExternalCA, error) {
		return ExternalCA{}, &SpecError{Spec: spec, Reason: fmt.Sprintf(format, args...)}
	}
	if strings.TrimSpace(spec) == "" {
		return refuse("empty (want protocol=cfssl,url=https://HOST:PORT/api/v1/cfssl/sign[,cacert=FILE])")
	}
	r := csv.NewReader(strings.NewReader(spec))
	r.FieldsPerRecord = -1
	fields, err := r.Read()
	if err != nil {
		return refuse("not a CSV record: %v", csvReason(err))
	}
	if _, err := r.Read(); !errors.Is(err, io.EOF) {
		return refuse("more than one CSV record (give each external CA in its own --external-ca)")
	}
	var (
		ext      ExternalCA
		seen     = map[string]bool{}
		protocol string
	)
	for _, field := range fields {
		key, value, ok := strings.Cut(field, "=")
		if !ok {
			return refuse("field %q is not key=value", field)
		}
		k := strings.ToLower(key)
		switch k {
		case specProtocol, specURL, specCACert:
		default:
			return refuse("unknown key %q (want protocol, url and optionally cacert)", key)
		}
		if seen[k] {
			return refuse("key %q is given twice", k)
		}
		seen[k] = true
		switch k {
		case specProtocol:
			protocol = value
		case specURL:
			ext.URL = value
		case specCACert:
			if value == "" {
				return refuse("cacert is empty (want cacert=FILE, a PEM bundle)")
			}
			ext.CACertFile = value
		}
	}
	if !seen[specProtocol] {
		return refuse("no protocol (want protocol=cfssl)")
	}
	if !strings.EqualFold(protocol, Protocol) {
		return refuse("unsupported protocol %q (want cfssl)", protocol)
	}
	if !seen[specURL] {
		return refuse("no url (want url=https://HOST:PORT/api/v1/cfssl/sign)")
	}
	if reason := checkURL(ext.URL); reason != "" {
		return refuse("url %q %s", ext.URL, reason)
	}
	return ext, nil
}

// checkURL says what is wrong with an external CA's URL, or "".
func checkURL(raw string) string {
	u, err := url.Parse(raw)
	switch {
	case err != nil:
		return "does not parse"
	case u.Scheme != "https":
		return "is not https (the external CA must be reached over TLS)"
	case u.Opaque != "" || u.Host == "" || u.Hostname() == "":
		return "has no host"
	case u.User != nil:
		return "carries user information (credentials do not belong in the URL)"
	case u.RawQuery != "" || u.ForceQuery || u.Fragment != "" || strings.Contains(raw, "#"):
		return "has a query or fragment"
	case !strings.HasSuffix(u.Path, signPath) || !strings.HasSuffix(raw, signPath):
		return "does not name a sign endpoint (its path must end in /sign, as in /api/v1/cfssl/sign)"
	}
	return ""
}

func csvReason(err error) string {
	var pe *csv.ParseError
	if errors.As(err, &pe) {
		return pe.Err.Error()
	}
	if errors.Is(err, io.EOF) {
		return "no fields"
	}
	return err.Error()
}

// String returns the value in its canonical form, as ParseExternalCA reads
// it back: protocol=cfssl,url=URL[,cacert=FILE], quoted where CSV needs it.
func (e ExternalCA) String() string {
	fields := []string{specProtocol + "=" + Protocol, specURL + "=" + e.URL}
	if e.CACertFile != "" {
		fields = append(fields, specCACert+"="+e.CACertFile)
	}
	var b strings.Builder
	w := csv.NewWriter(&b)
	// Writing to a strings.Builder cannot fail.
	_ = w.Write(fields)
	w.Flush()
	return strings.TrimSuffix(b.String(), "\n")
}

// endpoint returns the URL of the CFSSL endpoint name ("sign", "authsign",
// "info") beside the sign endpoint e.URL, whose text ParseExternalCA checked
// ends in /sign.
func (e ExternalCA) endpoint(name string) string {
	return strings.TrimSuffix(e.URL, signPath) + "/" + name
}
