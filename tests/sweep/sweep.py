#!/usr/bin/env python3
"""The rollback sweep (issue 12): every shipped playbook through `ecsplay sim serve`, killed with
SIGKILL after each journal line then `ecsplay rollback` / `ecsplay resume`, interrupted with
SIGINT/SIGTERM mid-step, run under injected faults (throttling, 503, AccessDenied, dropped
connections, delays) on each operation at each step, and with its journal on a full disk,
read-only or deleted mid-run; after each case the world is read back with boto3 and the
invariants of cases.py are checked.

    /usr/bin/python3 tests/sweep/sweep.py --all            the whole matrix (make sweep)
    /usr/bin/python3 tests/sweep/sweep.py --sample         a deterministic sample (make check)
    /usr/bin/python3 tests/sweep/sweep.py --case 'canary/kill@done:weight:2+rollback' -v
    options: --strategy NAME (repeatable), --case ID-or-glob (repeatable), --kind KIND,
             --jobs N (2), --speed X (300), --list (print the case ids only), -v (every
             command's output on failure), --json FILE (every verdict)

Each case prints one line (PASS / FAIL / KNOWN); a failure adds the violated invariants with the
evidence and the command that reproduces it. The end: counts by invariant and by strategy,
then `N passed, M failed, K skipped` (skipped = listed in tests/sweep/known_failures.txt and
still failing; a listed case that passes is reported so the line can be deleted).
ECSPLAY_BIN picks the binary (default ./ecsplay). Needs boto3 (Debian's python3-boto3).
"""
import argparse
import fnmatch
import json
import os
import queue
import shutil
import sys
import tempfile
import threading
import time
import zlib

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import cases as C  # noqa: E402
import execute  # noqa: E402
import procs  # noqa: E402
from lab import Lab, model_operations  # noqa: E402
from strategies import STRATEGIES  # noqa: E402

KNOWN_FILE = os.path.join(HERE, "known_failures.txt")
# The sample: per strategy, how many cases of each group (evenly spaced in the group's order).
SAMPLE_HAPPY = {"baseline": 99, "kill+rollback": 1, "kill+resume": 1, "inflight": 1, "signal": 1, "fault": 2}
SAMPLE_VARIANT = {"baseline": 99, "kill+rollback": 1}
SAMPLE_QUIET = 10       # simulated seconds a sampled kill/signal line is followed by nothing
SAMPLE_VARIANTS = ("canary-flaky", "blue_green-slow", "ecs_native-slow", "codedeploy-gate")
# Always in the sample: the situations issue 12 names (each a known failure until its fix lands).
SAMPLE_PINNED = (
    "canary/fault@do:weight:2:elbv2.ModifyRule:503",
    "blue_green/fault@do:swap:elbv2.ModifyRule:denied",
    "blue_green/kill@end+rollback",
    "blue_green/kill@done:scale_down_blue+rollback",
    "codedeploy/kill@codedeploy.CreateDeployment+rollback",
    "codedeploy/kill@end+rollback",
    "ecs_native/kill@end+rollback",
    "multi_service/kill@canary.done:weight:2+resume",
    "canary/journal-full@done:weight:2",
    "canary/journal-readonly@done:weight:2",
    "blue_green/journal-deleted@done:swap",
    # killed between two waves (during the soak): resume runs the later waves (playbook_end line)
    "multi_region/kill@api_in_us-east-1.end+resume",
    # fleet members waited for through a signal (rollout/fleet.lua), each rolled back
    "fleet/sigterm@svc5.do:weight:1",
)


def load_known(path=KNOWN_FILE):
    """known_failures.txt: `CASE-ID-OR-GLOB [only=inv1,inv2] reason` per line. With only=, the
    case counts as known only while every invariant it violates is one of those."""
    known = []
    if os.path.exists(path):
        with open(path) as f:
            for n, line in enumerate(f, 1):
                line = line.strip()
                if not line or line.startswith("#"):
                    continue
                parts = line.split(None, 1)
                rest = parts[1] if len(parts) > 1 else ""
                only = None
                if rest.startswith("only="):
                    first, _, rest = rest.partition(" ")
                    only = set(first[len("only="):].split(","))
                known.append((parts[0], only, rest.strip() or "(no reason given, line %d)" % n))
    return known


def known_reason(known, v):
    """(reason, exact) of the first line that covers this case, else (None, False); exact:
    the line names this one case (so it can go once the case passes)."""
    for pat, only, reason in known:
        if fnmatch.fnmatchcase(v.case["id"], pat):
            if only is None or not v.violations or set(i for i, _ in v.violations) <= only:
                return reason, not any(ch in pat for ch in "*?[")
    return None, False


