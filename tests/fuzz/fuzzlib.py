"""Shared parts of ecsplay's bounded fuzzers (tests/fuzz/fuzz_*.py).

Every fuzzer is deterministic: case N of fuzzer F is built from random.Random("F:SEED:N"), so
`fuzz.py F --case N` rebuilds exactly the input that failed. Every subprocess has a timeout,
every loop a count, every server listens on 127.0.0.1 only.

    BIN                          ECSPLAY_BIN or ./ecsplay (the sanitizer build sets it)
    run(argv, env, timeout)      -> Proc(rc, out, err, secs, timed_out, pid)
    crash_evidence(proc)         what makes an exit a crash: a signal, a sanitizer report,
                                 a Lua traceback through ecsplay's own files, "internal error"
    Outcome(case_id, problems, note)
"""
import glob
import os
import random
import re
import signal
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
BIN = os.path.abspath(os.path.join(ROOT, os.environ.get("ECSPLAY_BIN") or "ecsplay"))
KNOWN_FILE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "known_failures.txt")
TRACEBACK = re.compile(r"stack traceback:")
OWN_FRAME = re.compile(r"(stdlib-lua/ecsplay/|ecsplay/[\w/]+\.lua:\d+:)")
SANITIZER = re.compile(r"ERROR: (AddressSanitizer|LeakSanitizer)|runtime error:|SUMMARY: UndefinedBehaviorSanitizer")


def rng(fuzzer, seed, n):
    return random.Random("%s:%d:%d" % (fuzzer, seed, n))


def sanitizer_log_prefix():
    """ASAN_OPTIONS' log_path (make check-asan): reports go to log_path.<pid>, not stderr."""
    for part in os.environ.get("ASAN_OPTIONS", "").split(":"):
        if part.startswith("log_path="):
            return part[len("log_path="):]
    return None


class Proc:
    def __init__(self, rc, out, err, secs, timed_out, pid):
        self.rc, self.out, self.err, self.secs, self.timed_out, self.pid = rc, out, err, secs, timed_out, pid

    @property
    def text(self):
        return self.out + self.err


def base_env(extra=None):
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    env.update({"AWS_ACCESS_KEY_ID": "AKIDSIMULATOR", "AWS_SECRET_ACCESS_KEY": "simulator-secret-key",
                "AWS_REGION": "us-east-1", "AWS_CONFIG_FILE": "/nonexistent/ecsplay-fuzz-config",
                "AWS_SHARED_CREDENTIALS_FILE": "/nonexistent/ecsplay-fuzz-credentials",
                "AWS_EC2_METADATA_DISABLED": "true", "AWS_MAX_ATTEMPTS": "1"})
    env.update(extra or {})
    return env


