-- Test helper (not a test file): start tests/wire/aws_stub.py and drive its control paths.
--   local Stub = require "aws_stub_client"
--   local stub = Stub.start()          -- stub.base = "http://127.0.0.1:PORT"
--   stub:script{ {status=200, body="{}"} }; stub:requests(); stub:reset(); stub:config{ttl=60}
--   stub:stop()
-- The stub's stdin is a pipe from this process: when the test process ends (even by a crash)
-- the stub sees EOF and exits; it also exits by itself after 120 s.
local fetch = require "http_fetch"
local cjson = require "cjson"

local M = {}
M.__index = M

local here = debug.getinfo(1, "S").source:match("^@(.*)/[^/]*$") or "."

function M.start()
  local dir = io.popen("mktemp -d"):read("l")
  local port_file = dir .. "/port"
  local proc = io.popen("exec /usr/bin/python3 " .. here .. "/../wire/aws_stub.py --watch-stdin"
    .. " --lifetime 120 --port-file " .. port_file, "w")
  local port, pid
  for _ = 1, 200 do
    local f = io.open(port_file, "r")
    if f then
      port, pid = f:read("n", "n")
      f:close()
      if port then break end
    end
    os.execute("sleep 0.05")
  end
  assert(port, "aws_stub.py did not start")
  os.remove(port_file)
  os.remove(dir)
  return setmetatable({ port = math.tointeger(port), pid = math.tointeger(pid), proc = proc,
    base = "http://127.0.0.1:" .. math.tointeger(port) }, M)
end

function M:control(path, body)
  local c = fetch({ method = body and "POST" or "GET", url = self.base .. "/__stub/" .. path,
    body = body and cjson.encode(body) or nil, timeout = 10,
    headers = body and { ["Content-Type"] = "application/json" } or nil }, 400, 0.5)
  assert(c.status == 200, "stub control " .. path .. " failed: " .. tostring(c.error or c.status))
  return cjson.decode(c.body)
end

function M:script(responses) return self:control("script", { responses = responses }) end
function M:config(t) return self:control("config", t) end
function M:reset() return self:control("reset", {}) end
function M:requests() return self:control("requests") end

function M:stop()
  if self.pid then
    os.execute("kill " .. self.pid .. " 2>/dev/null")
    self.pid = nil
  end
  if self.proc then
    self.proc:close()
    self.proc = nil
  end
end

return M
