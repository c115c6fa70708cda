"""ecsplay against moto (https://github.com/getmoto/moto), an AWS emulator that other SDKs use:
ECS, ELBv2, CloudWatch and CodeDeploy primitives driven through `ecsplay --endpoint-url`, the
results read back with boto3 from the same moto server.

moto speaks the wire as botocore reads it, not always as AWS writes it: its CodeDeploy answers
say `Content-Type: text/html`, its CloudWatch JSON answers `Content-Type: text`, and it speaks
CloudWatch over both JSON 1.0 and query. So this also proves that ecsplay accepts a JSON body
whatever its Content-Type (as botocore does), that `protocols = { cloudwatch = "query" }` in
aws.configure is honoured, and that an endpoint that does not answer CloudWatch's JSON makes
ecsplay fall back to query (the JSON answers are replaced by 404s in a transport wrapper).

moto is installed for the `python3` on PATH (pyenv), not for Debian's /usr/bin/python3 that
tests/run.sh uses: without moto this script re-runs itself under the PATH python3 when that one
has moto, and otherwise prints a skip line (`0 passed, 0 failed, 1 skipped`) with the reason.

Run: python3 tests/py/test_moto.py   (from the project root, after make)
"""
import json
import os
import queue
import shutil
import signal
import subprocess
import sys
import threading
import unittest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
ECSPLAY = os.environ.get("ECSPLAY_RUN_BIN") or os.path.join(ROOT, "ecsplay")
REGION = "us-east-1"
REEXEC = "ECSPLAY_TEST_MOTO_REEXEC"


def skip(reason):
    print("skipped: " + reason)
    print("0 passed, 0 failed, 1 skipped", flush=True)
    sys.exit(0)


def ensure_moto():
    """Imports moto here, or re-runs this script under the PATH python3 that has it."""
    try:
        import moto  # noqa: F401
        import boto3  # noqa: F401
        return
    except ImportError as e:
        why = str(e)
    if os.environ.get(REEXEC):
        skip("moto is not importable by %s either (%s)" % (sys.executable, why))
    here = os.path.realpath(sys.executable)
    for cand in (shutil.which("python3"), shutil.which("python")):
        if not cand or os.path.realpath(cand) == here:
            continue
        try:
            ok = subprocess.run([cand, "-c", "import moto, boto3"], stdin=subprocess.DEVNULL,
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                timeout=60).returncode == 0
        except (OSError, subprocess.TimeoutExpired):
            ok = False
        if ok:
            sys.stdout.flush()
            os.environ[REEXEC] = "1"
            os.execv(cand, [cand, os.path.abspath(__file__)] + sys.argv[1:])
    skip("moto is not installed for %s nor for the python3 on PATH (%s)" % (sys.executable, why))


if __name__ == "__main__":
    ensure_moto()

import boto3  # noqa: E402
import botocore.config  # noqa: E402


