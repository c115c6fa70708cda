"""Every line `--log-format json` writes is one event that validates against the published schema
(docs/events.schema.json, explained in docs/events.md), checked with Debian's python3-jsonschema:
the shipped playbooks rehearsed with --simulate (success, a gate failure, bad input, a failed
rollout of each kind, the rollback playbook, two rollouts in parallel), with -v (debug events too)
and -q, `PLAYBOOK --help`, and `ecsplay rollback JOURNAL` of a finished run against `sim serve`.
Standard output holds nothing but those lines; the last is the run's summary with its exit code.
Also: a run steered by its scenario's controls and writing --report (`control` and `report`
events), the `error` event of `ecsplay status RUN` that matches nothing, and every event name
the code emits (log.event / :log calls in stdlib-lua) is documented in docs/events.md and
fits the schema's event pattern.

Run: /usr/bin/python3 tests/py/test_events_schema.py   (from the project root, after make)
"""
import json
import os
import re
import subprocess
import sys
import tempfile
import unittest

import jsonschema

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import simserve  # noqa: E402

SCHEMA_PATH = os.path.join(simserve.ROOT, "docs", "events.schema.json")
with open(SCHEMA_PATH) as f:
    SCHEMA = json.load(f)
jsonschema.Draft202012Validator.check_schema(SCHEMA)
VALIDATOR = jsonschema.Draft202012Validator(SCHEMA)


def ecsplay(*args, env=None, timeout=120):
    """→ (rc, stdout, stderr) of the ecsplay binary run from the project root."""
    p = subprocess.run([simserve.ECSPLAY_RUN] + list(args), cwd=simserve.ROOT, capture_output=True,
                       text=True, timeout=timeout, env=env or simserve.clean_env())
    return p.returncode, p.stdout, p.stderr


