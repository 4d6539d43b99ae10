package ca

import "fmt"

// Role is a node's role, as written in the OU of its certificate.
type Role string

// The node roles, spelled as swarm spells them in certificates.
const (
	RoleManager Role = "swarm-manager"
	RoleWorker  Role = "swarm-worker"
)

// CADNSName is the DNS name every manager certificate carries, so that
// nodes can reach "the CA" through any manager.
const CADNSName = "swarm-ca"

// ParseRole parses a role given as "manager" or "worker", or as its
// certificate form "swarm-manager" or "swarm-worker".
func ParseRole(s string) (Role, error) {
	switch s {
	case "manager", string(RoleManager):
		return RoleManager, nil
	case "worker", string(RoleWorker):
		return RoleWorker, nil
	}
	return "", fmt.Errorf("ca: unknown role %q (want manager or worker)", s)
}

// Short returns "manager" or "worker", the form the CLI uses; an unknown
// role is returned unchanged.
func (r Role) Short() string {
	switch r {
	case RoleManager:
		return "manager"
	case RoleWorker:
		return "worker"
	}
	return string(r)
}

// Valid reports whether r is RoleManager or RoleWorker.
func (r Role) Valid() bool {
	return r == RoleManager || r == RoleWorker
}
