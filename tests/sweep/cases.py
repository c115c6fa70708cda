"""The sweep's cases: a baseline run per strategy, the matrix built from its journal, and one
case run and judged.

Case ids (stable across runs: journal lines are named by type and key, not by number):
    canary/baseline                          the playbook run to its end
    canary/kill@done:weight:2+rollback       SIGKILL when that journal line appears, then
                                             `ecsplay rollback` of every journal, newest first
    canary/kill@done:weight:2+resume         ... then `ecsplay resume` of the oldest unfinished one
    codedeploy/kill@codedeploy.CreateDeployment+rollback
                                             SIGKILL while the answer to that call (its first) is
                                             held back: the change is made, the run never hears of it
    canary/sigint@do:weight:2                SIGINT (sigterm@: SIGTERM) when that line appears
    canary/journal-full@done:weight:2        the disk full (journal-readonly: the journal immutable)
                                             from that line on, then SIGINT; journal-deleted: the
                                             journal deleted there, SIGKILL, `ecsplay rollback`
    canary/fault@do:weight:2:elbv2.ModifyRule:503
                                             that fault from step weight:2 on (posted when the line
                                             before it appears; @start: before the run starts)

Invariants checked after every case, once faults are cleared and the world ran SETTLE seconds:
    traffic    no target group with weight > 0 on a listener rule/default action lacks healthy targets
    progress   no ECS deployment IN_PROGRESS, no task set other than PRIMARY, no native service
               deployment and no CodeDeploy deployment in progress
    exit       every exit code as documented (docs/cli.md) for what happened; 3 names what is left
    restored   after a completed rollback (exit 1, 130/143, `rollback` exit 0): the touched rules and
               services are as before the run (same weights, task definition, desired count)
    completed  after a finished run (exit 0, resume exit 0): as after the baseline run
    resume     a resumed run finishes as the baseline did
    crash      no traceback, no `internal error` in ecsplay's output
    journal    a journal deleted mid-run is recreated (docs/strategies.md)
"""
import os
import re

import procs
from lab import RUN_TIMEOUT
from strategies import FAULT_KINDS, STRATEGIES
from world import progress_violations, state_diff, touched, traffic_violations

CRASH = re.compile(r"stack traceback:|internal error|attempt to (index|call|perform|compare|concatenate)")


class Baseline:
    """One happy run of a strategy: its journal labels, the operations called after each
    line, the world before (home) and after (final)."""

    def __init__(self, name):
        self.name = name
        self.lines = []          # [{"label", "file_strategy", "t"}]
        self.ops_after = {}      # label -> {"ecs.DescribeServices": n, ...} called until the next line
        self.ops_before = {}     # ops called before the first journal line
        self.home = self.final = None
        self.rc, self.output, self.multi = None, "", False
        self.error = None

    def keys(self):
        return touched(self.home, self.final)

    def quiet_after(self, label):
        """Simulated seconds between that line and the next one of its journal: a kill or a
        signal there lands at the intended moment when this is long (the run waits)."""
        for i, ln in enumerate(self.lines):
            if ln["label"] == label:
                nxt = [x for x in self.lines[i + 1:] if x["file"] == ln["file"]]
                return (nxt[0]["time"] - ln["time"]) if nxt else float("inf")
        return 0


def _counting_faults(ops):
    return [{"service": s, "operation": op, "delay": 0} for s, names in ops.items() for op in names]


def _counts(hits):
    return {"%s.%s" % (f["service"], f["operation"]): f.get("hits", 0) for f in hits if f.get("hits")}


def _diff(after, before):
    return {k: v - before.get(k, 0) for k, v in after.items() if v - before.get(k, 0) > 0}


def run_setup(lab, srv, strat, d):
    for i, argv in enumerate(strat["setup"]):
        rc, out = lab.command(srv, argv, os.path.join(d, "setup-runs"), "setup%d" % i)
        if rc != 0:
            raise RuntimeError("setup `ecsplay %s` exited %s:\n%s" % (" ".join(argv), rc, tail(out)))