def clean_env():
    """Dummy credentials and a region; no ~/.aws files, no instance metadata."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    env.update({
        "AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_REGION": REGION, "AWS_DEFAULT_REGION": REGION,
        "AWS_CONFIG_FILE": "/nonexistent/ecsplay-test-config",
        "AWS_SHARED_CREDENTIALS_FILE": "/nonexistent/ecsplay-test-credentials",
        "AWS_EC2_METADATA_DISABLED": "true",
    })
    return env


def die_with_parent():
    # Linux: moto gets SIGKILL if this test process dies without cleaning up.
    try:
        import ctypes
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except Exception:  # noqa: BLE001 - best effort only
        pass


class Moto:
    """`python -m moto.server -H 127.0.0.1 -p 0` in a subprocess; .url once it listens."""
    PREFIX = "Running on http://127.0.0.1:"

    def __init__(self, timeout=30):
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", "0"], cwd=ROOT,
            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
            env=clean_env(), preexec_fn=die_with_parent)
        self.log = []
        lines = queue.Queue()

        def drain():
            for line in self.proc.stdout:
                self.log.append(line.rstrip("\n"))
                lines.put(line)
            lines.put(None)

        threading.Thread(target=drain, daemon=True).start()
        self.url = None
        while self.url is None:
            try:
                line = lines.get(timeout=timeout)
            except queue.Empty:
                line = None
            if line is None:
                self.close()
                raise AssertionError("moto.server did not start:\n" + "\n".join(self.log[-20:]))
            if self.PREFIX in line:
                port = line.split(self.PREFIX, 1)[1].strip().split("/")[0]
                self.url = "http://127.0.0.1:" + port

    def client(self, service):
        return boto3.session.Session(aws_access_key_id="testing", aws_secret_access_key="testing",
                                     region_name=REGION).client(
            service, endpoint_url=self.url,
            config=botocore.config.Config(retries={"max_attempts": 1},
                                          connect_timeout=5, read_timeout=30))

    def close(self):
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)


# Lua run before each playbook snippet: prints `out` as JSON on the last line.
PRELUDE = """
local json = require "ecsplay.json"
local function emit(out) print("RESULT " .. json.encode(out)) end
"""


class MotoInterop(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        if not os.access(ECSPLAY, os.X_OK):
            raise AssertionError("%s is not built (run make in %s)" % (ECSPLAY, ROOT))
        cls.moto = Moto()

    @classmethod
    def tearDownClass(cls):
        cls.moto.close()

    def ecsplay(self, lua):
        """Runs `lua` with `ecsplay --endpoint-url <moto> -e`; → the table it emit()ted."""
        cmd = [ECSPLAY, "--endpoint-url", self.moto.url, "-e", PRELUDE + lua]
        p = subprocess.run(cmd, cwd=ROOT, env=clean_env(), stdin=subprocess.DEVNULL,
                           capture_output=True, text=True, timeout=120)
        self.assertEqual(p.returncode, 0, "ecsplay exited %d\nstdout:\n%s\nstderr:\n%s\nmoto:\n%s" % (
            p.returncode, p.stdout, p.stderr, "\n".join(self.moto.log[-15:])))
        lines = [ln for ln in p.stdout.splitlines() if ln.startswith("RESULT ")]
        self.assertTrue(lines, "no RESULT line in:\n" + p.stdout + p.stderr)
        return json.loads(lines[-1][len("RESULT "):])

    # --- ECS: cluster, task definition, service, update ------------------------------------
    def test_ecs(self):
        got = self.ecsplay("""
local ecs = require "ecsplay.ecs"
local cluster = ecs.create_cluster { clusterName = "moto-prod" }.cluster
local function td(image)
  return ecs.register_task_definition { family = "moto-api", networkMode = "awsvpc",
    requiresCompatibilities = { "FARGATE" }, cpu = "256", memory = "512",
    containerDefinitions = { { name = "app", image = image, essential = true,
      portMappings = { { containerPort = 8080 } } } } }.taskDefinition
end
local v1, v2 = td("api:v1"), td("api:v2")
ecs.create_service { cluster = "moto-prod", serviceName = "moto-api", taskDefinition = v1.taskDefinitionArn,
  desiredCount = 2 }
local svc = ecs.update_service { cluster = "moto-prod", service = "moto-api",
  taskDefinition = v2.taskDefinitionArn, desiredCount = 3 }.service
local seen = ecs.describe_services { cluster = "moto-prod", services = { "moto-api" } }.services[1]
emit { cluster = cluster.clusterArn, v1 = v1.revision, v2 = v2.revision, td = svc.taskDefinition,
  seen_td = seen.taskDefinition, seen_desired = seen.desiredCount,
  image = ecs.describe_task_definition { taskDefinition = "moto-api" }.taskDefinition
    .containerDefinitions[1].image }
""")
        self.assertTrue(got["cluster"].endswith(":cluster/moto-prod"), got)
        self.assertEqual((got["v1"], got["v2"]), (1, 2))
        self.assertEqual(got["image"], "api:v2", "latest revision, seen by ecsplay")
        self.assertEqual(got["seen_desired"], 3)
        ecs = self.moto.client("ecs")
        svc = ecs.describe_services(cluster="moto-prod", services=["moto-api"])["services"][0]
        self.assertTrue(svc["taskDefinition"].endswith(":task-definition/moto-api:2"), svc["taskDefinition"])
        self.assertEqual(svc["taskDefinition"], got["td"])
        self.assertEqual(svc["desiredCount"], 3)
        td = ecs.describe_task_definition(taskDefinition="moto-api:1")["taskDefinition"]
        self.assertEqual(td["containerDefinitions"][0]["image"], "api:v1")
        self.assertEqual(td["cpu"], "256")

    # --- ELBv2: target groups, load balancer, listener, weighted rule ----------------------
    def test_elbv2(self):
        ec2 = self.moto.client("ec2")
        vpc = ec2.create_vpc(CidrBlock="10.20.0.0/16")["Vpc"]["VpcId"]
        subnets = [ec2.create_subnet(VpcId=vpc, CidrBlock="10.20.%d.0/24" % i,
                                     AvailabilityZone=REGION + az)["Subnet"]["SubnetId"]
                   for i, az in ((1, "a"), (2, "b"))]
        got = self.ecsplay("""
