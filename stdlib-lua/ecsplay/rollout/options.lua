--[[
Checking one option of a strategy before anything changes: every problem is
a bad_input error (exit code 2) that names the option and says what was
expected, as `rollout.<strategy>: <field>: <what is wrong>`. Which options a
strategy takes is declared in rollout/strategy.lua.
]]
local duration = require "ecsplay.duration"
local errors = require "ecsplay.errors"
local strings = require "ecsplay.util.strings"
local gate_options = require "ecsplay.gate.options"

local M = {}

function M.bad(strategy, field, msg)
  error(errors.bad_input(string.format("rollout.%s: %s%s", strategy, field and (field .. ": ") or "",
    msg), field), 0)
end

-- Unknown keys are errors: a typo in `failure_limt` must not silently disable it.
function M.check_keys(strategy, opts, allowed)
  if type(opts) ~= "table" then
    M.bad(strategy, nil, "expected a table of options, got " .. strings.describe_value(opts))
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
  if s and s <= 0 then
    M.bad(strategy, field, "expected a duration above 0, got " .. strings.describe_value(opts[field]))
  end
  return s
end

function M.string(strategy, opts, field, default, required)
  local v = opts[field]
  if v == nil then
    if required and default == nil then M.bad(strategy, field, "required (a name)") end
    return default
  end
  if type(v) ~= "string" or v == "" then
    M.bad(strategy, field, "expected a non-empty string, got " .. strings.describe_value(v))
  end
  return v
end

function M.integer(strategy, opts, field, default, min, max)
  local v = opts[field]
  if v == nil then return default end
  if math.type(v) ~= "integer" and not (type(v) == "number" and v == math.floor(v)) then
    M.bad(strategy, field, "expected an integer, got " .. strings.describe_value(v))
  end
  v = math.tointeger(v)
  if (min and v < min) or (max and v > max) then
    M.bad(strategy, field, string.format("expected an integer from %s to %s, got %s", min or "-inf",
      max or "inf", strings.describe_value(v)))
  end
  return v
end

function M.func(strategy, opts, field)
  local v = opts[field]
  if v ~= nil and type(v) ~= "function" then
    M.bad(strategy, field, "expected a function, got " .. strings.describe_value(v))
  end
  return v
end

function M.boolean(strategy, opts, field, default)
  local v = opts[field]
  if v == nil then return default end
  if type(v) ~= "boolean" then
    M.bad(strategy, field, "expected true or false, got " .. strings.describe_value(v))
  end
  return v
end

--[[ Traffic steps: a non-empty list of percentages, each above 0, at most
     100, strictly rising. ]]
function M.steps(strategy, steps)
  if type(steps) ~= "table" or #steps == 0 then
    M.bad(strategy, "steps", "expected a non-empty list of percentages, like { 10, 25, 50, 100 }, got "
      .. (type(steps) == "table" and "an empty table" or strings.describe_value(steps)))
  end
  local prev = 0
  for i, w in ipairs(steps) do
    if type(w) ~= "number" or w ~= w then
      M.bad(strategy, "steps[" .. i .. "]", "expected a percentage, got " .. strings.describe_value(w))
    end
    if w <= 0 or w > 100 then
      M.bad(strategy, "steps[" .. i .. "]", "expected a percentage above 0 and at most 100, got "
        .. strings.describe_value(w))
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

--[[ on_failure on a strategy (the default of its gates): "rollback" |
     "pause" | { pause = { timeout =, on_timeout = } } (gate/options.lua
     on_failure) → the normalised table, or nil (roll back). ]]
function M.on_failure(strategy, opts, field)
  local v = opts[field]
  if v == nil then return nil end
  return gate_options.on_failure(v, function(f, msg) M.bad(strategy, f, msg) end)
end

M.APPROVAL_TIMEOUT = 3600 -- how long an approval step waits by default
local APPROVAL_KEYS = { timeout = true, on_timeout = true, approvers = true, min = true, http = true }
local HTTP_KEYS = { port = true, host = true }

--[[ An approval step, { approval = { timeout = "30m", on_timeout = "rollback"|"promote",
     approvers = { "alice", "bob" }, min = 1, http = { port = 8080 } } } at steps[i]
     → { timeout=, on_timeout=, approvers=|nil, min=, http=|nil } ]]
