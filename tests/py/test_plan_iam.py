"""`ecsplay plan` and `ecsplay iam-policy` (docs/cli.md, docs/iam.md), judged from outside:

* plan leaves the world byte-for-byte unchanged: GET /_sim/world of a `sim serve --lockstep`
  (time moves only when a client waits, and plan never waits) before and after `ecsplay plan
  --endpoint-url` of every shipped playbook; and in process, `ecsplay plan --simulate
  --world-dump` (the same GET answered in process, plus every world's whole state) of each;
* plan finds each kind of problem (exit 2) and speaks JSON with --log-format json;
* the simulator enforces a policy: boto3 (botocore parses the error) gets AccessDeniedException
  (JSON protocols) or AccessDenied (ELBv2's query protocol) naming the action and resource;
* every shipped playbook passes under its own generated policy on every path (success,
  rollback, resume after a kill, `ecsplay rollback JOURNAL` after a kill, `ecsplay abort`,
  `ecsplay promote` at every wait: CodeDeploy's ContinueDeployment), and
  is denied when any one statement is removed (`iam-policy --prove`, checked here against the
  policy it prints; `--verify` of a policy file from outside for two of them).
"""
import concurrent.futures
import json
import os
import re
import subprocess
import sys
import tempfile
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import simserve  # noqa: E402

ROOT = simserve.ROOT
BIN = simserve.ECSPLAY_RUN
PLAYBOOKS = ["canary", "linear", "blue_green", "rolling", "ecs_native", "codedeploy", "multi_service",
             "rollback"]


def ecsplay(*args, timeout=240):
    p = subprocess.run([BIN] + list(args), cwd=ROOT, capture_output=True, text=True, timeout=timeout,
                       env=simserve.clean_env())
    return p.returncode, p.stdout, p.stderr


def scenario(text):
    f = tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False)
    f.write(text)
    f.close()
    return f.name


def raw_world(srv):
    import urllib.request
    with urllib.request.urlopen(srv.url + "/_sim/world", timeout=30) as r:
        return r.read()


class PlanLeavesTheWorldAlone(unittest.TestCase):
    def test_every_playbook(self):
        srv = simserve.Server(args=["--lockstep"])
        try:
            for name in PLAYBOOKS:
                before = raw_world(srv)
                rc, out, err = ecsplay("plan", "--endpoint-url", srv.url, "--region", simserve.REGION,
                                       "playbooks/%s.lua" % name)
                after = raw_world(srv)
                self.assertEqual(before, after, "%s: the world changed under plan" % name)
                self.assertIn("rollout ", out, name + ": " + out + err)
                # rollback.lua reads the revision its first rollout would have made (exit 2 in a rehearsal)
                self.assertEqual(rc, 2 if name == "rollback" else 0, name + ": " + out + err)
        finally:
            srv.close()


class PlanLeavesTheInProcessWorldAlone(unittest.TestCase):
    def dumps(self, playbook, *args):
        with tempfile.NamedTemporaryFile(suffix=".jsonl", delete=False) as f:
            path = f.name
        try:
            rc, out, err = ecsplay("plan", "--simulate", "--world-dump", path, playbook, *args)
            with open(path, "rb") as f:
                lines = f.read().split(b"\n")
        finally:
            os.unlink(path)
        self.assertEqual(len(lines), 3, playbook + ": " + out + err)  # before, after, and the final newline
        return rc, out + err, lines[0], lines[1]

    def test_every_playbook(self):
        for name in PLAYBOOKS:
            rc, text, before, after = self.dumps("playbooks/%s.lua" % name)
            self.assertEqual(rc, 2 if name == "rollback" else 0, name + ": " + text)
            self.assertIn("rollout ", text, name)
            doc = json.loads(before)
            self.assertIn("api", [s["name"] for s in doc["summary"]["services"]], name)
            self.assertEqual(before, after, "%s: the in-process world changed under plan" % name)

    def test_the_dump_sees_a_change(self):
        # the control: a playbook that lets a minute pass moves the world (its clock, its tasks)
        pb = scenario('ecsplay.sleep(60)\n')
        try:
            rc, text, before, after = self.dumps(pb)
        finally:
            os.unlink(pb)
        self.assertEqual(rc, 0, text)
        self.assertNotEqual(before, after)
        self.assertEqual(json.loads(after)["summary"]["time"]["elapsed"], 60)

    def test_world_dump_needs_simulate(self):
        rc, out, err = ecsplay("plan", "--world-dump", "/tmp/x.jsonl", "playbooks/canary.lua")
        self.assertEqual(rc, 2)
        self.assertIn("--world-dump needs --simulate", err)


