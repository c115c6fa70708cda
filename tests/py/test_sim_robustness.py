"""`ecsplay sim serve` under abuse: a thousand concurrent bad requests from threads on
127.0.0.1 (garbage bytes, truncated bodies, huge headers, invalid JSON and form bodies, random
paths), slow clients holding connections open, malformed but correctly signed AWS requests,
and a clean stop on SIGTERM and SIGINT. After each abuse the server must still be alive and
answer a good request correctly. Counts and socket timeouts bound the run; no assertion is
about timing.

Run: /usr/bin/python3 tests/py/test_sim_robustness.py   (from the project root, after make)
"""
import http.client
import json
import os
import random
import signal
import socket
import sys
import threading
import unittest
import xml.etree.ElementTree as ET

import botocore.auth
import botocore.awsrequest
import botocore.credentials

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import simserve  # noqa: E402
from simserve import AK, REGION, SK, Server  # noqa: E402

ECS_TARGET = "AmazonEC2ContainerServiceV20141113."
N_BAD = 1000
THREADS = 40
SOCK_TIMEOUT = 3


def signed(url, service, body, headers):
    """A correctly SigV4-signed request (botocore's signer) → (headers dict, body bytes)."""
    req = botocore.awsrequest.AWSRequest(method="POST", url=url + "/", data=body, headers=headers)
    botocore.auth.SigV4Auth(botocore.credentials.Credentials(AK, SK), service, REGION).add_auth(req)
    return dict(req.headers.items()), req.body if isinstance(req.body, bytes) else req.body.encode()


def post(port, headers, body, path="/"):
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    try:
        c.request("POST", path, body=body, headers=headers)
        r = c.getresponse()
        return r.status, {k.lower(): v for k, v in r.getheaders()}, r.read()
    finally:
        c.close()


def json_error(body):
    v = json.loads(body)
    return (v.get("__type") or v.get("code") or "").split("#")[-1], v.get("message") or v.get("Message")


def query_error(body):
    root = ET.fromstring(body)
    code = msg = None
    for el in root.iter():
        tag = el.tag.split("}")[-1]
        if tag == "Code":
            code = el.text
        elif tag == "Message":
            msg = el.text
    return code, msg


