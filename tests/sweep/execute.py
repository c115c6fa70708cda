"""Runs one sweep case (see cases.py for the ids and the invariants) and returns its Verdict."""
import json
import os
import signal
import subprocess

import procs
from cases import (Verdict, check_world, journals_state, rollback_all, run_setup, tail,
                   _exit3_names_left)
from lab import RUN_TIMEOUT
from strategies import FAULT_KINDS, STRATEGIES
from world import progress_violations, traffic_violations

SIGNALS = {"sigint": (signal.SIGINT, 130), "sigterm": (signal.SIGTERM, 143)}
# journal-deleted cases run the playbook through this wrapper, which deletes the journal in the
# process the moment the case's line is on disk (a watcher outside cannot land it before a line
# that follows at once, such as the end line) and says so on stderr (DELETED).
DELETER = "tests/sweep/delete_journal_at.lua"
DELETED = "delete_journal_at: deleted"
INFLIGHT_DELAY = 50     # simulated seconds an answer is held: under the client's 60 s timeout
STALL, STALLS = 0.05, 2  # probes of /_sim/faults unanswered this long, this many times: it blocks


def judge_baseline(case, b):
    v = Verdict(case)
    expect = STRATEGIES[b.name]["expect"]
    if b.error:
        v.add("harness", b.error)
        return v
    v.command("run", b.rc, b.output)
    if b.rc != expect:
        v.add("exit", "the playbook exited %s, want %d:\n%s" % (b.rc, expect, tail(b.output)))
    for e in traffic_violations(b.final):
        v.add("traffic", e)
    for e in progress_violations(b.final):
        v.add("progress", e)
    if not b.lines:
        v.add("exit", "the run wrote no journal line")
    return v


def run_case(lab, case, b):
    """Runs a (non-baseline) case on a fresh world; never raises (harness errors are verdicts)."""
    v = Verdict(case)
    strat = STRATEGIES[case["strategy"]]
    fs = None        # set before anything can fail: the finally below reads it
    try:
        srv, world = lab.fresh(strat["scenario"], strat["regions"])
        d = lab.case_dir(case["id"])
        run_setup(lab, srv, strat, d)
        runs = os.path.join(d, "runs")
        kind = case["kind"]
        fs = JournalFs(runs) if kind.startswith("journal-") else None
        watch = procs.JournalWatch(runs, prefix=b.multi)
        if kind == "fault" and case["trigger"] is None:
            lab.post_fault(srv, fault_of(case))
        if kind.startswith("inflight"):
            svc, op = case["op"].split(".", 1)
            lab.post_fault(srv, {"service": svc, "operation": op, "delay": INFLIGHT_DELAY, "times": 1})
        argv, env = [strat["playbook"]] + strat["args"], None
        if kind == "journal-deleted":
            # deleted by the process itself the moment that line is on disk (see DELETER)
            argv = [DELETER, "playbook=" + strat["playbook"]] + strat["args"]
            env = {"ECSPLAY_SWEEP_DELETE_AT": case["at"], "ECSPLAY_SWEEP_PREFIX": {"name": "name", False: "0"}.get(b.multi, "1")}
        c = lab.run(srv, argv, runs, "run", env=env)
        if kind.startswith("inflight"):
            watch.close()
            if not inflight_kill(lab, srv, v, c, case):
                return v
            kill_case(lab, srv, world, v, b, c, runs, d, kind.split("+")[1])
            return v
        want_line = case["trigger"] if kind == "fault" else case["at"]
        hit = watch.wait_for(want_line, c, RUN_TIMEOUT) if want_line else True
        watch.close()
        if not hit:
            rc = c.wait(30)
            v.command("run", rc, c.output())
            if kind == "journal-deleted" and DELETED in c.output():
                v.add("journal", "the run deleted its journal after `%s` (%s) and never recreated it; exit %s:\n%s"
                      % (want_line, DELETER, rc, tail(c.output())))
                return v
            v.add("reach", "journal line `%s` never appeared; the run exited %s after %s:\n%s" % (
                want_line, rc, ", ".join(x["label"] for x in watch.lines[-6:]) or "no journal line",
                tail(c.output())))
            return v
        if kind.startswith("kill"):
            kill_case(lab, srv, world, v, b, c, runs, d, kind.split("+")[1])
        elif kind.startswith("journal-"):
            journal_case(lab, srv, world, v, b, c, runs, d, kind, fs, hit, watch)
        elif kind in SIGNALS:
            signal_case(lab, srv, world, v, b, c, runs, d, kind)
        else:
            fault_case(lab, srv, world, v, b, c, runs, d, case)
    except Exception as e:  # noqa: BLE001 - the harness itself failed: say so, never pass
        v.add("harness", "%s: %s" % (type(e).__name__, e))
    finally:
        lab.reap()
        if fs:
            fs.unmount()
    return v


