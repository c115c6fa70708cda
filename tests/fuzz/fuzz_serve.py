"""Fuzzer (a): mutated requests to `ecsplay sim serve` (with SigV4 checking on).

Each case takes a valid AWS request (ECS and CodeDeploy JSON 1.1, CloudWatch JSON 1.0 and
query, ELBv2 query, the /_sim/ control endpoints), mutates it (extreme numbers such as
desiredCount 2147483647 or {"seconds": 1e9}, wrong types, deep nesting, huge lists, garbage or
truncated bodies, broken or duplicated signature components, odd headers, methods, paths and
query strings), usually signs it again so it reaches the operation, and sends it. Passing means:
  - an answer within ANSWER_TIMEOUT seconds, with a valid status;
  - an AWS error in the request's protocol (JSON {__type, message} or XML ErrorResponse with
    Code and Message), or a success body that parses; /_sim/ answers are JSON;
  - a request whose signature was broken (or never made) is refused;
  - the server still answers afterwards once its world moved on PROBE_ADVANCE seconds
    (POST /_sim/advance), and its memory stays below RSS_LIMIT_MB.
A server that dies or stops answering is restarted, so one bad request cannot hide the next.
Cases run in batches of BATCH on one world (reset before each batch); `fuzz.py serve --case N`
replays N's batch up to N.
"""
import http.client
import json
import os
import re
import socket
import sys
import time
import xml.etree.ElementTree as ET

import botocore.auth
import botocore.awsrequest
import botocore.credentials

import fuzzlib

sys.path.insert(0, os.path.join(fuzzlib.ROOT, "tests", "py"))
import simserve  # noqa: E402

NAME = "serve"
BATCH = 10
ANSWER_TIMEOUT = 5.0
RSS_LIMIT_MB = 768
PROBE_ADVANCE = 30
AK, SK, REGION = "AKIDSIMULATOR", "simulator-secret-key", "us-east-1"
ECS, CD, CW = "AmazonEC2ContainerServiceV20141113.", "CodeDeploy_20141006.", "GraniteServiceVersion20100801."
TD = {"family": "fuzz", "containerDefinitions": [{"name": "c", "image": "api:v2", "memory": 128,
                                                   "portMappings": [{"containerPort": 8080}]}]}
JSON_OPS = [
    ("ecs", ECS, "ListClusters", {}),
    ("ecs", ECS, "DescribeServices", {"cluster": "production", "services": ["api", "api-canary"]}),
    ("ecs", ECS, "UpdateService", {"cluster": "production", "service": "api-canary", "desiredCount": 2}),
    ("ecs", ECS, "UpdateService", {"cluster": "production", "service": "api", "taskDefinition": "api:1",
                                   "deploymentConfiguration": {"maximumPercent": 200, "minimumHealthyPercent": 100}}),
    ("ecs", ECS, "RegisterTaskDefinition", TD),
    ("ecs", ECS, "DescribeTaskDefinition", {"taskDefinition": "api:1"}),
    ("ecs", ECS, "ListTasks", {"cluster": "production", "serviceName": "api", "maxResults": 10}),
    ("ecs", ECS, "CreateService", {"cluster": "production", "serviceName": "fz", "taskDefinition": "api:1",
                                   "desiredCount": 1, "launchType": "FARGATE"}),
    ("ecs", ECS, "ListServiceDeployments", {"cluster": "production", "service": "api"}),
    ("codedeploy", CD, "ListApplications", {}),
    ("codedeploy", CD, "GetDeploymentGroup", {"applicationName": "app-deploy", "deploymentGroupName": "app-dg"}),
    ("codedeploy", CD, "ListDeployments", {"applicationName": "app-deploy", "deploymentGroupName": "app-dg"}),
    ("codedeploy", CD, "CreateDeployment", {"applicationName": "app-deploy", "deploymentGroupName": "app-dg",
                                            "revision": {"revisionType": "AppSpecContent", "appSpecContent": {
                                                "content": "version: 0.0\nResources: []\n"}}}),
    ("cloudwatch", CW, "DescribeAlarms", {"MaxRecords": 10}),
    ("cloudwatch", CW, "GetMetricData", {"StartTime": 1795686000, "EndTime": 1795687200, "MetricDataQueries": [
        {"Id": "m1", "MetricStat": {"Metric": {"Namespace": "AWS/ApplicationELB", "MetricName": "RequestCount"},
                                    "Period": 60, "Stat": "Sum"}}]}),
]
QUERY_OPS = [
    ("elasticloadbalancing", "2015-12-01", {"Action": "DescribeTargetGroups"}),
    ("elasticloadbalancing", "2015-12-01", {"Action": "DescribeLoadBalancers", "PageSize": "10"}),
    ("elasticloadbalancing", "2015-12-01", {"Action": "DescribeRules", "RuleArns.member.1": "arn:aws:elasticloadbalancing:us-east-1:123456789012:listener-rule/app/web/x/y/z"}),
    ("elasticloadbalancing", "2015-12-01", {"Action": "ModifyTargetGroup", "TargetGroupArn": "arn:x", "HealthCheckIntervalSeconds": "10"}),
    ("monitoring", "2010-08-01", {"Action": "GetMetricStatistics", "Namespace": "AWS/ApplicationELB",
                                  "MetricName": "RequestCount", "StartTime": "2026-11-26T09:00:00Z",
                                  "EndTime": "2026-11-26T10:00:00Z", "Period": "60", "Statistics.member.1": "Sum"}),
]
CONTROL = [("POST", "/_sim/advance", {"seconds": 60}), ("GET", "/_sim/world", None), ("GET", "/_sim/time", None),
           ("POST", "/_sim/faults", {"service": "ecs", "operation": "ListClusters", "error": "ThrottlingException",
                                     "times": 1}), ("GET", "/_sim/faults", None)]
