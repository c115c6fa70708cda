"""CloudWatch's errors name the same code over both of its protocols, as botocore reports them.

Recent SDKs (boto3 >= 1.34) speak JSON 1.0 to CloudWatch, older ones (Debian's boto3 1.29) the
query protocol. CloudWatch's JSON is query-compatible (awsQueryCompatible): each error carries
`x-amzn-query-error: CODE;Sender|Receiver`, CODE being the error's query-protocol code, and
botocore reports that CODE (parsers.py). So a throttled JSON call is `Throttling`, as over
query, never `ThrottlingException`. The JSON requests here are built and signed with botocore
and parsed with botocore's own JSON parser (the one recent boto3 uses for CloudWatch).

Run: /usr/bin/python3 tests/py/test_sim_cloudwatch_json.py   (from the project root, after make)
"""
import datetime
import json
import os
import sys
import tempfile
import unittest
import urllib.error
import urllib.request

import botocore.parsers
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import simserve  # noqa: E402
from simserve import AK, REGION, SK, Server, error_of  # noqa: E402

# DescribeAlarms: one request a simulated minute (the bucket's one token is taken by the first)
SCENARIO = """
return {
  faults = { { service = "cloudwatch", operation = "DescribeAlarms", rate = 1, per = "minute", burst = 1 } },
}
"""


def json_call(url, op, params, ak=AK, sk=SK):
    """A CloudWatch JSON 1.0 call as recent SDKs send it → botocore's parsed error (or None)."""
    req = AWSRequest(method="POST", url=url + "/", data=json.dumps(params).encode(),
                     headers={"Content-Type": "application/x-amz-json-1.0",
                              "X-Amz-Target": "GraniteServiceVersion20100801." + op})
    SigV4Auth(Credentials(ak, sk), "monitoring", REGION).add_auth(req)
    prepared = req.prepare()
    http = urllib.request.Request(prepared.url, data=prepared.body, method="POST", headers=dict(prepared.headers))
    try:
        with urllib.request.urlopen(http, timeout=30) as r:
            return None
    except urllib.error.HTTPError as e:
        headers = {k.lower(): v for k, v in e.headers.items()}
        response = {"status_code": e.code, "headers": headers, "body": e.read()}
        parsed = botocore.parsers.create_parser("json").parse(response, None)
        return parsed["Error"], headers


class CloudWatchJson(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        path = os.path.join(tempfile.mkdtemp(), "throttle.lua")
        with open(path, "w") as f:
            f.write(SCENARIO)
        cls.srv = Server(scenario=path)
        cls.cw = cls.srv.client("cloudwatch")  # Debian's boto3: the query protocol

    @classmethod
    def tearDownClass(cls):
        cls.srv.close()

    def same_code(self, code, query_call, op, params, **keys):
        got = error_of(query_call)
        self.assertEqual(got[0], code, "query: %s\n%s" % (got, Server.last(self.cw)))
        parsed = json_call(self.srv.url, op, params, **keys)
        self.assertIsNotNone(parsed, "JSON %s answered 2xx" % op)
        error, headers = parsed
        self.assertEqual(error["Code"], code, "JSON: %s %s" % (error, headers))
        return error, headers

    def test_throttled_call_is_throttling_over_both_protocols(self):
        json_call(self.srv.url, "DescribeAlarms", {})  # takes the minute's token, if it is still there
        error, headers = self.same_code("Throttling", self.cw.describe_alarms, "DescribeAlarms", {})
        self.assertEqual(headers.get("x-amzn-query-error"), "Throttling;Sender")
        self.assertEqual(error["Message"], "Rate exceeded")

    def test_unknown_key_is_the_query_code_over_json(self):
        nobody = dict(ak="AKIDNOBODY0000000000", sk=SK)
        c = self.srv.client("cloudwatch", **nobody)
        error_q = error_of(c.list_metrics)
        parsed = json_call(self.srv.url, "ListMetrics", {}, **nobody)
        self.assertEqual((error_q[0], parsed[0]["Code"]), ("InvalidClientTokenId", "InvalidClientTokenId"), parsed)

    def test_model_error_keeps_its_awsQueryError_code(self):
        now = datetime.datetime.now(datetime.timezone.utc)
        args = dict(Namespace="AWS/ApplicationELB", MetricName="RequestCount", Period=61, Statistics=["Sum"])
        q = lambda: self.cw.get_metric_statistics(StartTime=now - datetime.timedelta(minutes=10), EndTime=now,  # noqa: E731
                                                   **args)
        params = dict(args, StartTime=int(now.timestamp()) - 600, EndTime=int(now.timestamp()))
        _, headers = self.same_code("InvalidParameterValue", q, "GetMetricStatistics", params)
        self.assertEqual(headers.get("x-amzn-query-error"), "InvalidParameterValue;Sender")


if __name__ == "__main__":
    simserve.run_tests()
