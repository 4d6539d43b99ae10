// Package ca holds the CA rules chancery shares with Docker swarm mode:
// cluster and node IDs, join tokens, the node certificate policy,
// cert-expiry parsing and chain checks. It holds no keys and does no I/O.
package ca
