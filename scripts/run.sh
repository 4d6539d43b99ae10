#!/usr/bin/env bash
# Builds chancery and runs its main job on the embedded defaults (file
# backend, embedded store): the first run creates a cluster with
# `chancery init` and runs its manager in the foreground; later runs restart
# it with `chancery run`. Ctrl-C stops it. Arguments go to init (or run).
# The data directory is ./chancery-data unless CHANCERY_DATA_DIR is set; the
# manager listens on 127.0.0.1:2378 unless --listen-addr says otherwise.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
export PATH="$PATH:/usr/local/go/bin"
export CHANCERY_DATA_DIR="${CHANCERY_DATA_DIR:-$PWD/chancery-data}"
go build -o bin/chancery ./cmd/chancery
cat >&2 <<MSG
run: data directory $CHANCERY_DATA_DIR; in another terminal try:
  bin/chancery info
  bin/chancery node ls
  CHANCERY_JOIN_TOKEN="\$(bin/chancery join-token -q worker)" bin/chancery join --data-dir /tmp/node2 127.0.0.1:2378
  openssl x509 -in $CHANCERY_DATA_DIR/certificates/swarm-node.crt -text -noout
MSG
if [ -e "$CHANCERY_DATA_DIR/chancery.db" ]; then
  exec bin/chancery run "$@"
fi
exec bin/chancery init --listen-addr 127.0.0.1:2378 --advertise-addr 127.0.0.1:2378 "$@"
