package server

import (
	"encoding/json"
	"time"

	"github.com/chancery-pki/chancery/api"
)

// appendNodePage appends p as encoding/json writes it, several times faster:
// a listing of 100,000 nodes is fifty such pages, and encoding/json's
// reflection and its check of time.Time's output were a third of the
// manager's work for it. TestAppendNodePage holds it to encoding/json's
// bytes. brief leaves out the certificate's serial and expiry and the
// times, as encoding/json leaves out empty fields tagged omitempty.
func appendNodePage(b []byte, p api.NodePage, brief bool) []byte {
	b = append(b, `{"nodes":[`...)
	for i, n := range p.Nodes {
		if i > 0 {
			b = append(b, ',')
		}
		b = append(b, `{"id":`...)
		b = appendJSONString(b, n.ID)
		b = append(b, `,"hostname":`...)
		b = appendJSONString(b, n.Hostname)
		b = append(b, `,"role":`...)
		b = appendJSONString(b, n.Role)
		b = append(b, `,"status":`...)
		b = appendJSONString(b, n.Status)
		b = append(b, `,"availability":`...)
		b = appendJSONString(b, n.Availability)
		b = append(b, `,"manager_status":`...)
		b = appendJSONString(b, n.ManagerStatus)
		if brief {
			b = append(b, '}')
			continue
		}
		b = append(b, `,"cert_serial":`...)
		b = appendJSONString(b, n.CertSerial)
		b = append(b, `,"cert_not_after":`...)
		b = appendJSONTime(b, n.CertNotAfter)
		if !n.LastSeen.IsZero() {
			b = append(b, `,"last_seen":`...)
			b = appendJSONTime(b, n.LastSeen)
		}
		if !n.CreatedAt.IsZero() {
			b = append(b, `,"created_at":`...)
			b = appendJSONTime(b, n.CreatedAt)
		}
		b = append(b, '}')
	}
	b = append(b, ']')
	if p.Next != "" {
		b = append(b, `,"next":`...)
		b = appendJSONString(b, p.Next)
	}
	return append(b, "}\n"...)
}

// appendJSONString appends s quoted as encoding/json quotes it: plain
// printable ASCII directly, anything else through encoding/json.
func appendJSONString(b []byte, s string) []byte {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < 0x20 || c >= 0x7f || c == '"' || c == '\\' || c == '<' || c == '>' || c == '&' {
			q, _ := json.Marshal(s)
			return append(b, q...)
		}
	}
	b = append(b, '"')
	b = append(b, s...)
	return append(b, '"')
}

// appendJSONTime appends t as time.Time's MarshalJSON does, RFC 3339 with
// nanoseconds (for the years 0-9999 that certificates and clocks have).
func appendJSONTime(b []byte, t time.Time) []byte {
	b = append(b, '"')
	b = t.AppendFormat(b, time.RFC3339Nano)
	return append(b, '"')
}
