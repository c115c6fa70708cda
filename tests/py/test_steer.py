"""Steering a live rollout from another process: a REAL `ecsplay` process runs
tests/scenarios/steer_canary.lua against a real `ecsplay sim serve --speed 60` (one simulated
minute per wall second), and `ecsplay status|pause|unpause|promote|abort` are run beside it, as
an operator or a CI job would (docs/strategies.md "Steering a running rollout").

Each case reads the world back with Debian's boto3 (the rule's weights, the services' task
definitions and counts) and the run's journal (a {"t":"control"} line per command, naming who
sent it), and checks the run's exit code and last message:
- pause holds the weights past the bake's end; unpause goes on to the next step; abort rolls
  back now (exit 1, "aborted by tester@...");
- promote ends the bake early; promote --full skips to 100 % and promotes (exit 0);
- an approval step: status says awaiting-approval; timeout → rollback (exit 1) and → promote
  (exit 0); `ecsplay promote` by someone not among the approvers is refused, `--as bob` is
  not; the HTTP callback refuses a wrong token (403) and takes a right one;
- on_failure = "pause": a failing gate holds the weights (status paused, the reason) instead
  of rolling back, and abort then rolls back.

Each case has its own server and runs folder; each lasts under ~20 s of wall time.
Run: /usr/bin/python3 tests/py/test_steer.py   (from the project root, after make)
"""
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import unittest
import urllib.error
import urllib.request

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import simserve  # noqa: E402
from simserve import Server, tg_weights  # noqa: E402

PLAYBOOK = "tests/scenarios/steer_canary.lua"
SPEED = 60
USER = "tester"