class PlanProblems(unittest.TestCase):
    CASES = {
        "no_healthy_targets": 'return { images = { ["api:v1"] = { crash = "on_start" } } }',
        "alarm_in_alarm": 'return { alarms = { ["api-5xx-high"] = { state = "ALARM" } } }',
        "deployment_in_progress": 'return { setup = function(aws) aws.ecs.update_service { cluster = '
                                  '"production", service = "api", forceNewDeployment = true } end }',
    }

    def test_each_kind_exits_2(self):
        for kind, text in self.CASES.items():
            path = scenario(text)
            try:
                rc, out, err = ecsplay("plan", "--simulate=" + path, "playbooks/canary.lua", "--log-format", "json")
            finally:
                os.unlink(path)
            self.assertEqual(rc, 2, kind + ": " + out + err)
            doc = json.loads(out)
            self.assertFalse(doc["could_start"])
            self.assertIn(kind, [p["kind"] for p in doc["problems"]], kind + ": " + out)

    def test_json_form(self):
        rc, out, err = ecsplay("plan", "--simulate", "playbooks/canary.lua", "image=api:v3", "--log-format", "json")
        self.assertEqual(rc, 0, out + err)
        doc = json.loads(out)
        self.assertTrue(doc["could_start"])
        r = doc["rollouts"][0]
        self.assertEqual(r["strategy"], "canary")
        self.assertIn({"field": "containerDefinitions[api].image", "from": "api:v1", "to": "api:v3"},
                      r["version"]["diff"])
        self.assertTrue(r["version"]["to"].endswith("task-definition/api:2"))
        self.assertEqual([s["weights"] for s in r["traffic"]["steps"]][:2],
                         ["api-canary=10 api-stable=90", "api-canary=25 api-stable=75"])
        self.assertEqual(sorted(g["gate"] for g in r["gates"]),
                         ["5xx rate api-canary", "alarm api-5xx-high", "p99 latency api-canary"])
        self.assertGreater(r["duration"], 4 * 300)

    def test_playbook_change_outside_a_rollout_is_refused(self):
        path = scenario('return {}')
        pb = scenario('local ecs = require "ecsplay.ecs"\n'
                      'ecs.update_service { cluster = "production", service = "api", desiredCount = 9 }\n')
        try:
            rc, out, err = ecsplay("plan", "--simulate=" + path, pb)
        finally:
            os.unlink(path)
            os.unlink(pb)
        self.assertEqual(rc, 0, out + err)
        self.assertIn("stopped at: ecs UpdateService", out)


class AccessDeniedShapes(unittest.TestCase):
    def test_boto3_parses_the_codes(self):
        with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False) as f:
            json.dump({"Version": "2012-10-17", "Statement": [
                {"Effect": "Allow", "Action": ["ecs:Describe*", "elasticloadbalancing:Describe*"], "Resource": "*"},
                {"Effect": "Deny", "Action": "ecs:DescribeServices",
                 "Resource": "arn:aws:ecs:*:*:service/production/api-canary"}]}, f)
        srv = simserve.Server(args=["--iam-policy", f.name])
        try:
            ecs, elb = srv.client("ecs"), srv.client("elbv2")
            self.assertEqual(ecs.describe_services(cluster="production", services=["api"])["services"][0]
                             ["serviceName"], "api")
            code, status, msg = simserve.error_of(ecs.update_service, cluster="production", service="api",
                                                  desiredCount=3)
            self.assertEqual((code, status), ("AccessDeniedException", 400))
            self.assertEqual(msg, "User: arn:aws:iam::123456789012:user/simulator is not authorized to perform: "
                             "ecs:UpdateService on resource: arn:aws:ecs:us-east-1:123456789012:service/"
                             "production/api because no identity-based policy allows the ecs:UpdateService action")
            code, _, msg = simserve.error_of(ecs.describe_services, cluster="production", services=["api-canary"])
            self.assertEqual(code, "AccessDeniedException")
            self.assertIn("with an explicit deny in an identity-based policy", msg)
            rule = "arn:aws:elasticloadbalancing:us-east-1:123456789012:listener-rule/app/web/a/b/c"
            code, status, msg = simserve.error_of(elb.modify_rule, RuleArn=rule, Actions=[])
            self.assertEqual((code, status), ("AccessDenied", 403))
            self.assertIn("elasticloadbalancing:ModifyRule on resource: " + rule, msg)
        finally:
            srv.close()
            os.unlink(f.name)