class Events(unittest.TestCase):
    def events(self, rc_want, *args, env=None):
        """Runs ecsplay --log-format json ARGS; every stdout line must be a valid event. → the events."""
        rc, out, err = ecsplay("--log-format", "json", *args, env=env)
        self.assertEqual(rc, rc_want, "ecsplay %s\n%s%s" % (" ".join(args), out[-3000:], err))
        self.assertTrue(out.endswith("\n"), "stdout ends with a whole line: %r" % out[-200:])
        evs = []
        for n, line in enumerate(out.splitlines(), 1):
            try:
                ev = json.loads(line)
            except ValueError:
                self.fail("line %d of `ecsplay %s` is not JSON: %r" % (n, " ".join(args), line[:300]))
            problems = sorted(VALIDATOR.iter_errors(ev), key=lambda e: list(e.path))
            self.assertEqual([], ["%s: %s" % ("/".join(map(str, e.path)), e.message) for e in problems],
                             "line %d (%s event) of `ecsplay %s`: %s" % (n, ev.get("event"), " ".join(args), line))
            evs.append(ev)
        self.assertTrue(evs, "no events from ecsplay %s" % " ".join(args))
        return evs, err

    def assert_run_summary(self, evs, code):
        last = evs[-1]
        self.assertEqual((last["event"], last["scope"], last["exit_code"]), ("summary", "run", code), last)
        if code != 0:
            errors = [e for e in evs if e["event"] == "error"]
            self.assertEqual(len(errors), 1, "the final error is one JSON event")
            self.assertEqual(errors[0]["exit_code"], code)
            self.assertIs(evs[-2], errors[0], "the error comes right before the summary")
        else:
            self.assertEqual([e for e in evs if e["event"] == "error"], [])
        return last

    def rollout_events(self, evs, rollout):
        return [e for e in evs if e["rollout"] == rollout]

    def test_canary_success(self):
        evs, _ = self.events(0, "--simulate", "playbooks/canary.lua")
        run = self.assert_run_summary(evs, 0)
        self.assertEqual(run["status"], "succeeded")
        steps = [e for e in evs if e["event"] == "step"]
        self.assertEqual([(e["step"], e["weight"]) for e in steps], [(1, 10), (2, 25), (3, 50), (4, 100)])
        gates = [e for e in evs if e["event"] == "gate"]
        self.assertEqual({g["gate"] for g in gates},
                         {"5xx rate api-canary", "p99 latency api-canary", "alarm api-5xx-high"})
        units = {g["gate"]: g["unit"] for g in gates}
        self.assertEqual(units["5xx rate api-canary"], "%")
        self.assertEqual(units["p99 latency api-canary"], "ms")
        for g in gates:
            # every gate event says which rollout, step and weight it measured
            self.assertEqual((g["rollout"], g["strategy"]), ("canary api", "canary"), g)
            self.assertIn((g["step"], g["weight"]), [(1, 10), (2, 25), (3, 50), (4, 100)], g)
            if g["gate"].startswith("5xx"):
                self.assertLess(g["window"]["from"], g["window"]["to"])
        run_ids = {e["run_id"] for e in evs if e["run_id"] is not None}
        self.assertEqual(len(run_ids), 1, run_ids)
        rounds = [e for e in evs if e["event"] == "round"]
        self.assertEqual(sum(len(r["gates"]) for r in rounds), len(gates), "each gate event is in one round")
        summaries = [e for e in evs if e["event"] == "summary" and e["scope"] == "rollout"]
        self.assertEqual(len(summaries), 1)
        versions = summaries[0]["versions"][0]
        self.assertTrue(versions["from"].endswith("task-definition/api:1"), versions)
        self.assertTrue(versions["to"].endswith("task-definition/api:2"), versions)
        self.assertEqual(run["versions"], summaries[0]["versions"])
        # the playbook's own print() is an event too
        prints = [e["message"] for e in evs if e["event"] == "print"]
        self.assertEqual(prints, ["canary: succeeded, api:v2 promoted in 4 steps"])

    def test_gate_failure(self):
        evs, err = self.events(1, "--simulate", "playbooks/canary.lua", "image=api:flaky")
        run = self.assert_run_summary(evs, 1)
        self.assertEqual(run["status"], "failed")
        self.assertEqual(run["rollouts"][0]["status"], "rolled_back")
        failed = [e for e in evs if e["event"] == "gate" and e["verdict"] == "fail"]
        self.assertTrue(failed, "the failed measurement is an event")
        error = [e for e in evs if e["event"] == "error"][0]
        self.assertEqual((error["code"], error["kind"]), ("RolloutFailed", "rollout"))
        self.assertEqual(error["run_id"], run["run_id"], "a one-rollout run's error names it")
        self.assertIn(error["message"], err, "the same message as the last line on stderr")
        abort = [e for e in evs if e["event"] == "abort"][0]
        self.assertIn("GateFailed", abort["reason"])
        self.assertEqual([e["message"] for e in evs if e["event"] == "undo"],
                         ["undone: traffic back to api-canary=0 api-stable=100",
                          "undone: service api-canary back to task definition api:1, desired count 0"])

    def test_bad_input(self):
        evs, err = self.events(2, "--simulate", "playbooks/canary.lua", "imgae=api:v3")
        self.assert_run_summary(evs, 2)
        self.assertEqual(evs[-1]["status"], "bad_input")
        self.assertEqual(evs[-2]["code"], "BadInput")
        self.assertIn('did you mean "image"?', evs[-2]["message"])
        evs, _ = self.events(2, "--simulate=tests/scenarios/no-such-scenario.lua", "playbooks/canary.lua")
        self.assert_run_summary(evs, 2)
        # refused before it could start: a playbook that is not there, a chunk that does not compile
        for args in (["no/such/playbook.lua"], ["-e", "x = = 1"]):
            evs, err = self.events(2, *args)
            self.assert_run_summary(evs, 2)
            self.assertIn(evs[-2]["message"], err)

    def test_other_strategies_fail_and_succeed(self):
        for args, code in ((["playbooks/rolling.lua", "image=api:bad"], 1), (["playbooks/linear.lua", "image=api:slow"], 1),
                           (["playbooks/blue_green.lua"], 0), (["playbooks/codedeploy.lua"], 0),
                           (["playbooks/ecs_native.lua"], 0)):
            with self.subTest(args=args):
                evs, _ = self.events(code, "--simulate", *args)
                self.assert_run_summary(evs, code)
                strategies = {e["strategy"] for e in evs if e["strategy"]}
                self.assertEqual(len(strategies), 1, strategies)

    def test_rollback_playbook_verbose_and_quiet(self):
        evs, _ = self.events(0, "-v", "--simulate", "playbooks/rollback.lua")
        self.assert_run_summary(evs, 0)
        self.assertIn("debug", {e["level"] for e in evs}, "-v: debug events, valid too")
        evs, _ = self.events(1, "-q", "--simulate", "playbooks/canary.lua", "image=api:flaky")
        self.assertEqual({e["level"] for e in evs if e["event"] not in ("undo", "print")}, {"warn", "error"})
        self.assertEqual(len([e for e in evs if e["event"] == "undo"]), 2, "-q still shows what was undone")

    def test_parallel_rollouts_keep_apart(self):
        evs, _ = self.events(1, "--simulate", "playbooks/multi_service.lua", "image=api:flaky")
        self.assert_run_summary(evs, 1)
        by_rollout = {}
        for e in evs:
            if e["event"] in ("gate", "step", "round") and e["rollout"]:
                by_rollout.setdefault(e["rollout"], set()).add(e["strategy"])
        self.assertEqual(by_rollout, {"house canary api": {"canary"}, "codedeploy app-deploy/app-dg": {"codedeploy"}})
        self.assertEqual(len(evs[-1]["rollouts"]), 2)

    def test_help_is_an_event(self):
        evs, err = self.events(0, "playbooks/canary.lua", "--help")
        self.assertEqual(err, "")
        self.assertEqual([e["event"] for e in evs], ["help"])
        self.assertIn("usage: ecsplay [options] playbooks/canary.lua", evs[0]["message"])

    def test_rollback_command_against_sim_serve(self):
        srv = simserve.Server(args=["--lockstep"])
        self.addCleanup(srv.close)
        runs = tempfile.TemporaryDirectory(prefix="ecsplay-events-runs-")
        self.addCleanup(runs.cleanup)
        env = simserve.clean_env()
        env["ECSPLAY_RUNS_DIR"] = runs.name
        evs, _ = self.events(0, "--endpoint-url", srv.url, "--region", simserve.REGION, "playbooks/rolling.lua",
                             env=env)
        run_id = evs[-1]["run_id"]
        journal = os.path.join(runs.name, run_id + ".jsonl")
        self.assertTrue(os.path.exists(journal), os.listdir(runs.name))
        evs, _ = self.events(0, "rollback", journal, env=env)
        self.assert_run_summary(evs, 0)
        undo = [e for e in evs if e["event"] == "undo"]
        self.assertTrue(undo, "the revert is in the events")
        self.assertEqual({e["run_id"] for e in undo}, {run_id}, "rollback's events name the run")

    def test_steered_run_with_report(self):
        tmp = tempfile.TemporaryDirectory(prefix="ecsplay-events-")
        self.addCleanup(tmp.cleanup)
        sc = os.path.join(tmp.name, "steer.lua")
        with open(sc, "w") as f:
            f.write('return { controls = { { at = "2m", command = "pause", by = "ops" }, '
                    '{ at = "3m", command = "unpause", by = "ops" }, { at = "4m", command = "promote" } } }\n')
        report = os.path.join(tmp.name, "r.html")
        env = simserve.clean_env()
        env["ECSPLAY_RUNS_DIR"] = os.path.join(tmp.name, "runs")
        evs, _ = self.events(0, "--simulate=" + sc, "--report", report, "playbooks/canary.lua", env=env)
        self.assert_run_summary(evs, 0)
        controls = [e for e in evs if e["event"] == "control"]
        self.assertEqual([(e["command"], e["by"], e["source"]) for e in controls],
                         [("pause", "ops", "scenario"), ("unpause", "ops", "scenario"), ("promote", "scenario", "scenario")])
        self.assertEqual({e["rollout"] for e in controls}, {"canary api"}, "a control event names its rollout")
        self.assertEqual(evs[-2]["event"], "report", "the report event comes right before the run's summary")
        self.assertEqual(evs[-2]["report"], report)
        self.assertTrue(os.path.exists(report))
        self.assertTrue(evs[-2]["journal"].endswith(evs[-1]["run_id"] + ".jsonl"), evs[-2])

    def test_status_error_is_an_event(self):
        runs = tempfile.TemporaryDirectory(prefix="ecsplay-events-runs-")
        self.addCleanup(runs.cleanup)
        env = simserve.clean_env()
        env["ECSPLAY_RUNS_DIR"] = runs.name
        evs, err = self.events(2, "status", "nosuch", env=env)
        self.assertEqual([(e["event"], e["code"], e["exit_code"]) for e in evs], [("error", "RunNotFound", 2)])
        self.assertIn(evs[0]["message"], err)


