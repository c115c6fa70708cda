-- The loopback stub server tests/wire/http_stub.py, started for one test file, and the way
-- its tests run a request through ecsplay.core.http: { base =, fetch =, stop = }.
local T = require "harness"
local fetch = require "http_fetch"

local M = {}

-- Locate the project root from this file's path so the tests run from any cwd.
local here = debug.getinfo(1, "S").source:match("^@(.*)/[^/]*$") or "."
local stub = io.popen("exec timeout 120 /usr/bin/python3 " .. here .. "/../wire/http_stub.py --port 0", "r")
local port = tonumber(stub:read("l"))
assert(port, "http_stub.py did not report its port")
M.port = port
M.base = "http://127.0.0.1:" .. port

-- Runs one request to completion (poll never waits longer than the transfer's own timeout).
function M.fetch(req)
  if not req.url:find("^http") then req.url = M.base .. req.url end
  return fetch(req, 1000, 5)
end

-- The file's last test: the stub quits when asked.
function M.stop()
  T.eq(M.fetch { url = "/quit" }.status, 200)
  stub:close()
end

return M
