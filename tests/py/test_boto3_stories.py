"""Whole deployment stories told by Debian's boto3 (1.26) to `ecsplay sim serve` over HTTP.
Each story asserts the world as read back through the API, not just the absence of errors.
Simulated time moves through POST /_sim/advance (Server.advance / Server.ticking), so
minutes of deployment cost well under a second of wall time.

Run: /usr/bin/python3 tests/py/test_boto3_stories.py   (from the project root, after make)
"""
import datetime
import json
import os
import subprocess
import sys
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import simserve  # noqa: E402
from simserve import Server, error_of, shares, tg_weights, waiter_config  # noqa: E402

SUBNETS = ["subnet-0sima", "subnet-0simb"]
SG = ["sg-0sim"]
VPC = "vpc-0sim"


def network():
    return {"awsvpcConfiguration": {"subnets": SUBNETS, "securityGroups": SG, "assignPublicIp": "DISABLED"}}


def task_definition(family, image, port=8080):
    return dict(family=family, networkMode="awsvpc", requiresCompatibilities=["FARGATE"], cpu="256",
                memory="512", containerDefinitions=[{
                    "name": family, "image": image, "essential": True,
                    "portMappings": [{"containerPort": port, "protocol": "tcp"}]}])


def reuse(td):
    """A DescribeTaskDefinition result back into RegisterTaskDefinition input."""
    keep = ("family", "containerDefinitions", "networkMode", "requiresCompatibilities", "cpu", "memory",
            "taskRoleArn", "executionRoleArn", "volumes", "placementConstraints")
    return {k: td[k] for k in keep if k in td and td[k] not in (None, [], "")}


class Base(unittest.TestCase):
    scenario = None
    speed = None

    def setUp(self):
        self.srv = Server(scenario=self.scenario, speed=self.speed)
        self.addCleanup(self.srv.close)
        self.ecs = self.srv.client("ecs")
        self.elb = self.srv.client("elbv2")

    def service(self, name, cluster="production"):
        out = self.ecs.describe_services(cluster=cluster, services=[name])
        self.assertEqual(out["failures"], [], Server.last(self.ecs))
        self.assertEqual(len(out["services"]), 1)
        return out["services"][0]

    def tg_names(self):
        return {t["TargetGroupArn"]: t["TargetGroupName"]
                for t in self.elb.describe_target_groups()["TargetGroups"]}

    def tg_arn(self, name):
        return self.elb.describe_target_groups(Names=[name])["TargetGroups"][0]["TargetGroupArn"]

    def health(self, tg_arn):
        counts = {}
        for d in self.elb.describe_target_health(TargetGroupArn=tg_arn)["TargetHealthDescriptions"]:
            s = d["TargetHealth"]["State"]
            counts[s] = counts.get(s, 0) + 1
        return counts

    def tasks(self, cluster, service):
        arns = self.ecs.list_tasks(cluster=cluster, serviceName=service, desiredStatus="RUNNING")["taskArns"]
        if not arns:
            return []
        out = []
        for i in range(0, len(arns), 100):
            out += self.ecs.describe_tasks(cluster=cluster, tasks=arns[i:i + 100])["tasks"]
        return out

    def listener(self, lb_name, port):
        lb = self.elb.describe_load_balancers(Names=[lb_name])["LoadBalancers"][0]
        for l in self.elb.describe_listeners(LoadBalancerArn=lb["LoadBalancerArn"])["Listeners"]:
            if l["Port"] == port:
                return lb, l
        self.fail("no listener on port %d of %s" % (port, lb_name))

    def rule(self, listener_arn, priority):
        for r in self.elb.describe_rules(ListenerArn=listener_arn)["Rules"]:
            if r["Priority"] == str(priority):
                return r
        self.fail("no rule with priority %s on %s" % (priority, listener_arn))


