#!/usr/bin/env python3
"""A loopback stand-in for AWS endpoints, for ecsplay's client tests (python3 stdlib only).

  aws_stub.py --port-file FILE [--lifetime 120] [--watch-stdin]

Listens on 127.0.0.1 (a free port), writes "PORT PID" to FILE (atomically) once ready.
Exits after --lifetime seconds, and with --watch-stdin as soon as its stdin reaches EOF
(the test process died or closed the pipe), so it never outlives a test run.

Control paths (JSON in and out):
  POST /__stub/script   {"responses": [R, ...]}  queue scripted responses (FIFO)
  GET  /__stub/requests  every request received (not control ones), in order:
                         {method, path, query, headers{lower-case}, body}
  POST /__stub/reset     forget requests, scripts, counters and config
  POST /__stub/config    {"ttl": seconds, "role": name, "container_token": s, "imds": false,
                          "sts_error": {"code":..,"message":..,"status":..}}
A scripted response R: {"status": 200, "headers": {...}, "body": "...", "fill": N (body of N
bytes), "delay": seconds, "action": "reset" (TCP RST, no answer) | "close" (close, no answer),
"times": n (serve it n times), "match": substring of "METHOD path body" it applies to}.

GET /_sim/clock (ecsplay asking whether this is `sim serve`, once a run): 404, unrecorded.

Built-in stand-ins, used when no scripted response matches:
  STS        POST / with Action=AssumeRole / AssumeRoleWithWebIdentity / GetCallerIdentity
  IMDSv2     PUT /latest/api/token (needs X-aws-ec2-metadata-token-ttl-seconds), then
             GET /latest/meta-data/iam/security-credentials/[ROLE] (needs the token)
  container  GET /creds... (checks Authorization when container_token is configured)
Each minted credential is new: AccessKeyId ASIASTUB<n>, SecretAccessKey stubSECRET<n>...,
SessionToken stubTOKEN<n>..., Expiration now + ttl (default 3600 s).
"""
import argparse
import json
import os
import socket
import struct
import sys
import threading
import time
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

LOCK = threading.Lock()
STATE = {}


def reset():
    with LOCK:
        STATE.clear()
        STATE.update(requests=[], script=[], counter=0, tokens=set(), config={})


reset()


def iso(t):
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(t))