# Calls that emit an event: log.event / log.lazy_event (and log.lua's own M.event), a rollout's
# run:log / self:log, the live state's run_log, the AWS client's s.log. The level (a literal, or
# `cond and "info" or "warn"`) comes first, the event name second, as a string literal.
EMITTER = re.compile(r'(?:\blog\.event|\blog\.lazy_event|\bM\.event|:log|\bs\.log|\brun_log)\(\s*(?:self\s*,\s*)?'
                     r'[^,;]*,\s*"([^"]+)"')


def emitted_event_names():
    """→ {event name: [files]} of every event emitted with a literal name in stdlib-lua."""
    names = {}
    for d, _, files in os.walk(os.path.join(simserve.ROOT, "stdlib-lua", "ecsplay")):
        for f in files:
            if f.endswith(".lua"):
                path = os.path.join(d, f)
                with open(path) as src:
                    for m in EMITTER.finditer(src.read()):
                        names.setdefault(m.group(1), []).append(os.path.relpath(path, simserve.ROOT))
    return names


class EventNamesDocumented(unittest.TestCase):
    def test_every_emitted_event_is_documented(self):
        names = emitted_event_names()
        # the extraction sees what it must (a broken pattern would find nothing and pass)
        for known in ("step", "gate", "round", "baking", "summary", "error", "print", "report", "control",
                      "approval", "aws.retry", "aws.call", "log", "undo"):
            self.assertIn(known, names)
        with open(os.path.join(simserve.ROOT, "docs", "events.md")) as f:
            documented = set(re.findall(r"`([a-z][a-z0-9_.]*)`", f.read()))
        pattern = re.compile(SCHEMA["properties"]["event"]["pattern"])
        missing = sorted("%s (%s)" % (n, ", ".join(sorted(set(fs)))) for n, fs in names.items() if n not in documented)
        self.assertEqual(missing, [], "events emitted in stdlib-lua but not in docs/events.md")
        self.assertEqual(sorted(n for n in names if not pattern.match(n)), [],
                         "event names the schema's pattern refuses")


if __name__ == "__main__":
    simserve.run_tests()
