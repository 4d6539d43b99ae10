#!/usr/bin/env bash
# Makes a private SoftHSM2 configuration (if DIR has none yet) and a fresh
# token in it, for trying chancery's pkcs11 backend locally or in a test
# script. The system's SoftHSM2 tokens are never touched.
#
#   softhsm/new-token.sh [-d DIR] [-l LABEL]
#
# DIR (default ./softhsm-data) gets softhsm2.conf, tokens/ (0700), and
# LABEL.pin and LABEL.so-pin (0600) holding the token's random PINs. LABEL
# (default chancery) must not be taken in DIR. The script prints the lines
# to paste: the SOFTHSM2_CONF export and a URI for
# `chancery init --backend pkcs11 --pkcs11-uri URI`.
#
# The PINs are given to softhsm2-util on its command line, where other
# users of the machine can see them for a moment: this is for test tokens.
set -euo pipefail

dir=./softhsm-data
label=chancery
while getopts 'd:l:h' opt; do
  case "$opt" in
    d) dir=$OPTARG ;;
    l) label=$OPTARG ;;
    *) sed -n '2,16p' "$0" | sed 's/^# \{0,1\}//'; exit 2 ;;
  esac
done

die() { echo "new-token.sh: $*" >&2; exit 1; }

if ! command -v softhsm2-util >/dev/null; then
  die "softhsm2-util not found: install softhsm2 (scripts/setup.sh does)"
fi
module=${SOFTHSM2_MODULE:-}
if [ -z "$module" ]; then
  for m in /usr/lib/softhsm/libsofthsm2.so /usr/lib/x86_64-linux-gnu/softhsm/libsofthsm2.so \
           /usr/lib/aarch64-linux-gnu/softhsm/libsofthsm2.so /usr/lib64/pkcs11/libsofthsm2.so \
           /usr/local/lib/softhsm/libsofthsm2.so /opt/homebrew/lib/softhsm/libsofthsm2.so; do
    if [ -e "$m" ]; then module=$m; break; fi
  done
fi
[ -n "$module" ] || die "the SoftHSM2 module is not installed; install softhsm2 or set SOFTHSM2_MODULE"
[ "${#label}" -le 32 ] || die "a token label has at most 32 bytes"
case "$label" in
  */* | *\;* | *\?* | *\&* | *%* | *' '*) die "keep the label to letters, digits, '-', '_' and '.', so that it needs no escaping in a URI" ;;
esac

umask 077
mkdir -p "$dir/tokens"
dir=$(cd "$dir" && pwd)
conf=$dir/softhsm2.conf
if [ ! -e "$conf" ]; then
  cat >"$conf" <<EOF
# A private SoftHSM2 configuration, written by chancery's softhsm/new-token.sh.
directories.tokendir = $dir/tokens
objectstore.backend = file
log.level = ERROR
slots.removable = false
EOF
fi
export SOFTHSM2_CONF=$conf

if softhsm2-util --show-slots 2>/dev/null | grep -Eq "^ *Label: +$label *\$"; then
  die "a token labeled $label already exists in $dir; choose another with -l"
fi

random_pin() { od -An -N8 -tx1 /dev/urandom | tr -d ' \n'; }
pin=$(random_pin)
so_pin=$(random_pin)
printf '%s\n' "$pin" >"$dir/$label.pin"
printf '%s\n' "$so_pin" >"$dir/$label.so-pin"
softhsm2-util --init-token --free --label "$label" --so-pin "$so_pin" --pin "$pin" >/dev/null

cat <<EOF
export SOFTHSM2_CONF=$conf
# chancery init --backend pkcs11 --pkcs11-uri 'pkcs11:token=$label;object=chancery-root?module-path=$module&pin-source=$dir/$label.pin'
EOF