class JournalFs:
    """The runs folder of a journal-fault case: a 256 KiB tmpfs (journal-full fills it), whose
    files can be made immutable (journal-readonly) or deleted (journal-deleted). release()
    puts it back to normal (root only: mount and chattr). A full tmpfs still lets a journal
    fill the rest of its last 4 KiB page: the fault bites at the first line that needs more."""

    def __init__(self, runs):
        self.runs, self.mounted, self.frozen = runs, False, []
        os.makedirs(runs, exist_ok=True)
        r = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=256k", "tmpfs", runs], capture_output=True,
                           text=True, timeout=10)
        if r.returncode != 0:
            raise RuntimeError("cannot mount a tmpfs for the journal (root needed): %s" % r.stderr.strip())
        self.mounted = True

    def fill(self):
        try:
            with open(os.path.join(self.runs, "filler"), "wb") as f:
                while True:
                    f.write(b"\0" * 4096)
                    f.flush()
        except OSError:
            pass                               # ENOSPC: full, as meant

    def freeze(self):
        for p in [self.runs] + [os.path.join(self.runs, f) for f in os.listdir(self.runs)]:
            subprocess.run(["chattr", "+i", p], capture_output=True, timeout=10, check=True)
            self.frozen.append(p)

    def delete(self, path):
        os.unlink(path)

    def release(self):
        for p in reversed(self.frozen):
            subprocess.run(["chattr", "-i", p], capture_output=True, timeout=10)
        self.frozen = []
        filler = os.path.join(self.runs, "filler")
        if os.path.exists(filler):
            os.unlink(filler)

    def unmount(self):
        self.release()
        if self.mounted:
            subprocess.run(["umount", "-l", self.runs], capture_output=True, timeout=10)
            self.mounted = False


def inflight_kill(lab, srv, v, c, case):
    """SIGKILL while the server holds the answer to the case's operation back: the fault that
    holds it has hit (the operation ran before its answer was held), the client still waits."""
    import time
    import urllib.request
    deadline = time.monotonic() + RUN_TIMEOUT
    stalled = 0
    while c.alive() and time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(srv.url + "/_sim/faults", timeout=STALL) as r:
                hits = sum(f.get("hits", 0) for f in json.loads(r.read()).get("faults", []))
            stalled = 0
            if hits:
                c.signal(signal.SIGKILL)
                break
            time.sleep(0.003)
        except OSError:
            stalled += 1          # a server that blocks while it holds an answer
            if stalled >= STALLS:
                c.signal(signal.SIGKILL)
                break
    rc = c.wait(30)
    hits = sum(f.get("hits", 0) for f in lab.fault_hits(srv))
    v.command("run", rc, c.output())
    if hits == 0 or rc is None or rc >= 0:
        v.add("reach", "the run %s while %s's answer was held (exit %s, fault hits %d):\n%s" % (
            "was not killed" if rc is None or rc >= 0 else "was killed but not", case["op"], rc, hits,
            tail(c.output())))
        return False
    v.notes.append("killed while %s's answer was held" % case["op"])
    return True


