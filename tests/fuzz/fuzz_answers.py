"""Fuzzer (b): mutated AWS answers to ecsplay's client.

A loopback proxy sits between ecsplay and a `sim serve`: it forwards each request, takes the
simulator's real answer and returns a mutated one (truncated, byte-flipped or garbage bodies,
JSON values of the wrong type, broken or hostile XML, wrong or missing content types, odd or
invalid statuses, lying Content-Length, broken chunked or gzip encodings, no answer at all).
Each case runs one call:  ecsplay --endpoint-url <proxy> -e '<one ecs/elbv2/cloudwatch/
codedeploy/sts call>'  and the chunk reports the error it caught before re-raising it. Passing:
  - no crash (signal, sanitizer report), no hang, no Lua traceback through ecsplay's files;
  - a call that succeeded exits 0; one that failed exits 1 with an error that has a code (a
    name, not a bare number) and a reason, and the last `ecsplay:` line names that code.
"""
import gzip
import http.client
import json
import os
import re
import socket
import sys
import threading

import fuzzlib

sys.path.insert(0, os.path.join(fuzzlib.ROOT, "tests", "py"))
import simserve  # noqa: E402

NAME = "answers"
CALLS = [
    'ecs.describe_services{ cluster = "production", services = { "api" } }',
    'ecs.list_services{ cluster = "production" }',
    'ecs.describe_task_definition{ taskDefinition = "api:1" }',
    'ecs.list_clusters{}',
    'elbv2.describe_target_groups{}',
    'elbv2.describe_load_balancers{}',
    'cloudwatch.describe_alarms{}',
    'cloudwatch.get_metric_data{ StartTime = 1795686000, EndTime = 1795687200, MetricDataQueries = { { Id = "m1", '
    'MetricStat = { Metric = { Namespace = "AWS/ApplicationELB", MetricName = "RequestCount" }, Period = 60, '
    'Stat = "Sum" } } } }',
    'codedeploy.list_applications{}',
    'codedeploy.get_deployment_group{ applicationName = "app-deploy", deploymentGroupName = "app-dg" }',
    'sts.get_caller_identity{}',
    '(function() local n = 0 for page in ecs.pages.list_services{ cluster = "production", maxResults = 1 } do '
    'n = n + 1 if n > 50 then error("more than 50 pages") end end return { pages = n } end)()',
]
CHUNK = r'''
local ecs, elbv2 = require "ecsplay.ecs", require "ecsplay.elbv2"
local cloudwatch, codedeploy, sts = require "ecsplay.cloudwatch", require "ecsplay.codedeploy", require "ecsplay.sts"
local ok, e = pcall(function() return %s end)
if ok then print("FUZZOK " .. type(e)) return end
local t = type(e) == "table" and e or { message = tostring(e) }
print("FUZZERR " .. require("ecsplay.json").encode({ kind = t.kind, code = t.code,
  message = type(t.message) == "string" and t.message or tostring(t.message), lua_type = type(e) }))
error(e, 0)
'''
JSON_SWAPS = [None, "", "x", 0, -1, 2 ** 63, 1e308, True, [], {}, [None], {"a": None}, "\u0000", "\ud83d\ude00" * 3]


def swap_json(r, v, depth=0):
    if isinstance(v, dict) and v and depth < 6:
        k = r.choice(sorted(v))
        out = dict(v)
        out[k] = swap_json(r, v[k], depth + 1) if r.random() < 0.6 else r.choice(JSON_SWAPS)
        return out
    if isinstance(v, list) and v and depth < 6:
        out = list(v)
        i = r.randrange(len(out))
        out[i] = swap_json(r, out[i], depth + 1) if r.random() < 0.6 else r.choice(JSON_SWAPS)
        return out
    return r.choice(JSON_SWAPS)


