#!/bin/sh
# make bench: start-up, per-call cost and rehearsal wall time of ecsplay against boto3 and
# the AWS CLI on the same simulator; prints the tables and rewrites docs/benchmarks.md.
#
#   sh bench/run.sh              (what `make bench` runs; ~2-4 minutes on 2 cores)
#   BENCH_QUICK=1 sh bench/run.sh   fewer repetitions, to try the script (writes the doc too)
#   BENCH_DOC=path                  where to write the results (default docs/benchmarks.md)
#
# Timings are reported, never judged: nothing here fails on a slow number. It does fail
# when a measured command fails, since a benchmark of an error measures nothing.
set -eu
cd "$(dirname "$0")/.."
ROOT=$(pwd)
BUILD=${BUILD:-build}
OUT="$BUILD/bench"
DOC=${BENCH_DOC:-docs/benchmarks.md}
PY=/usr/bin/python3
AWSCLI=/usr/bin/aws
ECSPLAY="$ROOT/ecsplay"
mkdir -p "$OUT"
TMP=$(mktemp -d "${TMPDIR:-/tmp}/ecsplay-bench.XXXXXX")
SERVER_PID=

cleanup() {
  if [ -n "$SERVER_PID" ]; then kill "$SERVER_PID" 2>/dev/null || true; fi
  rm -rf "$TMP"
}
trap cleanup EXIT INT TERM

if [ "${BENCH_QUICK:-0}" = 1 ]; then
  CALLS=200 ROUNDS=3 CALL_ROUNDS=3 SIGNS=5000 PROC_N=10 SLOW_N=3 CANARY_N=3 CLI_N=3 MAP_RUNS=1
else
  CALLS=1000 ROUNDS=5 CALL_ROUNDS=11 SIGNS=20000 PROC_N=30 SLOW_N=10 CANARY_N=10 CLI_N=20 MAP_RUNS=5
fi

# The simulator's default key pair; no profile files, no instance metadata lookups.
AWS_ACCESS_KEY_ID=AKIDSIMULATOR AWS_SECRET_ACCESS_KEY=simulator-secret-key
AWS_REGION=us-east-1 AWS_DEFAULT_REGION=us-east-1 AWS_EC2_METADATA_DISABLED=true
AWS_CONFIG_FILE=/dev/null AWS_SHARED_CREDENTIALS_FILE=/dev/null AWS_PAGER=
export AWS_ACCESS_KEY_ID AWS_SECRET_ACCESS_KEY AWS_REGION AWS_DEFAULT_REGION \
  AWS_EC2_METADATA_DISABLED AWS_CONFIG_FILE AWS_SHARED_CREDENTIALS_FILE AWS_PAGER
unset AWS_PROFILE AWS_SESSION_TOKEN AWS_ENDPOINT_URL 2>/dev/null || true

say() { printf '%s\n' "$*" >&2; }
have() { command -v "$1" >/dev/null 2>&1; }

[ -x "$ECSPLAY" ] || { say "bench: ./ecsplay is not built (run make)"; exit 1; }

# --- helpers -------------------------------------------------------------------------

CC=${CC:-cc}
CFLAGS="-std=c11 -O2 -Wall -Wextra -Werror"
$CC $CFLAGS bench/timeit.c -o "$OUT/timeit"
# shellcheck disable=SC2046
$CC $CFLAGS bench/curl_raw.c -o "$OUT/curl_raw" $(pkg-config --cflags --libs libcurl)
# The empty program three ways: libc only; the libraries ecsplay needs without HTTP
# (Lua, libcrypto, expat); and every library ./ecsplay links, as the Makefile links them.
$CC -O2 bench/nop.c -o "$OUT/nop_libc"
# shellcheck disable=SC2046
$CC -O2 bench/nop.c -o "$OUT/nop_core" -Wl,--no-as-needed $(pkg-config --libs lua5.4 expat) -lcrypto
# shellcheck disable=SC2046
$CC -O2 bench/nop.c -o "$OUT/nop_all" -Wl,--no-as-needed \
  $(pkg-config --libs lua5.4 libcurl openssl expat libmicrohttpd) -lm
TIMEIT="$OUT/timeit"

