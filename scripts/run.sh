#!/usr/bin/env bash
# Builds chancery and runs its main job on the embedded defaults (file
# backend, embedded store): `chancery init` in a data directory, then
# `chancery info`. Arguments go to init; the data directory defaults to
# ./chancery-data (set CHANCERY_DATA_DIR to change it).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
export PATH="$PATH:/usr/local/go/bin"
export CHANCERY_DATA_DIR="${CHANCERY_DATA_DIR:-$PWD/chancery-data}"
go build -o bin/chancery ./cmd/chancery
bin/chancery init "$@"
bin/chancery info
echo
echo "The node's certificate: openssl x509 -in $CHANCERY_DATA_DIR/certificates/swarm-node.crt -text -noout"
