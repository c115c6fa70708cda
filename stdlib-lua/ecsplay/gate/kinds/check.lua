--[[
gate.check(name, fn, opts): any Lua function as a gate. fn(ctx) returns true
(pass), false (fail), nil (inconclusive), "pass"/"fail"/"inconclusive", or a
measurement table; it may also return a second value, the measured number.
]]
local errors = require "ecsplay.errors"
local options = require "ecsplay.gate.options"
local tracker = require "ecsplay.gate.tracker"

local M = {}

local KIND = "check"

-- fn's answer -> a measurement; anything else is bad usage of gate.check,
-- which the tracker counts as an error of the gate.
local function measurement(name, r, value)
  if type(r) == "table" then return r end
  if r == nil then return { result = "inconclusive", value = value } end
  if type(r) == "string" and tracker.RESULTS[r] then return { result = r, value = value } end
  if type(r) ~= "boolean" then
    error(errors.bad_input(string.format("gate.check `%s`: the function returned %s; expected true, false, "
      .. "nil, \"pass\", \"fail\", \"inconclusive\" or a measurement table", name, tostring(r))), 0)
  end
  return { result = r and "pass" or "fail", value = value }
end

function M.check(name, fn, opts)
  if type(name) == "function" then name, fn, opts = "check", name, fn end
  opts = opts or {}
  options.check(KIND, opts, {})
  if type(name) ~= "string" then options.bad(KIND, "name", "expected gate.check(\"name\", function(ctx) ... end)") end
  if type(fn) ~= "function" then
    options.bad(KIND, nil, "expected gate.check(name, function(ctx) ... end), got a " .. type(fn))
  end
  return options.new_gate(KIND, opts, {
    name = name,
    measure = function(_, ctx) return measurement(name, fn(ctx)) end,
  })
end

return M