def mutate_body(r, body, ctype):
    k = r.randrange(12)
    if k == 0:
        return body[:r.randint(0, max(0, len(body) - 1))]
    if k == 1:
        b = bytearray(body)
        for _ in range(r.randint(1, 5)):
            if b:
                b[r.randrange(len(b))] = r.randrange(256)
        return bytes(b)
    if k == 2:
        return b""
    if k == 3:
        return bytes(r.randrange(256) for _ in range(r.randint(1, 300)))
    if k == 4 and "json" in ctype:
        try:
            return json.dumps(swap_json(r, json.loads(body))).encode()
        except ValueError:
            return body
    if k == 5:
        return r.choice([b"null", b"[]", b"1", b'"s"', b"{}", b"{\"__type\": 5}", b"{\"__type\":\"\",\"message\":null}",
                         b"{\"__type\": \"com.amazon#\"}", b"<html><body>502 Bad Gateway</body></html>"])
    if k == 6:
        n = r.choice([100, 5000, 100000])
        return (b"[" * n + b"]" * n) if r.random() < 0.5 else (b"<a>" * n + b"</a>" * n)
    if k == 7:
        return (b'<?xml version="1.0"?><!DOCTYPE l [<!ENTITY a "aaaaaaaaaa"><!ENTITY b "&a;&a;&a;&a;&a;&a;&a;&a;">'
                b'<!ENTITY c "&b;&b;&b;&b;&b;&b;&b;&b;"><!ENTITY d "&c;&c;&c;&c;&c;&c;&c;&c;">]><E>&d;&d;&d;</E>')
    if k == 8:
        return body + body
    if k == 9 and b"<" in body:
        return re.sub(rb"</[A-Za-z]+>", b"", body, count=r.randint(1, 3))
    if k == 10:
        return body.replace(b'"', b"'", r.randint(1, 4)) if b'"' in body else body + b"\xff\xfe"
    return body + b"x" * r.choice([1, 1 << 16, 3 << 20])


def plan(r):
    """What this case does to every answer: {status?, ctype?, body?, length?, chunked?, gzip?, raw?}."""
    p = {}
    k = r.randrange(10)
    if k < 5:
        p["body"] = True
    elif k == 5:
        p["status"] = r.choice([200, 204, 301, 302, 304, 400, 401, 403, 404, 413, 418, 429, 500, 502, 503, 504, 599])
        p["body"] = r.random() < 0.5
    elif k == 6:
        p["ctype"] = r.choice(["", "text/html", "application/xml", "application/json", "text/plain; charset=x",
                               "application/x-amz-json-1.1", "x" * 500])
        p["body"] = r.random() < 0.3
    elif k == 7:
        p["length"] = r.choice(["more", "less", "garbage", "negative", "none"])
    elif k == 8:
        p[r.choice(["chunked", "gzip"])] = True
    else:
        p["raw"] = r.choice([b"", b"HTTP/1.1\r\n\r\n", b"HTTP/1.1 999 Nope\r\nContent-Length: 0\r\n\r\n",
                             b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n", b"garbage\r\n\r\n",
                             b"HTTP/1.1 100 Continue\r\n\r\n", b"HTTP/1.1 200 OK\r\n" + b"X: y\r\n" * 5000 + b"\r\n",
                             b"HTTP/1.0 200 OK\r\n\r\n{}", "HTTP/1.1 200 \u00e9\r\n\r\n".encode()])
    if r.random() < 0.15:
        p["drop_request_id"] = True
    return p


def render(r, p, status, headers, body):
    if "raw" in p:
        return p["raw"]
    ctype = headers.get("content-type", "")
    if p.get("body"):
        body = mutate_body(r, body, ctype)
    status = p.get("status", status)
    if "ctype" in p:
        ctype = p["ctype"]
    hdrs = [("Content-Type", ctype)] if ctype else []
    for k, v in headers.items():
        if k.startswith("x-amzn") and not p.get("drop_request_id"):
            hdrs.append((k, v))
    if p.get("gzip"):
        body = gzip.compress(body)[:-r.randint(0, 8)] if r.random() < 0.5 else body
        hdrs.append(("Content-Encoding", "gzip"))
    head = "HTTP/1.1 %d %s\r\n" % (status, http.client.responses.get(status, "Fuzzed"))
    if p.get("chunked"):
        hdrs.append(("Transfer-Encoding", "chunked"))
        chunks = b"%x\r\n%s\r\n" % (len(body), body) + r.choice([b"0\r\n\r\n", b"zz\r\n", b"", b"5\r\nab"])
        payload = chunks
    else:
        n = len(body)
        lk = p.get("length")
        length = {"more": str(n + 100), "less": str(max(0, n - 5)), "garbage": "12abc",
                  "negative": "-1"}.get(lk, str(n))
        if lk != "none":
            hdrs.append(("Content-Length", length))
        payload = body
    hdrs.append(("Connection", "close"))
    return (head + "".join("%s: %s\r\n" % kv for kv in hdrs) + "\r\n").encode("utf-8", "replace") + payload