EXTREMES = [2147483647, 2147483648, 9223372036854775807, -1, -2147483648, 0, 1e308, -1e308, 1e18, 0.5,
            "2147483647", None, True, [], {}, "", "x" * 70000, 1e9, 86400 * 366]
COUNTS = [2147483647, 2147483648, 1000000, 100000, 9223372036854775807, -1, 1e9, 1e308]
ADVANCE = [1e9, 1e18, 1e308, 2 ** 63, 86400 * 30, 3600.5, -0.0, "1000000000s", "9999999h", None]


def sign(service, method, url, body, headers):
    req = botocore.awsrequest.AWSRequest(method=method, url=url, data=body, headers=headers)
    botocore.auth.SigV4Auth(botocore.credentials.Credentials(AK, SK), service, REGION).add_auth(req)
    return dict(req.headers.items())


def mutate_value(r, v, depth=0):
    """A copy of JSON value v with one leaf (or container) replaced by something hostile."""
    if isinstance(v, dict) and v and r.random() < 0.8:
        k = r.choice(sorted(v))
        out = dict(v)
        choice = r.randrange(6)
        if choice == 0:
            del out[k]
        elif choice == 1:
            out[k + r.choice(["x", "Count", ""])] = r.choice(EXTREMES)
        else:
            out[k] = mutate_value(r, v[k], depth + 1)
        return out
    if isinstance(v, list) and v and r.random() < 0.7:
        out = list(v)
        if r.random() < 0.3:
            return out * r.choice([2, 100, 5000])
        i = r.randrange(len(out))
        out[i] = mutate_value(r, out[i], depth + 1)
        return out
    if isinstance(v, (int, float)) and not isinstance(v, bool) and r.random() < 0.6:
        return r.choice(COUNTS)
    return r.choice(EXTREMES)


def json_body(r, params):
    """Mutated JSON text: a hostile value, deep nesting, garbage or truncation."""
    kind = r.randrange(10)
    if kind < 5:
        return json.dumps(mutate_value(r, params)).encode()
    if kind == 5:
        n = r.choice([100, 10000, 200000])
        return ("[" * n + "]" * n).encode()
    if kind == 6:
        return json.dumps(params).encode()[:r.randint(0, max(1, len(json.dumps(params))))]
    if kind == 7:
        return bytes(r.randrange(256) for _ in range(r.randint(1, 400)))
    if kind == 8:
        return r.choice([b"null", b"[]", b'"str"', b"1e999999", b"{\"a\":1,\"a\":2}", b"\xef\xbb\xbf{}",
                         b"{\"desiredCount\": 2147483647" + b"0" * 400 + b"}", b"{\"x\": \"\\ud800\"}"])
    return json.dumps(params).encode() + r.choice([b"garbage", b"}", b"\x00", b" " * 10000])


def header_mutation(r, headers):
    """A copy of signed headers with one thing changed: every change but an extra unsigned
    header breaks the signature, and must be refused."""
    h = dict(headers)
    auth = h.get("Authorization", "")
    op = r.randrange(9)
    if op == 0:
        h.pop("Authorization", None)
    elif op == 1 and "Signature=" in auth:
        sig = auth.split("Signature=")[1]
        h["Authorization"] = auth + ", Signature=" + sig                 # duplicated component
    elif op == 2 and "Signature=" in auth:
        h["Authorization"] = auth[:-3] + r.choice(["000", "zzz", "", "\u00e9"])
    elif op == 3:
        h["X-Amz-Date"] = r.choice(["20991231T000000Z", "19700101T000000Z", "garbage", "", "2026-11-26"])
    elif op == 4:
        h["Authorization"] = auth.replace("us-east-1", r.choice(["eu-west-1", "", "us-east-1/us-east-1"]))
    elif op == 5:
        h["Content-Type"] = r.choice(["text/plain", "", "application/json; charset=utf-16", "x" * 3000])
    elif op == 6 and "X-Amz-Target" in h:
        h["X-Amz-Target"] = r.choice(["", ".", h["X-Amz-Target"] + "X", "Foo.Bar", "a" * 2000,
                                      h["X-Amz-Target"].split(".")[0] + ".__index"])
    elif op == 7:
        h["Authorization"] = r.choice(["AWS4-HMAC-SHA256", "AWS4-HMAC-SHA256 Credential=", "Basic abc",
                                       "AWS4-HMAC-SHA256 Credential=AKIDSIMULATOR/x/y/z/w, SignedHeaders=, Signature="])
    else:
        h["X-Fuzz"] = "v" * r.choice([10, 8000])
        return h, False
    return h, h != headers


