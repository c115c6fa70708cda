#!/bin/sh
# The fleet table of `make bench` (bench/run.sh includes it; runs alone too): n services'
# canaries at once (bench/fleet.lua on playbooks/scenarios/fleet.lua with N rewritten), in process
# under --simulate with shared polling on and off (ECSPLAY_BATCHING=0), and n services over
# HTTP against `ecsplay sim serve --lockstep`. The batched in-process runs FLEET_REPEAT times
# (the median by CPU is reported, with the range: one run on a shared machine is off by 10 %
# either way), the others once; wall, CPU (user + system) and peak RSS from /usr/bin/time, AWS
# calls from the playbook's own count.
#   sh bench/fleet.sh > table.md       FLEET_SIZES="50 200 1000" FLEET_HTTP=200 FLEET_REPEAT=3
set -eu
cd "$(dirname "$0")/.."
ECSPLAY="$(pwd)/ecsplay"
SIZES=${FLEET_SIZES:-50 200 1000}
HTTP_N=${FLEET_HTTP:-200}
REPEAT=${FLEET_REPEAT:-3}
TMP=$(mktemp -d "${TMPDIR:-/tmp}/ecsplay-fleet.XXXXXX")
SERVER_PID=
cleanup() {
  if [ -n "$SERVER_PID" ]; then kill "$SERVER_PID" 2>/dev/null || true; fi
  rm -rf "$TMP"
}
trap cleanup EXIT INT TERM
say() { printf '%s\n' "$*" >&2; }
# The simulator's default key pair (as bench/run.sh), for the HTTP runs.
AWS_ACCESS_KEY_ID=AKIDSIMULATOR AWS_SECRET_ACCESS_KEY=simulator-secret-key
AWS_REGION=us-east-1 AWS_DEFAULT_REGION=us-east-1 AWS_EC2_METADATA_DISABLED=true
AWS_CONFIG_FILE=/dev/null AWS_SHARED_CREDENTIALS_FILE=/dev/null
export AWS_ACCESS_KEY_ID AWS_SECRET_ACCESS_KEY AWS_REGION AWS_DEFAULT_REGION \
  AWS_EC2_METADATA_DISABLED AWS_CONFIG_FILE AWS_SHARED_CREDENTIALS_FILE
unset AWS_PROFILE AWS_SESSION_TOKEN AWS_ENDPOINT_URL 2>/dev/null || true

scenario() { sed "s/^local N = 8\$/local N = $1/" playbooks/scenarios/fleet.lua > "$TMP/scenario$1.lua"; }

# measure NAME CMD... → "wall cpu rss_mb" in $TMP/NAME.time, the playbook's output in $TMP/NAME.out
measure() {
  name=$1; shift
  /usr/bin/time -f "%e %U %S %M" -o "$TMP/$name.time" "$@" > "$TMP/$name.out"
}
cell_time() { awk '{ printf "%.1f | %.1f | %.0f", $1, $2 + $3, $4 / 1024 }' "$TMP/$1.time"; }
# CPU milliseconds per service: flat from 50 to 1,000 when the simulator scales (issue 10)
per_service() { awk -v n="$2" '{ printf "%.0f", ($2 + $3) * 1000 / n }' "$TMP/$1.time"; }
calls() { awk '/^calls_per_service/ { printf "%.1f", $2 }' "$TMP/$1.out"; }
total_calls() { awk '/^aws_calls/ { print $2 }' "$TMP/$1.out"; }
per_op() { awk '/^op / { sub(/^[a-z0-9]+\./, "", $2); printf "%s%s %d/%d", (n++ ? ", " : ""), $2, $3, $4 }' "$TMP/$1.out"; }

# median NAME K: of runs NAME-1 .. NAME-K, the one of median CPU becomes NAME; NAME.spread
# holds the lowest and highest CPU seconds
median() {
  k=$2
  runs=$(i=1; while [ "$i" -le "$k" ]; do awk -v r="$i" '{ printf "%.2f %d\n", $2 + $3, r }' "$TMP/$1-$i.time"; i=$((i + 1)); done | sort -n)
  mid=$(echo "$runs" | awk -v m=$(((k + 1) / 2)) 'NR == m { print $2 }')
  cp "$TMP/$1-$mid.time" "$TMP/$1.time"
  cp "$TMP/$1-$mid.out" "$TMP/$1.out"
  echo "$runs" | awk 'NR == 1 { lo = $1 } { hi = $1 } END { printf "%.1f-%.1f", lo, hi }' > "$TMP/$1.spread"
}

for n in $SIZES; do
  scenario "$n"
  for mode in batched unbatched; do
    if [ "$mode" = batched ]; then b=1 k=$REPEAT; else b=0 k=1; fi
    i=1
    while [ "$i" -le "$k" ]; do
      say "bench: fleet of $n, $mode, in process (run $i of $k)"
      ECSPLAY_BATCHING=$b measure "$n-$mode-$i" "$ECSPLAY" --simulate="$TMP/scenario$n.lua" -q bench/fleet.lua n="$n"
      i=$((i + 1))
    done
    median "$n-$mode" "$k"
  done
