package stepca

// Template is the X.509 template a step-ca JWK provisioner needs for
// chancery: give it as the provisioner's options.x509.template (or save it
// to a file and name it in options.x509.templateFile).
//
// It reads only the token's signed claims (.Token.chancery, see the
// package documentation), never the request's unsigned template data
// (.Insecure.User) nor the CSR (.Insecure.CR), whose key alone is used. A
// node certificate gets the subject O=cluster, OU=role, CN=node ID, the
// DNS names and IP addresses of the claims, digital signature and key
// encipherment, server and client authentication, and CA:FALSE; its
// validity is the sign request's, within the provisioner's claims.
//
// A CA certificate (a root rotation's cross-signed certificate) is issued
// only when the provisioner's options.x509.templateData holds
// "chanceryCrossSign": true; otherwise the template fails the request.
// It gets the claims' subject byte for byte, certificate and CRL signing,
// CA:TRUE and the claims' path length limit. The step-ca's signing
// certificate must then allow a CA below it (no path length limit of 0).
//
// The provisioner's claims must also set "disableSmallstepExtensions":
// true, as chancery's certificates carry no extension but key usages,
// basic constraints, SANs and key IDs.
const Template = `{{- $c := .Token.chancery -}}
{{- if not $c }}{{ fail "chancery: the token carries no chancery claims" }}{{ end -}}
{
  "serialNumber": {{ toJson $c.serial }},
  "subjectKeyId": {{ toJson $c.skid }},
{{- if eq $c.profile "node" }}
  "subject": {
    "organization": {{ toJson $c.o }},
    "organizationalUnit": {{ toJson $c.ou }},
    "commonName": {{ toJson $c.cn }}
  },
  "dnsNames": {{ toJson $c.dns }},
  "ipAddresses": {{ toJson $c.ips }},
  "keyUsage": ["digitalSignature", "keyEncipherment"],
  "extKeyUsage": ["serverAuth", "clientAuth"],
  "basicConstraints": {"isCA": false}
{{- else if eq $c.profile "ca" }}
{{- if not .chanceryCrossSign }}{{ fail "chancery: this provisioner does not issue CA certificates (its templateData has no \"chanceryCrossSign\": true)" }}{{ end }}
  "rawSubject": {{ toJson $c.subject }},
  "keyUsage": ["certSign", "crlSign"],
  "basicConstraints": {"isCA": true, "maxPathLen": {{ toJson $c.maxPathLen }}}
{{- else }}{{ fail "chancery: unknown profile in the token's claims" }}{{ end }}
}
`

// CrossSignTemplateData is the provisioner's options.x509.templateData that
// lets Template issue CA certificates, for root rotations out of step-ca.
const CrossSignTemplateData = `{"chanceryCrossSign": true}`

// templateDataCrossSign is the template data key that allows CA
// certificates.
const templateDataCrossSign = "chanceryCrossSign"