def mint():
    with LOCK:
        STATE["counter"] += 1
        n = STATE["counter"]
        ttl = STATE["config"].get("ttl", 3600)
    return {
        "AccessKeyId": "ASIASTUB%08d" % n,
        "SecretAccessKey": "stubSECRET%04dwJalrXUtnFEMIK7MDENGbPxRfiCY" % n,
        "SessionToken": "stubTOKEN%04dIQoJb3JpZ2luX2VjEMr//////////" % n,
        "Expiration": iso(time.time() + ttl),
    }


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "aws-stub/1"

    def log_message(self, fmt, *args):  # quiet
        pass

    def _body(self):
        n = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(n) if n else b""

    def _send(self, status, body=b"", headers=None, ctype=None):
        if isinstance(body, str):
            body = body.encode("utf-8")
        self.send_response(status)
        hdrs = dict(headers or {})
        if ctype and not any(k.lower() == "content-type" for k in hdrs):
            hdrs["Content-Type"] = ctype
        if not any(k.lower() == "x-amzn-requestid" for k in hdrs):
            hdrs["x-amzn-RequestId"] = "stub-%d" % len(STATE["requests"])
        for k, v in hdrs.items():
            self.send_header(k, str(v))
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def _json(self, obj, status=200):
        self._send(status, json.dumps(obj), ctype="application/json")

    def handle_any(self):
        body = self._body()
        parsed = urllib.parse.urlsplit(self.path)
        if parsed.path.startswith("/__stub/"):
            return self.control(parsed.path, body)
        if parsed.path.startswith("/_sim/"):
            return self.not_a_simulator()
        text = body.decode("latin-1")
        with LOCK:
            STATE["requests"].append({
                "method": self.command, "path": parsed.path, "query": parsed.query,
                "headers": {k.lower(): v for k, v in self.headers.items()}, "body": text,
            })
            chosen = None
            key = "%s %s %s" % (self.command, parsed.path, text)
            for r in STATE["script"]:
                if r.get("match") and r["match"] not in key:
                    continue
                chosen = r
                r["times"] = r.get("times", 1) - 1
                if r["times"] <= 0:
                    STATE["script"].remove(r)
                break
        if chosen is not None:
            return self.scripted(chosen)
        return self.builtin(parsed, text)

    def not_a_simulator(self):
        """ecsplay asks a loopback endpoint once a run whether it is `sim serve` (GET /_sim/clock,
        to follow its clock): answered as any endpoint that is not one, unrecorded, no script used."""
        self._send(404, b"not a simulator", ctype="text/plain")

    def scripted(self, r):
        if r.get("delay"):
            time.sleep(r["delay"])
        action = r.get("action")
        if action == "reset":
            self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            self.connection.close()
            self.close_connection = True
            return
        if action == "close":
            self.close_connection = True
            self.connection.shutdown(socket.SHUT_RDWR)
            return
        body = r.get("body", "")
        if r.get("fill"):
            body = "x" * int(r["fill"])
        self._send(int(r.get("status", 200)), body, r.get("headers"))

    def control(self, path, body):
        if path == "/__stub/requests":
            with LOCK:
                return self._json(STATE["requests"])
        if path == "/__stub/reset":
            reset()
            return self._json({"ok": True})
        data = json.loads(body.decode("utf-8") or "{}")
        if path == "/__stub/script":
            with LOCK:
                STATE["script"].extend(data.get("responses", []))
            return self._json({"ok": True})
        if path == "/__stub/config":
            with LOCK:
                STATE["config"].update(data)
            return self._json({"ok": True})
        return self._json({"error": "unknown control path"}, 404)

    def builtin(self, parsed, text):
        cfg = STATE["config"]
        path = parsed.path
        if path == "/latest/api/token" and cfg.get("imds", True):
            if self.command != "PUT" or not self.headers.get("X-aws-ec2-metadata-token-ttl-seconds"):
                return self._send(400, "token request must be a PUT with a TTL header")
            tok = "IMDSTOKEN-%d" % len(STATE["requests"])
            with LOCK:
                STATE["tokens"].add(tok)
            return self._send(200, tok, ctype="text/plain")
        prefix = "/latest/meta-data/iam/security-credentials/"
        if path.startswith(prefix) and cfg.get("imds", True):
            if self.headers.get("X-aws-ec2-metadata-token") not in STATE["tokens"]:
                return self._send(401, "missing or bad token")
            role = cfg.get("role", "stub-role")
            rest = path[len(prefix):]
            if rest == "":
                return self._send(200, role, ctype="text/plain")
            if rest != role:
                return self._send(404, "no such role")
            c = mint()
            c.update(Code="Success", Type="AWS-HMAC", LastUpdated=iso(time.time()))
            c["Token"] = c.pop("SessionToken")
            return self._json(c)
        if path.startswith("/creds"):
            want = cfg.get("container_token")
            if want and self.headers.get("Authorization") != want:
                return self._json({"message": "bad authorization"}, 403)
            c = mint()
            c["Token"] = c.pop("SessionToken")
            c["RoleArn"] = "arn:aws:iam::123456789012:role/stub"
            return self._json(c)
        form = urllib.parse.parse_qs(text)
        action = (form.get("Action") or [None])[0]
        if self.command == "POST" and action in ("AssumeRole", "AssumeRoleWithWebIdentity",
                                                 "GetCallerIdentity"):
            return self.sts(action, form)
        return self._send(404, json.dumps({"__type": "StubNoScript",
                                           "message": "no scripted response for %s %s" % (self.command, path)}),
                          ctype="application/x-amz-json-1.1")

    def sts(self, action, form):
        ns = "https://sts.amazonaws.com/doc/2011-06-15/"
        err = STATE["config"].get("sts_error")
        if err:
            return self._send(err.get("status", 403),
                              '<ErrorResponse xmlns="%s"><Error><Type>Sender</Type><Code>%s</Code>'
                              '<Message>%s</Message></Error><RequestId>sts-err-1</RequestId></ErrorResponse>'
                              % (ns, err["code"], err.get("message", "")), ctype="text/xml")
        if action == "GetCallerIdentity":
            return self._send(200, '<GetCallerIdentityResponse xmlns="%s"><GetCallerIdentityResult>'
                              '<Arn>arn:aws:iam::123456789012:user/stub</Arn><UserId>AIDA</UserId>'
                              '<Account>123456789012</Account></GetCallerIdentityResult><ResponseMetadata>'
                              '<RequestId>sts-1</RequestId></ResponseMetadata></GetCallerIdentityResponse>'
                              % ns, ctype="text/xml")
        c = mint()
        return self._send(200, (
            '<{a}Response xmlns="{ns}"><{a}Result><Credentials>'
            '<AccessKeyId>{AccessKeyId}</AccessKeyId><SecretAccessKey>{SecretAccessKey}</SecretAccessKey>'
            '<SessionToken>{SessionToken}</SessionToken><Expiration>{Expiration}</Expiration>'
            '</Credentials><AssumedRoleUser><Arn>arn:aws:sts::123456789012:assumed-role/stub/s</Arn>'
            '<AssumedRoleId>AROA:s</AssumedRoleId></AssumedRoleUser></{a}Result>'
            '<ResponseMetadata><RequestId>sts-2</RequestId></ResponseMetadata></{a}Response>'
        ).format(a=action, ns=ns, **c), ctype="text/xml")

    do_GET = do_POST = do_PUT = do_DELETE = do_HEAD = handle_any


class Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True

    def handle_error(self, request, client_address):  # resets and hangs are expected
        pass


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--port-file", required=True)
    ap.add_argument("--lifetime", type=float, default=120.0)
    ap.add_argument("--watch-stdin", action="store_true")
    args = ap.parse_args()
    srv = Server(("127.0.0.1", 0), Handler)
    threading.Timer(args.lifetime, lambda: os._exit(0)).start()
    if args.watch_stdin:
        def watch():
            try:
                while sys.stdin.buffer.read(4096):
                    pass
            finally:
                os._exit(0)
        threading.Thread(target=watch, daemon=True).start()
    tmp = args.port_file + ".tmp"
    with open(tmp, "w") as f:
        f.write("%d %d\n" % (srv.server_address[1], os.getpid()))
    os.rename(tmp, args.port_file)
    try:
        srv.serve_forever(poll_interval=0.2)
    except KeyboardInterrupt:
        pass
    os._exit(0)


if __name__ == "__main__":
    main()