class Steer(unittest.TestCase):
    def setUp(self):
        self.srv = Server(speed=SPEED)
        self.runs = tempfile.mkdtemp(prefix="ecsplay-steer-")
        self.proc = None

    def tearDown(self):
        if self.proc and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(5)
        self.srv.close()
        shutil.rmtree(self.runs, ignore_errors=True)

    # --- helpers -------------------------------------------------------------------------
    def env(self):
        env = simserve.clean_env()
        env["ECSPLAY_RUNS_DIR"] = self.runs
        env["USER"] = USER
        return env

    def start(self, *args):
        self.out = tempfile.TemporaryFile(mode="w+")
        self.proc = subprocess.Popen([simserve.ECSPLAY_RUN, "--endpoint-url", self.srv.url, PLAYBOOK] + list(args),
                                     cwd=simserve.ROOT, stdout=self.out, stderr=subprocess.STDOUT,
                                     env=self.env(), text=True)
        self.run_id = self.wait_for(self.find_run, 20, "the run's journal")

    def find_run(self):
        for name in sorted(os.listdir(self.runs)):
            if name.endswith(".jsonl") and not name.endswith(".control.jsonl"):
                return name[:-len(".jsonl")]
        return None

    def finish(self, timeout=30):
        rc = self.proc.wait(timeout)
        self.out.seek(0)
        return rc, self.out.read()

    def ecsplay(self, *args):
        p = subprocess.run([simserve.ECSPLAY_RUN] + list(args), cwd=simserve.ROOT, capture_output=True,
                           text=True, env=self.env(), timeout=30)
        return p.returncode, p.stdout, p.stderr

    def command(self, *args):
        rc, out, err = self.ecsplay(*args)
        self.assertEqual(rc, 0, "ecsplay %s: %s %s" % (" ".join(args), out, err))
        return out

    def status(self):
        rc, out, err = self.ecsplay("status", self.run_id[:20], "--log-format", "json")
        self.assertEqual(rc, 0, err)
        return json.loads(out)

    def wait_for(self, probe, timeout, what):
        give_up = time.monotonic() + timeout
        while time.monotonic() < give_up:
            v = probe()
            if v:
                return v
            if self.proc is not None and self.proc.poll() is not None and what != "exit":
                self.out.seek(0)
                self.fail("the run ended (%s) while waiting for %s:\n%s" % (self.proc.returncode, what,
                                                                           self.out.read()))
            time.sleep(0.1)
        self.fail("%s not reached in %ss" % (what, timeout))

    def wait_state(self, state, timeout=20, step=None):
        def probe():
            s = self.status()
            if s["state"] == state and (step is None or (s.get("step") or {}).get("index") == step):
                return s
            return None
        return self.wait_for(probe, timeout, "state %s%s" % (state, step and (" at step %d" % step) or ""))

    def weights(self):
        elb = self.srv.client("elbv2")
        tgs = elb.describe_target_groups()["TargetGroups"]
        names = {t["TargetGroupArn"]: t["TargetGroupName"] for t in tgs}
        canary_arn = [t["TargetGroupArn"] for t in tgs if t["TargetGroupName"] == "api-canary"][0]
        for lb in elb.describe_load_balancers()["LoadBalancers"]:
            for lst in elb.describe_listeners(LoadBalancerArn=lb["LoadBalancerArn"])["Listeners"]:
                for rule in elb.describe_rules(ListenerArn=lst["ListenerArn"])["Rules"]:
                    for a in rule["Actions"]:
                        fc = a.get("ForwardConfig") or {}
                        if any(t["TargetGroupArn"] == canary_arn for t in fc.get("TargetGroups", [])):
                            return tg_weights(a, names)
        self.fail("no rule forwards to api-canary")

    def service(self, name):
        s = self.srv.client("ecs").describe_services(cluster="production", services=[name])["services"][0]
        return {"td": s["taskDefinition"].rsplit("/", 1)[-1], "desired": s["desiredCount"]}

    def journal(self):
        with open(os.path.join(self.runs, self.run_id + ".jsonl")) as f:
            return [json.loads(line) for line in f if line.strip()]

    def controls(self):
        return [(j["command"], j.get("as") or j.get("user"), j.get("effect")) for j in self.journal()
                if j["t"] == "control"]

    def assert_rolled_back(self, rc, out):
        self.assertEqual(rc, 1, out)
        self.assertEqual(self.weights(), {"api-stable": 100, "api-canary": 0})
        self.assertEqual(self.service("api-canary"), {"td": "api:1", "desired": 0})
        self.assertEqual(self.service("api")["td"], "api:1")
        self.assertEqual(self.journal()[-1].get("status"), "rolled_back")

    # --- the cases -----------------------------------------------------------------------
    def test_status_pause_unpause_abort(self):
        self.start("steps=10,50,100", "bake=3m")
        s = self.wait_state("running", step=1)
        self.assertEqual((s["strategy"], s["name"], s["run"]), ("canary", "canary api", self.run_id))
        self.assertEqual(s["weights"], {"api-stable": 90, "api-canary": 10})
        self.assertTrue(s["playbook"].endswith(PLAYBOOK), s)
        out = self.command("pause", self.run_id)
        self.assertIn("paused", out)
        s = self.wait_state("paused")
        # held well past the bake's end (3 simulated minutes; 6 pass here): still at step 1
        time.sleep(6)
        s = self.status()
        self.assertEqual((s["state"], s["step"]["index"]), ("paused", 1), s)
        self.assertEqual(self.weights(), {"api-stable": 90, "api-canary": 10})
        # gates still measure while paused
        self.assertTrue(s["gates"] and s["gates"][0]["result"] == "pass", s)
        self.command("unpause", self.run_id)
        self.wait_state("running", step=2)
        self.assertEqual(self.weights(), {"api-stable": 50, "api-canary": 50})
        self.command("abort", self.run_id)
        rc, out = self.finish()
        self.assertRegex(out, r"aborted by tester@\S+ \(ecsplay abort\)")
        self.assert_rolled_back(rc, out)
        self.assertEqual([c[:2] for c in self.controls()], [("pause", USER), ("unpause", USER), ("abort", USER)])
        self.assertEqual(self.status()["state"], "rolled-back")

    def test_promote_and_promote_full(self):
        self.start("steps=10,50,90", "bake=10m")
        self.wait_state("running", step=1)
        self.command("promote", self.run_id)
        self.wait_state("running", step=2)
        self.assertEqual(self.weights(), {"api-stable": 50, "api-canary": 50})
        lines = {(j["t"], j.get("key")): j["time"] for j in self.journal()}
        # the bake of step 1 (10 minutes) was ended early
        self.assertLess(lines[("do", "weight:2")] - lines[("done", "weight:1")], 300)
        self.command("promote", self.run_id, "--full")
        rc, out = self.finish()
        self.assertEqual(rc, 0, out)
        self.assertIn("canary: succeeded", out)
        self.assertEqual(self.weights(), {"api-stable": 100, "api-canary": 0})
        self.assertEqual(self.service("api")["td"], "api:2")
        self.assertEqual(self.service("api-canary")["desired"], 0)
        keys = [j.get("key") for j in self.journal() if j["t"] == "do"]
        self.assertIn("weight:3", keys)  # straight to the last step (90 %), then promoted
        self.assertEqual([c[0] for c in self.controls()], ["promote", "promote"])
        self.assertTrue(any(j["t"] == "control" and j.get("full") for j in self.journal()))
        self.assertEqual(self.status()["state"], "succeeded")

    def test_approval_timeout_rolls_back(self):
        self.start("steps=10,100", "bake=2m", "approval=2", "timeout=3m")
        s = self.wait_state("awaiting-approval", timeout=20)
        self.assertEqual(s["approval"]["min"], 1)
        self.assertEqual(s["approval"]["on_timeout"], "rollback")
        rc, out = self.finish()
        self.assertIn("timed out after 3m", out)
        self.assert_rolled_back(rc, out)
        self.assertEqual([c[0] for c in self.controls()], ["timeout"])

    def test_approval_timeout_promotes(self):
        self.start("steps=10,100", "bake=2m", "approval=2", "timeout=2m", "on_timeout=promote")
        self.wait_state("awaiting-approval", timeout=20)
        self.assertEqual(self.weights(), {"api-stable": 90, "api-canary": 10})
        rc, out = self.finish()
        self.assertEqual(rc, 0, out)
        self.assertEqual(self.weights(), {"api-stable": 100, "api-canary": 0})
        self.assertEqual(self.service("api")["td"], "api:2")
        self.assertIn("on_timeout = promote", self.controls()[0][2])

    def test_approvers_and_http_callback(self):
        self.start("steps=10,100", "bake=2m", "approval=2", "timeout=30m", "approvers=alice,bob", "http=1")
        s = self.wait_state("awaiting-approval", timeout=20)
        out = self.command("promote", self.run_id)
        self.assertIn("refused: tester is not one of the approvers", out)
        url = s["approval"]["approve_url"]
        bad = url.split("token=")[0] + "token=" + "0" * 32 + "&by=bob"
        with self.assertRaises(urllib.error.HTTPError) as e:
            urllib.request.urlopen(urllib.request.Request(bad, data=b"", method="POST"), timeout=10)
        self.assertEqual(e.exception.code, 403)
        self.assertEqual(self.status()["state"], "awaiting-approval")
        with urllib.request.urlopen(urllib.request.Request(url + "&by=bob", data=b"", method="POST"),
                                    timeout=10) as r:
            self.assertEqual(r.status, 202)
        self.wait_state("running", step=2)
        self.assertEqual(self.weights(), {"api-stable": 0, "api-canary": 100})
        self.command("abort", self.run_id, "--as", "alice")
        rc, out = self.finish()
        self.assertRegex(out, r"aborted by alice \(tester@\S+\)")
        self.assert_rolled_back(rc, out)
        self.assertEqual([c[:2] for c in self.controls()], [("promote", USER), ("approve", "bob"), ("abort", "alice")])

    def test_on_failure_pause(self):
        self.start("steps=50,100", "bake=3m", "image=api:flaky", "on_failure=pause")
        s = self.wait_state("paused", timeout=20)
        self.assertIn("gate failed", s["paused_reason"])
        self.assertEqual(s["gates"][0]["result"], "fail")
        time.sleep(3)  # held, not rolled back
        self.assertEqual(self.weights(), {"api-stable": 50, "api-canary": 50})
        self.assertIsNone(self.proc.poll())
        self.command("abort", self.run_id)
        rc, out = self.finish()
        self.assert_rolled_back(rc, out)
        self.assertIn("paused instead of rolling back", out)


if __name__ == "__main__":
    simserve.run_tests()
