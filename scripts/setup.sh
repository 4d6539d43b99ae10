#!/usr/bin/env bash
# Installs and checks everything chancery's build and tests need, on a fresh
# Debian machine or an already prepared one. Idempotent: when everything is
# there it only checks, in a second or two.
#
# Used by scripts/run.sh, scripts/test.sh (and so by .ci/run).
set -euo pipefail
cd "$(dirname "$0")/.."

log() { printf 'setup: %s\n' "$*" >&2; }

# Debian packages the tests need: the backends' real peers (softhsm2 and
# opensc's pkcs11-tool for PKCS#11, golang-cfssl for CFSSL) and openssl.
PACKAGES=(openssl ca-certificates softhsm2 opensc golang-cfssl)

missing=()
for p in "${PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
if ((${#missing[@]})); then
  log "installing Debian packages: ${missing[*]}"
  SUDO=""
  if [ "$(id -u)" -ne 0 ]; then
    command -v sudo >/dev/null 2>&1 || { log "installing packages needs root: run as root or install sudo"; exit 1; }
    SUDO="sudo -n"
  fi
  $SUDO env DEBIAN_FRONTEND=noninteractive apt-get update -qq
  $SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

# Go: the version go.mod names, or newer.
export PATH="$PATH:/usr/local/go/bin"
if ! command -v go >/dev/null 2>&1; then
  log "Go is not installed: install Go $(sed -n 's/^go //p' go.mod) or newer from the Go project's downloads"
  exit 1
fi
want=$(sed -n 's/^go \([0-9.]*\).*/\1/p' go.mod)
have=$(go env GOVERSION | sed 's/^go//')
if [ "$(printf '%s\n%s\n' "$want" "$have" | sort -V | head -n1)" != "$want" ]; then
  log "Go $have is older than the $want that go.mod needs"
  exit 1
fi

# Modules, once.
go mod download

# HashiCorp Vault, the Vault backend's real peer: no Debian package ships it,
# so it is built from source once per machine (minutes cold, instant after).
scripts/install-vault.sh >/dev/null
# smallstep's step-ca, the stepca backend's real peer: built the same way,
# from the nested module tools/stepca, into the same per-machine cache.
scripts/install-stepca.sh >/dev/null

# etcd, the etcd store's real peer: built from the Go module proxy's
# go.etcd.io/etcd/server/v3, once per machine (see the script for why not
# Debian's etcd-server).
scripts/install-etcd.sh >/dev/null
log "ready (Go $have)"