# stats COLUMN < numbers → "median p25 p75 min max n" (quantiles by linear interpolation)
stats() {
  awk -v c="$1" '{ print $c }' | sort -g | awk '
    { v[NR] = $1 }
    function q(p,   pos, lo) { pos = p * (NR - 1) + 1; lo = int(pos)
      if (lo >= NR) return v[NR]; return v[lo] + (pos - lo) * (v[lo + 1] - v[lo]) }
    END { if (NR == 0) exit 1; printf "%.1f %.1f %.1f %.1f %.1f %d\n", q(.5), q(.25), q(.75), v[1], v[NR], NR }'
}
# cell "median p25 p75 ..." → "median (p25–p75)"
cell() { printf '%s' "$1" | awk '{ printf "%s (%s–%s)", $1, $2, $3 }'; }
field() { printf '%s' "$1" | awk -v n="$2" '{ print $n }'; }
# ratio A B → A/B with one decimal
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (b > 0) printf "%.1f", a / b; else printf "n/a" }'; }

# timeit wrapper: prints "median p25 p75 min max n cpu" (ms) for a command
proc_time() {
  n=$1; shift
  "$TIMEIT" -n "$n" -w 2 -l x -- "$@" | awk '{ print $2, $3, $4, $5, $6, $7, $8 }'
}

LOAD_BEFORE=$(cut -d' ' -f1-3 /proc/loadavg)

