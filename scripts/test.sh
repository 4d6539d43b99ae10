#!/usr/bin/env bash
# Runs every test of chancery: formatting, vet, and `go test -race ./...`
# with the real peers the backends need, set up by scripts/setup.sh.
# Extra arguments go to `go test` (for example -run Conformance -v).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
export PATH="$PATH:/usr/local/go/bin"

unformatted=$(gofmt -l $(git ls-files '*.go' 2>/dev/null || find . -name '*.go'))
if [ -n "$unformatted" ]; then
  printf 'gofmt would change:\n%s\n' "$unformatted" >&2
  exit 1
fi
go vet ./...
go test -race -count=1 "$@" ./...

# The suites that make clusters, again with the state in etcd (a real etcd
# the tests start) instead of the embedded store.
CHANCERY_TEST_STORE=etcd go test -race -count=1 "$@" ./cluster/ ./server/

# Docker swarm's own CA client against chancery's external CA endpoint, in a
# nested module so that swarmkit's dependencies stay out of the main one.
(cd tests/swarmkit && go vet ./... && go test -race -count=1 "$@" ./...)
