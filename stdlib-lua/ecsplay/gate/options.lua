--[[
ecsplay.gate.options: checking a gate's options when it is built, before
anything is sent. Every problem is a bad_input error (exit 2) whose message
starts "gate.<kind>: <field>: " and whose `field` names the option.

  options.bad(kind, field, msg)        raise that error (field may be nil)
  options.check(kind, opts, allowed)   unknown keys (with a did-you-mean), the
                                       limits, dry_run and name
  options.thresholds / min_requests / target_group / percentile / metric_spec
                                       the checks several kinds share
  options.new_gate(kind, opts, fields) the gate table: common fields + the kind's
  options.num(v), options.finite(v)    numbers as people write them; finite numbers
]]
local errors = require "ecsplay.errors"
local duration = require "ecsplay.duration"
local strings = require "ecsplay.util.strings"
local session = require "ecsplay.aws.session"
local call = require "ecsplay.aws.call"

local M = {}

-- Options every gate takes; the metric gates add `window`, `period`,
-- `delay` and `settle` (gate.window) and the ALB traffic gates
-- `min_requests` to their own lists.
M.COMMON = {
  failure_limit = true, inconclusive_limit = true, error_limit = true, dry_run = true, name = true,
  on_failure = true, session = true,
}

local LIMITS = { "failure_limit", "inconclusive_limit", "error_limit" }

--[[ Raises bad input for gate `kind` (nil: a helper called without one, as
     gate.alb_dimensions may be). The message reads "gate.<kind>: <field>: <msg>". ]]
function M.bad(kind, field, msg)
  local prefix = "gate" .. (kind and ("." .. kind) or "") .. ": " .. (field and (field .. ": ") or "")
  error(errors.bad_input(prefix .. msg, field), 0)
end

-- Thresholds and values as people write them: 1 not 1.0, 0.95 not 0.94999999.
function M.num(v)
  if math.type(v) == "integer" then return tostring(v) end
  if v == math.floor(v) and math.abs(v) < 1e15 then return string.format("%d", v) end
  return string.format("%.6g", v)
end

function M.finite(v) return type(v) == "number" and v == v and v ~= math.huge and v ~= -math.huge end

-- A value as the messages quote it: strings in quotes, anything else as is.
--[[ Where a gate's look-ups went, for a "does not exist" message: " in Region R" (the gate's
     session's Region, else the client's), so that a name missing from the Region a playbook
     did not mean is told apart from a typo. "" when no Region is known. ]]
function M.in_region()
  local s = call.current_session()
  local region = s and s.region
  if not region then
    local ok, r = pcall(call.region)
    region = ok and r or nil
  end
  return region and (" in Region " .. region) or ""
end

local function shown(v)
  return type(v) == "string" and string.format("%q", v) or tostring(v)
end

local function check_keys(kind, opts, allowed)
  local all = {}
  for a in pairs(allowed) do all[a] = true end
  for a in pairs(M.COMMON) do all[a] = true end
  for k in pairs(opts) do
    if type(k) == "string" and not all[k] then
      -- the message names the option itself, so it is the error's field without the prefix
      error(errors.bad_input("gate." .. kind .. ": unknown option `" .. k .. "`"
        .. strings.did_you_mean(k, all, { list_all = true }), k), 0)
    end
  end
end