class Story1FromScratch(Base):
    """Cluster, task definition, ALB, target group, listener and service from nothing;
    then a new image rolled out and waited for with the services_stable waiter."""
    scenario = "tests/scenarios/empty.lua"

    def test_build_and_roll(self):
        ecs, elb = self.ecs, self.elb
        self.assertEqual(ecs.list_clusters()["clusterArns"], [])
        cluster = ecs.create_cluster(clusterName="shop")["cluster"]
        self.assertEqual(cluster["clusterName"], "shop")
        self.assertEqual(cluster["status"], "ACTIVE")
        self.assertEqual(cluster["clusterArn"], "arn:aws:ecs:us-east-1:%s:cluster/shop" % simserve.ACCOUNT)

        td1 = ecs.register_task_definition(**task_definition("web", "web:v1"))["taskDefinition"]
        self.assertEqual((td1["family"], td1["revision"], td1["status"]), ("web", 1, "ACTIVE"))
        self.assertTrue(td1["taskDefinitionArn"].endswith(":task-definition/web:1"), td1["taskDefinitionArn"])

        lb = elb.create_load_balancer(Name="shop", Subnets=SUBNETS, SecurityGroups=SG,
                                      Scheme="internet-facing", Type="application")["LoadBalancers"][0]
        self.assertEqual(lb["LoadBalancerName"], "shop")
        self.assertEqual(lb["Type"], "application")
        self.assertIn(lb["State"]["Code"], ("provisioning", "active"))
        self.assertRegex(lb["LoadBalancerArn"],
                         r"^arn:aws:elasticloadbalancing:us-east-1:\d{12}:loadbalancer/app/shop/[0-9a-f]+$")
        tg = elb.create_target_group(Name="shop-web", Protocol="HTTP", Port=8080, VpcId=VPC, TargetType="ip",
                                     HealthCheckPath="/health", HealthCheckIntervalSeconds=10,
                                     HealthyThresholdCount=2)["TargetGroups"][0]
        self.assertEqual((tg["TargetGroupName"], tg["Port"], tg["TargetType"]), ("shop-web", 8080, "ip"))
        tg_spare = elb.create_target_group(Name="shop-spare", Protocol="HTTP", Port=8080, VpcId=VPC,
                                           TargetType="ip")["TargetGroups"][0]
        listener = elb.create_listener(LoadBalancerArn=lb["LoadBalancerArn"], Port=80, Protocol="HTTP",
                                       DefaultActions=[{"Type": "forward",
                                                        "TargetGroupArn": tg["TargetGroupArn"]}])["Listeners"][0]
        self.assertEqual(listener["Port"], 80)
        self.assertEqual(listener["DefaultActions"][0]["TargetGroupArn"], tg["TargetGroupArn"])
        # a second target group behind the same listener, weight 0 (not used by the service)
        rule = elb.create_rule(ListenerArn=listener["ListenerArn"], Priority=5,
                               Conditions=[{"Field": "path-pattern", "Values": ["/spare/*"]}],
                               Actions=[{"Type": "forward", "TargetGroupArn": tg_spare["TargetGroupArn"]}])
        self.assertEqual(rule["Rules"][0]["Priority"], "5")
        lbs = elb.describe_load_balancers(Names=["shop"])["LoadBalancers"]
        self.assertEqual([x["LoadBalancerArn"] for x in lbs], [lb["LoadBalancerArn"]])

        svc = ecs.create_service(
            cluster="shop", serviceName="web", taskDefinition="web", desiredCount=2, launchType="FARGATE",
            deploymentConfiguration={"maximumPercent": 200, "minimumHealthyPercent": 100,
                                     "deploymentCircuitBreaker": {"enable": True, "rollback": True}},
            loadBalancers=[{"targetGroupArn": tg["TargetGroupArn"], "containerName": "web",
                            "containerPort": 8080}],
            networkConfiguration=network())["service"]
        self.assertEqual((svc["serviceName"], svc["desiredCount"], svc["status"]), ("web", 2, "ACTIVE"))
        self.assertEqual(svc["taskDefinition"], td1["taskDefinitionArn"])

        waiter = ecs.get_waiter("services_stable")
        with self.srv.ticking(step=10):
            waiter.wait(cluster="shop", services=["web"], WaiterConfig=waiter_config(60))
        s = self.service("web", "shop")
        self.assertEqual((s["runningCount"], s["pendingCount"]), (2, 0))
        self.assertEqual(len(s["deployments"]), 1, s["deployments"])
        self.assertEqual(s["deployments"][0]["status"], "PRIMARY")
        self.assertEqual(s["deployments"][0]["rolloutState"], "COMPLETED")
        tasks = self.tasks("shop", "web")
        self.assertEqual(len(tasks), 2)
        self.assertEqual({t["lastStatus"] for t in tasks}, {"RUNNING"})
        # the load balancer follows the tasks: two healthy targets, one per task IP
        self.srv.advance(60)
        self.assertEqual(self.health(tg["TargetGroupArn"]), {"healthy": 2})
        ips = set()
        for t in tasks:
            for a in t.get("attachments", []):
                for d in a.get("details", []):
                    if d["name"] == "privateIPv4Address":
                        ips.add(d["value"])
        targets = {d["Target"]["Id"] for d in
                   elb.describe_target_health(TargetGroupArn=tg["TargetGroupArn"])["TargetHealthDescriptions"]}
        self.assertEqual(targets, ips)

        # --- roll out web:v2 -------------------------------------------------------------
        td2 = ecs.register_task_definition(**task_definition("web", "web:v2"))["taskDefinition"]
        self.assertEqual(td2["revision"], 2)
        out = ecs.update_service(cluster="shop", service="web", taskDefinition="web:2")["service"]
        self.assertEqual(out["taskDefinition"], td2["taskDefinitionArn"])
        deps = {d["status"]: d for d in out["deployments"]}
        self.assertEqual(set(deps), {"PRIMARY", "ACTIVE"}, out["deployments"])
        self.assertEqual(deps["PRIMARY"]["taskDefinition"], td2["taskDefinitionArn"])
        self.assertEqual(deps["PRIMARY"]["rolloutState"], "IN_PROGRESS")
        self.assertEqual(deps["ACTIVE"]["taskDefinition"], td1["taskDefinitionArn"])

        with self.srv.ticking(step=10):
            waiter.wait(cluster="shop", services=["web"], WaiterConfig=waiter_config(90))
        s = self.service("web", "shop")
        self.assertEqual(len(s["deployments"]), 1, s["deployments"])
        d = s["deployments"][0]
        self.assertEqual((d["status"], d["taskDefinition"], d["rolloutState"]),
                         ("PRIMARY", td2["taskDefinitionArn"], "COMPLETED"))
        self.assertEqual((s["runningCount"], s["desiredCount"]), (2, 2))
        tasks = self.tasks("shop", "web")
        self.assertEqual({t["taskDefinitionArn"] for t in tasks}, {td2["taskDefinitionArn"]})
        self.assertEqual({c["image"] for t in tasks for c in t["containers"]}, {"web:v2"})
        self.srv.advance(330)  # old targets drain for the default deregistration delay (300 s)
        self.assertEqual(self.health(tg["TargetGroupArn"]), {"healthy": 2})