def build(r, url):
    """(method, path, headers, body, protocol) of one mutated request."""
    pick = r.randrange(10)
    if pick < 5:
        svc, prefix, op, params = r.choice(JSON_OPS)
        proto = "json"
        ctype = "application/x-amz-json-1.0" if svc == "cloudwatch" else "application/x-amz-json-1.1"
        headers = {"Content-Type": ctype, "X-Amz-Target": prefix + op}
        body = json_body(r, params) if r.random() < 0.85 else json.dumps(params).encode()
        signing = {"elasticloadbalancing": "elasticloadbalancing"}.get(svc, svc)
        path = "/"
    elif pick < 8:
        signing, version, params = r.choice(QUERY_OPS)
        proto = "query"
        p = dict(params, Version=version)
        k = r.randrange(6)
        if k == 0 and p:
            p[r.choice(sorted(p))] = str(r.choice(EXTREMES))
        elif k == 1:
            p["Names.member.%d" % r.choice([1, 100000, 2147483647, 0, -1])] = "x"
        elif k == 2:
            p.pop("Action", None)
        elif k == 3:
            p["Action"] = r.choice(["", "Bogus", "DescribeRules" * 100, "__proto__"])
        from urllib.parse import urlencode
        body = urlencode(p).encode()
        if k == 4:
            body = body + b"&" + body                                      # every parameter twice
        elif k == 5:
            body = r.choice([b"%ZZ&&==", b"=" * 5000, b"Action=DescribeRules&RuleArns.member.1=%00%00"])
        headers = {"Content-Type": "application/x-www-form-urlencoded; charset=utf-8"}
        path = "/"
    else:
        method, path, payload = r.choice(CONTROL)
        if path == "/_sim/advance":
            payload = {"seconds": r.choice(ADVANCE + [60, 1, 0])}
        body = json.dumps(payload).encode() if payload is not None else b""
        if r.random() < 0.3:
            body = json_body(r, payload or {})
        if r.random() < 0.2:
            method = r.choice(["GET", "PUT", "DELETE", "PATCH"])
        return method, path + r.choice(["", "", "?x=1", "/../world", "%00"]), {"Content-Type": "application/json"}, body, "control"
    method = "POST"
    if r.random() < 0.08:
        method = r.choice(["GET", "PUT", "DELETE"])
    if r.random() < 0.1:
        path = r.choice(["/?Action=DescribeTargetGroups&Version=2015-12-01", "/%2e%2e/", "/" + "a" * 3000])
    full = url + path
    broken = False
    if r.random() < 0.8:
        headers = sign(signing, method, full, body, headers)
        if r.random() < 0.3:
            headers, broken = header_mutation(r, headers)
    elif r.random() < 0.5:
        headers, broken = header_mutation(r, sign(signing, method, full, body, headers))
    else:
        broken = True                                       # never signed
    return method, path, headers, body, proto + ("-unsigned" if broken else "")


def well_formed(proto, path, status, ctype, body):
    """None when the answer is a well-formed AWS (or control) answer, else what is wrong."""
    if not 100 <= status <= 599:
        return "status %d" % status
    if proto.endswith("-unsigned"):
        if status < 400:
            return "auth-accepted"
        proto = proto[:-len("-unsigned")]
    if path.startswith("/_sim"):
        try:
            json.loads(body or b"null")
            return None
        except ValueError:
            return "control answer is not JSON: %r" % body[:200]
    as_json = as_xml = None
    try:
        as_json = json.loads(body) if body.strip() else None
    except ValueError:
        pass
    if as_json is None:
        try:
            as_xml = ET.fromstring(body)
        except ET.ParseError:
            pass
    if status >= 400:
        if isinstance(as_json, dict) and (as_json.get("__type") or as_json.get("code")) and \
                (as_json.get("message") or as_json.get("Message")):
            return None
        if as_xml is not None:
            code = [e.text for e in as_xml.iter() if e.tag.split("}")[-1] == "Code"]
            msg = [e.text for e in as_xml.iter() if e.tag.split("}")[-1] == "Message"]
            if code and code[0] and msg and msg[0]:
                return None
        return "error %d without an AWS error body (code and message): %r" % (status, body[:300])
    if status >= 300:
        return "unexpected status %d" % status
    if proto == "json" and not isinstance(as_json, dict):
        return "JSON success answer that is not a JSON object: %r" % body[:200]
    if proto == "query" and as_xml is None:
        return "query success answer that is not XML: %r" % body[:200]
    return None


