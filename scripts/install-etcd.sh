#!/usr/bin/env bash
# Builds the etcd server (the real peer of store/etcdstore's tests) from the
# nested module tools/etcd, once per machine, into
#
#   ${XDG_CACHE_HOME:-$HOME/.cache}/chancery/etcd-v3.7.3/etcd
#
# outside the repository, so that every clone on the machine (and CI's fresh
# clone) shares it. Idempotent: when the binary is there and was built from
# the same tools/etcd files, it only checks, in well under a second. A cold
# build takes 2-3 minutes.
#
# Why a build and not Debian's etcd-server: Debian ships 3.4.23, a release
# line etcd no longer supports, two minor versions behind the client chancery
# uses (go.etcd.io/etcd/client/v3 v3.7.3); the package also starts an etcd
# service on the default ports as it installs. Building the server from the
# same release as the client tests what production runs, and the modules
# come from the Go module proxy like every other dependency.
#
# The path can be changed with CHANCERY_ETCD_BIN, which the tests read too.
# Prints the binary's path on stdout.
set -euo pipefail
cd "$(dirname "$0")/.."

ETCD_VERSION=v3.7.3
CACHE=${XDG_CACHE_HOME:-${HOME:-$(getent passwd "$(id -u)" | cut -d: -f6)}/.cache}
BIN=${CHANCERY_ETCD_BIN:-$CACHE/chancery/etcd-$ETCD_VERSION/etcd}
DIR=$(dirname "$BIN")
STAMP="$BIN.stamp"

log() { printf 'install-etcd: %s\n' "$*" >&2; }

export PATH="$PATH:/usr/local/go/bin"
command -v go >/dev/null 2>&1 || { log "Go is not installed (see scripts/setup.sh)"; exit 1; }

# What the binary is built from: the nested module's files and the Go version.
want=$( (cat tools/etcd/go.mod tools/etcd/go.sum tools/etcd/main.go; go env GOVERSION) | sha256sum | cut -d' ' -f1)

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

log "building etcd $ETCD_VERSION into $BIN (2-3 minutes the first time)"
start=$(date +%s)
tmp=$(mktemp "$DIR/.etcd-build-XXXXXX")
trap 'rm -f "$tmp"' EXIT
(cd tools/etcd && CGO_ENABLED=0 go build -mod=readonly -trimpath -buildvcs=false -o "$tmp" .)
chmod 0755 "$tmp"
"$tmp" --version >/dev/null
mv -f "$tmp" "$BIN"
trap - EXIT
echo "$want" >"$STAMP"
log "built etcd $("$BIN" --version | sed -n 's/^etcd Version: //p') in $(($(date +%s) - start))s"
echo "$BIN"