function M.approval(strategy, field, v)
  for k in pairs(v) do
    if k ~= "approval" then
      M.bad(strategy, field, "expected a percentage or { approval = { ... } }; unknown key `" .. tostring(k) .. "`"
        .. strings.did_you_mean(tostring(k), { "approval" }))
    end
  end
  local a = v.approval
  if type(a) ~= "table" then
    M.bad(strategy, field .. ".approval", "expected a table { timeout = \"30m\", on_timeout = \"rollback\", "
      .. "approvers = { \"alice\" }, min = 1 }, got " .. strings.describe_value(a))
  end
  local function fail(f, msg) M.bad(strategy, field .. ".approval." .. f, msg) end
  for k in pairs(a) do
    if not APPROVAL_KEYS[k] then
      fail(tostring(k), "unknown option" .. strings.did_you_mean(tostring(k), APPROVAL_KEYS, { list_all = true }))
    end
  end
  local out = { min = 1 }
  out.timeout, out.on_timeout = gate_options.timeout_action(a, "", fail, M.APPROVAL_TIMEOUT)
  if a.approvers ~= nil then
    if type(a.approvers) ~= "table" or #a.approvers == 0 then
      fail("approvers", "expected a non-empty list of names, like { \"alice\", \"bob\" }, got "
        .. strings.describe_value(a.approvers))
    end
    local seen = {}
    for k, name in pairs(a.approvers) do
      if math.type(k) ~= "integer" or k < 1 or k > #a.approvers then
        fail("approvers", "expected a plain list of names, found key " .. strings.describe_value(k))
      end
      if type(name) ~= "string" or name == "" then
        fail("approvers[" .. k .. "]", "expected a name (a non-empty string), got " .. strings.describe_value(name))
      end
      if seen[name] then fail("approvers[" .. k .. "]", string.format("%q is listed twice", name)) end
      seen[name] = true
    end
    out.approvers = a.approvers
  end
  if a.min ~= nil then
    local most = out.approvers and #out.approvers or nil
    if math.type(a.min) ~= "integer" or a.min < 1 or (most and a.min > most) then
      fail("min", string.format("expected an integer from 1 to %s, got %s", most or "inf",
        strings.describe_value(a.min)) .. (most and " (the number of approvers)" or ""))
    end
    out.min = a.min
  end
  if a.http ~= nil then
    local h = a.http == true and {} or a.http
    if type(h) ~= "table" then fail("http", "expected true or { port = N, host = \"127.0.0.1\" }, got "
      .. strings.describe_value(a.http)) end
    for k in pairs(h) do
      if not HTTP_KEYS[k] then fail("http." .. tostring(k), "unknown option"
        .. strings.did_you_mean(tostring(k), HTTP_KEYS, { list_all = true })) end
    end
    if h.port ~= nil and (math.type(h.port) ~= "integer" or h.port < 0 or h.port > 65535) then
      fail("http.port", "expected a port number from 0 to 65535, got " .. strings.describe_value(h.port))
    end
    local loopback = type(h.host) == "string" and (h.host == "localhost" or h.host:match("^127%.%d+%.%d+%.%d+$"))
    if h.host ~= nil and not loopback then
      fail("http.host", "expected a loopback address (127.x.x.x or localhost; put a proxy in front for a chat "
        .. "service), got " .. strings.describe_value(h.host))
    end
    out.http = { port = h.port or 0, host = h.host or "127.0.0.1" }
  end
  return out
end

--[[ A step list that may hold approval steps between the weights:
     { 10, { approval = {...} }, 50, 100 } → weights { 10, 50, 100 } and
     approvals { [2] = approval }: approvals[k] waits before weight step k
     (k = #weights + 1: after the last step, before the promotion). A list
     without approvals is checked by M.steps alone. ]]
function M.steps_with_approvals(strategy, steps)
  local any = false
  if type(steps) == "table" then
    for _, s in ipairs(steps) do if type(s) == "table" then any = true end end
  end
  if not any then return M.steps(strategy, steps), {} end
  local weights, approvals = {}, {}
  for k in pairs(steps) do
    if math.type(k) ~= "integer" or k < 1 or k > #steps then
      M.bad(strategy, "steps", "expected a plain list of percentages and approval steps")
    end
  end
  local prev = 0
  for i, w in ipairs(steps) do
    local field = "steps[" .. i .. "]"
    if type(w) == "table" then
      local at = #weights + 1
      if approvals[at] then
        M.bad(strategy, field, "two approval steps in a row; give one with min = N approvers")
      end
      approvals[at] = M.approval(strategy, field, w)
    else
      if type(w) ~= "number" or w ~= w then
        M.bad(strategy, field, "expected a percentage or { approval = {...} }, got " .. strings.describe_value(w))
      end
      if w <= 0 or w > 100 then M.bad(strategy, field, "expected a percentage above 0 and at most 100, got " .. w) end
      if w <= prev then M.bad(strategy, field, string.format("weights must rise: %s follows %s", w, prev)) end
      prev = w
      weights[#weights + 1] = w
    end
  end
  if #weights == 0 then
    M.bad(strategy, "steps", "expected at least one percentage besides the approval steps, "
      .. "like { 10, { approval = {...} }, 100 }")
  end
  return weights, approvals
end

local SIDE_KEYS = { service = true, target_group = true }

--[[ A { service=, target_group= } side of a canary or blue/green. ]]
function M.side(strategy, opts, field, default)
  local v = opts[field]
  if v == nil then return default end
  if type(v) == "string" then v = { service = v } end
  if type(v) ~= "table" then
    M.bad(strategy, field, "expected { service = \"...\", target_group = \"...\" }, got "
      .. strings.describe_value(v))
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