def run_baseline(lab, name, ops):
    """The strategy's happy run with every operation counted (delay-0 faults)."""
    strat = STRATEGIES[name]
    b = Baseline(name)
    try:
        srv, world = lab.fresh(strat["scenario"], strat["regions"])
        d = lab.case_dir(name + "/baseline")
        run_setup(lab, srv, strat, d)
        b.home = world.read()
        lab.post_fault(srv, _counting_faults(ops))
        runs = os.path.join(d, "runs")
        watch = procs.JournalWatch(runs, prefix=strat["multi"])
        b.multi = watch.prefix
        c = lab.run(srv, [strat["playbook"]] + strat["args"], runs, "baseline")
        last = {"counts": {}}

        def on_line(x):
            counts = _counts(lab.fault_hits(srv))
            if not b.lines:
                b.ops_before = _diff(counts, {})
            else:
                b.ops_after[b.lines[-1]["label"]] = _diff(counts, last["counts"])
            last["counts"] = counts
            b.lines.append({"label": x["label"], "t": x["obj"].get("t"), "file": x["file"],
                            "time": x["obj"].get("time") or 0})

        watch.wait_for(lambda x: False, c, RUN_TIMEOUT, on_line=on_line)
        b.rc = c.wait(RUN_TIMEOUT)
        watch.wait_for(lambda x: False, c, 0, on_line=on_line)
        if b.lines:
            b.ops_after[b.lines[-1]["label"]] = _diff(_counts(lab.fault_hits(srv)), last["counts"])
        watch.close()
        b.output = c.output()
        lab.settle(srv)
        b.final = world.read()
    except Exception as e:  # noqa: BLE001 - reported as the baseline case's failure
        b.error = "%s: %s" % (type(e).__name__, e)
    finally:
        lab.reap()
    return b


def fault_points(b):
    """(point label, label of the line that triggers the post or None, ops of that step).
    `start`: the fault is there before the run begins, on every operation the run calls (a
    transient fault hits its first calls, a persistent one all): the same set every time.
    `do:KEY`: from the line before that step on, on the operations the step called in the
    baseline (which varies a little from run to run: the harness reads the counts as the
    journal grows)."""
    every = dict(b.ops_before)
    for counts in b.ops_after.values():
        for op, n in counts.items():
            every[op] = every.get(op, 0) + n
    out = [("start", None, every)]
    for i, ln in enumerate(b.lines):
        if ln["t"] != "do":
            continue
        prev = [x for x in b.lines[:i] if x["file"] == ln["file"]]
        trigger = prev[-1]["label"] if prev else None
        ops = {}
        for x in b.lines[i:]:
            if x["file"] != ln["file"]:
                continue
            if x is not ln and x["t"] == "do":
                break
            for op, n in b.ops_after.get(x["label"], {}).items():
                ops[op] = ops.get(op, 0) + n
        out.append((ln["label"], trigger, ops))
    return out


READ_PREFIXES = ("Describe", "List", "Get", "BatchGet")
# When that journal line appears: the disk fills up (the runs folder is a small tmpfs), or the
# journal turns read-only (chattr +i), and the run is interrupted (SIGINT) so it rolls back with
# a journal it cannot write; or the journal is deleted and the run killed a moment later.
JOURNAL_FAULTS = ("journal-full", "journal-readonly", "journal-deleted")


def mutating_ops(b):
    """The operations of the baseline run that change something, in a fixed order."""
    ops = set(b.ops_before)
    for counts in b.ops_after.values():
        ops.update(counts)
    return sorted(op for op in ops if not op.split(".", 1)[1].startswith(READ_PREFIXES))


# The journal's own line types (rollout/journal.lua). Other lines record a measurement or a
# command (gate, step, control): how many of them a run writes varies with timing, so only the
# first of each type is a kill point (its label is the same in every run; `gate#15` is not).
STEP_TYPES = ("start", "do", "done", "undone", "end", "rollout")


def kill_points(b):
    return [ln for ln in b.lines if ln["t"] in STEP_TYPES or "#" not in ln["label"]]


def enumerate_cases(b):
    strat = STRATEGIES[b.name]
    cases = [{"id": "%s/baseline" % b.name, "strategy": b.name, "kind": "baseline"}]
    for ln in kill_points(b):
        for then in ("rollback", "resume"):
            cases.append({"id": "%s/kill@%s+%s" % (b.name, ln["label"], then), "strategy": b.name,
                          "kind": "kill+" + then, "at": ln["label"]})
    for op in mutating_ops(b):
        for then in ("rollback", "resume"):
            cases.append({"id": "%s/kill@%s+%s" % (b.name, op, then), "strategy": b.name,
                          "kind": "inflight+" + then, "op": op})
    if strat["signals"]:
        for ln in b.lines:
            if ln["t"] == "done":
                for fault in JOURNAL_FAULTS:
                    cases.append({"id": "%s/%s@%s" % (b.name, fault, ln["label"]), "strategy": b.name,
                                  "kind": fault, "at": ln["label"]})
        for ln in b.lines:
            if ln["t"] in ("do", "done"):
                for sig in ("sigint", "sigterm"):
                    cases.append({"id": "%s/%s@%s" % (b.name, sig, ln["label"]), "strategy": b.name,
                                  "kind": sig, "at": ln["label"]})
    if strat["faults"]:
        for point, trigger, ops in fault_points(b):
            for op in sorted(ops):
                for kind in FAULT_KINDS:
                    cases.append({"id": "%s/fault@%s:%s:%s" % (b.name, point, op, kind), "strategy": b.name,
                                  "kind": "fault", "at": point, "trigger": trigger, "op": op, "fault": kind})
    return cases


