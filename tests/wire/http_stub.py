#!/usr/bin/env python3
"""Loopback HTTP/1.1 test server for the ecsplay HTTP client tests (stdlib only).

Usage: http_stub.py [--port N] [--host 127.0.0.1]
Prints the bound port on the first line of stdout, then serves until GET /quit.

Behaviours (chosen by path; query parameters configure them):
  /echo                  200, JSON {"method","path","headers":{lower-name: value},"body"}
  /status?code=N&body=S&h=Name:Value&h=...   answer with that status, headers and body
  /dup                   duplicate headers (X-Dup twice, Set-Cookie twice)
  /hold?ms=N             hold the request N ms before answering; counts in-flight requests
  /hold?until=K          hold until K requests have been in flight at once since the last
                         /reset_stats (or 10 s), then answer
  /stats                 JSON {"requests","connections","inflight","max_inflight"}
  /reset_stats           zero the counters
  /reset                 read the request, then reset the TCP connection (RST, no answer)
  /never                 read the request and never answer (until /quit)
  /huge?bytes=N&chunked=1   N bytes of 'x'; chunked=1 omits Content-Length (close-delimited)
  /slow?bytes=N&chunk=K&delay_ms=D   body sent K bytes at a time with D ms pauses
  /quit                  200 then shut down
"""
import argparse
import json
import socket
import struct
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

LOCK = threading.Lock()
STATS = {"requests": 0, "connections": 0, "inflight": 0, "max_inflight": 0}
QUIT = threading.Event()
COND = threading.Condition(LOCK)


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, so connection reuse is observable

    def log_message(self, fmt, *args):  # quiet: tests read stdout/stderr
        pass

    def setup(self):
        super().setup()
        with LOCK:
            STATS["connections"] += 1

    def _body(self):
        n = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(n) if n > 0 else b""

    def _send(self, code, body=b"", headers=(), length=True):
        self.send_response(code)
        for k, v in headers:
            self.send_header(k, v)
        if length:
            self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if body and self.command != "HEAD":
            self.wfile.write(body)

    def _dispatch(self):
        with LOCK:
            STATS["requests"] += 1
        url = urlsplit(self.path)
        q = parse_qs(url.query, keep_blank_values=True)
        arg = lambda k, d=None: q.get(k, [d])[0]
        body = self._body()
        p = url.path
        if p == "/echo":
            out = {
                "method": self.command,
                "path": self.path,
                "headers": {k.lower(): v for k, v in self.headers.items()},
                "body": body.decode("latin-1"),
            }
            self._send(200, json.dumps(out).encode(), [("Content-Type", "application/json")])
        elif p == "/status":
            hs = [tuple(s.split(":", 1)) for s in q.get("h", [])]
            self._send(int(arg("code", "200")), arg("body", "").encode(), [(k, v.strip()) for k, v in hs])
        elif p == "/dup":
            self._send(200, b"ok", [("X-Dup", "a"), ("X-Dup", "b"), ("Set-Cookie", "c=1"), ("Set-Cookie", "d=2")])
        elif p == "/hold":
            with LOCK:
                STATS["inflight"] += 1
                STATS["max_inflight"] = max(STATS["max_inflight"], STATS["inflight"])
                COND.notify_all()
            try:
                until = int(arg("until", "0"))
                if until > 0:
                    deadline = time.monotonic() + 10
                    with LOCK:
                        while STATS["max_inflight"] < until and not QUIT.is_set():
                            left = deadline - time.monotonic()
                            if left <= 0:
                                break
                            COND.wait(min(left, 0.1))
                else:
                    QUIT.wait(int(arg("ms", "500")) / 1000.0)
            finally:
                with LOCK:
                    STATS["inflight"] -= 1
            self._send(200, b"held")
        elif p == "/stats":
            with LOCK:
                snap = dict(STATS)
            self._send(200, json.dumps(snap).encode(), [("Content-Type", "application/json")])
        elif p == "/reset_stats":
            with LOCK:
                for k in ("requests", "connections", "max_inflight"):
                    STATS[k] = 0
            self._send(200, b"ok")
        elif p == "/reset":
            # SO_LINGER with zero timeout makes close() send RST instead of FIN.
            self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            self.close_connection = True
            self.connection.close()
        elif p == "/never":
            QUIT.wait()
            self.close_connection = True
        elif p == "/huge":
            n = int(arg("bytes", "1048576"))
            chunked = arg("chunked") == "1"
            self.send_response(200)
            if chunked:
                self.send_header("Connection", "close")
                self.close_connection = True
            else:
                self.send_header("Content-Length", str(n))
            self.end_headers()
            block = b"x" * 65536
            try:
                while n > 0:
                    k = min(n, len(block))
                    self.wfile.write(block[:k])
                    n -= k
            except OSError:
                self.close_connection = True
        elif p == "/slow":
            n = int(arg("bytes", "100"))
            chunk = max(1, int(arg("chunk", "10")))
            delay = int(arg("delay_ms", "50")) / 1000.0
            self.send_response(200)
            self.send_header("Content-Length", str(n))
            self.end_headers()
            try:
                while n > 0 and not QUIT.is_set():
                    k = min(n, chunk)
                    self.wfile.write(b"s" * k)
                    self.wfile.flush()
                    n -= k
                    time.sleep(delay)
            except OSError:
                self.close_connection = True
        elif p == "/quit":
            self._send(200, b"bye", [("Connection", "close")])
            self.close_connection = True
            QUIT.set()
            threading.Thread(target=self.server.shutdown, daemon=True).start()
        else:
            self._send(404, b"no such behaviour: " + p.encode())

    do_GET = do_POST = do_PUT = do_DELETE = do_PATCH = do_HEAD = _dispatch


class Server(ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False
    request_queue_size = 256

    def handle_error(self, request, client_address):
        pass  # clients resetting or abandoning connections is part of the tests


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--port", type=int, default=0)
    ap.add_argument("--host", default="127.0.0.1")
    a = ap.parse_args()
    srv = Server((a.host, a.port), Handler)
    print(srv.server_address[1], flush=True)
    try:
        srv.serve_forever(poll_interval=0.05)
    except KeyboardInterrupt:
        pass
    srv.server_close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
