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
import threading
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


class Steering(unittest.TestCase):
    """The server, the run and the helpers every case uses (the cases: the classes below)."""
    SCENARIO = None
    SERVER_ARGS = ()

    def setUp(self):
        self.srv = Server(scenario=self.SCENARIO, speed=None if "--lockstep" in self.SERVER_ARGS else SPEED,
                          args=self.SERVER_ARGS)
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

    def start(self, *args, playbook=PLAYBOOK):
        self.out = tempfile.TemporaryFile(mode="w+")
        self.proc = subprocess.Popen([simserve.ECSPLAY_RUN, "--endpoint-url", self.srv.url, playbook] + list(args),
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

    def end_line(self):
        """The rollout's end line (the runner may write lines after it: the playbook's own end)."""
        ends = [j for j in self.journal() if j.get("t") == "end"]
        return ends[-1] if ends else {}

    def controls(self):
        return [(j["command"], j.get("as") or j.get("user"), j.get("effect")) for j in self.journal()
                if j["t"] == "control"]

    def assert_rolled_back(self, rc, out):
        self.assertEqual(rc, 1, out)
        self.assertEqual(self.weights(), {"api-stable": 100, "api-canary": 0})
        self.assertEqual(self.service("api-canary"), {"td": "api:1", "desired": 0})
        self.assertEqual(self.service("api")["td"], "api:1")
        self.assertEqual(self.end_line().get("status"), "rolled_back")



class Steer(Steering):
    """A canary: ecsplay moves the traffic, bakes and waits."""

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


class Services(Steering):
    """rolling, ecs_native and codedeploy: their own service moves the traffic; each command
    acts through the service's own control (ContinueDeployment, ContinueServiceDeployment,
    StopDeployment / StopServiceDeployment) or answers "not applicable now: ..."."""
    SCENARIO = "tests/scenarios/steer_services.lua"

    def effects(self):
        return [c[2] for c in self.controls()]

    def service_td(self, name):
        return self.srv.client("ecs").describe_services(cluster="production", services=[name])["services"][0][
            "taskDefinition"].rsplit("/", 1)[-1]

    # --- rolling -------------------------------------------------------------------------
    def test_rolling_during_the_update_pause_and_promote_do_not_apply_abort_rolls_back(self):
        self.start("image=api:slowstart", "bake=2m", "timeout=1h", playbook="playbooks/rolling.lua")
        self.wait_for(lambda: (self.status().get("step") or {}).get("phase") == "deploying", 20, "ECS's update")
        out = self.command("pause", self.run_id)
        self.assertIn("not applicable now: ECS has no pause for a rolling update", out)
        out = self.command("promote", self.run_id)
        self.assertIn("not applicable now: no bake to end while ECS rolls api over to api:2", out)
        self.assertEqual(self.status()["state"], "running")
        self.assertEqual(self.service_td("api"), "api:2")  # still updating
        self.command("abort", self.run_id)
        rc, out = self.finish()
        self.assertEqual(rc, 1, out)
        self.assertRegex(out, r"aborted by tester@\S+ \(ecsplay abort\)")
        self.assertEqual(self.service_td("api"), "api:1")
        self.assertEqual([c[0] for c in self.controls()], ["pause", "promote", "abort"])
        self.assertEqual(self.end_line().get("status"), "rolled_back")

    def test_rolling_pause_holds_the_bake_then_abort_rolls_back(self):
        self.start("bake=4m", playbook="playbooks/rolling.lua")
        self.wait_for(lambda: (self.status().get("step") or {}).get("phase") == "bake", 20, "the bake")
        out = self.command("pause", self.run_id)
        self.assertIn("paused: holding the current weights", out)
        time.sleep(6)  # the 4-minute bake (4 s here) is over: held
        s = self.status()
        self.assertEqual((s["state"], s["step"]["phase"]), ("paused", "bake"), s)
        self.assertIsNone(self.proc.poll())
        self.assertEqual(self.service_td("api"), "api:2")
        self.command("abort", self.run_id)
        rc, out = self.finish()
        self.assertEqual(rc, 1, out)
        self.assertEqual(self.service_td("api"), "api:1")
        self.assertEqual([c[0] for c in self.controls()], ["pause", "abort"])

    # --- ecs_native ----------------------------------------------------------------------
    # (Debian's boto3 predates DescribeServiceDeployments: the pause hooks are seen through the
    # run's status, their effect through the production rule's weights and the service)
    def wait_hook(self, weight):
        """Waits until the run bakes at the pause hook with green at `weight` %."""
        def probe():
            st = self.status().get("step") or {}
            return st.get("phase") == "PRODUCTION_TRAFFIC_SHIFT" and st.get("weight") == weight
        self.wait_for(probe, 20, "the pause hook at %d %%" % weight)
        return self.weights()

    def deployments(self):
        svc = self.srv.client("ecs").describe_services(cluster="production", services=["api"])["services"][0]
        return sorted((d["status"], d["taskDefinition"].rsplit("/", 1)[-1]) for d in svc["deployments"])

    def test_ecs_native_promote_answers_the_pause_hooks_continue(self):
        self.start("bake=30m", playbook="playbooks/ecs_native.lua")
        self.assertEqual(self.wait_hook(10), {"api-stable": 90, "api-canary": 10})
        out = self.command("promote", self.run_id)  # ends the 30-minute bake: CONTINUE
        self.assertIn("ending this bake now", out)
        self.assertEqual(self.wait_hook(100), {"api-stable": 0, "api-canary": 100})
        self.command("promote", self.run_id, "--full")
        rc, out = self.finish()
        self.assertEqual(rc, 0, out)
        self.assertEqual(self.deployments(), [("PRIMARY", "api:2")])
        self.assertEqual(self.weights(), {"api-stable": 0, "api-canary": 100})
        self.assertEqual([(c[0], c[1]) for c in self.controls()], [("promote", USER), ("promote", USER)])
        continued = [j["key"] for j in self.journal() if j["t"] == "done" and j["key"].startswith("continue:")]
        self.assertEqual(len(continued), 2, continued)  # ContinueServiceDeployment CONTINUE at each hook

    def test_ecs_native_abort_at_a_pause_hook_rolls_back(self):
        self.start("bake=30m", playbook="playbooks/ecs_native.lua")
        self.wait_hook(10)
        self.command("abort", self.run_id)
        rc, out = self.finish()
        self.assertEqual(rc, 1, out)
        self.assertRegex(out, r"aborted by tester@\S+ \(ecsplay abort\)")
        self.assertEqual(self.weights(), {"api-stable": 100, "api-canary": 0})
        self.assertEqual(self.deployments(), [("PRIMARY", "api:1")])
        self.assertEqual(self.end_line().get("status"), "rolled_back")

    # --- codedeploy ----------------------------------------------------------------------
    def deployment(self):
        """The run's CodeDeploy deployment (its id: the journal's "deployment" step), or {}."""
        ids = [j.get("result") for j in self.journal() if j["t"] == "done" and j.get("key") == "deployment"]
        if not ids:
            return {}
        return self.srv.client("codedeploy").get_deployment(deploymentId=ids[0])["deploymentInfo"]

    def prod_weights(self):
        elb = self.srv.client("elbv2")
        names = {t["TargetGroupArn"]: t["TargetGroupName"] for t in elb.describe_target_groups()["TargetGroups"]}
        for lb in elb.describe_load_balancers()["LoadBalancers"]:
            for lst in elb.describe_listeners(LoadBalancerArn=lb["LoadBalancerArn"])["Listeners"]:
                if lst["Port"] == 443:  # a plain forward counts 1: as percentages
                    w = tg_weights(lst["DefaultActions"][0], names)
                    return {k: round(100 * v / sum(w.values())) for k, v in w.items() if v}
        self.fail("no :443 listener")

    def test_codedeploy_promote_ends_codedeploys_waits(self):
        # the group waits for ContinueDeployment before rerouting (up to 1 h), and 1 h before
        # terminating the original task set: only `ecsplay promote` ends them in this test's time
        self.srv.client("codedeploy").update_deployment_group(
            applicationName="app-deploy", currentDeploymentGroupName="app-dg",
            blueGreenDeploymentConfiguration={
                "deploymentReadyOption": {"actionOnTimeout": "STOP_DEPLOYMENT", "waitTimeInMinutes": 60},
                "terminateBlueInstancesOnDeploymentSuccess": {"action": "TERMINATE",
                                                              "terminationWaitTimeInMinutes": 60}})
        self.start("config=CodeDeployDefault.ECSAllAtOnce", playbook="playbooks/codedeploy.lua")
        self.wait_for(lambda: self.deployment().get("status") == "Ready", 20, "CodeDeploy's ready wait")
        self.assertEqual(self.prod_weights(), {"app-blue": 100})
        out = self.command("promote", self.run_id)
        self.assertIn("rerouting production traffic to green now (ContinueDeployment READY_WAIT)", out)
        self.wait_for(lambda: self.deployment().get("instanceTerminationWaitTimeStarted"), 20, "the termination wait")
        self.assertEqual(self.prod_weights(), {"app-green": 100})
        out = self.command("pause", self.run_id)
        self.assertIn("not applicable now: CodeDeploy has no way to hold a deployment", out)
        out = self.command("promote", self.run_id)
        self.assertIn("ContinueDeployment TERMINATION_WAIT", out)
        rc, out = self.finish()
        self.assertEqual(rc, 0, out)
        self.assertEqual(self.deployment()["status"], "Succeeded")
        self.assertEqual([c[0] for c in self.controls()], ["promote", "pause", "promote"])
        self.assertTrue(self.effects()[1].startswith("not applicable now: "), self.effects())

    def test_codedeploy_abort_stops_the_deployment_with_rollback(self):
        self.start("config=canary", playbook="playbooks/codedeploy.lua")
        self.wait_for(lambda: self.prod_weights().get("app-green") == 10, 20, "the canary's 10 %")
        out = self.command("promote", self.run_id)  # a canary interval cannot be ended early
        self.assertIn("not applicable now: CodeDeploy moves the traffic on CodeDeployDefault.ECSCanary10Percent5Minutes",
                      out)
        self.command("abort", self.run_id)
        rc, out = self.finish()
        self.assertEqual(rc, 1, out)
        d = self.deployment()
        self.assertEqual(d["status"], "Stopped")
        self.assertTrue(d.get("rollbackInfo", {}).get("rollbackDeploymentId"), d)
        self.assertEqual(self.prod_weights(), {"app-blue": 100})
        self.assertEqual([c[0] for c in self.controls()], ["promote", "abort"])


class Lockstep(Steering):
    """`sim serve --lockstep` while another client holds the world still: the run still takes
    a command within its half-second slice of wall time (sched.sleep's wall cap), while the
    simulator sees it wait for its real deadline (it never holds the world back)."""
    SERVER_ARGS = ("--lockstep",)

    def hold_the_world(self):
        """Another ecsplay client that stays busy (a request every second): time stands still."""
        self.holding = True

        def hold():
            while self.holding:
                req = urllib.request.Request(self.srv.url + "/_sim/clock", headers={"x-ecsplay-client": "holder"})
                try:
                    urllib.request.urlopen(req, timeout=5).read()
                except OSError:
                    pass
                time.sleep(1)
        self.holder = threading.Thread(target=hold, daemon=True)
        self.holder.start()

    def release_the_world(self):
        self.holding = False
        self.holder.join(5)
        req = urllib.request.Request(self.srv.url + "/_sim/wait", method="DELETE",
                                     headers={"x-ecsplay-client": "holder"})
        urllib.request.urlopen(req, timeout=5).read()

    def tearDown(self):
        self.holding = False
        super().tearDown()

    def test_a_command_is_taken_while_the_world_stands_still(self):
        self.hold_the_world()
        self.start("steps=10,100", "bake=2m", "approval=2", "timeout=30m")

        def approval_reached():
            if self.status()["state"] == "awaiting-approval":
                return True
            self.srv.advance(30)  # the test moves time: the holder keeps everyone else from it
            return False
        self.wait_for(approval_reached, 20, "the approval step")
        frozen = self.srv.now()
        rc, out, err = self.ecsplay("promote", self.run_id, "--log-format", "json")
        self.assertEqual(rc, 0, err)
        r = json.loads(out)
        self.assertTrue(r["acknowledged"], r)  # taken while simulated time stood still
        self.assertEqual(r["effect"], "approved (1 of 1)")
        self.assertEqual(self.srv.now(), frozen)
        self.release_the_world()
        rc, out = self.finish()
        self.assertEqual(rc, 0, out)
        self.assertEqual(self.weights(), {"api-stable": 100, "api-canary": 0})
        self.assertEqual([c[0] for c in self.controls()], ["promote"])


if __name__ == "__main__":
    simserve.run_tests()
