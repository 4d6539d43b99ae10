#!/usr/bin/env bash
# Builds HashiCorp Vault's CLI (the real server the Vault backend's tests run
# against) from the nested module tools/vault, once per machine, into
#
#   ${XDG_CACHE_HOME:-$HOME/.cache}/chancery/vault-v1.19.5/vault
#
# outside the repository, so that every clone on the machine (and CI's fresh
# clone) shares it. Idempotent: when the binary is there and was built from
# the same tools/vault files, it only checks, in well under a second. A cold
# build takes about 5 minutes and 2-3 GB of module cache.
#
# The path can be changed with CHANCERY_VAULT_BIN, which the tests read too.
# Prints the binary's path on stdout.
set -euo pipefail
cd "$(dirname "$0")/.."

VAULT_VERSION=v1.19.5
CACHE=${XDG_CACHE_HOME:-${HOME:-$(getent passwd "$(id -u)" | cut -d: -f6)}/.cache}
BIN=${CHANCERY_VAULT_BIN:-$CACHE/chancery/vault-$VAULT_VERSION/vault}
DIR=$(dirname "$BIN")
STAMP="$BIN.stamp"

log() { printf 'install-vault: %s\n' "$*" >&2; }

export PATH="$PATH:/usr/local/go/bin"
command -v go >/dev/null 2>&1 || { log "Go is not installed (see scripts/setup.sh)"; exit 1; }

# What the binary is built from: the nested module's files and the Go version.
want=$( (cat tools/vault/go.mod tools/vault/go.sum tools/vault/main.go; go env GOVERSION) | sha256sum | cut -d' ' -f1)

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

log "building Vault $VAULT_VERSION into $BIN (about 5 minutes the first time)"
start=$(date +%s)
tmp=$(mktemp "$DIR/.vault-build-XXXXXX")
trap 'rm -f "$tmp"' EXIT
# -mod=readonly: go.mod and go.sum are committed; never tidy this module (its
# tests pull in a module whose checksum cannot be fetched).
(cd tools/vault && CGO_ENABLED=0 go build -mod=readonly -buildvcs=false -tags minimal -o "$tmp" .)
"$tmp" version >/dev/null
mv -f "$tmp" "$BIN"
trap - EXIT
echo "$want" >"$STAMP"
log "built $("$BIN" version) in $(($(date +%s) - start))s"
echo "$BIN"
