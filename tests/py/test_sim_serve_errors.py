"""`ecsplay sim serve` seen from boto3 and the AWS CLI: AWS's auth errors, injected faults,
the control endpoints, and a clean stop on SIGTERM. Only 127.0.0.1 is used."""
import json
import os
import signal
import subprocess
import sys
import tempfile
import traceback
import urllib.request

import datetime
from unittest import mock

import boto3
import botocore.config
import botocore.exceptions
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
ECSPLAY = os.environ.get("ECSPLAY_BIN", os.path.join(ROOT, "ecsplay"))
AK, SK = "AKIDSIMULATOR", "simulator-secret-key"

SCENARIO = """
return {
  world = "empty",
  faults = {
    { service = "elbv2", operation = "DescribeLoadBalancers", error = "ThrottlingException", times = 1 },
  },
}
"""

results = {"passed": 0, "failed": 0}


def test(fn):
    try:
        fn()
        results["passed"] += 1
        print("ok   " + fn.__name__)
    except Exception:  # noqa: BLE001 - report every failure and go on
        results["failed"] += 1
        print("FAIL " + fn.__name__)
        print("     " + traceback.format_exc().replace("\n", "\n     "))


class Server:
    def __init__(self, *args):
        self.dir = tempfile.mkdtemp()
        path = os.path.join(self.dir, "scenario.lua")
        with open(path, "w") as f:
            f.write(SCENARIO)
        self.proc = subprocess.Popen([ECSPLAY, "sim", "serve", "--port", "0", "--scenario", path] + list(args),
                                     stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        self.first_line = self.proc.stdout.readline().strip()
        prefix = "listening on http://127.0.0.1:"
        if not self.first_line.startswith(prefix):
            self.proc.kill()
            raise AssertionError("first line %r; stderr: %s" % (self.first_line, self.proc.stderr.read()))
        self.url = self.first_line[len("listening on "):]

    def client(self, service, ak=AK, sk=SK):
        return boto3.client(service, region_name="us-east-1", endpoint_url=self.url,
                            aws_access_key_id=ak, aws_secret_access_key=sk,
                            config=botocore.config.Config(retries={"total_max_attempts": 1, "mode": "standard"}))

    def control(self, method, path, body=None):
        data = json.dumps(body).encode() if body is not None else None
        req = urllib.request.Request(self.url + path, data=data, method=method)
        with urllib.request.urlopen(req, timeout=10) as r:
            return json.loads(r.read())

    def stop(self):
        self.proc.send_signal(signal.SIGTERM)
        try:
            rc = self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            raise
        return rc


def error_of(fn):
    try:
        fn()
    except botocore.exceptions.ClientError as e:
        return e.response["Error"]["Code"], e.response["ResponseMetadata"]["HTTPStatusCode"], \
            e.response["Error"].get("Message", "")
    raise AssertionError("expected a ClientError")


S = None

CHECK_LUA = """
local json = require "ecsplay.json"
local reqs = json.decode(io.read("a"))
local sim = require("ecsplay.sim").new({ world = "empty" }, { services = {}, warn = function() end })
sim.world:add_service { name = "elbv2", ops = { DescribeTargetGroups = function() return { TargetGroups = {} } end } }
sim.world:add_service { name = "cloudwatch", ops = { DescribeAlarms = function() return { MetricAlarms = {} } end } }
sim.world:add_service { name = "ecs", ops = { ListServices = function() return { serviceArns = {} } end } }
for _, r in ipairs(reqs) do
  local res = sim:handle { method = "POST", path = "/", headers = r.headers, body = r.body }
  print(res.status)
end
"""


def test_botocore_signatures_verify_in_process():
    # botocore signs (at the simulator's start time); the simulator must accept every one,
    # and refuse the same requests signed with another secret.
    fixed = datetime.datetime(2026, 11, 26, 10, 0, 0)
    cases = [
        ("elasticloadbalancing", {"Content-Type": "application/x-www-form-urlencoded; charset=utf-8"},
         "Action=DescribeTargetGroups&Version=2015-12-01&Names.member.1=api-stable"),
        ("monitoring", {"Content-Type": "application/x-www-form-urlencoded; charset=utf-8"},
         "Action=DescribeAlarms&Version=2010-08-01&AlarmNames.member.1=api-5xx-high"),
        ("ecs", {"Content-Type": "application/x-amz-json-1.1",
                 "X-Amz-Target": "AmazonEC2ContainerServiceV20141113.ListServices"}, '{"cluster": "production"}'),
    ]
    reqs = []
    for secret in (SK, "wrong"):
        for signing, hdrs, body in cases:
            req = AWSRequest(method="POST", url="http://127.0.0.1:45678/", data=body.encode(), headers=hdrs)
            with mock.patch("botocore.auth.datetime") as dt:
                dt.datetime.utcnow.return_value = fixed
                dt.datetime.now.return_value = fixed
                SigV4Auth(Credentials(AK, secret), signing, "us-east-1").add_auth(req)
            h = dict(req.headers.items())
            h["Host"] = "127.0.0.1:45678"
            reqs.append({"headers": h, "body": body})
    p = subprocess.run([ECSPLAY, "-e", CHECK_LUA], input=json.dumps(reqs), capture_output=True, text=True,
                       timeout=60, cwd=ROOT)
    assert p.returncode == 0, p.stderr
    assert p.stdout.split() == ["200", "200", "200", "403", "403", "400"], p.stdout + p.stderr


def test_first_line_and_time():
    t = S.control("GET", "/_sim/time")
    assert t["iso"] == "2026-11-26T10:00:00Z" or t["elapsed"] >= 0, t
    t2 = S.control("POST", "/_sim/advance", {"seconds": 600})
    assert t2["elapsed"] >= 600, t2


def test_bad_secret_json_service():
    code, status, msg = error_of(lambda: S.client("ecs", sk="wrong").list_clusters())
    assert (code, status) == ("InvalidSignatureException", 400), (code, status)
    assert msg.startswith("The request signature we calculated does not match"), msg


def test_bad_secret_query_service():
    code, status, _ = error_of(lambda: S.client("elbv2", sk="wrong").describe_target_groups())
    assert (code, status) == ("SignatureDoesNotMatch", 403), (code, status)


def test_unknown_key():
    code, status, _ = error_of(lambda: S.client("ecs", ak="AKIDNOBODY").list_clusters())
    assert (code, status) == ("UnrecognizedClientException", 400), (code, status)
    code, status, _ = error_of(lambda: S.client("cloudwatch", ak="AKIDNOBODY").describe_alarms())
    assert (code, status) == ("InvalidClientTokenId", 403), (code, status)


def test_scenario_fault_throttles_once():
    elb = S.client("elbv2")
    code, status, msg = error_of(lambda: elb.describe_load_balancers())
    assert (code, status, msg) == ("Throttling", 400, "Rate exceeded"), (code, status, msg)
    assert elb.describe_load_balancers()["LoadBalancers"] == []


def test_runtime_fault_and_drop():
    added = S.control("POST", "/_sim/faults", [
        {"service": "cloudwatch", "operation": "DescribeAlarms", "status": 503, "times": 1},
        {"service": "elbv2", "operation": "DescribeTargetGroups", "drop": True, "times": 1},
    ])
    assert added == {"added": 2}, added
    code, status, _ = error_of(lambda: S.client("cloudwatch").describe_alarms())
    assert (code, status) == ("ServiceUnavailable", 503), (code, status)
    try:
        S.client("elbv2").describe_target_groups()
        raise AssertionError("expected the connection to be dropped")
    except (botocore.exceptions.ConnectionError, botocore.exceptions.HTTPClientError):
        pass
    assert S.control("GET", "/_sim/faults")["faults"][-1]["hits"] == 1
    assert S.control("DELETE", "/_sim/faults")["removed"] >= 2


def test_aws_cli():
    env = dict(os.environ, AWS_ACCESS_KEY_ID=AK, AWS_SECRET_ACCESS_KEY=SK, AWS_DEFAULT_REGION="us-east-1",
               AWS_MAX_ATTEMPTS="1")
    env.pop("AWS_PROFILE", None)
    ok = subprocess.run(["/usr/bin/aws", "--endpoint-url", S.url, "elbv2", "describe-load-balancers"],
                        env=env, capture_output=True, text=True, timeout=60)
    assert ok.returncode == 0, ok.stderr
    assert json.loads(ok.stdout)["LoadBalancers"] == []
    env["AWS_SECRET_ACCESS_KEY"] = "wrong"
    bad = subprocess.run(["/usr/bin/aws", "--endpoint-url", S.url, "elbv2", "describe-load-balancers"],
                         env=env, capture_output=True, text=True, timeout=60)
    assert bad.returncode != 0 and "SignatureDoesNotMatch" in bad.stderr, bad.stderr
    assert "wrong" not in bad.stderr


def main():
    global S
    test(test_botocore_signatures_verify_in_process)
    try:
        S = Server()
    except Exception:  # noqa: BLE001
        traceback.print_exc()
        results["failed"] += 1
        print("%d passed, %d failed" % (results["passed"], results["failed"]))
        return 1
    try:
        for fn in (test_first_line_and_time, test_bad_secret_json_service, test_bad_secret_query_service,
                   test_unknown_key, test_scenario_fault_throttles_once, test_runtime_fault_and_drop,
                   test_aws_cli):
            test(fn)
    finally:
        rc = S.stop()
        err = S.proc.stderr.read()

    def stopped_cleanly():
        assert rc in (0, 143), "exit code %r after SIGTERM; stderr: %s" % (rc, err)
        assert SK not in err, "the secret key appeared on stderr"
    test(stopped_cleanly)
    print("%d passed, %d failed" % (results["passed"], results["failed"]))
    return 1 if results["failed"] else 0


if __name__ == "__main__":
    sys.exit(main())
