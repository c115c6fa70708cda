#!/bin/sh
# Regenerates docs/example-report.html (linked from README.md): the report of the rehearsed
# canary, `ecsplay --simulate --report docs/example-report.html playbooks/canary.lua`.
#   sh tools/example_report.sh [image]      (make example-report; image=api:flaky shows a
#                                            failed gate and the rollback instead)
# The journal the report is read from stays in .ecsplay/runs (git ignores it), so the page's
# `ecsplay report JOURNAL` line names a file that exists.
set -eu
cd "$(dirname "$0")/.."
image=${1:-api:v2}
rc=0
ECSPLAY_RUNS_DIR=.ecsplay/runs ./ecsplay --simulate -q --report docs/example-report.html playbooks/canary.lua \
  image="$image" >/dev/null || rc=$?
case $rc in
  0|1) echo "wrote docs/example-report.html (the run exited $rc)" ;;
  *) echo "example-report: the rehearsal failed (exit $rc)" >&2; exit "$rc" ;;
esac