class Proxy:
    """127.0.0.1 proxy: forwards to the simulator, answers with render(plan) of its answer."""

    def __init__(self, upstream_port):
        self.up = upstream_port
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.port = self.sock.getsockname()[1]
        self.rng = self.plan = None
        self.stop = False
        threading.Thread(target=self._loop, daemon=True).start()

    def close(self):
        self.stop = True
        try:
            self.sock.close()
        except OSError:
            pass

    def _loop(self):
        while not self.stop:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            threading.Thread(target=self._serve, args=(conn,), daemon=True).start()

    def _serve(self, conn):
        conn.settimeout(10)
        try:
            data = b""
            while b"\r\n\r\n" not in data and len(data) < 1 << 20:
                chunk = conn.recv(65536)
                if not chunk:
                    return
                data += chunk
            head, body = data.split(b"\r\n\r\n", 1)
            lines = head.decode("latin-1").split("\r\n")
            method, path = lines[0].split(" ")[:2]
            headers = dict(ln.split(": ", 1) for ln in lines[1:] if ": " in ln)
            n = int(next((v for k, v in headers.items() if k.lower() == "content-length"), "0"))
            while len(body) < n:
                chunk = conn.recv(65536)
                if not chunk:
                    break
                body += chunk
            up = http.client.HTTPConnection("127.0.0.1", self.up, timeout=10)
            up.request(method, path, body=body, headers=headers)
            resp = up.getresponse()
            answer = resp.read()
            rh = {k.lower(): v for k, v in resp.getheaders()}
            up.close()
            conn.sendall(render(self.rng, self.plan, resp.status, rh, answer))
        except (OSError, ValueError, http.client.HTTPException):
            pass
        finally:
            try:
                conn.close()
            except OSError:
                pass


CODE = re.compile(r"^[A-Za-z][A-Za-z0-9_.:-]*$")


def judge(p):
    problems = fuzzlib.crash_evidence(p)
    if re.search(r"^FUZZOK", p.out, re.M):
        if p.rc != 0:
            problems.append(("exit-after-success", "the call succeeded but ecsplay exited %s" % p.rc))
        return problems
    m = re.search(r"^FUZZERR (.*)$", p.out, re.M)
    if not m:
        if not problems:
            problems.append(("no-error-report", "exit %s: %s" % (p.rc, fuzzlib.excerpt(p.text, 0))))
        return problems
    err = json.loads(m.group(1))
    code, msg = err.get("code"), (err.get("message") or "").strip()
    if err.get("lua_type") != "table":
        problems.append(fuzzlib.plain_lua_error(err))
    elif not isinstance(code, str) or not CODE.match(code):
        problems.append(("error-without-code", "error code %r: %s" % (code, m.group(1)[:300])))
    elif not msg or msg in (code, str(err.get("status"))) or re.fullmatch(r"[\d\s()]+", msg):
        problems.append(("error-without-reason", "error %s without a reason: %s" % (code, m.group(1)[:300])))
    last = fuzzlib.last_error_line(p.text)
    if code and isinstance(code, str) and code not in last and not problems:
        problems.append(("message-without-code", "the last line does not name %s: %s" % (code, last[:300])))
    if p.rc != 1 and not any(s in ("hang", "signal") for s, _ in problems):
        problems.append(("exit", "a failed call exited %s, want 1" % p.rc))
    return problems


class Fuzzer:
    name = NAME

    def __init__(self, tmp):
        self.srv = simserve.Server(no_auth=True)
        self.proxy = Proxy(self.srv.port)

    def close(self):
        self.proxy.close()
        self.srv.close()

    def case(self, seed, n, keep=False):
        r = fuzzlib.rng(NAME, seed, n)
        call = r.choice(CALLS)
        self.proxy.plan = plan(r)
        self.proxy.rng = fuzzlib.rng(NAME + "-answer", seed, n)
        url = "http://127.0.0.1:%d" % self.proxy.port
        env = fuzzlib.base_env({"AWS_MAX_ATTEMPTS": "2" if r.random() < 0.1 else "1"})
        p = fuzzlib.run(["--endpoint-url", url, "--region", "us-east-1", "-e", CHUNK % call], env=env, timeout=30)
        return fuzzlib.Outcome("%s#%d" % (NAME, n), judge(p),
                               note="%s; plan %s; exit %s; %s" % (call[:60], json.dumps(self.proxy.plan, default=repr)[:160],
                                                                 p.rc, fuzzlib.last_error_line(p.text)[:200]))
