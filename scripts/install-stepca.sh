#!/usr/bin/env bash
# Builds smallstep's step-ca (the real CA the stepca backend's tests run
# against) from the nested module tools/stepca, once per machine, into
#
#   ${XDG_CACHE_HOME:-$HOME/.cache}/chancery/step-ca-v0.30.2/step-ca
#
# outside the repository, beside the Vault that scripts/install-vault.sh
# builds, so that every clone on the machine (and CI's fresh clone) shares
# it. Idempotent: when the binary is there and was built from the same
# tools/stepca files, it only checks, in well under a second. A cold build
# takes about 5 minutes.
#
# The path can be changed with CHANCERY_STEPCA_BIN, which the tests read too.
# Prints the binary's path on stdout.
set -euo pipefail
cd "$(dirname "$0")/.."

STEPCA_VERSION=v0.30.2
CACHE=${XDG_CACHE_HOME:-${HOME:-$(getent passwd "$(id -u)" | cut -d: -f6)}/.cache}
BIN=${CHANCERY_STEPCA_BIN:-$CACHE/chancery/step-ca-$STEPCA_VERSION/step-ca}
DIR=$(dirname "$BIN")
STAMP="$BIN.stamp"

log() { printf 'install-stepca: %s\n' "$*" >&2; }

export PATH="$PATH:/usr/local/go/bin"
command -v go >/dev/null 2>&1 || { log "Go is not installed (see scripts/setup.sh)"; exit 1; }

# What the binary is built from: the nested module's files and the Go version.
want=$( (cat tools/stepca/go.mod tools/stepca/go.sum; go env GOVERSION) | sha256sum | cut -d' ' -f1)

if [ -x "$BIN" ] && [ -f "$STAMP" ] && [ "$(cat "$STAMP")" = "$want" ]; then
  echo "$BIN"
  exit 0
fi

mkdir -p "$DIR"
# One build at a time on the machine: a second caller waits, then finds the
# binary built.
exec 9>"$DIR/.lock"
flock 9
if [ -x "$BIN" ] && [ -f "$STAMP" ] && [ "$(cat "$STAMP")" = "$want" ]; then
  echo "$BIN"
  exit 0
fi

log "building step-ca $STEPCA_VERSION into $BIN (about 5 minutes the first time)"
start=$(date +%s)
tmp=$(mktemp "$DIR/.step-ca-build-XXXXXX")
trap 'rm -f "$tmp"' EXIT
# -mod=readonly: go.mod and go.sum are committed.
(cd tools/stepca && CGO_ENABLED=0 go build -mod=readonly -buildvcs=false -o "$tmp" github.com/smallstep/certificates/cmd/step-ca)
"$tmp" version >/dev/null
mv -f "$tmp" "$BIN"
trap - EXIT
echo "$want" >"$STAMP"
log "built $("$BIN" version | head -n1) in $(($(date +%s) - start))s"
echo "$BIN"