# multi_region.lua needs its scenario's Regions
SCENARIO = {"multi_region": "--simulate=playbooks/scenarios/multi_region.lua"}


def prove(name):
    extra = [SCENARIO[name]] if name in SCENARIO else []
    rc, out, err = ecsplay("iam-policy", "playbooks/%s.lua" % name, "--prove", *extra)
    return name, rc, out, err


# The actions a path adds to the policy that no path before it needed (the proof that the path
# was rehearsed and matters): a rollback from the journal looks the CodeDeploy deployment up and
# stops an ECS deployment; a failed CodeDeploy rollout stops its deployment.
ADDED_BY = {
    ("codedeploy", "rollback"): "codedeploy:StopDeployment",
    ("codedeploy", "journal-rollback"): "codedeploy:BatchGetDeployments",
    ("multi_service", "journal-rollback"): "codedeploy:BatchGetDeployments",
    ("ecs_native", "journal-rollback"): "ecs:StopServiceDeployment",
    # promoted during CodeDeploy's wait before it terminates the original task set
    ("codedeploy", "promote"): "codedeploy:ContinueDeployment",
    ("multi_service", "promote"): "codedeploy:ContinueDeployment",
}
PATHS = ["success", "rollback", "resume", "journal-rollback", "abort", "promote"]


