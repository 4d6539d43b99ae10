// Package swarmkit tests chancery's CFSSL-compatible external CA (package
// extca) with Docker swarm's own client code, github.com/moby/swarmkit/v2's
// ca package. It is a module of its own so that swarmkit's dependencies
// stay out of chancery's: run it with `cd tests/swarmkit && go test ./...`.
package swarmkit
