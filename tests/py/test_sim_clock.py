"""One clock over HTTP: `ecsplay sim serve` tells every client its simulated time, and an
ecsplay client that talks to it lives on that time (docs/simulator.md, "The clock").

- Every answer carries x-ecsplay-sim-time / -mode (/ -speed): AWS answers, AWS errors, the
  control endpoints, and the answers the C server writes itself (413). GET /_sim/clock.
- --lockstep: boto3 sees time stand still (unless advanced); two ecsplay clients each live
  exactly the simulated time they slept, and a busy client holds time back for the others.
- playbooks/canary.lua with its shipped gates through `sim serve` in the three clock modes:
  --speed 300, --lockstep, and --speed 1 with the clock jumped to each time the client waits
  for (as an operator could with POST /_sim/advance; a 20-minute canary at speed 1 would
  otherwise take 20 minutes). Healthy promotes, api:flaky rolls back, the verdicts match the
  in-process --simulate rehearsal, and boto3 reads the world back.

Run: /usr/bin/python3 tests/py/test_sim_clock.py   (from the project root, after make)
"""
import json
import os
import socket
import subprocess
import sys
import tempfile
import threading
import time
import unittest
import urllib.error
import urllib.request

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import simserve  # noqa: E402
from simserve import Server, tg_weights  # noqa: E402

CLOCK_HEADERS = ("x-ecsplay-sim-time", "x-ecsplay-sim-mode")
START = 1795687200  # the default world's start, 2026-11-26T10:00:00Z (tests/scenarios/default.lua)
PLAYBOOK = "playbooks/canary.lua"


RUNS = tempfile.TemporaryDirectory(prefix="ecsplay-clock-runs-")  # the runs' journals


def client_env():
    env = simserve.clean_env()
    env["ECSPLAY_RUNS_DIR"] = RUNS.name
    return env


def run_ecsplay(*args, timeout=120):
    """Runs the ecsplay binary with the simulator's credentials → (rc, stdout, stderr, wall s)."""
    t0 = time.monotonic()
    p = subprocess.run([simserve.ECSPLAY_RUN] + list(args), cwd=simserve.ROOT, capture_output=True,
                       text=True, timeout=timeout, env=client_env())
    return p.returncode, p.stdout, p.stderr, time.monotonic() - t0


def raw(srv, method, path, body=None, headers=None):
    """→ (status, lower-cased headers, body bytes) of one plain HTTP exchange."""
    req = urllib.request.Request(srv.url + path, data=body, method=method, headers=headers or {})
    try:
        with urllib.request.urlopen(req, timeout=30) as r:
            return r.status, {k.lower(): v for k, v in r.getheaders()}, r.read()
    except urllib.error.HTTPError as e:
        return e.code, {k.lower(): v for k, v in e.headers.items()}, e.read()


def too_large(srv):
    """A request announcing a body over the server's 10 MiB limit, answered (413) before the
    body is sent → (status, lower-cased headers)."""
    with socket.create_connection(("127.0.0.1", srv.port), timeout=10) as s:
        s.sendall(b"POST / HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/x-amz-json-1.1\r\n"
                  b"Content-Length: 20000000\r\nConnection: close\r\n\r\n")
        data = b""
        while b"\r\n\r\n" not in data:
            chunk = s.recv(65536)
            if not chunk:
                break
            data += chunk
    head = data.split(b"\r\n\r\n", 1)[0].decode("latin-1").split("\r\n")
    headers = {}
    for line in head[1:]:
        k, _, v = line.partition(":")
        headers[k.strip().lower()] = v.strip()
    return int(head[0].split()[1]), headers


def events(out):
    """The JSON log lines (--log-format json) of a run's output."""
    found = []
    for line in out.splitlines():
        if line.startswith("{"):
            try:
                found.append(json.loads(line))
            except ValueError:
                pass
    return found