class Story2CircuitBreaker(Base):
    """api:bad crashes on start: the circuit breaker fails the deployment and rolls back."""
    scenario = "tests/scenarios/default.lua"

    def test_bad_image_rolls_back(self):
        ecs = self.ecs
        before = self.service("api")
        self.assertEqual(before["desiredCount"], 4)
        old_td = before["taskDefinition"]
        self.assertTrue(old_td.endswith(":task-definition/api:1"), old_td)
        self.assertTrue(before["deploymentConfiguration"]["deploymentCircuitBreaker"]["enable"])
        td = ecs.describe_task_definition(taskDefinition=old_td)["taskDefinition"]
        params = reuse(td)
        params["containerDefinitions"][0]["image"] = "api:bad"
        bad = ecs.register_task_definition(**params)["taskDefinition"]
        self.assertEqual(bad["containerDefinitions"][0]["image"], "api:bad")
        out = ecs.update_service(cluster="production", service="api", taskDefinition=bad["taskDefinitionArn"])
        bad_dep = [d for d in out["service"]["deployments"] if d["status"] == "PRIMARY"][0]
        self.assertEqual(bad_dep["taskDefinition"], bad["taskDefinitionArn"])

        seen = {}

        def failed():
            for d in self.service("api")["deployments"]:
                if d["id"] == bad_dep["id"] and d.get("rolloutState") == "FAILED":
                    seen.update(d)
                    return True
            return False

        self.srv.until(failed, step=15, limit=1800, what="rolloutState FAILED on the api:bad deployment")
        self.assertGreaterEqual(seen.get("failedTasks", 0), 3, seen)
        self.assertIn("rolloutStateReason", seen)

        def rolled_back():
            s = self.service("api")
            deps = s["deployments"]
            return s if (len(deps) == 1 and deps[0]["taskDefinition"] == old_td
                         and s["runningCount"] == s["desiredCount"] == 4) else None

        s = self.srv.until(rolled_back, step=15, limit=1800, what="rollback to api:1 with 4 running")
        self.assertEqual(s["taskDefinition"], old_td)
        self.assertEqual(s["deployments"][0]["status"], "PRIMARY")
        self.assertEqual(s["deployments"][0]["rolloutState"], "COMPLETED")
        self.assertNotEqual(s["deployments"][0]["id"], bad_dep["id"])
        tasks = self.tasks("production", "api")
        self.assertEqual(len(tasks), 4)
        self.assertEqual({t["taskDefinitionArn"] for t in tasks}, {old_td})
        # and the waiter agrees the service is stable again
        ecs.get_waiter("services_stable").wait(cluster="production", services=["api"],
                                               WaiterConfig=waiter_config(3))
        self.srv.advance(330)  # the failed tasks' targets drain for the deregistration delay (300 s)
        self.assertEqual(self.health(self.tg_arn("api-stable")), {"healthy": 4})


