"""A deterministic sample of the rollback sweep (tests/sweep/, issue 12) for make check: per
shipped strategy a baseline run, a kill -9 then `ecsplay rollback`, a kill -9 then `ecsplay
resume`, a SIGINT or SIGTERM and two injected faults, chosen by the ids' hash, plus the
situations issue 12 names (sweep.py SAMPLE_PINNED); each checked against the invariants
(tests/sweep/cases.py). Cases listed in tests/sweep/known_failures.txt still run, and count as
skipped while they fail. `make sweep` runs the whole matrix.

Run: /usr/bin/python3 tests/py/test_sweep_sample.py   (from the project root, after make)
"""
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "sweep"))
import sweep  # noqa: E402

if __name__ == "__main__":
    sys.exit(sweep.main(["--sample"] + sys.argv[1:]))