local elbv2 = require "ecsplay.elbv2"
local vpc, subnets = %s, %s
local function tg(name)
  return elbv2.create_target_group { Name = name, Protocol = "HTTP", Port = 8080, VpcId = vpc,
    TargetType = "ip", HealthCheckPath = "/health" }.TargetGroups[1].TargetGroupArn
end
local stable, canary = tg("moto-stable"), tg("moto-canary")
local lb = elbv2.create_load_balancer { Name = "moto-web", Subnets = subnets, Type = "application",
  Scheme = "internet-facing" }.LoadBalancers[1]
local listener = elbv2.create_listener { LoadBalancerArn = lb.LoadBalancerArn, Protocol = "HTTP",
  Port = 80, DefaultActions = { { Type = "forward", TargetGroupArn = stable } } }.Listeners[1]
local function forward(ws, wc)
  return { { Type = "forward", ForwardConfig = { TargetGroups = {
    { TargetGroupArn = stable, Weight = ws }, { TargetGroupArn = canary, Weight = wc } } } } }
end
local rule = elbv2.create_rule { ListenerArn = listener.ListenerArn, Priority = 10,
  Conditions = { { Field = "path-pattern", PathPatternConfig = { Values = { "/*" } } } },
  Actions = forward(100, 0) }.Rules[1]
-- the rollouts' weight shift: ModifyRule, read back from its answer (or a fresh DescribeRules)
local traffic = require "ecsplay.rollout.traffic"
local weights = {}
for arn, w in pairs(traffic.set({ kind = "rule", arn = rule.RuleArn }, { [stable] = 90, [canary] = 10 })) do
  weights[arn == stable and "stable" or "canary"] = w
end
emit { rule = rule.RuleArn, stable = stable, canary = canary, weights = weights,
  lb_state = lb.State and lb.State.Code, listener_port = listener.Port }
""" % (json.dumps(vpc), "{ %s }" % ", ".join(json.dumps(s) for s in subnets)))
        self.assertEqual(got["weights"], {"stable": 90, "canary": 10}, "ecsplay's read-back")
        self.assertEqual(got["listener_port"], 80)
        elb = self.moto.client("elbv2")
        rule = elb.describe_rules(RuleArns=[got["rule"]])["Rules"][0]
        weights = {t["TargetGroupArn"]: t["Weight"] for t in rule["Actions"][0]["ForwardConfig"]["TargetGroups"]}
        self.assertEqual(weights, {got["stable"]: 90, got["canary"]: 10})
        self.assertEqual(rule["Priority"], "10")
        names = sorted(t["TargetGroupName"] for t in elb.describe_target_groups()["TargetGroups"])
        self.assertIn("moto-canary", names)
        self.assertIn("moto-stable", names)

    # --- CloudWatch: JSON 1.0 (moto answers `Content-Type: text`), query, and the fallback -
    CW_LUA = """