CASE_ID = re.compile(r"^(?P<s>[\w-]+)/(?:kill@(?P<iop>[a-z0-9]+\.[A-Z]\w+)\+(?P<ithen>rollback|resume)|"
                     r"(?P<kill>kill)@(?P<kat>.+)\+(?P<then>rollback|resume)|"
                     r"(?P<sig>sigint|sigterm|journal-full|journal-readonly|journal-deleted)@(?P<sat>.+)|fault@(?P<fat>.+?):(?P<op>\w+\.\w+):(?P<kind>\w+)|"
                     r"(?P<base>baseline))$")


def case_from_id(cid, b):
    """A case named by its id, also when this baseline run did not list it (the operations a
    step calls vary a little from run to run): for reproducing a reported failure."""
    m = CASE_ID.match(cid)
    if not m or m.group("s") != b.name:
        return None
    case = {"id": cid, "strategy": b.name}
    if m.group("base"):
        case["kind"] = "baseline"
    elif m.group("iop"):
        case.update(kind="inflight+" + m.group("ithen"), op=m.group("iop"))
    elif m.group("kill"):
        case.update(kind="kill+" + m.group("then"), at=m.group("kat"))
    elif m.group("sig"):
        case.update(kind=m.group("sig"), at=m.group("sat"))
    else:
        if m.group("kind") not in FAULT_KINDS:
            return None
        trigger = None
        for point, trig, _ in fault_points(b):
            if point == m.group("fat"):
                trigger = trig
                break
        else:
            if m.group("fat") != "start":
                return None
        case.update(kind="fault", at=m.group("fat"), trigger=trigger, op=m.group("op"), fault=m.group("kind"))
    return case


def tail(text, n=8):
    lines = [ln for ln in (text or "").rstrip().splitlines() if ln.strip()]
    return "\n".join("      | " + ln[:300] for ln in lines[-n:])


class Verdict:
    def __init__(self, case):
        self.case = case
        self.violations = []      # (invariant, evidence)
        self.notes = []
        self.commands = []        # (what, rc, output)

    def add(self, invariant, evidence):
        self.violations.append((invariant, evidence))

    def command(self, what, rc, output):
        self.commands.append((what, rc, output))
        if rc is None:
            self.add("exit", "`%s` did not exit within %ds (killed)" % (what, RUN_TIMEOUT))
        elif rc < 0 and what != "run":
            self.add("exit", "`%s` died of signal %d" % (what, -rc))
        m = CRASH.search(output or "")
        if m:
            self.add("crash", "`%s` printed %r:\n%s" % (what, m.group(0), tail(output, 12)))

    @property
    def ok(self):
        return not self.violations


def _exit3_names_left(v, what, rc, out):
    if rc == 3 and "left" not in (out or "").lower():
        v.add("exit", "`%s` exit 3 without saying what is left:\n%s" % (what, tail(out)))


def journals_state(runs):
    files = sorted(f for f in os.listdir(runs) if f.endswith(".jsonl")) if os.path.isdir(runs) else []
    return [(os.path.join(runs, f), procs.journal_end(os.path.join(runs, f))) for f in files]


def check_world(v, world, b, want):
    """traffic + progress, and `want` ("restored" | "completed" | None) against the baseline."""
    snap = world.read()
    for e in traffic_violations(snap):
        v.add("traffic", e)
    for e in progress_violations(snap):
        v.add("progress", e)
    if want and b.home and b.final:
        ref = b.home if want == "restored" else b.final
        for e in state_diff(snap, ref, b.keys(), exact_td=(want == "restored")):
            v.add(want, e)
    return snap


def rollback_all(lab, srv, v, runs, d, label="rollback"):
    """`ecsplay rollback` of every journal, newest first; returns [(path, status before, rc)]."""
    out = []
    for path, status in reversed(journals_state(runs)):
        rc, text = lab.command(srv, ["rollback", path], runs, "%s-%s" % (label, os.path.basename(path)),
                               endpoint=False)
        what = "ecsplay rollback %s" % os.path.basename(path)
        v.command(what, rc, text)
        if rc not in (0, 3, None) and not (rc is not None and rc < 0):
            v.add("exit", "`%s` exited %d (documented: 0 rolled back, 3 rollback failed):\n%s"
                  % (what, rc, tail(text)))
        _exit3_names_left(v, what, rc, text)
        out.append((path, status, rc))
    return out