def verdicts(rc, out):
    """What a canary run decided, independent of how many measurement rounds it took:
    exit code, the steps it reached, each step's last result per gate, and the gate that
    failed (if one did)."""
    evs = events(out)
    steps = [e["weight"] for e in evs if e.get("event") == "step"]
    last = {}
    for e in evs:
        if e.get("event") == "gate" and e.get("phase", "").startswith("step"):
            last.setdefault(e["phase"], {})[e["gate"]] = e["result"]
    failed = sorted({g for phase in last.values() for g, r in phase.items() if r == "fail"})
    # the playbook's own print() is a `print` event in JSON mode (docs/events.md)
    summary = [e["message"] for e in evs if e.get("event") == "print" and e["message"].startswith("canary: ")]
    return {"rc": rc, "steps": steps, "last": last, "failed": failed, "summary": summary}


class Headers(unittest.TestCase):
    """Every answer says what time it is; GET /_sim/clock says it in full."""

    @classmethod
    def setUpClass(cls):
        cls.srv = Server(speed=300)

    @classmethod
    def tearDownClass(cls):
        cls.srv.close()

    def assert_clock(self, headers, what):
        for h in CLOCK_HEADERS:
            self.assertIn(h, headers, "%s: no %s header in %s" % (what, h, headers))
        self.assertEqual(headers["x-ecsplay-sim-mode"], "speed", what)
        self.assertEqual(float(headers["x-ecsplay-sim-speed"]), 300.0, what)
        t = float(headers["x-ecsplay-sim-time"])
        self.assertGreaterEqual(t, START, what)
        self.assertLess(t, START + 6 * 3600, what)
        return t

    def test_every_answer_carries_the_clock(self):
        ecs = self.srv.client("ecs")
        ok = ecs.list_clusters()["ResponseMetadata"]["HTTPHeaders"]
        t1 = self.assert_clock(ok, "ListClusters")
        code, status, _ = simserve.error_of(ecs.describe_services, cluster="nope", services=["x"])
        self.assertEqual(status, 400)
        for path, want in (("/_sim/time", 200), ("/_sim/nope", 404)):
            status, h, _ = raw(self.srv, "GET", path)
            self.assertEqual(status, want, path)
            self.assert_clock(h, path)
        # an answer the C server writes itself, without asking the simulator
        status, h = too_large(self.srv)
        self.assertEqual(status, 413)
        t2 = self.assert_clock(h, "413 Request Entity Too Large")
        self.assertGreaterEqual(t2, t1, "the clock does not go back")
        # an unsigned request to an AWS operation gets AWS's error, with the clock
        status, h, _ = raw(self.srv, "POST", "/", body=b"{}", headers={
            "Content-Type": "application/x-amz-json-1.1",
            "X-Amz-Target": "AmazonEC2ContainerServiceV20141113.ListClusters"})
        self.assertEqual(status, 400)
        self.assert_clock(h, "unsigned ListClusters")

    def test_clock_endpoint(self):
        status, h, body = raw(self.srv, "GET", "/_sim/clock")
        self.assertEqual(status, 200)
        c = json.loads(body)
        self.assertEqual((c["mode"], c["speed"], c["start"]), ("speed", 300, START))
        self.assertAlmostEqual(c["now"], float(h["x-ecsplay-sim-time"]), delta=30)
        self.assertEqual(c["clients"], [])
        self.assertTrue(c["iso"].startswith("2026-11-26T"), c["iso"])
        t0 = time.monotonic()
        time.sleep(0.2)
        c2 = self.srv._ok("GET", "/_sim/clock")
        wall = time.monotonic() - t0
        # 300 simulated seconds a wall second (loose: the machine is shared)
        self.assertGreaterEqual(c2["now"] - c["now"], 0.2 * 300 * 0.8)
        self.assertLessEqual(c2["now"] - c["now"], (wall + 0.5) * 300)
        self.assertEqual(self.srv.control("POST", "/_sim/clock")[0], 405)
        status, v = self.srv.control("POST", "/_sim/wait", {"until": "soon"})
        self.assertEqual(status, 400, v)

    def test_wait_endpoint_in_speed_mode(self):
        # a boto3-side script can wait on the server too: the answer comes when the time has come
        now = self.srv._ok("GET", "/_sim/clock")["now"]
        t0 = time.monotonic()
        status, h, body = raw(self.srv, "POST", "/_sim/wait", json.dumps({"until": now + 60}).encode(),
                              {"Content-Type": "application/json"})
        self.assertEqual(status, 200)
        self.assertGreaterEqual(float(h["x-ecsplay-sim-time"]), now + 60 - 0.01)
        self.assertLess(time.monotonic() - t0, 5)