local sched = require "ecsplay.sched"
local aws = require "ecsplay.aws"
local cw = require "ecsplay.cloudwatch"
local sent = {}
-- every request's protocol, as sent: JSON 1.0 or a form (query)
local function transport(req)
  local ct = req.headers["Content-Type"] or ""
  sent[#sent + 1] = ct:find("json", 1, true) and "json" or "query"
  if NO_JSON and ct:find("json", 1, true) then
    return { status = 404, headers = { ["Content-Type"] = "text/html" }, body = "<h1>Not Found</h1>" }
  end
  local c = sched.http(req)
  if c.error then return nil, c.error, c.kind end
  return c
end
aws.configure { endpoint_url = ENDPOINT, protocols = PROTOCOLS, transport = transport }
local now = math.floor(sched.now() / 60) * 60
cw.put_metric_data { Namespace = "Moto/Test", MetricData = {
  { MetricName = METRIC, Dimensions = { { Name = "TargetGroup", Value = "api-canary" } },
    Timestamp = now - 120, Value = 7, Unit = "Count" },
  { MetricName = METRIC, Dimensions = { { Name = "TargetGroup", Value = "api-canary" } },
    Timestamp = now - 120, Value = 5, Unit = "Count" } } }
local res = cw.get_metric_data { StartTime = now - 600, EndTime = now + 60,
  MetricDataQueries = { { Id = "m1", ReturnData = true, MetricStat = { Period = 60, Stat = "Sum",
    Metric = { Namespace = "Moto/Test", MetricName = METRIC,
      Dimensions = { { Name = "TargetGroup", Value = "api-canary" } } } } } } }.MetricDataResults[1]
cw.put_metric_alarm { AlarmName = METRIC .. "-high", Namespace = "Moto/Test", MetricName = METRIC,
  Statistic = "Sum", Period = 60, EvaluationPeriods = 1, Threshold = 100,
  ComparisonOperator = "GreaterThanThreshold" }
local alarms = cw.describe_alarms { AlarmNames = { METRIC .. "-high" } }.MetricAlarms
emit { values = res.Values, timestamps = res.Timestamps, sent = sent, t = now - 120,
  alarm = alarms[1] and alarms[1].AlarmName }
"""

    def cloudwatch(self, metric, protocols="nil", no_json=False):
        lua = "local ENDPOINT, METRIC, PROTOCOLS, NO_JSON = %s, %s, %s, %s\n" % (
            json.dumps(self.moto.url), json.dumps(metric), protocols, "true" if no_json else "false")
        got = self.ecsplay(lua + self.CW_LUA)
        self.assertEqual(got["values"], [12.0], got)
        self.assertEqual(got["alarm"], metric + "-high")
        cw = self.moto.client("cloudwatch")
        res = cw.get_metric_statistics(Namespace="Moto/Test", MetricName=metric,
                                       Dimensions=[{"Name": "TargetGroup", "Value": "api-canary"}],
                                       StartTime=got["t"] - 600, EndTime=got["t"] + 600, Period=60,
                                       Statistics=["Sum", "SampleCount"])
        self.assertEqual([(d["Sum"], d["SampleCount"]) for d in res["Datapoints"]], [(12.0, 2.0)], res)
        self.assertEqual([a["AlarmName"] for a in cw.describe_alarms(AlarmNamePrefix=metric)["MetricAlarms"]],
                         [metric + "-high"])
        return got["sent"]

    def test_cloudwatch_json(self):
        # the model's order (smithy-rpc-v2-cbor, json, query) minus CBOR: JSON 1.0 first
        self.assertEqual(self.cloudwatch("JsonCount"), ["json"] * 4)

    def test_cloudwatch_query_override(self):
        self.assertEqual(self.cloudwatch("QueryCount", protocols='{ cloudwatch = "query" }'), ["query"] * 4)

    def test_cloudwatch_fallback_to_query(self):
        # JSON answered 404 once: query from then on, for the rest of the run
        self.assertEqual(self.cloudwatch("FallbackCount", no_json=True), ["json", "query", "query", "query", "query"])

    # --- CodeDeploy: application and ECS deployment group (moto answers text/html) ---------
    def test_codedeploy(self):
        got = self.ecsplay("""
local cd = require "ecsplay.codedeploy"
local app = cd.create_application { applicationName = "moto-app", computePlatform = "ECS" }
local dg = cd.create_deployment_group { applicationName = "moto-app", deploymentGroupName = "moto-dg",
  serviceRoleArn = "arn:aws:iam::123456789012:role/ecsCodeDeployRole",
  deploymentConfigName = "CodeDeployDefault.ECSAllAtOnce",
  deploymentStyle = { deploymentType = "BLUE_GREEN", deploymentOption = "WITH_TRAFFIC_CONTROL" },
  ecsServices = { { clusterName = "moto-prod", serviceName = "moto-api" } } }
local apps = cd.list_applications {}.applications
local seen = cd.get_application { applicationName = "moto-app" }.application
emit { app_id = app.applicationId, dg_id = dg.deploymentGroupId, apps = apps,
  platform = seen.computePlatform }
""")
        self.assertTrue(got["app_id"] and got["dg_id"], got)
        self.assertIn("moto-app", got["apps"])
        self.assertEqual(got["platform"], "ECS")
        cd = self.moto.client("codedeploy")
        self.assertEqual(cd.get_application(applicationName="moto-app")["application"]["applicationId"],
                         got["app_id"])
        dg = cd.get_deployment_group(applicationName="moto-app", deploymentGroupName="moto-dg")["deploymentGroupInfo"]
        self.assertEqual(dg["deploymentGroupId"], got["dg_id"])
        self.assertEqual(dg["deploymentStyle"]["deploymentType"], "BLUE_GREEN")
        self.assertEqual(dg["ecsServices"], [{"clusterName": "moto-prod", "serviceName": "moto-api"}])


def run_tests():
    suite = unittest.TestLoader().loadTestsFromTestCase(MotoInterop)
    result = unittest.TextTestRunner(stream=sys.stdout, verbosity=2).run(suite)
    failed = len(result.failures) + len(result.errors)
    passed = max(0, result.testsRun - failed - len(result.skipped))
    print("%d passed, %d failed" % (passed, failed), flush=True)
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    run_tests()
