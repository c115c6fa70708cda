--[[
Checking one option of a strategy before anything changes: every problem is
a bad_input error (exit code 2) that names the option and says what was
expected, as `rollout.<strategy>: <field>: <what is wrong>`. Which options a
strategy takes is declared in rollout/strategy.lua.
]]
local duration = require "ecsplay.duration"
local errors = require "ecsplay.errors"
local strings = require "ecsplay.util.strings"

local M = {}

function M.bad(strategy, field, msg)
  error(errors.bad_input(string.format("rollout.%s: %s%s", strategy, field and (field .. ": ") or "",
    msg), field), 0)
end

-- Unknown keys are errors: a typo in `failure_limt` must not silently disable it.
function M.check_keys(strategy, opts, allowed)
  if type(opts) ~= "table" then
    M.bad(strategy, nil, "expected a table of options, got " .. type(opts))
  end
  for k in pairs(opts) do
    if type(k) ~= "string" then
      M.bad(strategy, nil, "options must be named (key = value); found a positional value")
    end
    if not allowed[k] then M.bad(strategy, k, "unknown option" .. strings.did_you_mean(k, allowed)) end
  end
end

function M.duration(strategy, opts, field, default)
  local v = opts[field]
  if v == nil then return default end
  local s, err = duration.parse(v)
  if not s then M.bad(strategy, field, err) end
  return s
end

-- A duration above 0 (how often to poll or measure).
function M.positive_duration(strategy, opts, field, default)
  local s = M.duration(strategy, opts, field, default)
  if s and s <= 0 then M.bad(strategy, field, "expected a duration above 0") end
  return s
end

function M.string(strategy, opts, field, default, required)
  local v = opts[field]
  if v == nil then
    if required and default == nil then M.bad(strategy, field, "required (a name)") end
    return default
  end
  if type(v) ~= "string" or v == "" then
    M.bad(strategy, field, "expected a non-empty string, got " .. type(v))
  end
  return v
end

function M.integer(strategy, opts, field, default, min, max)
  local v = opts[field]
  if v == nil then return default end
  if math.type(v) ~= "integer" and not (type(v) == "number" and v == math.floor(v)) then
    M.bad(strategy, field, "expected an integer, got " .. tostring(v))
  end
  v = math.tointeger(v)
  if (min and v < min) or (max and v > max) then
    M.bad(strategy, field, string.format("expected an integer from %s to %s, got %d", min or "-inf",
      max or "inf", v))
  end
  return v
end

function M.func(strategy, opts, field)
  local v = opts[field]
  if v ~= nil and type(v) ~= "function" then
    M.bad(strategy, field, "expected a function, got " .. type(v))
  end
  return v
end

function M.boolean(strategy, opts, field, default)
  local v = opts[field]
  if v == nil then return default end
  if type(v) ~= "boolean" then M.bad(strategy, field, "expected true or false") end
  return v
end

--[[ Traffic steps: a non-empty list of percentages, each above 0, at most
     100, strictly rising. ]]
function M.steps(strategy, steps)
  if type(steps) ~= "table" or #steps == 0 then
    M.bad(strategy, "steps", "expected a non-empty list of percentages, like { 10, 25, 50, 100 }")
  end
  local prev = 0
  for i, w in ipairs(steps) do
    if type(w) ~= "number" or w ~= w then
      M.bad(strategy, "steps[" .. i .. "]", "expected a percentage, got " .. tostring(w))
    end
    if w <= 0 or w > 100 then
      M.bad(strategy, "steps[" .. i .. "]", "expected a percentage above 0 and at most 100, got " .. w)
    end
    if w <= prev then
      M.bad(strategy, "steps[" .. i .. "]", string.format("weights must rise: %s follows %s", w, prev))
    end
    prev = w
  end
  for k in pairs(steps) do
    if math.type(k) ~= "integer" or k < 1 or k > #steps then
      M.bad(strategy, "steps", "expected a plain list of percentages")
    end
  end
  return steps
end

local SIDE_KEYS = { service = true, target_group = true }

--[[ A { service=, target_group= } side of a canary or blue/green. ]]
function M.side(strategy, opts, field, default)
  local v = opts[field]
  if v == nil then return default end
  if type(v) == "string" then v = { service = v } end
  if type(v) ~= "table" then
    M.bad(strategy, field, "expected { service = \"...\", target_group = \"...\" }")
  end
  for k in pairs(v) do
    if not SIDE_KEYS[k] then
      M.bad(strategy, field .. "." .. tostring(k), "unknown option"
        .. strings.did_you_mean(tostring(k), SIDE_KEYS))
    end
  end
  return { service = v.service or (default and default.service),
           target_group = v.target_group or (default and default.target_group) }
end

return M