def journal_case(lab, srv, world, v, b, c, runs, d, kind, fs, hit, watch):
    """The journal cannot be written (full, read-only) when SIGINT makes the run roll back, or
    it was deleted under a run that is then killed: the rollback must still run to the end and
    the exit code tell the truth; `ecsplay rollback` afterwards must finish the job."""
    path = hit["file"]
    if kind == "journal-deleted":
        # the process deleted the journal right after that line (DELETER); killed once its next
        # line is on disk, which must have recreated the file with every line so far
        watch.wait_for(lambda x: x["file"] == path and x["seq"] > hit["seq"], c, RUN_TIMEOUT)
        c.signal(signal.SIGKILL)
        rc = c.wait(30)
        v.command("run", rc, c.output())
        fs.release()
        if DELETED not in c.output():
            v.add("reach", "the run never deleted its journal after `%s`:\n%s" % (hit["label"], tail(c.output())))
        if not os.path.exists(path):
            v.add("journal", "the run %s without recreating its deleted journal (docs/strategies.md: "
                  "noticed at its next line and recreated)" % ("ended" if rc is not None and rc >= 0 else "went on"))
        elif procs.journal_lines(path)[:1] and procs.journal_lines(path)[0].get("t") != "start":
            v.add("journal", "the recreated journal does not start with its start line")
        if rc == STRATEGIES[b.name]["expect"]:
            v.notes.append("the run finished before the kill")
            lab.settle(srv)
            check_world(v, world, b, _mixed(v, b, runs, "completed"))
            return
        rcs = [r for _, _, r in rollback_all(lab, srv, v, runs, d)]
        lab.settle(srv)
        check_world(v, world, b, _mixed(v, b, runs, "restored" if rcs and all(r == 0 for r in rcs) else None))
        return
    fs.fill() if kind == "journal-full" else fs.freeze()
    c.signal(signal.SIGINT)
    rc = c.wait(RUN_TIMEOUT)
    out = c.output()
    v.command("run", rc, out)
    fs.release()
    want = None
    ended = journals_state(runs)
    finished = ended and all(status == "succeeded" for _, status in ended)
    if rc in (0, -signal.SIGINT) and STRATEGIES[b.name]["expect"] == 0 and (rc == 0 or finished):
        # the rollouts had ended; a signal in the last instants may still end the process
        v.notes.append("the run finished before the signal (exit %s)" % rc)
        want = "completed"
    elif rc in (130, 1):                      # docs: 1 when the journal failed the run, 130 on SIGINT
        want = "restored"                     # judged as the run left it: nothing helps it after
    elif rc == 3:
        _exit3_names_left(v, "run", rc, out)
        if _retry_if_failed(lab, srv, v, runs, d, [rc]):
            want = "restored"
    else:
        v.add("exit", "SIGINT with the journal %s: exit %s, want 130 or 1 (rolled back) or 3 (not):\n%s"
              % ("on a full disk" if kind == "journal-full" else "read-only", rc, tail(out)))
    lab.settle(srv)
    check_world(v, world, b, _mixed(v, b, runs, want))


def fault_of(case):
    svc, op = case["op"].split(".", 1)
    f = {"service": svc, "operation": op}
    f.update(FAULT_KINDS[case["fault"]])
    return f


def _exit_vs_journals(v, rc, runs, what="run"):
    """1, 130 and 143 say every rollback completed: no journal may say otherwise."""
    if rc in (1, 130, 143):
        failed = [os.path.basename(p) for p, status in journals_state(runs) if status == "rollback_failed"]
        if failed:
            v.add("exit", "`%s` exited %d (every rollback completed) but %s ended rollback_failed"
                  % (what, rc, ", ".join(failed)))


def _mixed(v, b, runs, want):
    """Several rollouts (multi_service, multi_region, fleet) that ended differently (one succeeded, one rolled
    back): each kept its own promise, the whole world matches neither reference."""
    if not b.multi or want is None:
        return want
    statuses = set(status for _, status in journals_state(runs))
    if "succeeded" in statuses and len(statuses) > 1:
        v.notes.append("rollouts ended %s: state not compared" % "/".join(sorted(str(s) for s in statuses)))
        return None
    return want


def _either(v, world, b, rcs):
    """A finished run rolled back: a revert (restored) or a refusal (completed) both keep the
    promise; anything in between does not. Exit 3 says something is left mixed: not so when
    the world is whole."""
    from world import state_diff
    before = len(v.violations)
    snap = check_world(v, world, b, None)
    if b.home and b.final:
        to_home = state_diff(snap, b.home, b.keys(), exact_td=True)
        to_final = state_diff(snap, b.final, b.keys(), exact_td=False)
        if to_home and to_final:
            v.add("restored", "neither reverted nor left as the run finished it: " + "; ".join(to_home))
        elif 3 in rcs and len(v.violations) == before:
            v.add("exit", "`ecsplay rollback` exited 3 (rollback failed, mixed state) though the world is %s"
                  % ("as before the run" if not to_home else "as the finished run left it"))


def _retry_if_failed(lab, srv, v, runs, d, rcs):
    """After an exit 3 (faults cleared): `ecsplay rollback` again must finish the job."""
    if 3 not in rcs:
        return None
    srv.control("DELETE", "/_sim/faults", timeout=10)
    again = rollback_all(lab, srv, v, runs, d, label="retry")
    return all(rc == 0 for _, _, rc in again)