done

say "bench: fleet of $HTTP_N over HTTP (sim serve --lockstep)"
scenario "$HTTP_N"
for mode in batched unbatched; do
  if [ "$mode" = batched ]; then b=1; else b=0; fi
  /usr/bin/time -f "%e %U %S %M" -o "$TMP/serve-$mode.time" "$ECSPLAY" sim serve --port 0 --lockstep \
    --scenario "$TMP/scenario$HTTP_N.lua" > "$TMP/serve.out" 2> "$TMP/serve.err" &
  SERVER_PID=$!
  URL= i=0
  while [ $i -lt 200 ]; do
    URL=$(sed -n 's|^listening on \(http://127\.0\.0\.1:[0-9][0-9]*\).*|\1|p' "$TMP/serve.out" | head -n 1)
    [ -n "$URL" ] && break
    sleep 0.05; i=$((i + 1))
  done
  [ -n "$URL" ] || { say "bench: sim serve did not start: $(cat "$TMP/serve.err")"; exit 1; }
  ECSPLAY_BATCHING=$b measure "http-$mode" "$ECSPLAY" --endpoint-url "$URL" -q bench/fleet.lua n="$HTTP_N"
  # the server: SIGTERM ends it (exit 0); its CPU and RSS are written as it exits
  pkill_pid=$(pgrep -P "$SERVER_PID" 2>/dev/null || true)
  kill ${pkill_pid:-$SERVER_PID} 2>/dev/null || true
  wait "$SERVER_PID" 2>/dev/null || true
  SERVER_PID=
done

cat <<EOF2
## Fleets: many canaries in one process

\`bench/fleet.lua\` on \`playbooks/scenarios/fleet.lua\` (its \`local N\` rewritten): n independent canary pairs (steps 10/50/100 %,
bake 3 m, a 5xx-rate and a p99-latency gate measured every minute), fifty pairs behind each
load balancer, routed by host name (a rule a pair on one listener, 200 requests/s a host), all
at once through \`ecsplay.map\`, with shared polling (\`aws/batch.lua\`) and without it
(\`ECSPLAY_BATCHING=0\`). Each canary makes 9 calls that no batching can share: three
UpdateService (canary up, stable to the new version, canary down), four ModifyRule (10, 50,
100 %, back to stable; each read back from its own answer) and one DescribeTargetHealth per
side before traffic moves onto it (DescribeTargetHealth takes one target group a call). The
services are of one task definition family deploying one image, so the fleet registers one
revision (\`rollout/version.lua\`: shared revisions) instead of one a service, which AWS's
RegisterTaskDefinition rate (20 at once, then 1 a second) would spread over sixteen minutes:
every rollout starts at once, and all of them are in flight together.
Wall and CPU (user + system) in seconds and peak RSS in MB from \`/usr/bin/time\`; calls are the
AWS requests the client sent, per service. Each batched in-process row is the run of median CPU
of $REPEAT, with the lowest and highest CPU of the $REPEAT in brackets (on this shared machine one
run is off by some 10 % either way); the other rows are one run each.

| services | mode | wall s | CPU s | CPU ms / service | peak RSS MB | calls / service | calls |
|---|---|---|---|---|---|---|---|
EOF2
for n in $SIZES; do
  for mode in batched unbatched; do
    cells=$(cell_time "$n-$mode" | cut -d'|' -f1-2)
    if [ "$mode" = batched ] && [ "$REPEAT" -gt 1 ]; then cells="${cells% } ($(cat "$TMP/$n-$mode.spread")) "; fi
    printf '| %s | %s, in process | %s| %s | %s | %s | %s |\n' "$n" "$mode" "$cells" \
      "$(per_service "$n-$mode" "$n")" "$(cell_time "$n-$mode" | cut -d'|' -f3 | tr -d ' ')" "$(calls "$n-$mode")" \
      "$(total_calls "$n-$mode")"
  done
done
for mode in batched unbatched; do
  printf '| %s | %s, over HTTP (client; the server used %s s CPU, %s MB) | %s| %s | %s | %s | %s |\n' "$HTTP_N" "$mode" \
    "$(awk '{ printf "%.1f", $2 + $3 }' "$TMP/serve-$mode.time" 2>/dev/null || echo '?')" \
    "$(awk '{ printf "%.0f", $4 / 1024 }' "$TMP/serve-$mode.time" 2>/dev/null || echo '?')" \
    "$(cell_time "http-$mode" | cut -d'|' -f1-2)" "$(per_service "http-$mode" "$HTTP_N")" \
    "$(cell_time "http-$mode" | cut -d'|' -f3 | tr -d ' ')" "$(calls "http-$mode")" "$(total_calls "http-$mode")"
done
cat <<EOF2

Calls per operation, sent / items asked for (\`aws.stats()\`), $(echo "$SIZES" | awk '{ print $NF }') services in process:

- batched: $(per_op "$(echo "$SIZES" | awk '{ print $NF }')-batched")
- unbatched: $(per_op "$(echo "$SIZES" | awk '{ print $NF }')-unbatched")
EOF2
