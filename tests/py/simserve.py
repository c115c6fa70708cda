"""Helpers for driving `ecsplay sim serve` from real AWS clients (Debian's boto3 and AWS CLI).

    srv = Server(scenario="tests/scenarios/x.lua" | None, speed=None, no_auth=False)
    srv.url / srv.port / srv.proc
    srv.client("ecs")                     boto3 client (endpoint_url, us-east-1, simulator keys)
    srv.aws("ecs", "list-clusters")       the AWS CLI, JSON output parsed; raises CliError on rc != 0
    srv.control("GET", "/_sim/world")     the simulator's own endpoints → (status, parsed JSON)
    srv.advance(seconds) / srv.now() / srv.world()
    with srv.ticking(step=15, every=0.05): ...   simulated time moves while a waiter polls
    srv.stop(signal.SIGTERM) → exit status; srv.close() kills it (also done at exit)

    error_of(fn, *a, **kw) → (code, http status, message) of the botocore ClientError it raises
    run_tests()   runs the calling module's unittest tests and prints `N passed, N failed[, N skipped]`

Only 127.0.0.1 is used; the server always dies with the test process (atexit, SIGTERM handler
and PR_SET_PDEATHSIG).
"""
import atexit
import contextlib
import ctypes
import json
import os
import queue
import re
import signal
import subprocess
import sys
import tempfile
import threading
import time
import unittest
import urllib.error
import urllib.request

import boto3
import botocore.config
import botocore.exceptions

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
ECSPLAY = os.environ.get("ECSPLAY_BIN") or os.path.join(ROOT, "ecsplay")  # override: another build
# the binary that runs playbooks (ECSPLAY_BIN may be a stand-in that can only serve)
ECSPLAY_RUN = os.environ.get("ECSPLAY_RUN_BIN") or os.path.join(ROOT, "ecsplay")
SCENARIOS = os.path.join(ROOT, "tests", "scenarios")
AWS_CLI = "/usr/bin/aws"
REGION = "us-east-1"
ACCOUNT = "123456789012"
PREFIX = "listening on http://127.0.0.1:"


def _default_keys():
    """The simulator's default key pair, read from the source of truth (sim/auth.lua)."""
    path = os.path.join(ROOT, "stdlib-lua", "ecsplay", "sim", "auth.lua")
    try:
        with open(path) as f:
            src = f.read()
        m = re.search(r'DEFAULT_KEYS\s*=\s*\{\s*([A-Z0-9]+)\s*=\s*"([^"]+)"', src)
        if m:
            return m.group(1), m.group(2)
    except OSError:
        pass
    return "AKIDSIMULATOR", "simulator-secret-key"


AK, SK = _default_keys()

_servers = []


def _kill_all():
    for s in list(_servers):
        s.close()


atexit.register(_kill_all)


def _on_sigterm(signum, frame):  # run.sh's timeout: still take the servers down
    _kill_all()
    sys.exit(128 + signum)


signal.signal(signal.SIGTERM, _on_sigterm)


def _die_with_parent():
    # Linux: the server gets SIGKILL if this test process dies without cleaning up.
    try:
        libc = ctypes.CDLL("libc.so.6", use_errno=True)
        libc.prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except Exception:  # noqa: BLE001 - best effort only
        pass