class Story3WeightedRule(Base):
    """Rule priority 10 on web :443 forwards api-stable 100 / api-canary 0; move it to 75/25."""
    scenario = "tests/scenarios/default.lua"

    def test_modify_rule_weights(self):
        names = self.tg_names()
        _, prod = self.listener("web", 443)
        rule = self.rule(prod["ListenerArn"], 10)
        self.assertEqual(len(rule["Actions"]), 1)
        self.assertEqual(tg_weights(rule["Actions"][0], names), {"api-stable": 100, "api-canary": 0})
        self.assertEqual(rule["Conditions"][0]["Field"], "path-pattern")

        stable, canary = self.tg_arn("api-stable"), self.tg_arn("api-canary")
        out = self.elb.modify_rule(RuleArn=rule["RuleArn"], Actions=[{"Type": "forward", "ForwardConfig": {
            "TargetGroups": [{"TargetGroupArn": stable, "Weight": 75},
                             {"TargetGroupArn": canary, "Weight": 25}]}}])
        self.assertEqual(tg_weights(out["Rules"][0]["Actions"][0], names), {"api-stable": 75, "api-canary": 25})
        got = self.elb.describe_rules(RuleArns=[rule["RuleArn"]])["Rules"]
        self.assertEqual(len(got), 1)
        fc = got[0]["Actions"][0]["ForwardConfig"]
        self.assertEqual(sorted((t["TargetGroupArn"], t["Weight"]) for t in fc["TargetGroups"]),
                         sorted([(stable, 75), (canary, 25)]))
        self.assertEqual(got[0]["Actions"][0]["Type"], "forward")
        self.assertEqual(got[0]["Priority"], "10")
        self.assertEqual(got[0]["Conditions"], rule["Conditions"])  # untouched by ModifyRule
        # the rest of the listener is untouched: its default action still forwards to app-blue
        _, prod2 = self.listener("web", 443)
        self.assertEqual(tg_weights(prod2["DefaultActions"][0], names), {"app-blue": 1})
        # the simulator's own view agrees
        listeners = self.srv.world()["listeners"]
        l443 = [l for l in listeners if l["port"] == 443][0]
        r10 = [r for r in l443["rules"] if r["priority"] == "10"][0]
        self.assertEqual(r10["weights"], {"api-stable": 75, "api-canary": 25})