class GeneratedPolicies(unittest.TestCase):
    def test_each_playbook_on_every_path_needs_every_statement(self):
        with concurrent.futures.ThreadPoolExecutor(max_workers=2) as pool:
            results = list(pool.map(prove, PLAYBOOKS + ["multi_region"]))
        for name, rc, out, err in results:
            self.assertEqual(rc, 0, "%s: not proven: %s%s" % (name, out[-3000:], err[-2000:]))
            doc = json.loads(out)
            self.assertTrue(doc["proven"])
            self.assertEqual([p["path"] for p in doc["paths"]], PATHS, name)
            codes = {p["path"]: p["code"] for p in doc["paths"]}
            for p in doc["paths"]:
                self.assertNotIn("skipped", p, name + ": " + p["path"])
            # how each path ends without a policy: as it means to
            self.assertEqual(codes["success"], 0, name)
            self.assertEqual(codes["journal-rollback"], 0, name)
            self.assertEqual(codes["abort"], 1, name)
            self.assertTrue([p for p in doc["paths"] if p["path"] == "abort"][0]["abort_taken"], name)
            # promoted at its waits, the run still succeeds (a path that took no promote has a note)
            promote = [p for p in doc["paths"] if p["path"] == "promote"][0]
            self.assertEqual((promote["code"], promote.get("note")), (0, None), name)
            if name != "rollback":  # playbooks/rollback.lua deploys a good version back; its resume is a known failure
                self.assertEqual(codes["rollback"], 1, name)
                self.assertEqual(codes["resume"], 0, name)
            for (pb, path), action in ADDED_BY.items():
                if pb == name:
                    self.assertIn(action, [p for p in doc["paths"] if p["path"] == path][0]["adds"], (pb, path))
            # under its own policy: every path ends the same way, nothing denied
            for p in doc["under_policy"]:
                self.assertEqual(len(p["denials"]), 0, "%s %s: %s" % (name, p["path"], p["denials"]))
                self.assertEqual(p["code"], codes[p["path"]], "%s %s" % (name, p["path"]))
            self.assertEqual(len(doc["under_policy"]), len(PATHS), name)
            # each statement removed: some path is denied an action of that statement, with AccessDenied
            statements = doc["policy"]["Statement"]
            self.assertEqual(len(doc["removed"]), len(statements), name)
            for r in doc["removed"]:
                st = statements[r["statement"] - 1]
                actions = st["Action"] if isinstance(st["Action"], list) else [st["Action"]]
                self.assertIn("denied", r, "%s: statement %d %s was not needed" % (name, r["statement"], st))
                self.assertIn(r["denied"]["action"], actions, "%s statement %d" % (name, r["statement"]))
                self.assertIn(r["path"], PATHS)
                # the call was answered AccessDenied(Exception), and the run failed
                self.assertIn(r["denied"]["code"], ("AccessDeniedException", "AccessDenied"), r)
                self.assertNotEqual(r["code"], 0, "%s statement %d: %s" % (name, r["statement"], r))

    def test_verify_from_outside(self):
        tmp = tempfile.mkdtemp()
        for name in ["canary", "codedeploy"]:
            playbook = "playbooks/%s.lua" % name
            rc, out, err = ecsplay("iam-policy", playbook)
            self.assertEqual(rc, 0, name + ": " + err)
            for path in PATHS:
                self.assertIn("iam-policy: %s: exit" % path, err, name)
            doc = json.loads(out)
            full = os.path.join(tmp, name + ".json")
            with open(full, "w") as f:
                f.write(out)
            rc, out, err = ecsplay("iam-policy", playbook, "--verify", full)
            self.assertEqual(rc, 0, "%s under its own policy: %s%s" % (name, out, err))
            self.assertEqual([line.split(":")[0] for line in out.splitlines()], PATHS, out)
            self.assertNotIn("denied:", out)
            # the statement that moves the traffic (ModifyRule / CreateDeployment) removed
            def actions(st):
                return set(st["Action"] if isinstance(st["Action"], list) else [st["Action"]])
            gone = [st for st in doc["Statement"]
                    if actions(st) & {"elasticloadbalancing:ModifyRule", "codedeploy:CreateDeployment"}]
            self.assertEqual(len(gone), 1, name)
            less = os.path.join(tmp, name + "-less.json")
            with open(less, "w") as f:
                json.dump(dict(doc, Statement=[st for st in doc["Statement"] if st is not gone[0]]), f)
            rc, out, err = ecsplay("iam-policy", playbook, "--verify", less)
            self.assertEqual(rc, 1, out + err)
            denied = re.findall(r"denied: (\S+) on arn:", out)
            self.assertTrue(denied, out)
            self.assertTrue(set(denied) <= actions(gone[0]), (denied, gone[0]))
            self.assertIn("AccessDenied", out)
            if name == "codedeploy":
                # ContinueDeployment alone taken out of its statement: only the promote path needs it
                def without_continue(st):
                    rest = sorted(actions(st) - {"codedeploy:ContinueDeployment"})
                    return dict(st, Action=rest[0] if len(rest) == 1 else rest)
                self.assertEqual(len([st for st in doc["Statement"]
                                      if "codedeploy:ContinueDeployment" in actions(st)]), 1, doc)
                no_continue = os.path.join(tmp, name + "-no-continue.json")
                with open(no_continue, "w") as f:
                    json.dump(dict(doc, Statement=[without_continue(st) for st in doc["Statement"]]), f)
                rc, out, err = ecsplay("iam-policy", playbook, "--verify", no_continue)
                self.assertEqual(rc, 1, out + err)
                self.assertEqual(sorted(set(re.findall(r"denied: (\S+) on ", out))), ["codedeploy:ContinueDeployment"], out)
                self.assertIn("\npromote: exit", out)
                self.assertEqual([line.split(":")[0] for line in out.splitlines()
                                  if re.search(r": exit \d+, [1-9]\d* call\(s\) denied", line)], ["promote"], out)

    def test_bad_arguments(self):
        rc, out, err = ecsplay("iam-policy", "playbooks/rolling.lua", "--verify", "/nonexistent.json")
        self.assertEqual(rc, 2)
        self.assertIn("cannot read IAM policy /nonexistent.json: No such file", err)
        rc, out, err = ecsplay("iam-policy", "playbooks/rolling.lua", "--verify", "x.json", "--prove")
        self.assertEqual(rc, 2)
        self.assertIn("not both", err)

    def test_account_and_region(self):
        rc, out, err = ecsplay("iam-policy", "playbooks/rolling.lua", "--account", "111122223333",
                               "--region", "eu-west-1")
        self.assertEqual(rc, 0, err)
        self.assertIn("arn:aws:ecs:eu-west-1:111122223333:service/production/api", out)
        self.assertNotIn("${aws:", out)
        rc, out, err = ecsplay("iam-policy", "playbooks/rolling.lua", "--account", "12")
        self.assertEqual(rc, 2, err)


if __name__ == "__main__":
    simserve.run_tests()
