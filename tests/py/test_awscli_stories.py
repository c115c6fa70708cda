"""Deployment stories told by Debian's AWS CLI v2 (/usr/bin/aws) to `ecsplay sim serve`, with
boto3 reading the same world back: both clients must see the same state and the same numbers.

Run: /usr/bin/python3 tests/py/test_awscli_stories.py   (from the project root, after make)
"""
import datetime
import json
import os
import sys
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import simserve  # noqa: E402
from simserve import Server, shares, tg_weights  # noqa: E402

DEFAULT = "tests/scenarios/default.lua"


def iso(t):
    return datetime.datetime.fromtimestamp(t, datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


class CliBase(unittest.TestCase):
    def setUp(self):
        self.srv = Server(scenario=DEFAULT)
        self.addCleanup(self.srv.close)
        self.aws = self.srv.aws

    # Lookups go through the CLI when they are what a test is about (cli=True), else through
    # boto3, which answers in milliseconds instead of the CLI's second of start-up.
    def web(self, cli=False):
        elb = None if cli else self.srv.client("elbv2")
        lb = (self.aws("elbv2", "describe-load-balancers", "--names", "web") if cli
              else elb.describe_load_balancers(Names=["web"]))["LoadBalancers"][0]
        listeners = (self.aws("elbv2", "describe-listeners", "--load-balancer-arn", lb["LoadBalancerArn"]) if cli
                     else elb.describe_listeners(LoadBalancerArn=lb["LoadBalancerArn"]))
        by_port = {l["Port"]: l for l in listeners["Listeners"]}
        return lb, by_port

    def tgs(self, cli=False):
        out = (self.aws("elbv2", "describe-target-groups") if cli
               else self.srv.client("elbv2").describe_target_groups())["TargetGroups"]
        return {t["TargetGroupName"]: t for t in out}

    def rule10(self, listener_arn, cli=False):
        rules = (self.aws("elbv2", "describe-rules", "--listener-arn", listener_arn) if cli
                 else self.srv.client("elbv2").describe_rules(ListenerArn=listener_arn))["Rules"]
        return [r for r in rules if r["Priority"] == "10"][0]

    def set_weights(self, rule_arn, tgs, stable, canary):
        actions = [{"Type": "forward", "ForwardConfig": {"TargetGroups": [
            {"TargetGroupArn": tgs["api-stable"]["TargetGroupArn"], "Weight": stable},
            {"TargetGroupArn": tgs["api-canary"]["TargetGroupArn"], "Weight": canary}]}}]
        return self.aws("elbv2", "modify-rule", "--rule-arn", rule_arn, "--actions", json.dumps(actions))


class CliIdentity(CliBase):
    def test_get_caller_identity(self):
        out = self.aws("sts", "get-caller-identity")
        self.assertEqual(out["Account"], simserve.ACCOUNT)
        self.assertTrue(out["Arn"].startswith("arn:aws:iam::%s:" % simserve.ACCOUNT), out)

    def test_default_world_listing(self):
        clusters = self.aws("ecs", "list-clusters")["clusterArns"]
        self.assertEqual(clusters, ["arn:aws:ecs:us-east-1:%s:cluster/production" % simserve.ACCOUNT])
        services = self.aws("ecs", "describe-services", "--cluster", "production",
                            "--services", "api", "api-canary", "app")["services"]
        got = {s["serviceName"]: (s["desiredCount"], s["runningCount"], s["taskDefinition"].split("/")[-1])
               for s in services}
        self.assertEqual(got, {"api": (4, 4, "api:1"), "api-canary": (0, 0, "api:1"), "app": (3, 3, "app:1")})
        self.assertEqual(set(self.tgs(cli=True)), {"api-stable", "api-canary", "app-blue", "app-green"})
        alarms = self.aws("cloudwatch", "describe-alarms", "--alarm-names", "api-5xx-high")["MetricAlarms"]
        self.assertEqual([(a["AlarmName"], a["StateValue"]) for a in alarms], [("api-5xx-high", "OK")])


class CliWeightedRule(CliBase):
    """Story 3 through the CLI: modify-rule 75/25 on rule priority 10, read back exactly,
    then boto3 and the CLI agree on a second change."""

    def test_modify_rule(self):
        tgs = self.tgs(cli=True)
        names = {t["TargetGroupArn"]: n for n, t in tgs.items()}
        _, by_port = self.web(cli=True)
        rule = self.rule10(by_port[443]["ListenerArn"], cli=True)
        self.assertEqual(tg_weights(rule["Actions"][0], names), {"api-stable": 100, "api-canary": 0})

        out = self.set_weights(rule["RuleArn"], tgs, 75, 25)
        self.assertEqual(tg_weights(out["Rules"][0]["Actions"][0], names), {"api-stable": 75, "api-canary": 25})
        back = self.aws("elbv2", "describe-rules", "--rule-arns", rule["RuleArn"])["Rules"]
        self.assertEqual(len(back), 1)
        self.assertEqual(sorted((t["TargetGroupArn"], t["Weight"])
                                for t in back[0]["Actions"][0]["ForwardConfig"]["TargetGroups"]),
                         sorted([(tgs["api-stable"]["TargetGroupArn"], 75), (tgs["api-canary"]["TargetGroupArn"], 25)]))
        self.assertEqual(back[0]["Priority"], "10")
        self.assertEqual(back[0]["Conditions"], rule["Conditions"])

        # boto3 sees what the CLI wrote, and the CLI sees what boto3 writes
        elb = self.srv.client("elbv2")
        b = elb.describe_rules(RuleArns=[rule["RuleArn"]])["Rules"][0]
        self.assertEqual(tg_weights(b["Actions"][0], names), {"api-stable": 75, "api-canary": 25})
        elb.modify_rule(RuleArn=rule["RuleArn"], Actions=[{"Type": "forward", "ForwardConfig": {"TargetGroups": [
            {"TargetGroupArn": tgs["api-stable"]["TargetGroupArn"], "Weight": 0},
            {"TargetGroupArn": tgs["api-canary"]["TargetGroupArn"], "Weight": 100}]}}])
        back = self.aws("elbv2", "describe-rules", "--rule-arns", rule["RuleArn"])["Rules"][0]
        self.assertEqual(tg_weights(back["Actions"][0], names), {"api-stable": 0, "api-canary": 100})


class CliMetrics(CliBase):
    """Story 5 through the CLI: get-metric-data and get-metric-statistics agree with boto3 and
    follow the 90/10 weights."""

    def test_metrics_follow_weights(self):
        tgs = self.tgs()
        out = self.aws("ecs", "update-service", "--cluster", "production", "--service", "api-canary",
                       "--desired-count", "1")
        self.assertEqual(out["service"]["desiredCount"], 1)
        elb = self.srv.client("elbv2")

        def canary_healthy():
            th = elb.describe_target_health(TargetGroupArn=tgs["api-canary"]["TargetGroupArn"])
            return [d for d in th["TargetHealthDescriptions"] if d["TargetHealth"]["State"] == "healthy"]

        self.srv.until(canary_healthy, step=15, limit=600, what="a healthy api-canary target")
        _, by_port = self.web()
        rule = self.rule10(by_port[443]["ListenerArn"])
        self.set_weights(rule["RuleArn"], tgs, 90, 10)
        now = self.srv.now()
        t0 = (int(now) // 60 + 1) * 60
        # ten minutes, plus the one after, plus CloudWatch's 2-minute publishing delay
        # (docs/simulator.md): then all ten are visible
        self.srv.advance(t0 + 660 + 120 - now)

        lb_dim = tgs["api-stable"]["LoadBalancerArns"][0].split(":loadbalancer/")[1]

        def dims(name):
            return [{"Name": "TargetGroup", "Value": tgs[name]["TargetGroupArn"].split(":")[-1]},
                    {"Name": "LoadBalancer", "Value": lb_dim}]

        queries = [{"Id": qid, "MetricStat": {"Metric": {"Namespace": "AWS/ApplicationELB",
                                                           "MetricName": "RequestCount", "Dimensions": dims(name)},
                                                "Period": 60, "Stat": "Sum"}}
                   for qid, name in (("stable", "api-stable"), ("canary", "api-canary"))]
        cli = self.aws("cloudwatch", "get-metric-data", "--metric-data-queries", json.dumps(queries),
                       "--start-time", iso(t0), "--end-time", iso(t0 + 600))
        res = {r["Id"]: r for r in cli["MetricDataResults"]}
        self.assertEqual(set(res), {"stable", "canary"})
        for r in res.values():
            self.assertEqual(r["StatusCode"], "Complete")
            self.assertEqual(len(r["Values"]), 10, r)
        s, c = sum(res["stable"]["Values"]), sum(res["canary"]["Values"])
        self.assertAlmostEqual(c / (s + c), 0.10, delta=0.01, msg=(s, c))
        self.assertAlmostEqual((s + c) / 120000, 1.0, delta=0.05, msg=(s, c))

        # boto3 gets exactly the same numbers for the same query
        cw = self.srv.client("cloudwatch")
        b = cw.get_metric_data(MetricDataQueries=queries,
                               StartTime=datetime.datetime.fromtimestamp(t0, datetime.timezone.utc),
                               EndTime=datetime.datetime.fromtimestamp(t0 + 600, datetime.timezone.utc))
        bres = {r["Id"]: r for r in b["MetricDataResults"]}
        for qid in ("stable", "canary"):
            self.assertEqual(sorted(zip([ts.timestamp() for ts in bres[qid]["Timestamps"]], bres[qid]["Values"])),
                             sorted(zip([datetime.datetime.fromisoformat(ts).timestamp()
                                         for ts in res[qid]["Timestamps"]], res[qid]["Values"])))

        # get-metric-statistics: same minutes, same sums
        args = ["cloudwatch", "get-metric-statistics", "--namespace", "AWS/ApplicationELB",
                "--metric-name", "RequestCount", "--start-time", iso(t0), "--end-time", iso(t0 + 600),
                "--period", "60", "--statistics", "Sum", "--dimensions"]
        args += ["Name=%s,Value=%s" % (d["Name"], d["Value"]) for d in dims("api-canary")]
        st = self.aws(*args)
        self.assertEqual(st["Label"], "RequestCount")
        self.assertEqual(sorted((datetime.datetime.fromisoformat(p["Timestamp"]).timestamp(), p["Sum"])
                                for p in st["Datapoints"]),
                         sorted(zip([datetime.datetime.fromisoformat(ts).timestamp()
                                     for ts in res["canary"]["Timestamps"]], res["canary"]["Values"])))
        self.assertEqual({p["Unit"] for p in st["Datapoints"]}, {"Count"})


class CliRollout(CliBase):
    """A rolling update through the CLI: register-task-definition, update-service, then
    describe-services after simulated time passes."""

    def test_rolling_update(self):
        td = self.aws("ecs", "describe-task-definition", "--task-definition", "api:1")["taskDefinition"]
        td["containerDefinitions"][0]["image"] = "api:v2"
        keep = ("family", "containerDefinitions", "networkMode", "requiresCompatibilities", "cpu", "memory")
        new = self.aws("ecs", "register-task-definition", "--cli-input-json",
                       json.dumps({k: td[k] for k in keep if k in td}))["taskDefinition"]
        self.assertEqual((new["family"], new["revision"]), ("api", 2))
        self.assertEqual(new["containerDefinitions"][0]["image"], "api:v2")
        out = self.aws("ecs", "update-service", "--cluster", "production", "--service", "api",
                       "--task-definition", "api:2")["service"]
        self.assertEqual(out["taskDefinition"], new["taskDefinitionArn"])
        ecs = self.srv.client("ecs")

        def done():
            s = ecs.describe_services(cluster="production", services=["api"])["services"][0]
            return s if len(s["deployments"]) == 1 and s["runningCount"] == 4 else None

        self.srv.until(done, step=15, limit=1800, what="api:2 rolled out")
        s = self.aws("ecs", "describe-services", "--cluster", "production", "--services", "api")["services"][0]
        d = s["deployments"][0]
        self.assertEqual((d["status"], d["rolloutState"], d["taskDefinition"]),
                         ("PRIMARY", "COMPLETED", new["taskDefinitionArn"]))
        arns = self.aws("ecs", "list-tasks", "--cluster", "production", "--service-name", "api")["taskArns"]
        self.assertEqual(len(arns), 4)
        tasks = self.aws("ecs", "describe-tasks", "--cluster", "production", "--tasks", *arns)["tasks"]
        self.assertEqual({t["taskDefinitionArn"] for t in tasks}, {new["taskDefinitionArn"]})
        self.assertEqual({t["lastStatus"] for t in tasks}, {"RUNNING"})


class CliCodeDeploy(CliBase):
    """A blue/green deployment created with `aws deploy create-deployment` (AppSpec content)."""

    def test_create_deployment(self):
        group = self.aws("deploy", "get-deployment-group", "--application-name", "app-deploy",
                         "--deployment-group-name", "app-dg")["deploymentGroupInfo"]
        self.assertEqual(group["deploymentStyle"], {"deploymentType": "BLUE_GREEN",
                                                    "deploymentOption": "WITH_TRAFFIC_CONTROL"})
        td = self.aws("ecs", "describe-task-definition", "--task-definition", "app:1")["taskDefinition"]
        td["containerDefinitions"][0]["image"] = "app:v2"
        keep = ("family", "containerDefinitions", "networkMode", "requiresCompatibilities", "cpu", "memory")
        new = self.aws("ecs", "register-task-definition", "--cli-input-json",
                       json.dumps({k: td[k] for k in keep if k in td}))["taskDefinition"]["taskDefinitionArn"]
        appspec = json.dumps({"version": 0.0, "Resources": [{"TargetService": {
            "Type": "AWS::ECS::Service", "Properties": {
                "TaskDefinition": new, "LoadBalancerInfo": {"ContainerName": "app", "ContainerPort": 8080}}}}]})
        dep = self.aws("deploy", "create-deployment", "--application-name", "app-deploy",
                       "--deployment-group-name", "app-dg",
                       "--deployment-config-name", "CodeDeployDefault.ECSAllAtOnce",
                       "--revision", json.dumps({"revisionType": "AppSpecContent",
                                                 "appSpecContent": {"content": appspec}}))["deploymentId"]
        self.assertRegex(dep, r"^d-[A-Z0-9]{9}$")
        cd = self.srv.client("codedeploy")

        def finished():
            st = cd.get_deployment(deploymentId=dep)["deploymentInfo"]["status"]
            return st if st in ("Succeeded", "Failed", "Stopped") else None

        self.assertEqual(self.srv.until(finished, step=30, limit=3600, what="deployment finished"), "Succeeded")
        info = self.aws("deploy", "get-deployment", "--deployment-id", dep)["deploymentInfo"]
        self.assertEqual(info["status"], "Succeeded")
        self.assertEqual(info["deploymentConfigName"], "CodeDeployDefault.ECSAllAtOnce")
        self.assertEqual(info["revision"]["revisionType"], "AppSpecContent")
        listed = self.aws("deploy", "list-deployments", "--application-name", "app-deploy",
                          "--deployment-group-name", "app-dg")["deployments"]
        self.assertIn(dep, listed)
        tgs = self.tgs()
        names = {t["TargetGroupArn"]: n for n, t in tgs.items()}
        _, by_port = self.web()
        self.assertEqual(shares(tg_weights(by_port[443]["DefaultActions"][0], names)).get("app-green"), 1.0)


if __name__ == "__main__":
    simserve.run_tests()
