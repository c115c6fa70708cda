"""`ecsplay sim serve` stays up (issue 12, items 6 and 7), over HTTP with real clients:
the abusive requests of the issue (update-service --desired-count 2147483647,
POST /_sim/advance {"seconds": 1e9}, a duplicated Signature= component) are refused with
AWS's code (or a 400 naming the maximum), at once, and the next request answers within a
second; the server's memory stays small.

Run: /usr/bin/python3 tests/py/test_sim_limits.py   (from the project root, after make)
"""
import http.client
import json
import os
import sys
import time
import unittest

import botocore.auth
import botocore.awsrequest
import botocore.credentials

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import simserve  # noqa: E402
from simserve import AK, REGION, SK, Server  # noqa: E402

RSS_LIMIT_MB = 300


def rss_mb(pid):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) // 1024
    return 0


class Limits(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.srv = Server()
        cls.ecs = cls.srv.client("ecs")
        cls.elbv2 = cls.srv.client("elbv2")

    @classmethod
    def tearDownClass(cls):
        cls.srv.close()

    def answers_within_a_second(self):
        t0 = time.monotonic()
        out = self.ecs.list_clusters()
        self.assertTrue(out["clusterArns"])
        self.assertLess(time.monotonic() - t0, 1.0, "the request after the abusive one")
        self.assertLess(rss_mb(self.srv.proc.pid), RSS_LIMIT_MB, "sim serve's memory")

    def test_huge_desired_count_is_invalid_parameter(self):
        for n in (2147483647, 5001):
            t0 = time.monotonic()
            code, status, msg = simserve.error_of(self.ecs.update_service, cluster="production",
                                                  service="api-canary", desiredCount=n)
            self.assertEqual((code, status), ("InvalidParameterException", 400), msg)
            self.assertIn("Desired count exceeds limit", msg)
            self.assertLess(time.monotonic() - t0, 1.0)
        self.answers_within_a_second()

    def test_aws_cli_desired_count(self):
        rc, out, err = self.srv.aws("ecs", "update-service", "--cluster", "production", "--service",
                                    "api-canary", "--desired-count", "2147483647", check=False)
        self.assertNotEqual(rc, 0)
        self.assertIn("InvalidParameterException", err)
        self.answers_within_a_second()

    def test_too_many_targets(self):
        tg = self.elbv2.describe_target_groups(Names=["api-canary"])["TargetGroups"][0]["TargetGroupArn"]
        targets = [{"Id": "10.8.%d.%d" % (i // 250, i % 250), "Port": 8080} for i in range(1001)]
        code, status, msg = simserve.error_of(self.elbv2.register_targets, TargetGroupArn=tg, Targets=targets)
        self.assertEqual((code, status), ("TooManyTargets", 400), msg)
        self.answers_within_a_second()

    def test_advance_too_far_is_400_with_the_maximum(self):
        for seconds in (1e9, 1e18, 86400 * 30, "1000000000s"):
            t0 = time.monotonic()
            status, body = self.srv.control("POST", "/_sim/advance", {"seconds": seconds}, timeout=5)
            self.assertEqual(status, 400, body)
            self.assertIn("at most 21600", body["error"])
            self.assertLess(time.monotonic() - t0, 1.0)
        before = self.srv.now()
        status, body = self.srv.control("POST", "/_sim/advance", {"seconds": 600}, timeout=10)
        self.assertEqual(status, 200, body)
        self.assertGreaterEqual(body["now"], before + 600)
        self.answers_within_a_second()

    def test_duplicated_signature_is_incomplete_signature(self):
        body = b"{}"
        req = botocore.awsrequest.AWSRequest(method="POST", url=self.srv.url + "/", data=body, headers={
            "Content-Type": "application/x-amz-json-1.1",
            "X-Amz-Target": "AmazonEC2ContainerServiceV20141113.ListClusters"})
        botocore.auth.SigV4Auth(botocore.credentials.Credentials(AK, SK), "ecs", REGION).add_auth(req)
        headers = dict(req.headers.items())
        headers["Authorization"] += ", Signature=" + "0" * 64
        c = http.client.HTTPConnection("127.0.0.1", self.srv.port, timeout=5)
        try:
            c.request("POST", "/", body=body, headers=headers)
            r = c.getresponse()
            status, answer = r.status, json.loads(r.read())
        finally:
            c.close()
        self.assertEqual((status, answer["__type"]), (400, "IncompleteSignatureException"), answer)
        self.assertIn("duplicated 'Signature'", answer["message"])
        self.answers_within_a_second()


if __name__ == "__main__":
    simserve.run_tests()
