#!/bin/sh
# Runs every test program and adds up their closing "N passed, N failed" lines.
#   sh tests/run.sh [c|lua|py ...] [--only PATTERN]
# C tests: build/tests/test_*; Lua: tests/lua/test_*.lua through ./ecsplay and
# tests/lua/harness.lua; Python: tests/py/test_*.py with Debian's /usr/bin/python3
# (boto3 and the AWS CLI as real clients). Each program has 300 s at most.
# VALGRIND=1 runs the C tests under valgrind (memcheck: any error or definite
# leak fails the test); BUILD=dir picks the build folder; ECSPLAY_BIN=path the ecsplay binary
# the Lua tests run through (default ./ecsplay; make check-asan sets it).
BUILD=${BUILD:-build}
bin=${ECSPLAY_BIN:-./ecsplay}
groups=""
only=""
while [ $# -gt 0 ]; do
  case "$1" in
    --only) only="$2"; shift 2 ;;
    *) groups="$groups $1"; shift ;;
  esac
done
[ -n "$groups" ] || groups="style c lua py"
passed=0; failed=0; skipped=0; broken=""
log=$(mktemp); trap 'rm -f "$log"' EXIT

run_one() {
  name="$1"; shift
  case "$name" in *"$only"*) ;; *) return ;; esac
  start=$(date +%s)
  timeout -k 5 300 "$@" >"$log" 2>&1
  rc=$?
  line=$(grep -E '^(.*: )?[0-9]+ passed, [0-9]+ failed' "$log" | tail -n 1)
  p=$(echo "$line" | sed -n 's/.*\b\([0-9][0-9]*\) passed.*/\1/p')
  f=$(echo "$line" | sed -n 's/.*passed, \([0-9][0-9]*\) failed.*/\1/p')
  s=$(echo "$line" | sed -n 's/.*failed, \([0-9][0-9]*\) skipped.*/\1/p')
  [ -n "$p" ] || p=0; [ -n "$f" ] || f=0; [ -n "$s" ] || s=0
  if [ -z "$line" ] || [ "$rc" -ne 0 -a "$f" -eq 0 ]; then
    f=$((f + 1)); broken="$broken $name"
    echo "FAIL $name (exit $rc, no result line or crashed)"; tail -n 30 "$log"
  elif [ "$f" -gt 0 ]; then
    broken="$broken $name"
    # each failure's whole message (harness: "FAIL name" then indented lines; unittest: "FAIL:"/"ERROR:" blocks)
    echo "FAIL $name: $line"
    awk '/^(FAIL|ERROR:|not ok)/ { on = 1; n = 0 } /^ok / { on = 0 } on && n++ < 40' "$log" | head -n 120
  else
    echo "ok   $name: $line ($(( $(date +%s) - start ))s)"
  fi
  passed=$((passed + p)); failed=$((failed + f)); skipped=$((skipped + s))
}

for g in $groups; do
  case "$g" in
    style)
      run_one check_c_style.sh sh tools/check_c_style.sh
      run_one check_layers.lua "$bin" tools/check_layers.lua ;;
    c)
      for t in "$BUILD"/tests/test_*; do
        [ -x "$t" ] || continue
        if [ -n "$VALGRIND" ]; then
          run_one "$(basename "$t")" valgrind -q --error-exitcode=99 \
            --leak-check=full --errors-for-leak-kinds=definite --show-leak-kinds=definite "$t"
        else
          run_one "$(basename "$t")" "$t"
        fi
      done ;;
    lua)
      for t in tests/lua/test_*.lua; do
        [ -f "$t" ] || continue
        run_one "$(basename "$t")" "$bin" tests/lua/harness.lua file="$t"
      done
      run_one playbook_specs "$bin" test playbooks/spec ;;
    py)
      for t in tests/py/test_*.py; do
        [ -f "$t" ] || continue
        run_one "$(basename "$t")" /usr/bin/python3 "$t"
      done ;;
  esac
done
[ -n "$broken" ] && echo "failing:$broken"
echo "$passed passed, $failed failed, $skipped skipped"
[ "$failed" -eq 0 ]