class Story4CodeDeploy(Base):
    """Blue/green for `app` with CodeDeployDefault.ECSCanary10Percent5Minutes to Succeeded;
    a deployment stopped with rollback; a second deployment after a successful one."""
    scenario = "tests/scenarios/default.lua"

    def appspec(self, td_arn):
        return json.dumps({"version": 0.0, "Resources": [{"TargetService": {
            "Type": "AWS::ECS::Service", "Properties": {
                "TaskDefinition": td_arn,
                "LoadBalancerInfo": {"ContainerName": "app", "ContainerPort": 8080}}}}]})

    def new_app_td(self, image):
        td = self.ecs.describe_task_definition(taskDefinition="app:1")["taskDefinition"]
        params = reuse(td)
        params["containerDefinitions"][0]["image"] = image
        return self.ecs.register_task_definition(**params)["taskDefinition"]["taskDefinitionArn"]

    def prod_weights(self, names):
        _, prod = self.listener("web", 443)
        self.assertEqual(len(prod["DefaultActions"]), 1)
        return shares(tg_weights(prod["DefaultActions"][0], names))

    def deploy(self, cd, td_arn):
        return cd.create_deployment(
            applicationName="app-deploy", deploymentGroupName="app-dg",
            deploymentConfigName="CodeDeployDefault.ECSCanary10Percent5Minutes",
            revision={"revisionType": "AppSpecContent", "appSpecContent": {"content": self.appspec(td_arn)}},
            description="ecsplay wire test")["deploymentId"]

    def test_blue_green_succeeds(self):
        cd = self.srv.client("codedeploy")
        names = self.tg_names()
        self.assertEqual(self.prod_weights(names), {"app-blue": 1.0})
        group = cd.get_deployment_group(applicationName="app-deploy",
                                        deploymentGroupName="app-dg")["deploymentGroupInfo"]
        self.assertEqual(group["computePlatform"], "ECS")
        self.assertEqual(group["ecsServices"], [{"serviceName": "app", "clusterName": "production"}])
        cfg = cd.get_deployment_config(deploymentConfigName="CodeDeployDefault.ECSCanary10Percent5Minutes")
        tr = cfg["deploymentConfigInfo"]["trafficRoutingConfig"]
        self.assertEqual(tr["type"], "TimeBasedCanary")
        self.assertEqual(tr["timeBasedCanary"], {"canaryPercentage": 10, "canaryInterval": 5})

        td2 = self.new_app_td("app:v2")
        dep = self.deploy(cd, td2)
        info = cd.get_deployment(deploymentId=dep)["deploymentInfo"]
        self.assertEqual(info["deploymentConfigName"], "CodeDeployDefault.ECSCanary10Percent5Minutes")
        self.assertEqual(info["computePlatform"], "ECS")
        self.assertIn(info["status"], ("Created", "Queued", "InProgress"))

        # the canary step: 10% of production on app-green while the 5 minutes run
        canary = self.srv.until(lambda: (lambda w: w if w.get("app-green", 0) > 0 else None)(
            self.prod_weights(names)), step=10, limit=900, what="10% of prod traffic on app-green")
        self.assertAlmostEqual(canary.get("app-green", 0), 0.10, places=3, msg=canary)
        self.assertAlmostEqual(canary.get("app-blue", 0), 0.90, places=3, msg=canary)
        self.assertEqual(cd.get_deployment(deploymentId=dep)["deploymentInfo"]["status"], "InProgress")

        with self.srv.ticking(step=30):
            cd.get_waiter("deployment_successful").wait(deploymentId=dep, WaiterConfig=waiter_config(120))
        info = cd.get_deployment(deploymentId=dep)["deploymentInfo"]
        self.assertEqual(info["status"], "Succeeded")
        self.assertIn("completeTime", info)
        w = self.prod_weights(names)
        self.assertEqual(w.get("app-green"), 1.0, w)
        svc = self.service("app")
        primary = [ts for ts in svc.get("taskSets", []) if ts["status"] == "PRIMARY"]
        self.assertEqual(len(primary), 1, svc.get("taskSets"))
        self.assertEqual(primary[0]["taskDefinition"], td2)
        self.assertEqual(primary[0]["runningCount"], 3)
        others = [ts["status"] for ts in svc["taskSets"] if ts["status"] != "PRIMARY"]
        self.assertTrue(set(others) <= {"DRAINING"}, svc["taskSets"])  # the original is being deleted
        self.srv.advance(600)
        sets = self.service("app")["taskSets"]
        self.assertEqual([(ts["status"], ts["taskDefinition"]) for ts in sets], [("PRIMARY", td2)],
                         "the original task set is gone once drained")

        return cd, names, td2

    def stop_during_canary(self, cd, names, live, replacement, live_td):
        """Deploys a new revision, stops it (with rollback) while `replacement` has 10% of
        production, and checks everything ends back on `live` running `live_td`."""
        dep = self.deploy(cd, self.new_app_td("app:v2b"))
        shifted = self.srv.until(lambda: (lambda w: w if w.get(replacement, 0) > 0 else None)(
            self.prod_weights(names)), step=10, limit=900,
            what="10%% of prod traffic on %s (the replacement)" % replacement)
        self.assertAlmostEqual(shifted[replacement], 0.10, places=3, msg=shifted)
        stop = cd.stop_deployment(deploymentId=dep, autoRollbackEnabled=True)
        self.assertIn(stop["status"], ("Pending", "Succeeded"))

        def stopped():
            i = cd.get_deployment(deploymentId=dep)["deploymentInfo"]
            return i if i["status"] == "Stopped" else None

        info = self.srv.until(stopped, step=10, limit=900, what="deployment Stopped")
        self.assertIn("rollbackInfo", info)

        def back_on_live():
            w = self.prod_weights(names)
            return w if w.get(live, 0) == 1.0 else None

        self.srv.until(back_on_live, step=10, limit=900, what="all prod traffic back on %s" % live)
        self.srv.advance(600)
        svc = self.service("app")
        sets = [(ts["status"], ts["taskDefinition"], ts["runningCount"]) for ts in svc.get("taskSets", [])]
        self.assertEqual(sets, [("PRIMARY", live_td, 3)], "only the original task set is left")
        self.assertEqual(self.prod_weights(names).get(live), 1.0)
        self.assertEqual(cd.get_deployment(deploymentId=dep)["deploymentInfo"]["status"], "Stopped")

    def test_stop_with_rollback(self):
        """Stopped during its canary step: status Stopped, traffic back on app-blue."""
        cd = self.srv.client("codedeploy")
        names = self.tg_names()
        td1 = self.ecs.describe_task_definition(taskDefinition="app:1")["taskDefinition"]["taskDefinitionArn"]
        self.stop_during_canary(cd, names, "app-blue", "app-green", td1)

    def test_second_deployment_after_success(self):
        """After a successful deployment green is live; the next one installs into app-blue
        and, stopped during its canary step, rolls back to app-green."""
        cd, names, td2 = self.test_blue_green_succeeds()
        self.stop_during_canary(cd, names, "app-green", "app-blue", td2)