def run(argv, env=None, timeout=20, cwd=ROOT, stdin_data=None):
    t0 = time.monotonic()
    p = subprocess.Popen([BIN] + list(argv), cwd=cwd, env=env or base_env(), stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, stdin=subprocess.PIPE if stdin_data else subprocess.DEVNULL,
                         start_new_session=True)
    timed_out = False
    try:
        out, err = p.communicate(stdin_data, timeout=timeout)
    except subprocess.TimeoutExpired:
        timed_out = True
        try:
            os.killpg(p.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        out, err = p.communicate(timeout=10)
    return Proc(p.returncode, out.decode("utf-8", "replace"), err.decode("utf-8", "replace"),
                time.monotonic() - t0, timed_out, p.pid)


def crash_evidence(proc, what="ecsplay"):
    """Problems that are never acceptable, whatever the input: [(signature, text)], [] when none.
    A traceback's signature names the first ecsplay file in it (traceback@credentials.lua)."""
    problems = []
    if proc.timed_out:
        problems.append(("hang", "%s did not exit within %.0f s" % (what, proc.secs)))
    elif proc.rc is not None and proc.rc < 0:
        problems.append(("signal", "%s died of signal %d" % (what, -proc.rc)))
    text = proc.text
    m = SANITIZER.search(text)
    if m:
        problems.append(("sanitizer", excerpt(text, m.start())))
    prefix = sanitizer_log_prefix()
    if prefix:
        for f in glob.glob("%s.%d" % (prefix, proc.pid)):
            problems.append(("sanitizer", "report in %s" % f))
    origin = traceback_origin(text)
    if origin:
        problems.append(("traceback@" + origin, "Lua traceback raised in ecsplay's own code: "
                         + excerpt(text, TRACEBACK.search(text).start(), before=300)))
    elif "internal error" in text:
        problems.append(("internal-error", excerpt(text, text.find("internal error"))))
    return problems


FRAME = re.compile(r"^\s*(\S+?\.lua|\[C\]|\(command line\)|\(\.\.\.tail calls\.\.\.\)):?(\d+)?:?")


def traceback_origin(text):
    """The ecsplay file a Lua traceback starts in (its first frame that is not C), or None
    when there is none or it starts in user code (a playbook, a scenario, a -e chunk): the
    runner shows a traceback for a playbook's own plain errors, as documented."""
    m = TRACEBACK.search(text)
    if not m:
        return None
    for line in text[m.end():].splitlines()[1:40]:
        f = FRAME.match(line)
        if not f:
            continue
        where = f.group(1)
        if where in ("[C]", "(...tail calls...)"):
            continue
        if OWN_FRAME.search(line):
            return os.path.basename(where)
        return None
    return None


def plain_lua_error(err):
    """A caught error that is a plain Lua value, not an ecsplay error: uncaught, the runner
    shows it with a traceback. (signature, evidence) naming the file it came from."""
    msg = str(err.get("message") or "")
    where = re.search(r"([\w]+\.lua):\d+:", msg)
    return ("traceback@" + (where.group(1) if where else "?"),
            "a plain Lua error (shown with a traceback), not an ecsplay error: " + msg[:400])


def excerpt(text, at, before=120, after=500):
    s = text[max(0, at - before):at + after]
    return " | ".join(ln.strip() for ln in s.splitlines() if ln.strip())[:900]


def last_error_line(text):
    lines = [ln for ln in text.splitlines() if ln.startswith("ecsplay: ")]
    return lines[-1] if lines else ""


class Outcome:
    """One case's result: problems are (signature, evidence) pairs; none = passed."""

    def __init__(self, case_id, problems=None, note=""):
        self.case_id, self.problems, self.note = case_id, list(problems or []), note


class Known:
    """known_failures.txt: `FUZZER:SIGNATURE reason` (every case whose problems all have a
    listed signature is known-failing) or `FUZZER#N reason` (that one case); fnmatch globs.
    reason(outcome) -> the reasons, or None when the outcome is not (entirely) known;
    unused(names) -> the lines of those fuzzers that matched no case (fixed, or not reached)."""

    def __init__(self, path=KNOWN_FILE):
        self.entries, self.used = [], set()
        if os.path.exists(path):
            with open(path) as f:
                for line in f:
                    line = line.strip()
                    if line and not line.startswith("#"):
                        parts = line.split(None, 1)
                        self.entries.append((parts[0], parts[1] if len(parts) > 1 else "(no reason given)"))

    def reason(self, outcome):
        import fnmatch
        fuzzer = outcome.case_id.split("#")[0]
        for pat, r in self.entries:
            if fnmatch.fnmatchcase(outcome.case_id, pat):
                self.used.add(pat)
                return [r]
        reasons, pats = [], []
        for sig, _ in outcome.problems:
            hit = [(pat, r) for pat, r in self.entries if fnmatch.fnmatchcase("%s:%s" % (fuzzer, sig), pat)]
            if not hit:
                return None
            pats.append(hit[0][0])
            reasons.append(hit[0][1])
        self.used.update(pats)
        return sorted(set(reasons)) or None

    def unused(self, names):
        return [pat for pat, _ in self.entries if pat not in self.used
                and (pat.split(":")[0].split("#")[0]) in names]


def say(*a):
    print(*a, flush=True)
    sys.stdout.flush()