def cause(path, body):
    """What a request that knocked the server over asked for: a clock jump, a huge number."""
    if path.startswith("/_sim/advance"):
        return ":advance"
    if re.search(rb"\d{7,}|[eE]\+?\d{2,}", body or b""):
        return ":huge-number"
    return ""


def rss_mb(pid):
    try:
        with open("/proc/%d/status" % pid) as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) // 1024
    except OSError:
        pass
    return 0


class Fuzzer:
    name = NAME

    def __init__(self, tmp):
        self.tmp = tmp
        self.srv = None

    def close(self):
        if self.srv:
            self.srv.close()
            self.srv = None

    def _server(self, fresh):
        if self.srv is None or not self.srv.alive():
            self.close()
            self.srv = simserve.Server()
        elif fresh:
            self.srv.control("DELETE", "/_sim/faults", timeout=5)
            self.srv.control("POST", "/_sim/reset", timeout=10)
        return self.srv

    def _send(self, srv, method, path, headers, body):
        c = http.client.HTTPConnection("127.0.0.1", srv.port, timeout=ANSWER_TIMEOUT)
        try:
            c.putrequest(method, path, skip_accept_encoding=True)
            for k, v in headers.items():
                c.putheader(k, v)
            if "Content-Length" not in headers:
                c.putheader("Content-Length", str(len(body)))
            c.endheaders(body)
            resp = c.getresponse()
            return resp.status, resp.getheader("Content-Type", ""), resp.read()
        finally:
            c.close()

    def _responsive(self, srv):
        """The world moves on a little (what a request set up happens now) and still answers."""
        try:
            status, _ = srv.control("POST", "/_sim/advance", {"seconds": PROBE_ADVANCE}, timeout=ANSWER_TIMEOUT)
            return status == 200
        except (OSError, socket.timeout, http.client.HTTPException):
            return False

    def case(self, seed, n, keep=False):
        srv = self._server(fresh=(n % BATCH == 0))
        r = fuzzlib.rng(NAME, seed, n)
        method, path, headers, body, proto = build(r, srv.url)
        cid = "%s#%d" % (NAME, n)
        what = "%s %s %s %s" % (method, path[:60], headers.get("X-Amz-Target", ""), body[:120])
        problems = []
        t0 = time.monotonic()
        try:
            status, ctype, answer = self._send(srv, method, path, headers, body)
            bad = well_formed(proto, path, status, ctype, answer)
            if bad == "auth-accepted":
                dup = headers.get("Authorization", "").count("Signature=") > 1
                problems.append(("auth-accepted" + (":duplicated-signature" if dup else ""), "a request whose signature was broken got %d: %s"
                                 % (status, headers.get("Authorization", "(no Authorization)")[:300])))
            elif bad:
                problems.append(("malformed-answer", bad))
        except (socket.timeout, TimeoutError):
            problems.append(("unresponsive" + cause(path, body), "no answer within %.0f s" % ANSWER_TIMEOUT))
            self.close()
            return fuzzlib.Outcome(cid, problems, note="%.2fs %s" % (time.monotonic() - t0, what[:200]))
        except (OSError, http.client.HTTPException) as e:
            if srv.alive():
                problems.append(("no-answer", "connection ended without an answer: %s" % e))
        if not srv.alive():
            problems.append(("died", "sim serve exited %s; stderr: %s" % (srv.proc.poll(), srv.stderr()[-500:])))
        elif not self._responsive(srv):
            problems.append(("unresponsive", "POST /_sim/advance %ds got no answer within %.0f s after the request"
                             % (PROBE_ADVANCE, ANSWER_TIMEOUT)))
        else:
            mb = rss_mb(srv.proc.pid)
            if mb > RSS_LIMIT_MB:
                problems.append(("memory", "sim serve uses %d MB (limit %d)" % (mb, RSS_LIMIT_MB)))
        problems = [(sig + cause(path, body) if sig in ("unresponsive", "died", "memory") else sig, ev)
                    for sig, ev in problems]
        if any(sig.split(":")[0] in ("unresponsive", "died", "memory") for sig, _ in problems):
            self.close()                      # the next case gets a new server
        else:
            srv.control("DELETE", "/_sim/faults", timeout=ANSWER_TIMEOUT)
        return fuzzlib.Outcome(cid, problems, note="%.2fs %s" % (time.monotonic() - t0, what[:200]))
