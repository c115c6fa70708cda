#!/bin/sh
# Instructions per signed call, raw libcurl vs ecsplay, counted by callgrind (user space,
# exact: unlike CPU time, not moved by other work on a shared machine).
#
#   sh bench/call_ir.sh URL REQUEST_FILE CURL_RAW [ECSPLAY]
#
# URL: a running `ecsplay sim serve`; REQUEST_FILE: a signed ListClusters request as
# `bench/ecsplay_calls.lua dump=` writes it (re-dumped here, so its X-Amz-Date is fresh);
# CURL_RAW: bench/curl_raw.c built. Each client runs its loop twice, 100 and 600 calls;
# the difference over 500 calls leaves start-up out. Prints "raw N", "raw_sigv4 N" (the
# same client signing every call itself with libcurl's own SigV4, CURLOPT_AWS_SIGV4, the
# key pair from the environment) and "ecsplay N" (nothing when valgrind is not
# installed). Kernel time (the socket calls) is not counted: the two clients make the
# same system calls per call (strace -c), so it is the same on both sides of the ratio,
# which is why this ratio is larger than the CPU-time one.
set -eu
URL=$1 REQ=$2 RAW=$3 ECSPLAY=${4:-./ecsplay}
command -v valgrind >/dev/null 2>&1 || exit 0
OUT=$(mktemp "${TMPDIR:-/tmp}/ecsplay-ir.XXXXXX")
trap 'rm -f "$OUT"' EXIT INT TERM
ir() {
  valgrind --tool=callgrind --callgrind-out-file="$OUT" "$@" >/dev/null 2>&1
  awk '/^(summary|totals):/ { print $2; exit }' "$OUT"
}
per_call() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.0f", (b - a) / 500 }'; }
"$ECSPLAY" bench/ecsplay_calls.lua endpoint="$URL" dump="$REQ" >/dev/null
echo "raw $(per_call "$(ir "$RAW" "$URL/" "$REQ" 100 1)" "$(ir "$RAW" "$URL/" "$REQ" 600 1)")"
SIGV4="--sigv4=aws:amz:${AWS_REGION:-us-east-1}:ecs"
echo "raw_sigv4 $(per_call "$(ir "$RAW" "$URL/" "$REQ" 100 1 "$SIGV4")" "$(ir "$RAW" "$URL/" "$REQ" 600 1 "$SIGV4")")"
echo "ecsplay $(per_call "$(ir "$ECSPLAY" --endpoint-url "$URL" bench/ecsplay_calls.lua calls=100 rounds=1)" \
  "$(ir "$ECSPLAY" --endpoint-url "$URL" bench/ecsplay_calls.lua calls=600 rounds=1)")"
