-- The scheduler under load: 50 requests started from ecsplay.parallel are all in flight at
-- once. Proved from the server's side: each server holds every request until it has seen
-- N of them open together (a barrier), then reports the highest count it saw. A client that
-- ran the requests one after another (or in small batches) would leave the barrier below N
-- and the count assertion fails; no wall-clock threshold is involved.
local T = require "harness"
local cjson = require "cjson"
local aws = require "ecsplay.aws"
local ecs = require "ecsplay.ecs"

local here = debug.getinfo(1, "S").source:match("^@(.*)/[^/]*$") or "."
local N = 50

-- ecsplay.http.request goes to tests/wire/http_stub.py (/hold?until=N is its barrier).
local hstub = io.popen("exec /usr/bin/python3 " .. here .. "/../wire/http_stub.py --port 0", "r")
local hport = tonumber(hstub:read("l"))
assert(hport, "http_stub.py did not report its port")
local hbase = "http://127.0.0.1:" .. hport

-- AWS calls POST to "/", which http_stub does not hold, so they go to this barrier server:
-- every non-control request counts as in flight and is answered only once `want` requests
-- have been open together (or after 20 s, so a broken client fails the test, not hangs it).
-- Each answer is a ListClusters output naming the request's arrival number.
local BARRIER_PY = [=[
import json, sys, threading, time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
LOCK = threading.Condition()
S = {"want": int(sys.argv[1]), "inflight": 0, "max_inflight": 0, "requests": 0, "signed": 0,
     "targets": {}}
class H(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    def log_message(self, *a): pass
    def send(self, code, body, ctype="application/json"):
        b = body.encode()
        self.send_response(code)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(b)))
        self.send_header("x-amzn-RequestId", "barrier-req")
        self.end_headers()
        self.wfile.write(b)
    def do_GET(self):
        if self.path == "/stats":
            with LOCK:
                return self.send(200, json.dumps(S))
        if self.path.startswith("/reset"):
            with LOCK:
                S.update(inflight=0, max_inflight=0, requests=0, signed=0, targets={},
                         want=int(self.path.split("=")[1]))
            return self.send(200, "{}")
        if self.path == "/quit":
            self.send(200, "{}")
            threading.Thread(target=self.server.shutdown, daemon=True).start()
    def do_POST(self):
        self.rfile.read(int(self.headers.get("Content-Length") or 0))
        with LOCK:
            S["requests"] += 1
            n = S["requests"]
            if (self.headers.get("Authorization") or "").startswith("AWS4-HMAC-SHA256 "):
                S["signed"] += 1
            t = self.headers.get("X-Amz-Target") or "none"
            S["targets"][t] = S["targets"].get(t, 0) + 1
            S["inflight"] += 1
            S["max_inflight"] = max(S["max_inflight"], S["inflight"])
            LOCK.notify_all()
            deadline = time.monotonic() + 20
            while S["max_inflight"] < S["want"] and time.monotonic() < deadline:
                LOCK.wait(0.2)
            S["inflight"] -= 1
        self.send(200, json.dumps({"clusterArns": ["arn:aws:ecs:us-east-1:123456789012:cluster/c%d" % n]}),
                  "application/x-amz-json-1.1")
class Srv(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 256
    def handle_error(self, *a): pass
srv = Srv(("127.0.0.1", 0), H)
threading.Timer(120, lambda: __import__("os")._exit(0)).start()
print(srv.server_address[1], flush=True)
srv.serve_forever(poll_interval=0.05)
__import__("os")._exit(0)
]=]

local pyfile = os.tmpname()
do
  local f = assert(io.open(pyfile, "w"))
  f:write(BARRIER_PY)
  f:close()
end
local bstub = io.popen("exec /usr/bin/python3 " .. pyfile .. " " .. N, "r")
local bport = tonumber(bstub:read("l"))
assert(bport, "barrier server did not report its port")
local bbase = "http://127.0.0.1:" .. bport

local function get(url)
  local r, err = ecsplay.http.request { url = url, timeout = 10 }
  T.ok(r, "GET " .. url .. ": " .. tostring(err))
  T.eq(r.status, 200, url)
  return r.body
end
local function get_json(url) return cjson.decode(get(url)) end

aws.configure { region = "us-east-1", endpoint_url = bbase, access_key = "AKIDPARALLEL",
  secret_key = "parallelSECRETwJalrXUtnFEMIK7MDENG", env = {}, log = function() end }

T.test("50 ecsplay.http.request calls from ecsplay.parallel are in flight together", function()
  get(hbase .. "/reset_stats")
  local fns = {}
  for i = 1, N do
    fns[i] = function()
      local r, err = ecsplay.http.request { url = hbase .. "/hold?until=" .. N .. "&i=" .. i, timeout = 30 }
      T.ok(r, "request " .. i .. ": " .. tostring(err))
      return r.status .. " " .. r.body
    end
  end
  local out = ecsplay.parallel(fns)
  T.eq(#out, N, "one result per function")
  for i = 1, N do T.eq(out[i], "200 held", "result " .. i) end
  local s = get_json(hbase .. "/stats")
  T.eq(s.max_inflight, N, "the server saw all " .. N .. " requests open at once")
  T.eq(s.inflight, 0, "none left open")
end)

T.test("50 AWS calls (ecs.list_clusters) from ecsplay.parallel are in flight together", function()
  get_json(bbase .. "/reset?want=" .. N)
  local fns = {}
  for i = 1, N do fns[i] = function() return ecs.list_clusters {}.clusterArns[1] end end
  local out = ecsplay.parallel(fns)
  T.eq(#out, N)
  local seen = {}
  for i = 1, N do
    local n = tonumber(tostring(out[i]):match("cluster/c(%d+)$"))
    T.ok(n and n >= 1 and n <= N, "result " .. i .. " is a parsed ListClusters answer: " .. tostring(out[i]))
    T.ok(not seen[n], "each call got its own answer")
    seen[n] = true
  end
  local s = get_json(bbase .. "/stats")
  T.eq(s.requests, N, "one request per call, no retries")
  T.eq(s.max_inflight, N, "the server saw all " .. N .. " AWS calls open at once")
  T.eq(s.signed, N, "every request was signed")
  T.eq(s.targets["AmazonEC2ContainerServiceV20141113.ListClusters"], N)
end)

T.test("AWS calls and plain HTTP requests share the loop: 50 + 50 at once", function()
  get_json(bbase .. "/reset?want=" .. N)
  get(hbase .. "/reset_stats")
  local fns = {}
  for i = 1, N do
    fns[#fns + 1] = function() return ecs.list_clusters {}.clusterArns[1] ~= nil end
    fns[#fns + 1] = function()
      local r = ecsplay.http.request { url = hbase .. "/hold?until=" .. N, timeout = 30 }
      return r ~= nil and r.status == 200
    end
  end
  local out = ecsplay.parallel(fns)
  T.eq(#out, 2 * N)
  for i = 1, 2 * N do T.eq(out[i], true, "result " .. i) end
  T.eq(get_json(bbase .. "/stats").max_inflight, N, "AWS side: all open at once")
  T.eq(get_json(hbase .. "/stats").max_inflight, N, "HTTP side: all open at once")
end)

T.test("stop the servers", function()
  get(hbase .. "/quit")
  get(bbase .. "/quit")
  hstub:close()
  bstub:close()
  os.remove(pyfile)
end)
