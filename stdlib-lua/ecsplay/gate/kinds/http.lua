--[[
gate.http{ url=, status=200, body=pattern, timeout="5s", method=, headers= }:
one probe per measurement; a connection failure is a failed measurement.
]]
local duration = require "ecsplay.duration"
local http = require "ecsplay.http"
local strings = require "ecsplay.util.strings"
local options = require "ecsplay.gate.options"

local M = {}

local KIND = "http"

local ALLOWED = { url = true, status = true, body = true, timeout = true, method = true, headers = true }

local function bad(field, msg) options.bad(KIND, field, msg) end

-- The probe's options -> the status it wants and its timeout in seconds.
local function check_probe(opts)
  if type(opts.url) ~= "string" or not opts.url:match("^https?://.") then
    bad("url", "expected an http:// or https:// address, got " .. strings.describe_value(opts.url))
  end
  local want = opts.status == nil and 200 or opts.status
  if math.type(want) ~= "integer" or want < 100 or want > 599 then
    bad("status", "expected an HTTP status code from 100 to 599, got " .. strings.describe_value(want))
  end
  local timeout = 5
  if opts.timeout ~= nil then
    local err
    timeout, err = duration.parse(opts.timeout)
    if not timeout then bad("timeout", err) end
    if timeout <= 0 then bad("timeout", "expected a duration above 0") end
  end
  if opts.body ~= nil then
    local ok, err = pcall(string.find, "", type(opts.body) == "string" and opts.body or nil)
    if type(opts.body) ~= "string" or not ok then
      bad("body", "expected a Lua pattern the body must match" .. (ok and "" or (": " .. tostring(err))))
    end
  end
  if opts.method ~= nil and (type(opts.method) ~= "string" or not opts.method:match("^%a+$")) then
    bad("method", "expected an HTTP method like \"GET\", got " .. strings.describe_value(opts.method))
  end
  if opts.headers ~= nil and type(opts.headers) ~= "table" then
    bad("headers", "expected a table { Name = value }")
  end
  return want, timeout
end

function M.http(opts)
  options.check(KIND, opts, ALLOWED)
  local want, timeout = check_probe(opts)
  local threshold = "status " .. want
  return options.new_gate(KIND, opts, {
    name = opts.name or ("http " .. opts.url),
    label = opts.name or "http", unit = "status",
    measure = function()
      local res, err, kind = http.request { url = opts.url, method = opts.method,
        headers = opts.headers, timeout = timeout }
      if not res then
        return { result = "fail", threshold = threshold,
          detail = (kind and (kind .. ": ") or "") .. tostring(err) }
      end
      if res.status ~= want then
        return { result = "fail", value = res.status, unit = "status", threshold = threshold }
      end
      if opts.body and not tostring(res.body):find(opts.body) then
        return { result = "fail", value = res.status, unit = "status",
          threshold = threshold .. ", body matches " .. opts.body,
          detail = "the body does not match" }
      end
      return { result = "pass", value = res.status, unit = "status", threshold = threshold }
    end,
  })
end

return M
