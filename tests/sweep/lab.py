"""A sweep worker's bench: its own `ecsplay sim serve` (one per scenario, reset between cases),
boto3 clients on it, a scratch folder, and the ecsplay processes of one case.

    lab = Lab(binary, speed, tmp)
    srv, world = lab.fresh(scenario, regions) faults cleared, world rebuilt (POST /_sim/reset);
                                              world reads every Region of `regions`
    lab.run(srv, argv, runs_dir, name)        an ecsplay client (procs.Client), on the server's clock
    lab.command(srv, [...], runs_dir, name, timeout) -> (rc, output)
    lab.settle(srv)                           faults cleared, clock moved SETTLE seconds on
"""
import json
import os
import shutil
import subprocess
import sys
import threading

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(os.path.dirname(HERE), "py"))
import simserve  # noqa: E402
import procs  # noqa: E402
from world import World  # noqa: E402

SETTLE = 600            # simulated seconds the world runs on after a case, before the invariants
RUN_TIMEOUT = 120       # wall seconds for any one ecsplay process
_ops_lock = threading.Lock()
_ops_cache = {}


def model_operations(binary):
    """Every operation of ecsplay's models, per service (for counting which ones a run calls)."""
    with _ops_lock:
        if binary not in _ops_cache:
            code = ('local j=require("ecsplay.json"); local out={}; for _,s in ipairs{"ecs","elbv2",'
                    '"codedeploy","cloudwatch"} do local m=require("ecsplay.aws.models."..s); local ops={}; '
                    'for k in pairs(m.operations) do ops[#ops+1]=k end; table.sort(ops); out[s]=ops end; '
                    'print(j.encode(out))')
            out = subprocess.run([binary, "-e", code], cwd=procs.ROOT, capture_output=True, text=True,
                                 timeout=30, check=True).stdout
            _ops_cache[binary] = json.loads(out)
        return _ops_cache[binary]


class Lab:
    def __init__(self, binary, speed, tmp):
        self.binary, self.speed, self.tmp = binary, speed, tmp
        self.servers = {}     # (scenario, regions) -> (Server, World)
        self.clients = []
        os.makedirs(tmp, exist_ok=True)

    def close(self):
        self.reap()
        for srv, _ in self.servers.values():
            srv.close()
        self.servers = {}

    def _start(self, scenario, regions):
        srv = simserve.Server(scenario=scenario, speed=self.speed)
        return srv, World(srv.url, regions=regions)

    def fresh(self, scenario, regions=None):
        """The scenario's world as new, no faults; restarts a server that died or hangs.
        regions: the Regions it serves (the World reads each), default us-east-1 alone."""
        key = (scenario, tuple(regions or ()))
        entry = self.servers.get(key)
        if entry:
            srv, world = entry
            try:
                if not srv.alive():
                    raise RuntimeError("server exited")
                srv.control("DELETE", "/_sim/faults", timeout=10)
                status, _ = srv.control("POST", "/_sim/reset", timeout=20)
                if status != 200:
                    raise RuntimeError("reset answered %s" % status)
                return srv, world
            except Exception:  # noqa: BLE001 - a knocked-over server is replaced
                srv.close()
        entry = self._start(scenario, regions)
        self.servers[key] = entry
        return entry

    def run(self, srv, argv, runs_dir, name, endpoint=True, env=None):
        """Starts `ecsplay [--endpoint-url URL --region us-east-1] ARGV` (it lives on the server's clock);
        env: extra environment variables."""
        env = procs.client_env(runs_dir, env)
        full = (["--endpoint-url", srv.url, "--region", "us-east-1"] if endpoint else []) + list(argv)
        c = procs.Client(self.binary, full, env, os.path.join(os.path.dirname(runs_dir), "out." + name))
        c.name = name
        self.clients.append(c)
        return c

    def command(self, srv, argv, runs_dir, name, timeout=RUN_TIMEOUT, endpoint=True):
        c = self.run(srv, argv, runs_dir, name, endpoint=endpoint)
        rc = c.wait(timeout)
        return rc, c.output()

    def reap(self):
        for c in self.clients:
            c.kill()
        self.clients = []

    def settle(self, srv):
        srv.control("DELETE", "/_sim/faults", timeout=10)
        status, body = srv.control("POST", "/_sim/advance", {"seconds": SETTLE}, timeout=60)
        if status != 200:
            raise RuntimeError("POST /_sim/advance answered %s %s" % (status, body))

    def case_dir(self, cid):
        d = os.path.join(self.tmp, "case")
        shutil.rmtree(d, ignore_errors=True)
        os.makedirs(os.path.join(d, "runs"))
        return d

    def post_fault(self, srv, fault):
        status, body = srv.control("POST", "/_sim/faults", fault, timeout=10)
        if status != 200:
            raise RuntimeError("POST /_sim/faults %s answered %s %s" % (json.dumps(fault), status, body))

    def fault_hits(self, srv):
        status, body = srv.control("GET", "/_sim/faults", timeout=10)
        return body.get("faults", []) if status == 200 and isinstance(body, dict) else []