class Lockstep(unittest.TestCase):
    """--lockstep: time moves only when every ecsplay client waits."""

    def setUp(self):
        self.srv = Server(args=["--lockstep"])
        self.addCleanup(self.srv.close)

    def clock(self):
        return self.srv._ok("GET", "/_sim/clock")

    def test_lockstep_with_speed_is_bad_usage(self):
        p = subprocess.run([simserve.ECSPLAY, "sim", "serve", "--lockstep", "--speed", "2"], cwd=simserve.ROOT,
                           capture_output=True, text=True, timeout=30)
        self.assertEqual(p.returncode, 2, p.stderr)
        self.assertIn("--lockstep and --speed: choose one", p.stderr)
        self.assertEqual(p.stdout, "", "no server started")

    def test_boto3_sees_time_stand_still_unless_advanced(self):
        c = self.clock()
        self.assertEqual((c["mode"], c["now"]), ("lockstep", START))
        self.assertNotIn("speed", c)
        ecs = self.srv.client("ecs")
        h = ecs.list_clusters()["ResponseMetadata"]["HTTPHeaders"]
        self.assertEqual(h["x-ecsplay-sim-mode"], "lockstep")
        self.assertNotIn("x-ecsplay-sim-speed", h)
        time.sleep(0.3)
        self.assertEqual(float(ecs.list_clusters()["ResponseMetadata"]["HTTPHeaders"]["x-ecsplay-sim-time"]),
                         START, "time stood still while only boto3 talked")
        self.assertEqual(self.clock()["clients"], [], "boto3 is not an ecsplay client")
        # a boto3 deployment step still works: time moves with /_sim/advance
        ecs.update_service(cluster="production", service="api-canary", desiredCount=2)
        running = self.srv.until(lambda: ecs.describe_services(cluster="production", services=["api-canary"])
                                 ["services"][0]["runningCount"] == 2, step=15, limit=600,
                                 what="api-canary running 2 tasks")
        self.assertTrue(running)
        self.assertGreater(self.clock()["now"], START)

    def test_a_run_is_on_the_served_clock_before_its_first_call(self):
        now = self.clock()["now"]
        rc, out, err, _ = run_ecsplay("--endpoint-url", self.srv.url, "--region", simserve.REGION,
                                      "-e", "print(string.format('now %.3f', ecsplay.now()))")
        self.assertEqual(rc, 0, err)
        seen = float(out.split("now ", 1)[1].split()[0])
        # lockstep: the clock stands still while no client waits; the machine's is days away
        self.assertGreaterEqual(seen, now, out)
        self.assertLess(seen, now + 1, out)
        self.assertEqual(self.clock()["clients"], [], "the run said goodbye")

    def test_each_client_lives_exactly_the_time_it_sleeps(self):
        # (the first answer tells the client the time: t0 after it)
        chunk = ("local ecs = require 'ecsplay.ecs' ecs.list_clusters {} local t0 = ecsplay.now() "
                 "for i = 1, %d do ecs.list_clusters {} ecsplay.sleep(%d) end "
                 "print(string.format('elapsed %%.3f', ecsplay.now() - t0))")
        results = {}

        def client(name, n, secs):
            results[name] = run_ecsplay("--endpoint-url", self.srv.url, "--region", simserve.REGION,
                                        "-e", chunk % (n, secs), timeout=60)

        threads = [threading.Thread(target=client, args=("a", 30, 100)),
                   threading.Thread(target=client, args=("b", 20, 250))]
        for t in threads:
            t.start()
        for t in threads:
            t.join(90)
        for name, want in (("a", 3000), ("b", 5000)):
            rc, out, err, wall = results[name]
            self.assertEqual(rc, 0, "client %s: %s %s" % (name, out, err))
            self.assertIn("elapsed %.3f" % want, out, "client %s: %s %s" % (name, out, err))
            self.assertLess(wall, 30, "client %s took %.1f s" % (name, wall))
        c = self.clock()
        self.assertGreaterEqual(c["now"], START + 5000)
        self.assertLessEqual(c["now"], START + 8000)
        self.assertEqual(c["clients"], [], "clients say goodbye when they finish")

    def test_a_busy_client_holds_time_back(self):
        sleeper = subprocess.Popen(
            [simserve.ECSPLAY_RUN, "--endpoint-url", self.srv.url, "--region", simserve.REGION, "-e",
             "local ecs = require 'ecsplay.ecs' while true do ecs.list_clusters {} ecsplay.sleep(10) end"],
            cwd=simserve.ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=client_env())
        self.addCleanup(lambda: (sleeper.kill(), sleeper.wait(10)))
        deadline = time.monotonic() + 20
        while self.clock()["now"] < START + 100:
            self.assertLess(time.monotonic(), deadline, "the sleeping client did not move time")
            time.sleep(0.05)
        # a second client that keeps calling for a while: no time passes for it
        busy = ("local ecs = require 'ecsplay.ecs' ecs.list_clusters {} local t0 = ecsplay.now() "
                "for i = 1, 40 do ecs.list_clusters {} end "
                "print(string.format('elapsed %.3f', ecsplay.now() - t0))")
        rc, out, err, _ = run_ecsplay("--endpoint-url", self.srv.url, "--region", simserve.REGION, "-e", busy)
        self.assertEqual(rc, 0, out + err)
        self.assertIn("elapsed 0.000", out, out + err)
        # and the sleeper moves time again once it is gone
        t = self.clock()["now"]
        deadline = time.monotonic() + 20
        while self.clock()["now"] <= t + 50:
            self.assertLess(time.monotonic(), deadline, "time did not move after the busy client left")
            time.sleep(0.05)
        self.assertEqual([c["state"] in ("busy", "waiting") for c in self.clock()["clients"]], [True])


