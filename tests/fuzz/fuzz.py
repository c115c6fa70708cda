#!/usr/bin/env python3
"""ecsplay's bounded fuzzers (issue 12), deterministic and seeded:

    serve      mutated requests to `ecsplay sim serve`              (fuzz_serve.py)
    answers    mutated AWS answers to ecsplay's client              (fuzz_answers.py)
    scenarios  mutated scenario files under --simulate              (fuzz_scenarios.py)
    config     mutated credentials/config files                     (fuzz_config.py)

    /usr/bin/python3 tests/fuzz/fuzz.py [NAME ...] [--cases N] [--seed S] [--jobs J]
    /usr/bin/python3 tests/fuzz/fuzz.py config --case 17 -v     one case again, with its input

--cases defaults to FUZZ_CASES or 300 per fuzzer (make check runs that many, make fuzz 3000).
ECSPLAY_BIN picks the binary (make check-asan's sanitizer build: its reports, written to
ASAN_OPTIONS' log_path.<pid>, count as failures of the case that made them).
Each failing case prints its problems (signature and evidence) and the command that replays
it; a case whose every problem is listed in tests/fuzz/known_failures.txt is known-failing.
The end: per-fuzzer counts, then `N passed, M failed, K skipped` (skipped = known-failing).
"""
import argparse
import os
import queue
import shutil
import sys
import tempfile
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import fuzzlib  # noqa: E402

FUZZERS = ["serve", "answers", "scenarios", "config"]
BATCH = 10


def fuzzer_class(name):
    mod = __import__("fuzz_" + name)
    return mod.Fuzzer, getattr(mod, "BATCH", 1)


class Tally:
    def __init__(self, known, verbose):
        self.known, self.verbose = known, verbose
        self.lock = threading.Lock()
        self.counts = {}      # fuzzer -> {"passed", "failed", "known", "sigs": {sig: n}}

    def add(self, name, o, show_input=None):
        known = self.known.reason(o) if o.problems else None
        status = "PASS" if not o.problems else ("KNOWN" if known else "FAIL")
        with self.lock:
            c = self.counts.setdefault(name, {"PASS": 0, "FAIL": 0, "KNOWN": 0, "sigs": {}})
            c[status] += 1
            for sig, _ in o.problems:
                c["sigs"][sig] = c["sigs"].get(sig, 0) + 1
            if status == "PASS" and not self.verbose:
                return
            print("%-5s %s  (%s)" % (status, o.case_id, o.note), flush=True)
            for sig, ev in o.problems:
                print("      [%s] %s" % (sig, ev[:1200]))
            if known:
                print("      known: %s" % "; ".join(known))
            if status == "FAIL":
                n = o.case_id.split("#")[1]
                print("      repro: /usr/bin/python3 tests/fuzz/fuzz.py %s --case %s -v" % (name, n))
            if show_input and getattr(o, "files", None):
                for fname, data in o.files.items():
                    print("      --- %s:\n%s" % (fname, data.decode("utf-8", "replace")))
            sys.stdout.flush()

    def summary(self, names):
        tp = tf = tk = 0
        print()
        for name in names:
            c = self.counts.get(name, {"PASS": 0, "FAIL": 0, "KNOWN": 0, "sigs": {}})
            tp, tf, tk = tp + c["PASS"], tf + c["FAIL"], tk + c["KNOWN"]
            sigs = ", ".join("%s %d" % kv for kv in sorted(c["sigs"].items()))
            print("fuzz %-9s %5d cases: %5d passed, %4d failed, %4d known-failing%s" % (
                name, c["PASS"] + c["FAIL"] + c["KNOWN"], c["PASS"], c["FAIL"], c["KNOWN"],
                ("  (problems: %s)" % sigs) if sigs else ""))
        unused = self.known.unused(names)
        if unused:
            print("known_failures.txt lines that matched no case this time (fixed? then delete them): %s"
                  % ", ".join(unused))
        print("%d passed, %d failed, %d skipped" % (tp, tf, tk), flush=True)
        return tf


def run_batches(names, cases, seed, jobs, tally, tmp, only=None, verbose=False):
    """Every fuzzer's cases in batches of BATCH consecutive ones, on `jobs` threads."""
    q = queue.Queue()
    for name in names:
        _, batch = fuzzer_class(name)
        if only is not None:
            start = only - only % batch
            q.put((name, start, only + 1, only))
        else:
            for start in range(0, cases, BATCH):
                q.put((name, start, min(cases, start + BATCH), None))

    def work(i):
        instances = {}
        try:
            while True:
                try:
                    name, start, end, report_only = q.get_nowait()
                except queue.Empty:
                    return
                if name not in instances:
                    cls, _ = fuzzer_class(name)
                    d = os.path.join(tmp, "%s-%d" % (name, i))
                    os.makedirs(d, exist_ok=True)
                    instances[name] = cls(d)
                for n in range(start, end):
                    try:
                        o = instances[name].case(seed, n, keep=False)
                    except Exception as e:  # noqa: BLE001 - the fuzzer itself broke: a failure
                        o = fuzzlib.Outcome("%s#%d" % (name, n), [("harness", "%s: %s" % (type(e).__name__, e))])
                    if report_only is None or n == report_only:
                        tally.add(name, o, show_input=verbose and report_only is not None)
        finally:
            for inst in instances.values():
                inst.close()

    threads = [threading.Thread(target=work, args=(i,), daemon=True) for i in range(max(1, jobs))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("names", nargs="*", help="fuzzers (default: all)")
    ap.add_argument("--cases", type=int, default=int(os.environ.get("FUZZ_CASES", "300")))
    ap.add_argument("--seed", type=int, default=int(os.environ.get("FUZZ_SEED", "1")))
    ap.add_argument("--jobs", type=int, default=int(os.environ.get("FUZZ_JOBS", "2")))
    ap.add_argument("--case", type=int, help="run only this case number (with -v: show its input)")
    ap.add_argument("-v", "--verbose", action="store_true")
    ap.add_argument("--known", default=fuzzlib.KNOWN_FILE)
    a = ap.parse_args(argv)
    names = a.names or FUZZERS
    bad = [n for n in names if n not in FUZZERS]
    if bad:
        ap.error("unknown fuzzer %s (known: %s)" % (", ".join(bad), ", ".join(FUZZERS)))
    if not os.access(fuzzlib.BIN, os.X_OK):
        print("fuzz: %s is not built" % fuzzlib.BIN)
        print("0 passed, 1 failed")
        return 1
    t0 = time.monotonic()
    tmp = tempfile.mkdtemp(prefix="ecsplay-fuzz-")
    tally = Tally(fuzzlib.Known(a.known), a.verbose)
    print("fuzz: %s, %s case(s) each, seed %d, %d job(s), %s" % (
        ", ".join(names), a.case if a.case is not None else a.cases, a.seed, a.jobs, fuzzlib.BIN), flush=True)
    try:
        run_batches(names, a.cases, a.seed, a.jobs, tally, tmp, only=a.case, verbose=a.verbose)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    print("fuzz: %.0f s" % (time.monotonic() - t0))
    return 1 if tally.summary(names) else 0


if __name__ == "__main__":
    sys.exit(main())