def kill_case(lab, srv, world, v, b, c, runs, d, then):
    if c.rc is None:
        c.signal(signal.SIGKILL)
        rc = c.wait(30)
        v.command("run", rc, c.output())
    before = journals_state(runs)
    if then == "rollback":
        done = rollback_all(lab, srv, v, runs, d)
        rcs = [rc for _, _, rc in done]
        retried = _retry_if_failed(lab, srv, v, runs, d, rcs)
        lab.settle(srv)
        if b.multi and len(set(status for _, status in before)) > 1:
            check_world(v, world, b, _mixed(v, b, runs, "restored"))
        elif any(status == "succeeded" for _, status in before):
            _either(v, world, b, rcs)
        elif all(r == 0 for r in rcs) or retried:
            check_world(v, world, b, "restored")
        else:
            check_world(v, world, b, None)
        return
    expect = STRATEGIES[b.name]["expect"]
    pending = [p for p, status in before if status is None]
    if not pending and before and not playbook_ended(runs):
        # every journal ended, the playbook run did not (killed between two rollouts, or before
        # the runner's playbook_end line): resume runs the playbook again, the rest follows
        pending = [before[0][0]]
    if not pending:
        path = before[0][0] if before else None
        if path:
            rc2, out = lab.command(srv, ["resume", path], runs, "resume", endpoint=False)
            v.command("ecsplay resume", rc2, out)
            if rc2 != 2:
                v.add("exit", "`ecsplay resume` of a run that ended exited %s, want 2:\n%s" % (rc2, tail(out)))
        lab.settle(srv)
        check_world(v, world, b, "completed")
        return
    rc2, out = lab.command(srv, ["resume", pending[0]], runs, "resume", endpoint=False)
    v.command("ecsplay resume", rc2, out)
    if rc2 != expect:
        v.add("resume", "`ecsplay resume %s` exited %s, the run it resumes exits %d:\n%s" % (
            os.path.basename(pending[0]), rc2, expect, tail(out)))
    _exit3_names_left(v, "ecsplay resume", rc2, out)
    _exit_vs_journals(v, rc2, runs, "ecsplay resume")
    left = [os.path.basename(p) for p, status in journals_state(runs) if status is None]
    if rc2 in (0, 1) and left:
        v.add("resume", "after the resumed run exited %d, journal(s) %s never ended" % (rc2, ", ".join(left)))
    retried = _retry_if_failed(lab, srv, v, runs, d, [rc2])
    lab.settle(srv)
    want = {0: "completed", 1: "restored"}.get(rc2, "restored" if retried else None)
    check_world(v, world, b, _mixed(v, b, runs, want))


def playbook_ended(runs):
    """Whether the runner journaled the end of the playbook run (a `playbook_end` line in the
    group's first journal, rollout/journal_file.lua)."""
    return any(obj.get("t") == "playbook_end" for p, _ in journals_state(runs) for obj in procs.journal_lines(p))


def signal_case(lab, srv, world, v, b, c, runs, d, kind):
    sig, code = SIGNALS[kind]
    c.signal(sig)
    rc = c.wait(RUN_TIMEOUT)
    v.command("run", rc, c.output())
    ended = journals_state(runs)
    finished = ended and all(status == "succeeded" for _, status in ended)
    if rc == code:
        want = "restored"
    elif rc in (STRATEGIES[b.name]["expect"], -sig) and finished:
        # the rollout had ended; a signal in the last instants may still end the process
        v.notes.append("the run finished before the signal landed (exit %s)" % rc)
        want = "completed"
    else:
        want = None
        if rc != 3:
            v.add("exit", "SIG%s mid-run: exit %s, want %d (interrupted, rolled back) or 3 (rollback failed):\n%s"
                  % (kind[3:].upper(), rc, code, tail(c.output())))
    _exit3_names_left(v, "run", rc, c.output())
    _exit_vs_journals(v, rc, runs)
    if _retry_if_failed(lab, srv, v, runs, d, [rc]):
        want = "restored"
    lab.settle(srv)
    check_world(v, world, b, _mixed(v, b, runs, want))


def fault_case(lab, srv, world, v, b, c, runs, d, case):
    if case["trigger"] is not None:
        lab.post_fault(srv, fault_of(case))
    rc = c.wait(RUN_TIMEOUT)
    out = c.output()
    v.command("run", rc, out)
    hits = sum(f.get("hits", 0) for f in lab.fault_hits(srv))
    v.notes.append("fault hit %d time(s)" % hits)
    srv.control("DELETE", "/_sim/faults", timeout=10)
    changed = any(obj.get("t") == "done" for p, _ in journals_state(runs) for obj in procs.journal_lines(p))
    _exit_vs_journals(v, rc, runs)
    want = None
    if rc == 0:
        want = "completed"
    elif rc == 1:
        want = "restored"
    elif rc == 2:
        want = "restored"
        if changed:
            v.add("exit", "exit 2 (bad input, nothing changed) after the journal shows changes:\n%s" % tail(out))
    elif rc == 3:
        _exit3_names_left(v, "run", rc, out)
        if _retry_if_failed(lab, srv, v, runs, d, [rc]):
            want = "restored"
    elif rc is not None:
        v.add("exit", "exit %s under an injected fault (documented: 0, 1, 3):\n%s" % (rc, tail(out)))
    lab.settle(srv)
    check_world(v, world, b, _mixed(v, b, runs, want))
