--[[
ecsplay.http.request{method=, url=, headers=, body=, timeout=} for playbooks:
probes and webhooks. Yields to the scheduler like every AWS call.
Returns {status=, headers=, body=} or nil, message, kind (a failure of the
world is a value, not an error; bad arguments raise).
]]
local sched = require "ecsplay.sched"
local duration = require "ecsplay.duration"
local json = require "ecsplay.json"

local M = {}

function M.request(req)
  if type(req) == "string" then req = { url = req } end
  if type(req) ~= "table" then error("ecsplay.http.request: expected a table {url=...}", 2) end
  if type(req.url) ~= "string" or not req.url:match("^https?://") then
    error("ecsplay.http.request: url must be an http:// or https:// address, got "
      .. tostring(req.url), 2)
  end
  local timeout = 30
  if req.timeout ~= nil then timeout = duration.check(req.timeout, "ecsplay.http.request timeout", 2) end
  local headers = {}
  for k, v in pairs(req.headers or {}) do headers[k] = tostring(v) end
  local body = req.body
  if type(body) == "table" then
    body = assert(json.encode(body))
    if not headers["Content-Type"] and not headers["content-type"] then
      headers["Content-Type"] = "application/json"
    end
  end
  local c = sched.http {
    method = (req.method or (body and "POST" or "GET")):upper(),
    url = req.url, headers = headers, body = body,
    timeout = timeout, connect_timeout = math.min(timeout, 10), max_size = req.max_size,
  }
  if c.error then return nil, c.error, c.kind end
  return { status = c.status, headers = c.headers, body = c.body }
end

return M
