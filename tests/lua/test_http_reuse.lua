-- ecsplay.core.http's reuse of idle easy handles (runtime/http.c), against the loopback
-- stub server tests/wire/http_stub.py.
local T = require "harness"
local cjson = require "cjson"

local stub = require "http_stub_client"
local fetch = stub.fetch

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


T.test("stop the stub", stub.stop)