def clean_env(ak=AK, sk=SK):
    """An environment with only the simulator's credentials: no ~/.aws files, no pager."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    env.update({
        "AWS_ACCESS_KEY_ID": ak, "AWS_SECRET_ACCESS_KEY": sk, "AWS_DEFAULT_REGION": REGION,
        "AWS_REGION": REGION, "AWS_PAGER": "", "AWS_CONFIG_FILE": "/nonexistent/ecsplay-test-config",
        "AWS_SHARED_CREDENTIALS_FILE": "/nonexistent/ecsplay-test-credentials",
        "AWS_EC2_METADATA_DISABLED": "true",
    })
    return env


class ServerStartError(AssertionError):
    pass


class CliError(AssertionError):
    def __init__(self, args, rc, stdout, stderr):
        super().__init__("aws %s exited %d\nstdout: %s\nstderr: %s" % (" ".join(args), rc, stdout, stderr))
        self.rc, self.stdout, self.stderr = rc, stdout, stderr


class Server:
    def __init__(self, scenario=None, speed=None, no_auth=False, args=(), startup_timeout=30):
        if not os.access(ECSPLAY, os.X_OK):
            raise ServerStartError("%s is not built (run make in %s)" % (ECSPLAY, ROOT))
        cmd = [ECSPLAY, "sim", "serve", "--port", "0"]
        if scenario:
            if not os.path.isabs(scenario):
                scenario = os.path.join(ROOT, scenario)
            cmd += ["--scenario", scenario]
        if speed is not None:
            cmd += ["--speed", str(speed)]
        if no_auth:
            cmd.append("--no-auth")
        cmd += list(args)
        self.cmd = cmd
        self.errfile = tempfile.TemporaryFile(mode="w+")
        self.proc = subprocess.Popen(cmd, cwd=ROOT, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                     stderr=self.errfile, text=True, env=clean_env(),
                                     preexec_fn=_die_with_parent)
        _servers.append(self)
        self.lines = queue.Queue()
        t = threading.Thread(target=self._drain, daemon=True)
        t.start()
        try:
            first = self.lines.get(timeout=startup_timeout)
        except queue.Empty:
            first = None
        if not first or not first.startswith(PREFIX):
            self.close()
            raise ServerStartError("`%s` did not print %r first (got %r); stderr:\n%s"
                                   % (" ".join(cmd), PREFIX + "N", first, self.stderr()))
        self.first_line = first.rstrip("\n")
        self.port = int(self.first_line[len(PREFIX):])
        self.url = "http://127.0.0.1:%d" % self.port
        self.exchanges = []

    def _drain(self):
        for line in self.proc.stdout:
            self.lines.put(line)
        self.lines.put(None)

    def stderr(self):
        try:
            self.errfile.flush()
            self.errfile.seek(0)
            return self.errfile.read()
        except (OSError, ValueError):
            return ""

    def alive(self):
        return self.proc.poll() is None

    # --- clients -------------------------------------------------------------------------
    def client(self, service, ak=AK, sk=SK, attempts=1, timeout=30):
        cfg = botocore.config.Config(retries={"max_attempts": attempts, "mode": "standard"},
                                     connect_timeout=10, read_timeout=timeout)
        c = boto3.session.Session().client(service, region_name=REGION, endpoint_url=self.url,
                                           aws_access_key_id=ak, aws_secret_access_key=sk, config=cfg)
        # Keep the last raw exchange of each client, so a failing assertion can show it.
        c.meta.events.register("before-send", lambda request, **kw: self._record_request(c, request))
        c.meta.events.register("after-call", lambda http_response, **kw: self._record_response(c, http_response))
        return c

    def _record_request(self, c, request):
        body = request.body
        if isinstance(body, bytes):
            body = body.decode("utf-8", "replace")
        c._ecsplay_last = {"request": "%s %s\n%s" % (request.method, request.url, body), "response": None}

    def _record_response(self, c, http_response):
        last = getattr(c, "_ecsplay_last", None)
        if last is not None and http_response is not None:
            last["response"] = "%s %s" % (http_response.status_code, http_response.text[:2000])

    @staticmethod
    def last(c):
        """The last request/response a client made, as text (for assertion messages)."""
        last = getattr(c, "_ecsplay_last", None)
        if not last:
            return "(no request recorded)"
        return "request: %s\nresponse: %s" % (last["request"], last["response"])

    def aws(self, *args, ak=AK, sk=SK, check=True, timeout=60):
        """Runs `aws ARGS --endpoint-url URL --output json`; returns parsed JSON (or {} if empty).
        check=False: returns (rc, stdout, stderr) instead."""
        cmd = [AWS_CLI] + list(args) + ["--endpoint-url", self.url, "--output", "json",
                                        "--no-cli-pager"]
        p = subprocess.run(cmd, capture_output=True, text=True, env=clean_env(ak, sk), timeout=timeout)
        if not check:
            return p.returncode, p.stdout, p.stderr
        if p.returncode != 0:
            raise CliError(list(args), p.returncode, p.stdout, p.stderr)
        return json.loads(p.stdout) if p.stdout.strip() else {}

    # --- the simulator's own endpoints ---------------------------------------------------
    def control(self, method, path, body=None, timeout=30):
        data = json.dumps(body).encode() if body is not None else None
        req = urllib.request.Request(self.url + path, data=data, method=method,
                                     headers={"Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(req, timeout=timeout) as r:
                return r.status, json.loads(r.read() or b"null")
        except urllib.error.HTTPError as e:
            raw = e.read()
            try:
                return e.code, json.loads(raw)
            except ValueError:
                return e.code, raw.decode("utf-8", "replace")

    def _ok(self, method, path, body=None):
        status, v = self.control(method, path, body)
        if status != 200:
            raise AssertionError("%s %s → %d %s" % (method, path, status, v))
        return v

    def advance(self, seconds):
        """Moves simulated time forward; returns /_sim/time's answer."""
        return self._ok("POST", "/_sim/advance", {"seconds": seconds})

    def now(self):
        return self._ok("GET", "/_sim/time")["now"]

    def world(self):
        return self._ok("GET", "/_sim/world")

    @contextlib.contextmanager
    def ticking(self, step=15, every=0.05):
        """Advances simulated time `step` seconds every `every` wall seconds inside the block."""
        stop = threading.Event()
        errors = []

        def tick():
            while not stop.is_set():
                try:
                    self.advance(step)
                except Exception as e:  # noqa: BLE001 - surfaced after the block
                    errors.append(e)
                    return
                stop.wait(every)

        t = threading.Thread(target=tick, daemon=True)
        t.start()
        try:
            yield
        finally:
            stop.set()
            t.join(10)
        if errors:
            raise AssertionError("advancing the clock failed: %s" % errors[0])

    def until(self, probe, step=15, limit=3600, what="condition"):
        """Advances time by `step` until probe() returns a truthy value (checked first at the
        current time); returns that value. Fails after `limit` simulated seconds."""
        waited = 0
        while True:
            v = probe()
            if v:
                return v
            if waited >= limit:
                raise AssertionError("%s not reached after %d simulated seconds" % (what, waited))
            self.advance(step)
            waited += step

    # --- stopping ------------------------------------------------------------------------
    def stop(self, sig=signal.SIGTERM, timeout=15):
        """Sends `sig` and returns the exit status (negative: killed by a signal)."""
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        try:
            return self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(5)
            raise AssertionError("server did not stop within %ds of signal %d" % (timeout, sig))
        finally:
            if self in _servers:
                _servers.remove(self)

    def close(self):
        if self.proc.poll() is None:
            self.proc.kill()
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                pass
        if self in _servers:
            _servers.remove(self)