class CanaryOverHttp(unittest.TestCase):
    """playbooks/canary.lua, shipped gates, through sim serve in each clock mode; the verdicts
    must be the in-process rehearsal's."""

    baseline = {}

    @classmethod
    def setUpClass(cls):
        for image in ("api:v2", "api:flaky"):
            rc, out, err, _ = run_ecsplay("--log-format", "json", "--simulate", PLAYBOOK, "image=" + image)
            cls.baseline[image] = (verdicts(rc, out), out + err)

    def canary(self, srv, image):
        rc, out, err, wall = run_ecsplay("--log-format", "json", "--endpoint-url", srv.url,
                                         "--region", simserve.REGION, PLAYBOOK, "image=" + image, timeout=90)
        want, want_log = self.baseline[image]
        got = verdicts(rc, out)
        self.maxDiff = None
        self.assertEqual(got, want, "over HTTP:\n%s%s\nin process:\n%s" % (out, err, want_log))
        self.assertEqual(rc, 0 if image == "api:v2" else 1)
        return out, wall

    def world_after(self, srv, image):
        """boto3 reads the world back: the service versions and the weighted rule."""
        ecs, elb = srv.client("ecs"), srv.client("elbv2")
        svc = {s["serviceName"]: s for s in ecs.describe_services(
            cluster="production", services=["api", "api-canary"])["services"]}
        td = ecs.describe_task_definition(taskDefinition=svc["api"]["taskDefinition"])["taskDefinition"]
        names = {t["TargetGroupArn"]: t["TargetGroupName"] for t in elb.describe_target_groups()["TargetGroups"]}
        lb = elb.describe_load_balancers(Names=["web"])["LoadBalancers"][0]
        l443 = [l for l in elb.describe_listeners(LoadBalancerArn=lb["LoadBalancerArn"])["Listeners"]
                if l["Port"] == 443][0]
        rule = [r for r in elb.describe_rules(ListenerArn=l443["ListenerArn"])["Rules"] if r["Priority"] == "10"][0]
        weights = tg_weights(rule["Actions"][0], names)
        self.assertEqual(weights.get("api-canary", 0), 0, "the canary carries no traffic at the end")
        self.assertEqual(svc["api-canary"]["desiredCount"], 0)
        if image == "api:v2":
            self.assertEqual(td["containerDefinitions"][0]["image"], "api:v2", "promoted")
        else:
            self.assertEqual(td["containerDefinitions"][0]["image"], "api:v1", "stable version kept")
        self.assertGreater(weights.get("api-stable", 0), 0)

    def check(self, image, speed=None, lockstep=False, follow=False):
        srv = Server(speed=speed, args=["--lockstep"] if lockstep else [])
        self.addCleanup(srv.close)
        if follow:
            with jump_to_waits(srv):
                out, wall = self.canary(srv, image)
        else:
            out, wall = self.canary(srv, image)
        if lockstep:
            # lockstep lives the in-process timeline itself: the same log times, to the
            # millisecond (but the journal line, logged before the first answer told the time)
            def timeline(text):
                return [(e["event"], e["time"]) for e in events(text) if e.get("event") != "journal"]
            self.assertEqual(timeline(out), timeline(self.baseline[image][1]))
        self.world_after(srv, image)
        return out, wall

    def test_speed_300_healthy_promotes(self):
        self.check("api:v2", speed=300)

    def test_speed_300_flaky_rolls_back(self):
        self.check("api:flaky", speed=300)

    def test_lockstep_healthy_promotes(self):
        _, wall = self.check("api:v2", lockstep=True)
        self.assertLess(wall, 30)

    def test_lockstep_flaky_rolls_back(self):
        self.check("api:flaky", lockstep=True)

    def test_speed_1_healthy_promotes(self):
        self.check("api:v2", speed=1, follow=True)

    def test_speed_1_flaky_rolls_back(self):
        self.check("api:flaky", speed=1, follow=True)

    def test_speed_1_client_reads_metrics_on_world_time(self):
        # no jumps: the client's now() is the world's (not the machine's) and its metrics are there
        srv = Server(speed=1)
        self.addCleanup(srv.close)
        chunk = (
            "local cw = require 'ecsplay.cloudwatch' local elbv2 = require 'ecsplay.elbv2' "
            "local lb = elbv2.describe_load_balancers { Names = { 'web' } }.LoadBalancers[1] "
            "local dim = lb.LoadBalancerArn:match(':loadbalancer/(.*)$') "
            "local now = ecsplay.now() "
            "local out = cw.get_metric_statistics { Namespace = 'AWS/ApplicationELB', MetricName = 'RequestCount', "
            "  Dimensions = { { Name = 'LoadBalancer', Value = dim } }, StartTime = now - 1200, EndTime = now, "
            "  Period = 60, Statistics = { 'Sum' } } "
            "local sum = 0 for _, d in ipairs(out.Datapoints) do sum = sum + d.Sum end "
            "local t0 = ecsplay.now() ecsplay.sleep(1) "
            "print(string.format('now %.3f requests %d slept %.1f', now, sum, ecsplay.now() - t0))")
        rc, out, err, wall = run_ecsplay("--endpoint-url", srv.url, "--region", simserve.REGION, "-e", chunk)
        self.assertEqual(rc, 0, out + err)
        now, requests, slept = out.split()[1], int(out.split()[3]), float(out.split()[5])
        self.assertLess(abs(float(now) - START), 60, "the client's now() is the world's: " + out)
        self.assertGreater(requests, 0, out)
        self.assertGreaterEqual(slept, 1.0)
        self.assertLess(slept, 3.0)


class jump_to_waits:
    """While active, whenever the only ecsplay client waits for a later time, POST /_sim/advance
    moves the clock there (an operator skipping the boring part); the server's clock still runs
    at its --speed in between."""

    def __init__(self, srv):
        self.srv, self.stop, self.errors = srv, threading.Event(), []

    def loop(self):
        while not self.stop.is_set():
            try:
                c = self.srv._ok("GET", "/_sim/clock")
                waiting = [x for x in c["clients"] if x["state"] == "waiting"]
                if len(c["clients"]) == 1 and waiting and waiting[0]["until"] > c["now"]:
                    self.srv.advance(waiting[0]["until"] - c["now"])
            except Exception as e:  # noqa: BLE001 - reported after the block
                self.errors.append(e)
                return
            self.stop.wait(0.005)

    def __enter__(self):
        self.thread = threading.Thread(target=self.loop, daemon=True)
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.stop.set()
        self.thread.join(10)
        if self.errors and not exc[0]:
            raise AssertionError("jumping the clock failed: %s" % self.errors[0])


if __name__ == "__main__":
    simserve.run_tests()
