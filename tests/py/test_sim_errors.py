"""AWS's errors as boto3 (botocore's ClientError: code and HTTP status) and the AWS CLI see them
from `ecsplay sim serve`: unknown resources, semantically bad parameters, bad signatures and
unknown keys, for JSON (ECS, CodeDeploy) and query (ELBv2, CloudWatch) services alike.

Run: /usr/bin/python3 tests/py/test_sim_errors.py   (from the project root, after make)
"""
import os
import sys
import unittest

import botocore
import botocore.config

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import simserve  # noqa: E402
from simserve import REGION, Server, error_of  # noqa: E402


class Errors(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.srv = Server(scenario="tests/scenarios/default.lua")
        cls.ecs = cls.srv.client("ecs")
        cls.elb = cls.srv.client("elbv2")
        cls.cd = cls.srv.client("codedeploy")
        cls.cw = cls.srv.client("cloudwatch")
        lb = cls.elb.describe_load_balancers(Names=["web"])["LoadBalancers"][0]
        cls.listener = [l for l in cls.elb.describe_listeners(LoadBalancerArn=lb["LoadBalancerArn"])["Listeners"]
                        if l["Port"] == 443][0]
        cls.rule = [r for r in cls.elb.describe_rules(ListenerArn=cls.listener["ListenerArn"])["Rules"]
                    if r["Priority"] == "10"][0]
        cls.tgs = {t["TargetGroupName"]: t["TargetGroupArn"]
                   for t in cls.elb.describe_target_groups()["TargetGroups"]}

    @classmethod
    def tearDownClass(cls):
        cls.srv.close()

    def expect(self, client, fn, code, status, **kw):
        got = error_of(fn, **kw)
        self.assertEqual(got[:2], (code, status), "%s\n%s" % (got, Server.last(client)))
        self.assertTrue(got[2], "an error message is expected with %s" % code)
        return got

    def fake_rule_arn(self):
        return self.listener["ListenerArn"].replace(":listener/", ":listener-rule/") + "/0123456789abcdef"

    # --- unknown resources ------------------------------------------------------------
    def test_unknown_cluster(self):
        self.expect(self.ecs, self.ecs.list_services, "ClusterNotFoundException", 400, cluster="nope")
        self.expect(self.ecs, self.ecs.describe_services, "ClusterNotFoundException", 400,
                    cluster="nope", services=["api"])
        self.expect(self.ecs, self.ecs.update_service, "ClusterNotFoundException", 400,
                    cluster="nope", service="api", desiredCount=1)

    def test_unknown_service(self):
        self.expect(self.ecs, self.ecs.update_service, "ServiceNotFoundException", 400,
                    cluster="production", service="nope", desiredCount=1)
        # DescribeServices reports a missing service as a failure, not an error (as AWS does)
        out = self.ecs.describe_services(cluster="production", services=["nope"])
        self.assertEqual(out["services"], [])
        self.assertEqual([f["reason"] for f in out["failures"]], ["MISSING"])

    def test_unknown_rule(self):
        self.expect(self.elb, self.elb.describe_rules, "RuleNotFound", 400, RuleArns=[self.fake_rule_arn()])
        self.expect(self.elb, self.elb.modify_rule, "RuleNotFound", 400, RuleArn=self.fake_rule_arn(),
                    Actions=[{"Type": "forward", "TargetGroupArn": self.tgs["api-stable"]}])

    def test_unknown_elbv2_names(self):
        self.expect(self.elb, self.elb.describe_target_groups, "TargetGroupNotFound", 400, Names=["nope"])
        self.expect(self.elb, self.elb.describe_load_balancers, "LoadBalancerNotFound", 400, Names=["nope"])

    def test_unknown_codedeploy(self):
        self.expect(self.cd, self.cd.get_deployment, "DeploymentDoesNotExistException", 400,
                    deploymentId="d-ABCDEFGHI")
        self.expect(self.cd, self.cd.get_deployment_group, "DeploymentGroupDoesNotExistException", 400,
                    applicationName="app-deploy", deploymentGroupName="nope")
        self.expect(self.cd, self.cd.get_application, "ApplicationDoesNotExistException", 400,
                    applicationName="nope")

    def test_unknown_alarm(self):
        self.expect(self.cw, self.cw.set_alarm_state, "ResourceNotFound", 404,
                    AlarmName="nope", StateValue="ALARM", StateReason="test")

    def test_arn_of_another_account(self):
        # an ECS ARN of another account is refused, whatever the operation, as ECS refuses it
        other = "arn:aws:ecs:%s:210987654321:" % REGION
        why = "Identifier is for 210987654321. Your accountId is %s" % simserve.ACCOUNT
        cases = [(self.ecs.describe_services, dict(cluster=other + "cluster/production", services=["api"])),
                 (self.ecs.describe_services, dict(cluster="production", services=[other + "service/production/api"])),
                 (self.ecs.update_service, dict(cluster="production", service="api",
                                                taskDefinition=other + "task-definition/api:1")),
                 (self.ecs.describe_task_definition, dict(taskDefinition=other + "task-definition/api:1")),
                 (self.ecs.list_tasks, dict(cluster=other + "cluster/production"))]
        for fn, kw in cases:
            with self.subTest(op=fn.__name__, **kw):
                got = self.expect(self.ecs, fn, "InvalidParameterException", 400, **kw)
                self.assertEqual(got[2], why)
        svc = self.ecs.describe_services(cluster="production", services=["api"])["services"][0]
        self.assertNotIn("210987654321", svc["taskDefinition"], "a refused update changes nothing")
        # the caller's own account's ARNs work as its names do
        own = "arn:aws:ecs:%s:%s:" % (REGION, simserve.ACCOUNT)
        out = self.ecs.describe_services(cluster=own + "cluster/production", services=[own + "service/production/api"])
        self.assertEqual([s["serviceName"] for s in out["services"]], ["api"])

    # --- semantically bad parameters (botocore's own validation lets them through) ---------
    def test_negative_desired_count(self):
        self.expect(self.ecs, self.ecs.update_service, "InvalidParameterException", 400,
                    cluster="production", service="api", desiredCount=-1)
        svc = self.ecs.describe_services(cluster="production", services=["api"])["services"][0]
        self.assertEqual(svc["desiredCount"], 4, "a refused update changes nothing")

    def test_weight_out_of_range(self):
        self.expect(self.elb, self.elb.modify_rule, "ValidationError", 400, RuleArn=self.rule["RuleArn"],
                    Actions=[{"Type": "forward", "ForwardConfig": {"TargetGroups": [
                        {"TargetGroupArn": self.tgs["api-stable"], "Weight": 1000},
                        {"TargetGroupArn": self.tgs["api-canary"], "Weight": 0}]}}])
        back = self.elb.describe_rules(RuleArns=[self.rule["RuleArn"]])["Rules"][0]
        weights = {t["TargetGroupArn"]: t["Weight"] for t in back["Actions"][0]["ForwardConfig"]["TargetGroups"]}
        self.assertEqual(weights, {self.tgs["api-stable"]: 100, self.tgs["api-canary"]: 0})

    def test_priority_in_use(self):
        self.expect(self.elb, self.elb.create_rule, "PriorityInUse", 400, ListenerArn=self.listener["ListenerArn"],
                    Priority=10, Conditions=[{"Field": "path-pattern", "Values": ["/x/*"]}],
                    Actions=[{"Type": "forward", "TargetGroupArn": self.tgs["api-stable"]}])

    def test_bad_period(self):
        # Period must be a multiple of 60 (or 1/5/10/30 for high resolution)
        import datetime
        now = datetime.datetime.fromtimestamp(self.srv.now(), datetime.timezone.utc)
        self.expect(self.cw, self.cw.get_metric_statistics, "InvalidParameterValue", 400,
                    Namespace="AWS/ApplicationELB", MetricName="RequestCount",
                    StartTime=now - datetime.timedelta(minutes=10), EndTime=now, Period=61, Statistics=["Sum"])

    # --- signatures and keys --------------------------------------------------------------
    def test_wrong_secret(self):
        cases = [("ecs", "list_clusters", {}, "InvalidSignatureException", 400),
                 ("codedeploy", "list_applications", {}, "InvalidSignatureException", 400),
                 ("elbv2", "describe_load_balancers", {}, "SignatureDoesNotMatch", 403),
                 ("cloudwatch", "describe_alarms", {}, "SignatureDoesNotMatch", 403)]
        for service, op, kw, code, status in cases:
            with self.subTest(service=service):
                c = self.srv.client(service, sk="not-the-secret")
                self.expect(c, getattr(c, op), code, status, **kw)

    def test_unknown_access_key(self):
        cases = [("ecs", "list_clusters", "UnrecognizedClientException", 400),
                 ("codedeploy", "list_applications", "UnrecognizedClientException", 400),
                 ("elbv2", "describe_load_balancers", "InvalidClientTokenId", 403),
                 ("cloudwatch", "describe_alarms", "InvalidClientTokenId", 403)]
        for service, op, code, status in cases:
            with self.subTest(service=service):
                c = self.srv.client(service, ak="AKIDNOBODY0000000000", sk=simserve.SK)
                self.expect(c, getattr(c, op), code, status)

    def test_unsigned(self):
        cfg = botocore.config.Config(signature_version=botocore.UNSIGNED, retries={"max_attempts": 1})
        import boto3
        for service, op, code, status in [("ecs", "list_clusters", "MissingAuthenticationTokenException", 400),
                                          ("elbv2", "describe_load_balancers", "MissingAuthenticationToken", 403)]:
            with self.subTest(service=service):
                c = boto3.session.Session().client(service, region_name=REGION, endpoint_url=self.srv.url,
                                                   config=cfg)
                got = error_of(getattr(c, op))
                self.assertEqual(got[:2], (code, status), got)

    def test_request_id_on_errors(self):
        try:
            self.ecs.list_services(cluster="nope")
        except botocore.exceptions.ClientError as e:
            rid = e.response["ResponseMetadata"].get("RequestId")
            self.assertRegex(rid or "", r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")
        else:
            self.fail("no error")
        try:
            self.elb.describe_rules(RuleArns=[self.fake_rule_arn()])
        except botocore.exceptions.ClientError as e:
            self.assertTrue(e.response["ResponseMetadata"].get("RequestId"), e.response)

    # --- the CLI prints the same errors ---------------------------------------------------
    def test_cli_errors(self):
        rc, out, err = self.srv.aws("ecs", "list-services", "--cluster", "nope", check=False)
        self.assertEqual(rc, 254, err)
        self.assertIn("An error occurred (ClusterNotFoundException) when calling the ListServices operation", err)
        rc, out, err = self.srv.aws("elbv2", "describe-rules", "--rule-arns", self.fake_rule_arn(), check=False)
        self.assertEqual(rc, 254, err)
        self.assertIn("(RuleNotFound) when calling the DescribeRules operation", err)
        rc, out, err = self.srv.aws("elbv2", "describe-load-balancers", sk="wrong", check=False)
        self.assertEqual(rc, 254, err)
        self.assertIn("(SignatureDoesNotMatch)", err)
        rc, out, err = self.srv.aws("ecs", "list-clusters", ak="AKIDNOBODY0000000000", check=False)
        self.assertEqual(rc, 254, err)
        self.assertIn("(UnrecognizedClientException)", err)

    def test_zz_server_survives(self):
        # every error above left the server up and answering
        self.assertTrue(self.srv.alive(), self.srv.stderr())
        self.assertIn("arn:aws:ecs:us-east-1:%s:cluster/production" % simserve.ACCOUNT,
                      self.ecs.list_clusters()["clusterArns"])


if __name__ == "__main__":
    simserve.run_tests()
