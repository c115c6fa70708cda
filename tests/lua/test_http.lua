-- ecsplay.core.http against the loopback stub server tests/wire/http_stub.py.
local T = require "harness"
local http = require "ecsplay.core.http"
local cjson = require "cjson"

local stub = require "http_stub_client"
local base, port, fetch = stub.base, stub.port, stub.fetch

T.test("GET echo: status, lowercased headers, body", function()
  local c = fetch { url = "/echo" }
  T.eq(c.error, nil, "error")
  T.eq(c.status, 200, "status")
  T.eq(c.headers["content-type"], "application/json", "content-type")
  local e = cjson.decode(c.body)
  T.eq(e.method, "GET", "method")
  T.eq(e.path, "/echo", "path")
end)

T.test("POST sends body and headers, no Expect: 100-continue", function()
  local body = "Action=DescribeTargetGroups&Version=2015-12-01&bin=\0\1\127"
  local c = fetch { method = "POST", url = "/echo?x=1", body = body,
    headers = { ["Content-Type"] = "application/x-www-form-urlencoded", ["X-Amz-Date"] = "20240101T000000Z",
                ["X-Num"] = 42, ["X-Empty"] = "" } }
  T.eq(c.status, 200, "status")
  local e = cjson.decode(c.body)
  T.eq(e.method, "POST", "method")
  T.eq(e.path, "/echo?x=1", "path with query")
  T.eq(e.body, body, "body round trip")
  T.eq(e.headers["x-amz-date"], "20240101T000000Z", "custom header")
  T.eq(e.headers["x-num"], "42", "number header")
  T.eq(e.headers["x-empty"], "", "empty header is sent")
  T.eq(e.headers["expect"], nil, "Expect header must not be sent")
  T.eq(e.headers["content-length"], tostring(#body), "content-length")
end)

T.test("PUT and DELETE use the given method", function()
  T.eq(cjson.decode(fetch { method = "PUT", url = "/echo", body = "x" }.body).method, "PUT")
  T.eq(cjson.decode(fetch { method = "DELETE", url = "/echo" }.body).method, "DELETE")
end)

T.test("HEAD has an empty body", function()
  local c = fetch { method = "HEAD", url = "/echo" }
  T.eq(c.status, 200, "status")
  T.eq(c.body, "", "body")
end)

T.test("duplicate response headers are joined with ', '", function()
  local c = fetch { url = "/dup" }
  T.eq(c.headers["x-dup"], "a, b")
  T.eq(c.headers["set-cookie"], "c=1, d=2")
end)

T.test("specific status, header and body are reported as is", function()
  local c = fetch { url = "/status?code=503&body=busy&h=X-Amzn-RequestId:abc-123" }
  T.eq(c.error, nil, "an HTTP error status is not a transport error")
  T.eq(c.status, 503)
  T.eq(c.body, "busy")
  T.eq(c.headers["x-amzn-requestid"], "abc-123")
end)

T.test("connection refused gives kind=connect", function()
  local c = fetch { url = "http://127.0.0.1:1/", connect_timeout = 5 }
  T.eq(c.kind, "connect")
  T.eq(c.status, 0)
  T.ok(c.error:find("127.0.0.1:1", 1, true), "error names the origin: " .. c.error)
end)

T.test("TLS failures give kind=tls", function()
  local c = fetch { url = "https://127.0.0.1:" .. port .. "/echo", timeout = 10 }
  T.eq(c.kind, "tls", c.error)
  c = fetch { url = "https://127.0.0.1:" .. port .. "/echo", ca_bundle = "/nonexistent/ca.pem", timeout = 10 }
  T.eq(c.kind, "tls", c.error)
end)

T.test("no answer within timeout gives kind=timeout", function()
  local c = fetch { url = "/never", timeout = 0.3 }
  T.eq(c.kind, "timeout", c.error)
end)

T.test("connection reset gives kind=reset and never leaks request headers", function()
  local c = fetch { url = "/reset", headers = { Authorization = "AWS4-HMAC-SHA256 Credential=SECRETKEYID",
                                               ["X-Amz-Security-Token"] = "SESSIONTOKEN" } }
  T.eq(c.kind, "reset", c.error)
  T.ok(not c.error:find("SECRET", 1, true) and not c.error:find("SESSIONTOKEN", 1, true), c.error)
end)

T.test("body over max_size gives kind=too_large (with and without Content-Length)", function()
  local c = fetch { url = "/huge?bytes=200000", max_size = 1000 }
  T.eq(c.kind, "too_large", c.error)
  c = fetch { url = "/huge?bytes=200000&chunked=1", max_size = 1000 }
  T.eq(c.kind, "too_large", c.error)
  T.eq(c.body, "", "no partial body")
end)

T.test("large and slow bodies arrive intact", function()
  local c = fetch { url = "/huge?bytes=5000000" }
  T.eq(#c.body, 5000000, "huge body length")
  T.eq(c.body:sub(-3), "xxx")
  c = fetch { url = "/slow?bytes=50&chunk=7&delay_ms=10" }
  T.eq(c.body, string.rep("s", 50), "slow body")
end)

T.test("transfers run concurrently", function()
  fetch { url = "/reset_stats" }
  local ids, n = {}, 12
  for i = 1, n do ids[http.start { url = base .. "/hold?until=" .. n }] = true end
  T.eq(http.pending(), n, "pending")
  local got = 0
  while got < n do
    for _, c in ipairs(http.poll(5)) do
      T.ok(ids[c.id], "unknown id")
      T.eq(c.status, 200, c.error)
      got = got + 1
    end
  end
  T.eq(http.pending(), 0, "pending after")
  local s = cjson.decode(fetch { url = "/stats" }.body)
  T.eq(s.max_inflight, n, "all requests were in flight together")
end)

T.test("connections are reused across calls", function()
  fetch { url = "/echo" }
  fetch { url = "/reset_stats" }
  for _ = 1, 5 do fetch { url = "/echo" } end
  local s = cjson.decode(fetch { url = "/stats" }.body)
  T.eq(s.connections, 0, "no new connection after reset_stats")
end)

T.test("cancel drops a transfer; poll(0) never blocks", function()
  local id = http.start { url = base .. "/never" }
  T.eq(http.pending(), 1)
  T.eq(#http.poll(0), 0, "nothing completed")
  T.eq(http.cancel(id), true)
  T.eq(http.cancel(id), false, "second cancel")
  T.eq(http.pending(), 0)
  T.eq(#http.poll(0.01), 0, "cancelled transfer is never reported")
end)

T.test("start rejects bad requests without echoing header values", function()
  T.raises(function() http.start { url = "ftp://x/" } end, "http://")
  T.raises(function() http.start {} end, "url")
  T.raises(function() http.start { url = base, timeout = -1 } end, "timeout")
  T.raises(function() http.start { url = base, method = "GE T" } end, "method")
  local err = T.raises(function()
    http.start { url = base, headers = { Authorization = "SECRET\r\nX: y" } }
  end, "Authorization")
  T.ok(not tostring(err):find("SECRET", 1, true), "value leaked: " .. tostring(err))
  T.eq(http.pending(), 0, "failed starts leave nothing pending")
end)

T.test("a signal wakes poll() without completing anything", function()
  local core = require "ecsplay.core"
  local id = http.start { url = base .. "/never" }
  os.execute("kill -TERM " .. core.pid())
  local t0 = core.monotonic()
  local done = http.poll(60)
  local waited = core.monotonic() - t0
  local sig = core.signal()
  core.clear_signal() -- so the scheduler does not interrupt the remaining tests
  T.eq(#done, 0, "no completion")
  T.ok(sig ~= nil, "the signal is recorded as pending")
  T.ok(waited < 30, "poll(60) returned early (after " .. waited .. " s)")
  T.eq(http.cancel(id), true)
end)

T.test("stop the stub", stub.stop)
