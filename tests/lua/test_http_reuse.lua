-- ecsplay.core.http's reuse of idle easy handles (runtime/http.c), against the loopback
-- stub server tests/wire/http_stub.py.
local T = require "harness"
local http = require "ecsplay.core.http"
local cjson = require "cjson"

-- Locate the project root from this file's path so the test runs from any cwd.
local here = debug.getinfo(1, "S").source:match("^@(.*)/[^/]*$") or "."
local stub = io.popen("exec timeout 120 /usr/bin/python3 " .. here .. "/../wire/http_stub.py --port 0", "r")
local port = tonumber(stub:read("l"))
assert(port, "http_stub.py did not report its port")
local base = "http://127.0.0.1:" .. port

-- Runs one request to completion (poll never waits longer than the transfer's own timeout).
local function fetch(req)
  if not req.url:find("^http") then req.url = base .. req.url end
  local id = http.start(req)
  for _ = 1, 1000 do
    for _, c in ipairs(http.poll(5)) do
      if c.id == id then return c end
    end
  end
  error("transfer " .. id .. " never completed")
end

-- Idle easy handles are reused, kept as they are for a request of the same kind: each
-- request still goes out with its own method, body, headers and limits, nothing of the last.
T.test("a reused handle sends each request's own method, body, headers and limits", function()
  local function echo(req)
    req.url = "/echo"
    local c = fetch(req)
    T.eq(c.error, nil, "error")
    return req.method ~= "HEAD" and cjson.decode(c.body) or c
  end
  local e = echo { method = "POST", body = "one", headers = { ["X-First"] = "1" } }
  T.eq(e.method, "POST") T.eq(e.body, "one") T.eq(e.headers["x-first"], "1")
  e = echo { method = "POST", body = "two!", headers = { ["X-Second"] = "2" } }
  T.eq(e.method, "POST") T.eq(e.body, "two!", "the new body")
  T.eq(e.headers["x-first"], nil, "the last request's header is not sent again")
  T.eq(e.headers["x-second"], "2") T.eq(e.headers["content-length"], "4")
  e = echo { method = "GET" }
  T.eq(e.method, "GET") T.eq(e.body or "", "", "no body after a POST")
  T.eq(e.headers["x-second"], nil)
  T.eq(echo { method = "HEAD" }.body, "", "HEAD after GET")
  e = echo { method = "PUT", body = "p" }
  T.eq(e.method, "PUT") T.eq(e.body, "p")
  e = echo { method = "POST", body = "three" }
  T.eq(e.method, "POST", "POST after PUT is not sent as PUT") T.eq(e.body, "three")
  local big = fetch { method = "POST", url = "/echo", body = string.rep("x", 500), max_size = 100 }
  T.eq(big.kind, "too_large", "a lower max_size applies")
  e = echo { method = "POST", body = string.rep("y", 500) }
  T.eq(e.body, string.rep("y", 500), "the default max_size again on the next request")
  T.eq(echo { method = "DELETE" }.method, "DELETE")
  T.eq(echo { method = "GET" }.method, "GET", "GET after DELETE")
end)


T.test("stop the stub", function()
  T.eq(fetch { url = "/quit" }.status, 200)
  stub:close()
end)