--[[ Checks a gate's options before anything is sent: unknown keys, the
     limits, dry_run and name; each error names the field. (The metric
     gates' window options: gate.window.check.) ]]
function M.check(kind, opts, allowed)
  if type(opts) ~= "table" then M.bad(kind, nil, "expected a table of options, got " .. type(opts)) end
  check_keys(kind, opts, allowed)
  for _, lim in ipairs(LIMITS) do
    local v = opts[lim]
    if v ~= nil and (math.type(v) ~= "integer" or v < 1) then
      M.bad(kind, lim, "expected an integer of 1 or more, got " .. strings.describe_value(v))
    end
  end
  if opts.dry_run ~= nil and type(opts.dry_run) ~= "boolean" then
    M.bad(kind, "dry_run", "expected true or false, got " .. strings.describe_value(opts.dry_run))
  end
  if opts.name ~= nil and type(opts.name) ~= "string" then
    M.bad(kind, "name", "expected a string, got " .. type(opts.name))
  end
  if opts.on_failure ~= nil then M.on_failure(opts.on_failure, function(f, msg) M.bad(kind, f, msg) end) end
  if opts.session ~= nil and not session.is_session(opts.session) then
    M.bad(kind, "session", "expected a session from aws.session{ region =, ... }, got " .. type(opts.session))
  end
end

--[[ A wait with a deadline and what happens when it passes (an approval step,
     a pause after a failed gate): t.timeout (a duration above 0, default
     `default` seconds) and t.on_timeout ("rollback" or "promote", default
     "rollback"). prefix names the fields in messages; bad(field, msg) raises.
     → seconds, action ]]
function M.timeout_action(t, prefix, bad, default)
  local timeout = default
  if t.timeout ~= nil then
    local s, err = duration.parse(t.timeout)
    if not s or s <= 0 then bad(prefix .. "timeout", err or ("expected a duration above 0, got "
      .. strings.describe_value(t.timeout))) end
    timeout = s
  end
  local on_timeout = t.on_timeout == nil and "rollback" or t.on_timeout
  if on_timeout ~= "rollback" and on_timeout ~= "promote" then
    bad(prefix .. "on_timeout", "expected \"rollback\" or \"promote\", got " .. strings.describe_value(on_timeout))
  end
  return timeout, on_timeout
end

M.PAUSE_TIMEOUT = 3600 -- how long a pause after a failed gate waits for a decision by default

--[[ on_failure, on a gate or a strategy: what a failed gate does. "rollback"
     (the default), "pause" (hold the weights and wait for `ecsplay promote`,
     `unpause` or `abort`; after PAUSE_TIMEOUT, roll back), or { pause = {
     timeout = "30m", on_timeout = "rollback"|"promote" } }.
     → { action = "rollback" } | { action = "pause", timeout = s, on_timeout = } ]]
function M.on_failure(v, bad)
  local shape = "expected \"rollback\", \"pause\" or { pause = { timeout = \"30m\", "
    .. "on_timeout = \"rollback\"|\"promote\" } }, got "
  if v == "rollback" then return { action = "rollback" } end
  if v == "pause" then v = { pause = {} } end
  if type(v) ~= "table" then bad("on_failure", shape .. strings.describe_value(v)) end
  for k in pairs(v) do
    if k ~= "pause" then
      bad("on_failure", "unknown option `" .. tostring(k) .. "`" .. strings.did_you_mean(tostring(k), { "pause" }))
    end
  end
  local p = v.pause
  if type(p) ~= "table" then bad("on_failure.pause", shape .. strings.describe_value(p)) end
  for k in pairs(p) do
    if k ~= "timeout" and k ~= "on_timeout" then
      bad("on_failure.pause", "unknown option `" .. tostring(k) .. "`"
        .. strings.did_you_mean(tostring(k), { "timeout", "on_timeout" }))
    end
  end
  local timeout, on_timeout = M.timeout_action(p, "on_failure.pause.", bad, M.PAUSE_TIMEOUT)
  return { action = "pause", timeout = timeout, on_timeout = on_timeout }
end

-- above=/below= thresholds: numbers, at least one, and not contradictory.
function M.thresholds(kind, opts)
  for _, f in ipairs { "above", "below" } do
    if opts[f] ~= nil and not M.finite(opts[f]) then M.bad(kind, f, "expected a number, got " .. shown(opts[f])) end
  end
  if opts.above == nil and opts.below == nil then M.bad(kind, nil, "give a threshold: above= or below=") end
  if opts.above ~= nil and opts.below ~= nil and opts.above >= opts.below then
    M.bad(kind, "above", string.format("%s is not below below= %s, so no value could pass", M.num(opts.above),
      M.num(opts.below)))
  end
end

-- min_requests= of the ALB traffic gates; returns it (default 50).
function M.min_requests(kind, opts)
  local v = opts.min_requests
  if v ~= nil and not (M.finite(v) and v >= 0) then
    M.bad(kind, "min_requests", "expected a number of requests (0 or more), got " .. strings.describe_value(v))
  end
  return v or 50
end

function M.target_group(kind, opts, field)
  local v = opts[field]
  if type(v) ~= "string" or v == "" then
    M.bad(kind, field, "required: a target group name or ARN, got " .. strings.describe_value(v))
  end
end

-- Percentile p (0 < p < 100) -> CloudWatch's statistic name ("p99", "p99.9").
function M.percentile(kind, p)
  if not M.finite(p) or p <= 0 or p >= 100 then
    M.bad(kind, "p", "expected a percentile between 0 and 100, like 99 or 99.9, got " .. shown(p))
  end
  return "p" .. M.num(p)
end

local STATS = { SampleCount = true, Sum = true, Average = true, Minimum = true, Maximum = true }

local function valid_stat(stat)
  if STATS[stat] then return true end
  local p = type(stat) == "string" and tonumber(stat:match("^p(%d+%.?%d*)$") or "")
  return p ~= nil and p > 0 and p < 100
end

-- CloudWatch's periods: 1, 5, 10, 20, 30 (high resolution) or a multiple of 60.
local function valid_period(p)
  return math.type(p) == "integer" and p > 0 and (p % 60 == 0 or p == 1 or p == 5 or p == 10
    or p == 20 or p == 30)
end

--[[ One metric of gate.cloudwatch: {namespace=, metric=, dimensions=, stat=,
     period=}. `where` prefixes the field names ("metrics.m1." or ""). ]]
function M.metric_spec(kind, where, m)
  if type(m) ~= "table" then
    M.bad(kind, (where:gsub("%.$", "")), "expected {namespace=, metric=, dimensions=, stat=}")
  end
  for _, f in ipairs { "namespace", "metric" } do
    if type(m[f]) ~= "string" or m[f] == "" then
      M.bad(kind, where .. f, "required: a string, got " .. strings.describe_value(m[f]))
    end
  end
  if m.dimensions ~= nil and type(m.dimensions) ~= "table" then
    M.bad(kind, where .. "dimensions", "expected { Name = value, ... } or { {Name=, Value=}, ... }")
  end
  if m.stat ~= nil and not valid_stat(m.stat) then
    M.bad(kind, where .. "stat", "expected SampleCount, Sum, Average, Minimum, Maximum or a percentile like "
      .. "p99, got " .. strings.describe_value(m.stat))
  end
  if m.period ~= nil and not valid_period(m.period) then
    M.bad(kind, where .. "period", "expected seconds: 1, 5, 10, 20, 30 or a multiple of 60, got "
      .. strings.describe_value(m.period))
  end
end

--[[ The gate table: the fields every gate has (from the common options) and
     the kind's own `fields` (name, prepare, measure, and for the metric gates
     gate.window.check's period, delay, settle, window); name= in the options
     wins over the kind's default name. ]]
function M.new_gate(kind, opts, fields)
  local g = {
    kind = kind,
    name = opts.name or fields.name or kind,
    failure_limit = opts.failure_limit,
    inconclusive_limit = opts.inconclusive_limit,
    error_limit = opts.error_limit,
    dry_run = opts.dry_run and true or false,
    on_failure = opts.on_failure ~= nil and M.on_failure(opts.on_failure, function(f, msg) M.bad(kind, f, msg) end)
      or nil,
  }
  for k, v in pairs(fields) do g[k] = v end
  if opts.name then g.name = opts.name end
  -- session=: the gate's look-ups and measurements in that Region and account (a gate
  -- without one uses its rollout's)
  if opts.session then
    for _, f in ipairs { "prepare", "measure" } do
      local fn = g[f]
      if type(fn) == "function" then g[f] = function(...) return opts.session:run(fn, ...) end end
    end
    g.session = opts.session
  end
  return g
end

return M