def bad_request(i, port, host):
    """One abusive exchange; returns a short label of what came back (never raises)."""
    rnd = random.Random(i)
    kind = i % 9
    hdr = "Host: %s\r\n" % host
    if kind == 0:      # garbage bytes
        data = bytes(rnd.getrandbits(8) for _ in range(rnd.randint(1, 3000)))
    elif kind == 1:    # truncated body: promises more than it sends, then half-closes
        data = ("POST / HTTP/1.1\r\n%sContent-Type: application/x-amz-json-1.1\r\nX-Amz-Target: %sListClusters\r\n"
                "Content-Length: 5000\r\n\r\n{\"maxResults\": 1" % (hdr, ECS_TARGET)).encode()
    elif kind == 2:    # one huge header
        data = ("GET /_sim/time HTTP/1.1\r\n%sX-Big: %s\r\n\r\n" % (hdr, "a" * rnd.randint(20000, 200000))).encode()
    elif kind == 3:    # invalid JSON to ECS (unsigned)
        body = rnd.choice(['{"cluster": ', "[[[[", "\x00\x01\x02", '{"a":' * 500, "null", '"str"'])
        data = ("POST / HTTP/1.1\r\n%sContent-Type: application/x-amz-json-1.1\r\nX-Amz-Target: %sListServices\r\n"
                "Content-Length: %d\r\n\r\n" % (hdr, ECS_TARGET, len(body.encode()))).encode() + body.encode()
    elif kind == 4:    # invalid form body to a query service (unsigned)
        body = rnd.choice(["Action=%ZZ&&&==", "Version=2015-12-01&Action", "=" * 3000, "Action=DescribeRules&"
                           "Version=2015-12-01&RuleArns.member.999999999999=x", "%" * 100])
        data = ("POST / HTTP/1.1\r\n%sContent-Type: application/x-www-form-urlencoded\r\n"
                "Content-Length: %d\r\n\r\n%s" % (hdr, len(body), body)).encode()
    elif kind == 5:    # random paths and methods
        path = "/" + "/".join("".join(rnd.choice("abc%/._-?=&") for _ in range(rnd.randint(0, 20)))
                              for _ in range(rnd.randint(1, 5)))
        method = rnd.choice(["GET", "DELETE", "PUT", "PATCH", "OPTIONS", "HEAD"])
        data = ("%s %s HTTP/1.1\r\n%s\r\n" % (method, path, hdr)).encode()
    elif kind == 6:    # a thousand small headers
        data = ("GET /_sim/time HTTP/1.1\r\n%s" % hdr + "".join("X-H%d: v\r\n" % n for n in range(1000))
                + "\r\n").encode()
    elif kind == 7:    # broken request line / protocol
        data = rnd.choice([b"FOO BAR BAZ QUX\r\n\r\n", b"GET\r\n\r\n", b"GET / HTTP/9.9\r\n\r\n",
                           b"\r\n\r\n\r\n", b"POST / HTTP/1.1\r\nContent-Length: -5\r\n\r\n",
                           b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nxx\r\n"])
    else:              # bad control-endpoint bodies
        body = rnd.choice(["{", '{"seconds": -1}', '{"seconds": "soon"}', "[]", "x" * 5000])
        data = ("POST /_sim/advance HTTP/1.1\r\n%sContent-Type: application/json\r\nContent-Length: %d\r\n\r\n%s"
                % (hdr, len(body), body)).encode()
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.settimeout(SOCK_TIMEOUT)
    try:
        s.connect(("127.0.0.1", port))
        try:
            s.sendall(data)
            s.shutdown(socket.SHUT_WR)
        except OSError:
            return "closed-early"
        first = s.recv(64)
        if not first:
            return "closed"
        parts = first.split(b" ")
        return "http-" + parts[1].decode("ascii", "replace") if len(parts) > 1 else "other"
    except socket.timeout:
        return "timeout"
    except OSError:
        return "reset"
    finally:
        s.close()


class Robustness(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.srv = Server(scenario="tests/scenarios/default.lua")
        cls.host = "127.0.0.1:%d" % cls.srv.port

    @classmethod
    def tearDownClass(cls):
        cls.srv.close()

    def assert_good(self):
        self.assertTrue(self.srv.alive(), "server died; stderr:\n" + self.srv.stderr())
        ecs = self.srv.client("ecs")
        svc = ecs.describe_services(cluster="production", services=["api"])["services"][0]
        self.assertEqual((svc["serviceName"], svc["desiredCount"]), ("api", 4))
        elb = self.srv.client("elbv2")
        self.assertEqual([l["LoadBalancerName"] for l in elb.describe_load_balancers()["LoadBalancers"]], ["web"])

    def test_a_thousand_bad_requests(self):
        results = {}
        lock = threading.Lock()
        it = iter(range(N_BAD))

        def worker():
            while True:
                with lock:
                    i = next(it, None)
                if i is None:
                    return
                label = bad_request(i, self.srv.port, self.host)
                with lock:
                    results[label] = results.get(label, 0) + 1

        threads = [threading.Thread(target=worker, daemon=True) for _ in range(THREADS)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(300)
        self.assertEqual(sum(results.values()), N_BAD, results)
        print("  bad requests answered:", dict(sorted(results.items())))
        # a server error (5xx other than 503) for client garbage is a bug worth seeing
        self.assertNotIn("http-500", results, results)
        self.assert_good()
        status, world = self.srv.control("GET", "/_sim/world")
        self.assertEqual(status, 200)
        self.assertEqual([s["name"] for s in world["services"]], ["api", "api-canary", "app"])

    def test_slow_clients_do_not_block(self):
        # connections that never finish their request must not starve a good client
        socks = []
        try:
            for _ in range(20):
                s = socket.create_connection(("127.0.0.1", self.srv.port), timeout=5)
                s.sendall(("POST / HTTP/1.1\r\nHost: %s\r\nContent-Length: 100\r\n" % self.host).encode())
                socks.append(s)
            half = socket.create_connection(("127.0.0.1", self.srv.port), timeout=5)
            half.sendall(("POST / HTTP/1.1\r\nHost: %s\r\nContent-Length: 100\r\n\r\n{" % self.host).encode())
            socks.append(half)
            self.assert_good()
        finally:
            for s in socks:
                s.close()

    def test_malformed_json_body_signed(self):
        for body in ('{"maxResults": 5,', "[1, 2]", '{"maxResults": "five"}', '{"cluster": {"a": 1}}'):
            with self.subTest(body=body):
                h, b = signed(self.srv.url, "ecs", body, {
                    "Content-Type": "application/x-amz-json-1.1", "X-Amz-Target": ECS_TARGET + "ListServices"})
                status, headers, raw = post(self.srv.port, h, b)
                self.assertEqual(status, 400, raw)
                code, msg = json_error(raw)
                self.assertEqual(code, "SerializationException", raw)
                self.assertTrue(msg, raw)
                self.assertTrue(headers.get("x-amzn-requestid"), headers)
        self.assert_good()

    def test_unknown_json_operation_signed(self):
        h, b = signed(self.srv.url, "ecs", "{}", {"Content-Type": "application/x-amz-json-1.1",
                                                  "X-Amz-Target": ECS_TARGET + "LaunchRockets"})
        status, _, raw = post(self.srv.port, h, b)
        self.assertEqual(status, 400, raw)
        self.assertEqual(json_error(raw)[0], "UnknownOperationException", raw)

    def test_malformed_query_body_signed(self):
        ct = {"Content-Type": "application/x-www-form-urlencoded; charset=utf-8"}
        cases = [("Version=2015-12-01", "MissingAction"),
                 ("Action=LaunchRockets&Version=2015-12-01", "InvalidAction"),
                 ("Action=DescribeLoadBalancers&Version=2015-12-01&PageSize=many", "ValidationError")]
        for body, code in cases:
            with self.subTest(body=body):
                h, b = signed(self.srv.url, "elasticloadbalancing", body, dict(ct))
                status, headers, raw = post(self.srv.port, h, b)
                self.assertEqual(status, 400, raw)
                self.assertEqual(query_error(raw)[0], code, raw)
                self.assertIn(b"<RequestId>", raw)
        self.assert_good()

    def test_control_endpoint_errors(self):
        for body, status in (('{"seconds": -1}', 400), ("{", 400), ('{"seconds": "soon"}', 400)):
            with self.subTest(body=body):
                c = http.client.HTTPConnection("127.0.0.1", self.srv.port, timeout=30)
                c.request("POST", "/_sim/advance", body=body, headers={"Content-Type": "application/json"})
                r = c.getresponse()
                raw = r.read()
                c.close()
                self.assertEqual(r.status, status, raw)
                self.assertIn("error", json.loads(raw))
        self.assertEqual(self.srv.control("GET", "/_sim/nope")[0], 404)
        self.assertEqual(self.srv.control("DELETE", "/_sim/world")[0], 405)


class Signals(unittest.TestCase):
    def stop_with(self, sig):
        srv = Server(scenario="tests/scenarios/empty.lua")
        try:
            ecs = srv.client("ecs")
            self.assertEqual(ecs.list_clusters()["clusterArns"], [])
            rc = srv.stop(sig)
        finally:
            srv.close()
        self.assertEqual(rc, 0, "exit status after signal %d; stderr:\n%s" % (sig, srv.stderr()))
        with self.assertRaises(OSError):  # the port is closed
            socket.create_connection(("127.0.0.1", srv.port), timeout=2).close()

    def test_sigterm(self):
        self.stop_with(signal.SIGTERM)

    def test_sigint(self):
        self.stop_with(signal.SIGINT)

    def test_sigterm_while_a_client_waits(self):
        # a connection in the middle of its request does not keep the server from stopping
        srv = Server(scenario="tests/scenarios/empty.lua")
        try:
            s = socket.create_connection(("127.0.0.1", srv.port), timeout=5)
            s.sendall(b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n{")
            rc = srv.stop(signal.SIGTERM)
            s.close()
        finally:
            srv.close()
        self.assertEqual(rc, 0, srv.stderr())

    def test_bad_scenario_exits_2(self):
        # a broken scenario is bad input: exit 2, a message naming the file, nothing served
        import subprocess
        import tempfile
        with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as f:
            f.write('return { world = "default", imagez = {} }\n')
        try:
            p = subprocess.run([simserve.ECSPLAY, "sim", "serve", "--port", "0", "--scenario", f.name],
                               capture_output=True, text=True, timeout=30, env=simserve.clean_env())
        finally:
            os.unlink(f.name)
        self.assertEqual(p.returncode, 2, p.stdout + p.stderr)
        self.assertIn(os.path.basename(f.name), p.stderr)
        self.assertNotIn("listening", p.stdout)


if __name__ == "__main__":
    simserve.run_tests()