def error_of(fn, *args, **kwargs):
    """(code, http status, message) of the ClientError fn raises; fails if it raises none."""
    try:
        fn(*args, **kwargs)
    except botocore.exceptions.ClientError as e:
        err = e.response.get("Error", {})
        return err.get("Code"), e.response.get("ResponseMetadata", {}).get("HTTPStatusCode"), err.get("Message")
    raise AssertionError("expected a ClientError from %s" % getattr(fn, "__name__", fn))


def waiter_config(attempts=120, delay=1):
    return {"Delay": delay, "MaxAttempts": attempts}


def tg_weights(action, names):
    """{target group name: weight} of a forward action (a plain TargetGroupArn counts as 1)."""
    out = {}
    fc = action.get("ForwardConfig")
    if fc and fc.get("TargetGroups"):
        for t in fc["TargetGroups"]:
            out[names.get(t["TargetGroupArn"], t["TargetGroupArn"])] = t.get("Weight", 1)
    elif action.get("TargetGroupArn"):
        out[names.get(action["TargetGroupArn"], action["TargetGroupArn"])] = 1
    return out


def shares(weights):
    """Weights → fractions of the total (targets with weight 0 kept at 0)."""
    total = sum(weights.values())
    return {k: (v / total if total else 0.0) for k, v in weights.items()}


def run_tests(module=None):
    """Runs the unittest tests of `module` (default: __main__), prints the summary line and exits."""
    module = module or sys.modules["__main__"]
    suite = unittest.TestLoader().loadTestsFromModule(module)
    result = unittest.TextTestRunner(stream=sys.stdout, verbosity=2).run(suite)
    failed = len(result.failures) + len(result.errors) + len(result.unexpectedSuccesses)
    skipped = len(result.skipped)
    # a setUpClass error is one error but no test ran: still counted as a failure
    passed = max(0, result.testsRun - len(result.failures) - len(result.unexpectedSuccesses)
                 - len([e for e in result.errors if not isinstance(e[0], unittest.suite._ErrorHolder)])
                 - skipped)
    _kill_all()
    sys.stderr.flush()
    line = "%d passed, %d failed" % (passed, failed)
    if skipped:
        line += ", %d skipped" % skipped
    print(line, flush=True)
    sys.exit(1 if failed else 0)