# --- 1. start-up ---------------------------------------------------------------------
say "bench: start-up"
S_ECSPLAY=$(proc_time "$PROC_N" "$ECSPLAY" -e return)
S_LUA=$(proc_time "$PROC_N" lua5.4 -e '')
S_BOTO=$(proc_time "$SLOW_N" "$PY" -c 'import boto3')
S_CLI=$(proc_time "$SLOW_N" "$AWSCLI" --version)
S_NOP=$(proc_time "$PROC_N" "$OUT/nop_libc")
S_NOPCORE=$(proc_time "$PROC_N" "$OUT/nop_core")
S_NOPALL=$(proc_time "$PROC_N" "$OUT/nop_all")
NLIBS_ALL=$(ldd "$OUT/nop_all" | wc -l)
NLIBS_CORE=$(ldd "$OUT/nop_core" | wc -l)
LDSTAT=$(LD_DEBUG=statistics "$ECSPLAY" -e return 2>&1 | awk '
  /total startup time in dynamic loader/ { for (i = 1; i <= NF; i++) if ($i == "cycles") c = $(i - 1) }
  /final number of relocations:/ { r = $NF }
  /number of relative relocations/ { rr = $NF }
  END { printf "%s %s %s", c, r, rr }')
LD_CYCLES=$(field "$LDSTAT" 1); LD_RELOCS=$(field "$LDSTAT" 2); LD_REL=$(field "$LDSTAT" 3)
MODS="$TMP/modules.txt"
"$ECSPLAY" bench/startup_modules.lua > "$MODS"
MODELS="$TMP/models.txt"
"$ECSPLAY" bench/models.lua > "$MODELS"
MODS_TOTAL=$(awk '{ s += $2 } END { printf "%.0f", s }' "$MODS")
AWS_MODS="ecsplay.aws ecsplay.model ecsplay.validate ecsplay.timestamp ecsplay.errors ecsplay.protocol ecsplay.endpoints ecsplay.credentials ecsplay.config_files ecsplay.retry"
MODS_COUNT=$(wc -l < "$MODS" | tr -d ' ')
if grep -q '^ecsplay\.aws ' "$MODS"; then
  AWS_AT_START="and its dependencies are among them ($(awk -v list="$AWS_MODS" 'BEGIN { n = split(list, a, " "); for (i = 1; i <= n; i++) m[a[i]] = 1 }
  ($1 in m) { s += $2 } END { printf "%.0f", s }' "$MODS") µs): loaded before any AWS call"
else
  AWS_AT_START="is not among them (loaded on first use)"
fi
MODS_AWS=$(awk -v list="$AWS_MODS" 'BEGIN { n = split(list, a, " "); for (i = 1; i <= n; i++) m[a[i]] = 1 }
  ($1 in m) { s += $2 } END { printf "%.0f", s }' "$MODS")
# Instruction counts (deterministic, unlike the clock): the dynamic loader vs the rest.
CG_TOTAL= CG_LD= CG_LUA=
if have valgrind && have callgrind_annotate; then
  valgrind --tool=callgrind --callgrind-out-file="$TMP/cg.out" "$ECSPLAY" -e return >/dev/null 2>&1 || true
  if [ -s "$TMP/cg.out" ]; then
    callgrind_annotate --inclusive=yes "$TMP/cg.out" > "$TMP/cg.txt" 2>/dev/null || true
    CG_TOTAL=$(awk '/PROGRAM TOTALS/ { gsub(",", "", $1); print $1; exit }' "$TMP/cg.txt")
    CG_LD=$(awk '/rtld.c:_dl_start / { gsub(",", "", $1); print $1; exit }' "$TMP/cg.txt")
    CG_LUA=$(awk '/host.c:ep_run / { gsub(",", "", $1); print $1; exit }' "$TMP/cg.txt")
  fi
fi
# Total instructions of a command under callgrind ("" without valgrind).
ir() {
  have valgrind || return 0
  valgrind --tool=callgrind --callgrind-out-file="$TMP/ir.out" "$@" >/dev/null 2>&1 || true
  [ -s "$TMP/ir.out" ] && awk '/^(summary|totals):/ { print $2; exit }' "$TMP/ir.out"
  rm -f "$TMP/ir.out"
}
IR_NOP=$(ir "$OUT/nop_libc"); IR_NOPCORE=$(ir "$OUT/nop_core"); IR_NOPALL=$(ir "$OUT/nop_all")
mi() { awk -v v="$1" 'BEGIN { if (v == "") printf "n/a"; else printf "%.1f M", v / 1e6 }'; }
pct() { awk -v a="$1" -v b="$2" 'BEGIN { if (a == "" || b == "" || b == 0) printf "n/a"; else printf "%.0f%%", 100 * a / b }'; }

# --- 2. one signed call, many times --------------------------------------------------
say "bench: signed calls against ecsplay sim serve"
"$ECSPLAY" sim serve --port 0 > "$TMP/serve.out" 2>"$TMP/serve.err" &
SERVER_PID=$!
PORT=
i=0
while [ $i -lt 100 ]; do
  PORT=$(sed -n 's|^listening on http://127\.0\.0\.1:\([0-9][0-9]*\).*|\1|p' "$TMP/serve.out" | head -n 1)
  [ -n "$PORT" ] && break
  sleep 0.05; i=$((i + 1))
done
[ -n "$PORT" ] || { say "bench: sim serve did not start: $(cat "$TMP/serve.err")"; exit 1; }
URL="http://127.0.0.1:$PORT"

"$ECSPLAY" bench/ecsplay_calls.lua endpoint="$URL" dump="$TMP/request.txt" >/dev/null
# The C and ecsplay clients take turns, one round each, so that a change in the machine's
# load while they run falls on all of them alike (the ratio between them is the figure).
: > "$TMP/raw.txt"; : > "$TMP/raw_sigv4.txt"; : > "$TMP/ecsplay.txt"; : > "$TMP/transport.txt"
i=0
while [ $i -lt "$CALL_ROUNDS" ]; do
  "$OUT/curl_raw" "$URL/" "$TMP/request.txt" "$CALLS" 1 >> "$TMP/raw.txt"
  "$ECSPLAY" --endpoint-url "$URL" bench/ecsplay_calls.lua calls="$CALLS" rounds=1 >> "$TMP/ecsplay.txt"
  "$ECSPLAY" bench/transport_calls.lua url="$URL/" request="$TMP/request.txt" calls="$CALLS" rounds=1 >> "$TMP/transport.txt"
  "$OUT/curl_raw" "$URL/" "$TMP/request.txt" "$CALLS" 1 "--sigv4=aws:amz:$AWS_REGION:ecs" >> "$TMP/raw_sigv4.txt"
  i=$((i + 1))
done
"$PY" bench/boto3_calls.py "$URL" "$CALLS" "$ROUNDS" > "$TMP/boto3.txt"
C_RAW=$(stats 1 < "$TMP/raw.txt");        C_RAW_CPU=$(stats 2 < "$TMP/raw.txt")
C_RSIG=$(stats 1 < "$TMP/raw_sigv4.txt"); C_RSIG_CPU=$(stats 2 < "$TMP/raw_sigv4.txt")
C_ECS=$(stats 1 < "$TMP/ecsplay.txt");    C_ECS_CPU=$(stats 2 < "$TMP/ecsplay.txt")
C_TRN=$(stats 1 < "$TMP/transport.txt");  C_TRN_CPU=$(stats 2 < "$TMP/transport.txt")
C_BOTO=$(stats 1 < "$TMP/boto3.txt");     C_BOTO_CPU=$(stats 2 < "$TMP/boto3.txt")
# One call per process: the CLI's only mode, and ecsplay / boto3 the same way for scale.
P_CLI=$(proc_time "$CLI_N" "$AWSCLI" --endpoint-url "$URL" ecs list-clusters)
P_ECS=$(proc_time "$CLI_N" "$ECSPLAY" --endpoint-url "$URL" -e 'require("ecsplay.ecs").list_clusters{}')
P_BOTO=$(proc_time "$CLI_N" "$PY" -c "import boto3; boto3.client('ecs', endpoint_url='$URL').list_clusters()")
# The same two loops under callgrind: instructions per call ("raw N" / "ecsplay N" lines)
IR_CALL=$(sh bench/call_ir.sh "$URL" "$TMP/request_ir.txt" "$OUT/curl_raw" "$ECSPLAY")
IR_RAW=$(printf '%s\n' "$IR_CALL" | awk '$1 == "raw" { print $2 }')
IR_ECS=$(printf '%s\n' "$IR_CALL" | awk '$1 == "ecsplay" { print $2 }')
IR_RSIG=$(printf '%s\n' "$IR_CALL" | awk '$1 == "raw_sigv4" { print $2 }')
kill "$SERVER_PID" 2>/dev/null || true
wait "$SERVER_PID" 2>/dev/null || true
SERVER_PID=

say "bench: in-process calls and signing"
"$ECSPLAY" --simulate bench/ecsplay_calls.lua calls="$CALLS" rounds="$ROUNDS" > "$TMP/sim.txt"
"$ECSPLAY" bench/sign.lua calls="$SIGNS" rounds="$ROUNDS" > "$TMP/sign.txt"
C_SIM=$(stats 1 < "$TMP/sim.txt")
C_SIGN=$(stats 1 < "$TMP/sign.txt")

# --- 3. rehearsals -------------------------------------------------------------------
say "bench: rehearsals"
"$ECSPLAY" --simulate -q bench/canary40.lua > "$TMP/canary40.out"
C40_MIN=$(awk '/^simulated_minutes/ { print $2 }' "$TMP/canary40.out")
C40_CALLS=$(awk '/^aws_calls/ { print $2 }' "$TMP/canary40.out")
R_C40=$(proc_time "$CANARY_N" "$ECSPLAY" --simulate bench/canary40.lua)
R_CANARY=$(proc_time "$CANARY_N" "$ECSPLAY" --simulate playbooks/canary.lua)
R_WORLD=$(proc_time "$CANARY_N" "$ECSPLAY" --simulate -e return)
say "bench: 50 canaries in one process"
# playbooks/scenarios/fleet.lua at 50 pairs (fifty pairs a load balancer, a host rule each: a
# load balancer a pair would pass ELBv2's quota of 50 a Region, which the simulator enforces)
sed 's/^local N = 8$/local N = 50/' playbooks/scenarios/fleet.lua > "$TMP/fleet50.lua"
"$ECSPLAY" --simulate="$TMP/fleet50.lua" -q bench/fleet.lua n=50 > "$TMP/map50.out"
MAP_MIN=$(awk '/^simulated_minutes/ { print $2 }' "$TMP/map50.out")
MAP_CALLS=$(awk '/^aws_calls/ { print $2 }' "$TMP/map50.out")
R_MAP=$(proc_time "$MAP_RUNS" "$ECSPLAY" --simulate="$TMP/fleet50.lua" bench/fleet.lua n=50)
say "bench: fleets (bench/fleet.sh)"
sh bench/fleet.sh > "$TMP/fleet.md"

LOAD_AFTER=$(cut -d' ' -f1-3 /proc/loadavg)

# --- the report ----------------------------------------------------------------------
V_ECSPLAY=$("$ECSPLAY" --version)
V_BOTO=$("$PY" -c 'import boto3, botocore; print("boto3 %s / botocore %s" % (boto3.__version__, botocore.__version__))')
V_CLI=$("$AWSCLI" --version 2>&1 | cut -d' ' -f1-2)
V_PY=$("$PY" --version 2>&1)
V_CURL=$(pkg-config --modversion libcurl)
V_SSL=$(pkg-config --modversion openssl)
CPU=$(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -n 1)
NPROC=$(nproc)
KERNEL=$(uname -sr)
DATE=$(date -u '+%Y-%m-%d %H:%M UTC')

E=$(field "$C_ECS" 1); R=$(field "$C_RAW" 1); B=$(field "$C_BOTO" 1)
EC=$(field "$C_ECS_CPU" 1); RC=$(field "$C_RAW_CPU" 1); BC=$(field "$C_BOTO_CPU" 1)
TC=$(field "$C_TRN_CPU" 1)

BUSY=$(awk -v a="$LOAD_BEFORE" -v b="$LOAD_AFTER" -v n="$NPROC" 'BEGIN { split(a, x, " "); split(b, y, " ")
  if (x[1] + 0 > n * 0.75 || y[1] + 0 > n * 0.75) print 1; else print 0 }')
REPORT="$TMP/report.md"
{
cat <<EOF
## Start-up

Wall time of a process that does nothing, in ms: median (p25–p75) over $PROC_N runs
($SLOW_N for Python), after 2 warm-up runs; CPU is the median user + system time.

| command | wall ms | CPU ms |
|---|---|---|
| \`./ecsplay -e 'return'\` | $(cell "$S_ECSPLAY") | $(field "$S_ECSPLAY" 7) |
| \`lua5.4 -e ''\` | $(cell "$S_LUA") | $(field "$S_LUA" 7) |
| \`python3 -c 'import boto3'\` | $(cell "$S_BOTO") | $(field "$S_BOTO" 7) |
| \`aws --version\` (CLI v2, Python) | $(cell "$S_CLI") | $(field "$S_CLI" 7) |

Where ecsplay's start-up goes:

Wall and CPU as above; instructions from callgrind (user space only: exact and unaffected
by load, but blind to the kernel's mmap and page-fault work, which the CPU column includes):

| part | wall ms | CPU ms | instructions |
|---|---|---|---|
| empty C program, libc only | $(cell "$S_NOP") | $(field "$S_NOP" 7) | $(mi "$IR_NOP") |
| empty C program + Lua, libcrypto, expat ($NLIBS_CORE shared objects) | $(cell "$S_NOPCORE") | $(field "$S_NOPCORE" 7) | $(mi "$IR_NOPCORE") |
| empty C program + those and libcurl, libmicrohttpd ($NLIBS_ALL shared objects: what linking them would cost; ecsplay loads them with dlopen only when a run needs HTTP or \`sim serve\`) | $(cell "$S_NOPALL") | $(field "$S_NOPALL" 7) | $(mi "$IR_NOPALL") |
| \`./ecsplay -e 'return'\` | $(cell "$S_ECSPLAY") | $(field "$S_ECSPLAY" 7) | $(mi "$CG_TOTAL") |
| … in the dynamic loader (\`_dl_start\`) | | | $(mi "$CG_LD") ($(pct "$CG_LD" "$CG_TOTAL")) |
| … in the Lua run (\`ep_run\`: state, stdlib modules, runner) | | | $(mi "$CG_LUA") ($(pct "$CG_LUA" "$CG_TOTAL")) |

The dynamic loader for ./ecsplay (\`LD_DEBUG=statistics\`): $LD_CYCLES cycles,
$LD_RELOCS symbol relocations, $LD_REL relative relocations.
Lua modules loaded by the time a chunk runs, each re-required warm (\`bench/startup_modules.lua\`):
$MODS_COUNT modules, $MODS_TOTAL µs in all; \`ecsplay.aws\` $AWS_AT_START.

Per module (µs, warm: read + compile + top-level run):
$(awk '{ printf "%s`%s` %s", (NR > 1 ? ", " : ""), $1, $2 } END { print "" }' "$MODS")

The first call to each service also loads its generated model (\`bench/models.lua\`, ms,
mean of 20 loads, warm): compiled from Lua source as shipped vs the same chunk precompiled
with \`string.dump\`:

| model | source bytes | compile + run ms | from bytecode ms |
|---|---|---|---|
$(awk '{ printf "| `%s` | %s | %s | %s |\n", $1, $2, $3, $4 }' "$MODELS")

## One signed call on a reused connection

ECS \`ListClusters\` against one \`ecsplay sim serve\` (SigV4 verified by the server), $CALLS
sequential calls a round after 20 warm-up calls; the C clients and ecsplay's two loops take
turns, one round (one process) each, $CALL_ROUNDS rounds each, so a change in the machine's
load falls on all of them; boto3 runs $ROUNDS rounds in one process. µs per call, median
(p25–p75) of the rounds. *Wall* includes the server's work (the same for every client);
*client CPU* is the calling process's own CPU time per call, which is the client's cost.

| client | wall µs/call | client CPU µs/call |
|---|---|---|
| raw libcurl, one easy handle, replaying ecsplay's signed request (\`bench/curl_raw.c\`) | $(cell "$C_RAW") | $(cell "$C_RAW_CPU") |
| raw libcurl signing every call itself (libcurl's SigV4, \`CURLOPT_AWS_SIGV4\`; \`bench/curl_raw.c --sigv4\`) | $(cell "$C_RSIG") | $(cell "$C_RSIG_CPU") |
| ecsplay's transport alone: the scheduler's HTTP replaying the same signed request (\`bench/transport_calls.lua\`) | $(cell "$C_TRN") | $(cell "$C_TRN_CPU") |
| ecsplay, \`ecs.list_clusters{}\` in a loop (\`bench/ecsplay_calls.lua\`) | $(cell "$C_ECS") | $(cell "$C_ECS_CPU") |
| boto3, one client, \`list_clusters()\` in a loop (\`bench/boto3_calls.py\`) | $(cell "$C_BOTO") | $(cell "$C_BOTO_CPU") |

ecsplay over raw libcurl: +$(awk -v a="$E" -v b="$R" 'BEGIN { printf "%.0f", a - b }') µs wall, +$(awk -v a="$EC" -v b="$RC" 'BEGIN { printf "%.0f", a - b }') µs client CPU per call
(validate, serialize, sign, parse in Lua). boto3 / ecsplay: $(ratio "$B" "$E")× wall, $(ratio "$BC" "$EC")× client CPU.

**Per-call cost, ecsplay / raw libcurl: $(awk -v a="$EC" -v b="$RC" 'BEGIN { if (b > 0) printf "%.2f", a / b; else printf "n/a" }')× client CPU.** Instructions per call
(callgrind, user space only, \`bench/call_ir.sh\`): raw libcurl ${IR_RAW:-n/a}, ecsplay ${IR_ECS:-n/a}
($(ratio "${IR_ECS:-0}" "${IR_RAW:-0}")×); raw libcurl signing with its own SigV4 ${IR_RSIG:-n/a}.
The replaying client is the target's yardstick (issue 10: at most 1.5×); the one that signs
is what a C program using libcurl's SigV4 would cost. ecsplay's transport alone (a
coroutine's wait in the scheduler, libcurl's multi interface, the answer as a Lua table)
is $(awk -v a="$TC" -v b="$RC" 'BEGIN { if (b > 0) printf "%.2f", a / b; else printf "n/a" }')× raw libcurl's client CPU: what is left of 1.5× for a call's own work
(validation, encoding, signing, parsing, typing, the limiter, the log event) is the
difference, $(awk -v r="$RC" -v t="$TC" 'BEGIN { printf "%.0f", 1.5 * r - t }') µs, where it takes $(awk -v e="$EC" -v t="$TC" 'BEGIN { printf "%.0f", e - t }') µs. The ecsplay loop keeps the client-side rate limiter
in the path with a bucket that never runs dry (\`bench/ecsplay_calls.lua\`). History of this
ratio and how to reproduce it: "Per-call cost" below.

One call per process ($CLI_N runs each, ms; the AWS CLI has no other mode):

| command | wall ms | CPU ms |
|---|---|---|
| \`aws ecs list-clusters\` | $(cell "$P_CLI") | $(field "$P_CLI" 7) |
| \`python3 -c '...boto3...list_clusters()'\` | $(cell "$P_BOTO") | $(field "$P_BOTO" 7) |
| \`ecsplay -e 'require("ecsplay.ecs").list_clusters{}'\` | $(cell "$P_ECS") | $(field "$P_ECS" 7) |

For reference, no socket:

| what | µs |
|---|---|
| ecsplay call in process under \`--simulate\` (same loop; the simulator verifies SigV4 and answers in the same Lua state) | $(cell "$C_SIM") |
| \`ecsplay.sigv4.sign\` alone (ListClusters request, $SIGNS a round) | $(cell "$C_SIGN") |

## Rehearsals (\`--simulate\`, virtual clock)

Wall time of the whole process, $CANARY_N runs, ms.

| rehearsal | simulated | wall ms | CPU ms |
|---|---|---|---|
| \`bench/canary40.lua\`: steps 5/10/25/50/100 %, bake 8 m each, 3 gates every minute ($C40_CALLS AWS calls) | $C40_MIN min | $(cell "$R_C40") | $(field "$R_C40" 7) |
| \`playbooks/canary.lua\` as shipped (4 steps, bake 5 m) | ~22 min | $(cell "$R_CANARY") | $(field "$R_CANARY" 7) |
| \`--simulate -e 'return'\`: building the default world alone (15 simulated minutes of set-up) | 0 | $(cell "$R_WORLD") | $(field "$R_WORLD" 7) |
| \`bench/fleet.lua n=50\` on \`playbooks/scenarios/fleet.lua\` (N = 50): 50 services' canaries (10/50/100 %, bake 3 m, 2 gates) at once in one process with \`ecsplay.map\`, $MAP_CALLS AWS calls; $MAP_RUNS runs | $MAP_MIN min | $(cell "$R_MAP") | $(field "$R_MAP" 7) |
EOF
} > "$REPORT"
# the fleet table, then what it shows (kept by hand, bench/fleet_notes.md)
{ echo; cat "$TMP/fleet.md"; echo; cat bench/fleet_notes.md; } >> "$REPORT"

{
cat <<EOF
# Benchmarks

Produced by \`make bench\` (\`sh bench/run.sh\`), which rewrites this file. Timings are
reported here and never asserted in tests. Numbers are medians with the interquartile range
(p25–p75) in brackets.

- date: $DATE
- machine: $NPROC CPU(s), $CPU, $KERNEL; load average $LOAD_BEFORE before, $LOAD_AFTER after
- versions: $V_ECSPLAY; $V_BOTO ($V_PY); $V_CLI; libcurl $V_CURL; OpenSSL $V_SSL
- timing: \`bench/timeit.c\` (fork + exec, monotonic clock, child CPU from wait4) for whole
  processes; in-process loops time themselves. No hyperfine needed.

EOF
if [ "$BUSY" = 1 ]; then
cat <<EOF
**The machine was busy while this ran** (load average above ${NPROC} CPUs × 0.75, other
work sharing the cores): wall times are inflated and spread out; compare the CPU columns
and instruction counts, which other processes disturb much less.

EOF
fi
cat "$REPORT"
cat <<'EOF'

## How to read this

- **Start-up** is dominated by the dynamic loader, not by ecsplay's code: compare the empty
  C program linked with every library ./ecsplay links against the one linked with only the
  libraries it needs without HTTP. Debian's libcurl (built with LDAP, Kerberos, SSH, RTMP,
  GnuTLS via librtmp, PSL, IDN, brotli, zstd) and libmicrohttpd (GnuTLS) bring in some
  thirty shared objects that every run maps and relocates, though only `sim serve` and
  real HTTP calls use them. The Lua part is the stdlib modules compiled from source at
  start-up, and on the first call to a service, its generated model (the ECS model is
  the largest).
- **Per call**, the wall figures include the simulator server's own work (a Lua SigV4
  check and handler), which is the same for every client; the client CPU column is the
  cost of the client itself. The machine has few cores and the server shares them, so
  wall figures move with load; CPU figures move less.
- **Rehearsals** run the whole simulated world (5-second ticks, per-minute metrics) on a
  virtual clock: on an idle machine wall time is CPU time.

## Reproducing

    make bench                 # everything, ~2-4 minutes
    BENCH_QUICK=1 make bench   # fewer repetitions

Files: `bench/run.sh` (driver), `bench/timeit.c` (process timer), `bench/curl_raw.c` (raw
libcurl baseline; `--sigv4=` signs with libcurl's own SigV4), `bench/ecsplay_calls.lua`,
`bench/transport_calls.lua` (both with `bench/loop.lua`), `bench/boto3_calls.py`, `bench/sign.lua`,
`bench/startup_modules.lua`, `bench/models.lua`, `bench/canary40.lua`, `bench/fleet.sh`
with `bench/fleet.lua` (on `playbooks/scenarios/fleet.lua`, N rewritten) and its notes
`bench/fleet_notes.md`, `bench/nop.c`.
EOF
# the per-call section's measurements history (kept by hand, not re-measured here)
echo; cat bench/per_call.md
} > "$DOC"

cat "$REPORT"
say "bench: wrote $DOC"