class Story5Metrics(Base):
    """RequestCount per target group follows the rule weights."""
    scenario = "tests/scenarios/default.lua"

    def test_request_count_follows_weights(self):
        cw = self.srv.client("cloudwatch")
        elb = self.elb
        self.ecs.update_service(cluster="production", service="api-canary", desiredCount=1)
        self.srv.until(lambda: self.health(self.tg_arn("api-canary")).get("healthy") == 1, step=15,
                       limit=600, what="one healthy api-canary target")
        _, prod = self.listener("web", 443)
        rule = self.rule(prod["ListenerArn"], 10)
        stable_tg = elb.describe_target_groups(Names=["api-stable"])["TargetGroups"][0]
        canary_tg = elb.describe_target_groups(Names=["api-canary"])["TargetGroups"][0]
        elb.modify_rule(RuleArn=rule["RuleArn"], Actions=[{"Type": "forward", "ForwardConfig": {
            "TargetGroups": [{"TargetGroupArn": stable_tg["TargetGroupArn"], "Weight": 90},
                             {"TargetGroupArn": canary_tg["TargetGroupArn"], "Weight": 10}]}}])
        now = self.srv.now()
        t0 = (int(now) // 60 + 1) * 60  # the first whole minute after the change
        # ten minutes, the one after, and CloudWatch's 2-minute publishing delay (docs/simulator.md)
        self.srv.advance(t0 + 600 + 60 + 120 - now)
        lb_dim = stable_tg["LoadBalancerArns"][0].split(":loadbalancer/")[1]

        def query(qid, tg):
            return {"Id": qid, "MetricStat": {"Metric": {
                "Namespace": "AWS/ApplicationELB", "MetricName": "RequestCount",
                "Dimensions": [{"Name": "TargetGroup", "Value": tg["TargetGroupArn"].split(":")[-1]},
                               {"Name": "LoadBalancer", "Value": lb_dim}]},
                "Period": 60, "Stat": "Sum"}, "ReturnData": True}

        start = datetime.datetime.fromtimestamp(t0, datetime.timezone.utc)
        end = datetime.datetime.fromtimestamp(t0 + 600, datetime.timezone.utc)
        out = cw.get_metric_data(MetricDataQueries=[query("stable", stable_tg), query("canary", canary_tg)],
                                 StartTime=start, EndTime=end)
        res = {r["Id"]: r for r in out["MetricDataResults"]}
        self.assertEqual(set(res), {"stable", "canary"})
        for r in res.values():
            self.assertEqual(r["StatusCode"], "Complete")
            self.assertEqual(len(r["Values"]), 10, (r["Timestamps"], r["Values"]))
            self.assertTrue(all(start <= ts < end for ts in r["Timestamps"]), r["Timestamps"])
        s, c = sum(res["stable"]["Values"]), sum(res["canary"]["Values"])
        total = s + c
        # 200 rps for 600 s through the one matching rule
        self.assertAlmostEqual(total / 120000, 1.0, delta=0.05, msg=(s, c))
        self.assertAlmostEqual(c / total, 0.10, delta=0.01, msg=(s, c))
        for v in res["canary"]["Values"]:
            self.assertAlmostEqual(v / 1200, 1.0, delta=0.25, msg=res["canary"]["Values"])
        # GetMetricStatistics gives the same numbers for the same minutes
        st = cw.get_metric_statistics(Namespace="AWS/ApplicationELB", MetricName="RequestCount",
                                      Dimensions=query("c", canary_tg)["MetricStat"]["Metric"]["Dimensions"],
                                      StartTime=start, EndTime=end, Period=60, Statistics=["Sum"])
        self.assertEqual(sorted((p["Timestamp"], p["Sum"]) for p in st["Datapoints"]),
                         sorted(zip(res["canary"]["Timestamps"], res["canary"]["Values"])))


class Story6Errors(Base):
    """The everyday errors of a deployment script, as boto3 sees them (more in test_sim_errors.py)."""
    scenario = "tests/scenarios/default.lua"

    def test_unknown_service_and_rule(self):
        code, status, _ = error_of(self.ecs.update_service, cluster="production", service="nope",
                                   desiredCount=1)
        self.assertEqual((code, status), ("ServiceNotFoundException", 400))
        _, prod = self.listener("web", 443)
        arn = prod["ListenerArn"].replace(":listener/", ":listener-rule/") + "/0123456789abcdef"
        code, status, _ = error_of(self.elb.modify_rule, RuleArn=arn,
                                   Actions=[{"Type": "forward", "TargetGroupArn": self.tg_arn("api-stable")}])
        self.assertEqual((code, status), ("RuleNotFound", 400))


class Story8SameWorld(unittest.TestCase):
    """The same playbook, scenario and seed give the same world in process (--simulate) and
    through curl against `sim serve` (--endpoint-url), time advanced the same amount."""
    scenario = "tests/scenarios/determinism.lua"
    playbook = "tests/scenarios/determinism_playbook.lua"

    def run_playbook(self, *args):
        p = subprocess.run([simserve.ECSPLAY_RUN] + list(args), cwd=simserve.ROOT, capture_output=True,
                           text=True, timeout=120, env=simserve.clean_env())
        self.assertEqual(p.returncode, 0, "ecsplay %s\nstdout:\n%s\nstderr:\n%s" % (" ".join(args), p.stdout, p.stderr))
        lines = [l for l in p.stdout.splitlines() if l.startswith("SUMMARY ")]
        self.assertEqual(len(lines), 1, p.stdout)
        return lines[0][len("SUMMARY "):]

    def test_in_process_equals_http(self):
        local = self.run_playbook("--simulate=" + self.scenario, self.playbook)
        # --speed 0.001: the wall time the playbook takes adds only milliseconds of simulated time
        srv = Server(scenario=self.scenario, speed=0.001)
        self.addCleanup(srv.close)
        remote = self.run_playbook("--endpoint-url", srv.url, "--region", simserve.REGION, self.playbook,
                                   "sim=" + srv.url)
        a, b = json.loads(local), json.loads(remote)
        self.maxDiff = None
        self.assertEqual(a, b)
        self.assertEqual(local, remote)
        # and the world is the one the calls should have made
        self.assertEqual(a["elapsed"], 600)
        self.assertEqual(a["rules"]["443/10"], {"api-stable": 70, "api-canary": 30})
        self.assertEqual(a["services"]["api"]["task_definition"], "api:3")
        self.assertEqual((a["services"]["api"]["running"], a["services"]["api"]["desired"]), (4, 4))
        self.assertEqual(a["services"]["api-canary"]["task_definition"], "api:2")
        self.assertEqual((a["services"]["api-canary"]["running"], a["services"]["api-canary"]["desired"]), (2, 2))
        self.assertEqual(a["health"]["api-canary"].get("healthy"), 2)
        self.assertEqual(a["alarms"]["api-5xx-high"], "ALARM")  # api:flaky at 30% errs at 6%
        self.assertGreater(a["metrics"]["canary_5xx"]["sum"], 0)
        # boto3 reads the same world back from the server
        elb = srv.client("elbv2")
        cw = srv.client("cloudwatch")
        self.assertEqual(cw.describe_alarms(AlarmNames=["api-5xx-high"])["MetricAlarms"][0]["StateValue"], "ALARM")
        names = {t["TargetGroupArn"]: t["TargetGroupName"] for t in elb.describe_target_groups()["TargetGroups"]}
        lb = elb.describe_load_balancers(Names=["web"])["LoadBalancers"][0]
        l443 = [l for l in elb.describe_listeners(LoadBalancerArn=lb["LoadBalancerArn"])["Listeners"]
                if l["Port"] == 443][0]
        r10 = [r for r in elb.describe_rules(ListenerArn=l443["ListenerArn"])["Rules"] if r["Priority"] == "10"][0]
        self.assertEqual(tg_weights(r10["Actions"][0], names), a["rules"]["443/10"])


if __name__ == "__main__":
    simserve.run_tests()