def group_of(case):
    k = case["kind"]
    return "signal" if k in ("sigint", "sigterm") else k.split("+")[0] if k.startswith("inflight") else k


def pick_sample(cases, baselines):
    """Per strategy and group, the cases whose ids hash lowest (crc32): a fixed choice for a
    given matrix that moves little when a journal gains or loses a line; plus SAMPLE_PINNED."""
    groups = {}
    for c in cases:
        if c["kind"] == "fault" and c["at"] != "start":
            continue          # which operations a step calls varies a little: not sampled
        if c["kind"] in ("kill+rollback", "kill+resume", "sigint", "sigterm") and \
                baselines[c["strategy"]].quiet_after(c["at"]) < SAMPLE_QUIET:
            continue          # the next line follows at once: where the signal lands is a race
        groups.setdefault((c["strategy"], group_of(c)), []).append(c)
    out = []
    for (strategy, group), items in groups.items():
        table = SAMPLE_HAPPY if STRATEGIES[strategy]["expect"] == 0 else SAMPLE_VARIANT
        items = sorted(items, key=lambda c: zlib.crc32(c["id"].encode()))
        out += items[:table.get(group, 0)]
    ids = set(c["id"] for c in out)
    for cid in SAMPLE_PINNED:
        b = baselines.get(cid.split("/")[0])
        c = next((c for c in cases if c["id"] == cid), None) or (b and C.case_from_id(cid, b))
        if c and c["id"] not in ids:
            out.append(c)
            ids.add(c["id"])
    order = {c["id"]: i for i, c in enumerate(cases)}
    return sorted(out, key=lambda c: order.get(c["id"], len(order)))


def worker_pool(jobs, binary, speed, tmp, tasks, fn):
    """Runs fn(lab, task) for every task on `jobs` threads, each with its own Lab."""
    q = queue.Queue()
    for t in tasks:
        q.put(t)
    results = []
    lock = threading.Lock()

    def work(i):
        lab = Lab(binary, speed, os.path.join(tmp, "w%d" % i))
        try:
            while True:
                try:
                    t = q.get_nowait()
                except queue.Empty:
                    return
                r = fn(lab, t)
                with lock:
                    results.append(r)
        finally:
            lab.close()

    threads = [threading.Thread(target=work, args=(i,), daemon=True) for i in range(jobs)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    return results


class Report:
    def __init__(self, known, verbose):
        self.known, self.verbose = known, verbose
        self.rows = []
        self.lock = threading.Lock()

    def add(self, v, secs):
        cid = v.case["id"]
        reason, exact = known_reason(self.known, v)
        status = "PASS" if v.ok else ("KNOWN" if reason else "FAIL")
        if v.ok and not exact:
            reason = None
        with self.lock:
            self.rows.append((v, status, reason))
            note = (" (%s)" % "; ".join(v.notes)) if v.notes and (status != "PASS" or self.verbose) else ""
            extra = " [listed in known_failures.txt but passes now: delete the line]" if v.ok and reason else ""
            print("%-5s %s  %.1fs%s%s" % (status, cid, secs, note, extra), flush=True)
            if status == "PASS" and not self.verbose:
                return
            if status == "KNOWN":
                print("      known: %s" % reason)
            for inv, ev in v.violations:
                print("      [%s] %s" % (inv, ev))
            if status == "FAIL":
                print("      repro: /usr/bin/python3 tests/sweep/sweep.py --case '%s' -v" % cid)
            if self.verbose:
                for what, rc, out in v.commands:
                    print("      --- %s (exit %s):" % (what, rc))
                    print(C.tail(out, 40))
            sys.stdout.flush()

    def summary(self):
        total = len(self.rows)
        passed = sum(1 for _, s, _ in self.rows if s == "PASS")
        failed = sum(1 for _, s, _ in self.rows if s == "FAIL")
        known = sum(1 for _, s, _ in self.rows if s == "KNOWN")
        by_inv, by_strat = {}, {}
        for v, s, _ in self.rows:
            st = by_strat.setdefault(v.case["strategy"], {"PASS": 0, "FAIL": 0, "KNOWN": 0})
            st[s] += 1
            if s != "PASS":
                for inv in sorted(set(i for i, _ in v.violations)):
                    by_inv.setdefault(inv, {"FAIL": 0, "KNOWN": 0})[s] += 1
        print("\nsweep: %d cases: %d passed, %d failed, %d known-failing" % (total, passed, failed, known))
        for inv, n in sorted(by_inv.items()):
            print("  invariant %-10s violated in %d failing + %d known-failing case(s)" % (inv, n["FAIL"], n["KNOWN"]))
        for name in STRATEGIES:
            if name in by_strat:
                n = by_strat[name]
                print("  %-20s %4d passed %4d failed %4d known-failing" % (name, n["PASS"], n["FAIL"], n["KNOWN"]))
        stale = [v.case["id"] for v, s, r in self.rows if s == "PASS" and r]
        if stale:
            print("  listed as known failures but passing now: %s" % ", ".join(stale))
        print("%d passed, %d failed, %d skipped" % (passed, failed, known), flush=True)
        return failed

    def dump(self, path):
        with open(path, "w") as f:
            json.dump([{"id": v.case["id"], "status": s, "known": r, "violations": v.violations,
                        "notes": v.notes, "commands": [(w, rc) for w, rc, _ in v.commands]}
                       for v, s, r in self.rows], f, indent=1)


def parse_args(argv):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--all", action="store_true")
    ap.add_argument("--sample", action="store_true")
    ap.add_argument("--strategy", action="append")
    ap.add_argument("--case", action="append")
    ap.add_argument("--kind")
    ap.add_argument("--jobs", type=int, default=int(os.environ.get("SWEEP_JOBS", "2")))
    ap.add_argument("--speed", type=float, default=float(os.environ.get("SWEEP_SPEED", "300")))
    ap.add_argument("--list", action="store_true")
    ap.add_argument("-v", "--verbose", action="store_true")
    ap.add_argument("--json")
    ap.add_argument("--known", default=KNOWN_FILE)
    a = ap.parse_args(argv)
    names = a.strategy or list(STRATEGIES)
    if a.case:
        names = [n for n in names if any(p.split("/")[0] == n or fnmatch.fnmatchcase(n, p.split("/")[0])
                                         for p in a.case)]
    if a.sample and not a.strategy:
        names = [n for n in names if STRATEGIES[n]["expect"] == 0 or n in SAMPLE_VARIANTS]
    unknown = [n for n in names if n not in STRATEGIES]
    if unknown:
        ap.error("unknown strategy %s (known: %s)" % (", ".join(unknown), ", ".join(STRATEGIES)))
    a.names = names
    return a


def select(a, all_cases, baselines):
    """The cases to run: the sample, or those --case names (an exact id is built even when
    this matrix lacks it), of --kind."""
    chosen = pick_sample(all_cases, baselines) if a.sample else list(all_cases)
    if a.case:
        chosen = [c for c in chosen if any(fnmatch.fnmatchcase(c["id"], p) for p in a.case)]
        ids = set(c["id"] for c in chosen)
        for p in a.case:
            if p not in ids and not any(ch in p for ch in "*?["):
                b = baselines.get(p.split("/")[0])
                c = b and C.case_from_id(p, b)
                if c:
                    chosen.append(c)
                else:
                    print("sweep: no case %s in this matrix (see --list)" % p)
    if a.kind:
        chosen = [c for c in chosen if c["kind"] == a.kind or group_of(c) == a.kind]
    return chosen


def main(argv=None):
    a = parse_args(argv)
    binary = os.environ.get("ECSPLAY_BIN") or os.path.join(procs.ROOT, "ecsplay")
    if not os.access(binary, os.X_OK):
        print("sweep: %s is not built (run make)\n0 passed, 1 failed" % binary)
        return 1
    speed = int(a.speed) if a.speed == int(a.speed) else a.speed
    started = time.monotonic()
    ops = model_operations(binary)
    tmp = tempfile.mkdtemp(prefix="ecsplay-sweep-")
    report = Report(load_known(a.known), a.verbose)
    baselines = {}
    jobs = max(1, a.jobs)
    worker_pool(jobs, binary, speed, tmp, a.names,
                lambda lab, name: baselines.__setitem__(name, C.run_baseline(lab, name, ops)))
    all_cases = [c for name in a.names for c in C.enumerate_cases(baselines[name])]
    chosen = select(a, all_cases, baselines)
    if a.list:
        print("\n".join(c["id"] for c in chosen) + "\n%d case(s)" % len(chosen))
        return 0
    print("sweep: %d strategies, %d cases in the matrix, running %d on %d worker(s) at speed %s (%s)"
          % (len(a.names), len(all_cases), len(chosen), jobs, speed, binary), flush=True)
    for c in chosen:
        if c["kind"] == "baseline":
            report.add(execute.judge_baseline(c, baselines[c["strategy"]]), 0.0)

    def do_case(lab, case):
        t0 = time.monotonic()
        report.add(execute.run_case(lab, case, baselines[case["strategy"]]), time.monotonic() - t0)

    worker_pool(jobs, binary, speed, tmp, [c for c in chosen if c["kind"] != "baseline"], do_case)
    if a.json:
        report.dump(a.json)
    print("sweep: %.0f s" % (time.monotonic() - started))
    failed = report.summary()
    shutil.rmtree(tmp, ignore_errors=True)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
