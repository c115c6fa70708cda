--[[
The skeleton every strategy shares: the common options, declared once, and
the preamble check → prepare → run → report → guard.

  return strategy.define {
    name = "rolling",
    takes = { cluster = "production", timeout = 1800, poll = 15, bake = 0 },
    own = { "service", "circuit_breaker" },
    check = function(c, o, label) ... end,        -- its own options into c
    default_name = function(c, label) return label .. " " .. c.service end,
    prepare = function(c, r) ... return ctx end,  -- look-ups before any change
    verify = function(c, ctx) ... end,            -- optional, see below
    bakes = { "bake" },                           -- its options that are bake times
    body = function(run, c, ctx, new_td) ... end, -- the steps
  }

`define` returns the module table with M.run(o, label): label names the
strategy in messages (rollout.linear runs canary's spec as "linear").

check: the options every strategy takes (EVERY) and the shared ones it
`takes` (SHARED, with its defaults; false = no default) are checked here, then
spec.check reads its `own` ones; unknown options are refused with a "did you
mean". Adding an option every strategy takes means editing EVERY (and the
code that uses it) in this file only.

prepare(c, r): r = { label=, resuming = journal state|nil, plan = the
journaled plan|nil }. Everything that can be checked before a change; returns
ctx with
  base_td    the task definition ARN the new version is made from (required)
  container  the container to use when none is given (optional)
  green      the side receiving the new version, passed to `gates` when it is
             a function(green) (optional)
  plan       data journaled as the first step "plan" (optional; `ecsplay
             resume` reads it back as r.plan)
  report     fields copied into the report (optional)
Then the skeleton resolves the version (rollout/version.lua) into ctx.version,
the gates into ctx.gates (each gate's prepare run), calls spec.verify for
checks that need either, and refuses an interval or a bake (spec.bakes)
shorter than a metric gate's period. Only then does anything change: Run.new (journal),
and run:guard around the plan step, the version's task definition (step
"register", report.task_definition) and spec.body.
]]
local strings = require "ecsplay.util.strings"
local duration = require "ecsplay.duration"
local gate = require "ecsplay.gate"
local options = require "ecsplay.rollout.options"
local version = require "ecsplay.rollout.version"
local Run = require "ecsplay.rollout.run"
local context = require "ecsplay.context"
local plan = require "ecsplay.rollout.plan"
local control = require "ecsplay.rollout.control"
local session = require "ecsplay.aws.session"

local M = {}

-- Options every strategy takes: { name, check(label, o, field) → value }, in checking order.
local EVERY = {
  { "interval", function(l, o, f) return options.positive_duration(l, o, f, 60) end },
  { "failure_limit", function(l, o, f) return options.integer(l, o, f, 1, 1) end },
  { "inconclusive_limit", function(l, o, f) return options.integer(l, o, f, 3, 1) end },
  { "error_limit", function(l, o, f) return options.integer(l, o, f, 3, 1) end },
  { "gates", function(l, o, f)
      local g = o[f]
      if g ~= nil and type(g) ~= "table" and type(g) ~= "function" then
        options.bad(l, f, "expected a list of gates (or a function(green) returning one), got "
          .. strings.describe_value(g))
      end
      return g or {}
    end },
  { "on_abort", options.func },
  { "notify", options.func },
  { "journal", function(l, o, f) return options.boolean(l, o, f) end },
  { "on_failure", options.on_failure },
  -- session = aws.session{...}: the rollout's calls (and its gates') in that Region and account
  { "session", function(l, o, f)
      local v = o[f]
      if v ~= nil and not session.is_session(v) then
        options.bad(l, f, "expected a session from aws.session{ region =, ... }, got " .. type(v))
      end
      return v
    end },
}

-- Options some strategies take, each checked one way; a strategy lists
-- those it takes in spec.takes with its default.
local SHARED = {
  cluster = options.string,
  bake = options.duration,
  timeout = options.duration,
  ready_timeout = options.duration,
  poll = options.positive_duration,
  before_step = options.func,
  after_step = options.func,
}
local SHARED_ORDER = { "cluster", "bake", "timeout", "ready_timeout", "poll", "before_step", "after_step" }

local function allowed_keys(spec)
  local allowed = { name = true }
  for _, k in ipairs(version.OPTIONS) do allowed[k] = true end
  for _, e in ipairs(EVERY) do allowed[e[1]] = true end
  for k in pairs(spec.takes or {}) do
    assert(SHARED[k], "strategy " .. spec.name .. " takes unknown shared option " .. k)
    allowed[k] = true
  end
  for _, k in ipairs(spec.own or {}) do allowed[k] = true end
  return allowed
end

-- The checked options: c.version, every common option, the spec's own, c.name.
local function check(spec, label, o)
  options.check_keys(label, o, spec.allowed)
  local c = { version = version.check(label, o) }
  for _, k in ipairs(SHARED_ORDER) do
    local default = spec.takes and spec.takes[k]
    if default ~= nil then c[k] = SHARED[k](label, o, k, default or nil) end
  end
  for _, e in ipairs(EVERY) do c[e[1]] = e[2](label, o, e[1]) end
  if spec.check then spec.check(c, o, label) end
  c.name = options.string(label, o, "name", spec.default_name(c, label))
  return c
end

--[[ gates may be a list or a function(green) returning one, for strategies
     whose new side is only known once the current traffic has been read. ]]
function M.resolve_gates(label, gates, green, field)
  field = field or "gates"
  if type(gates) == "function" then
    local ok, list = pcall(gates, green)
    if not ok then error(list, 0) end
    if type(list) ~= "table" then
      options.bad(label, field, "the gates function must return a list of gates, got " .. strings.describe_value(list))
    end
    return list
  end
  return gates
end

--[[ A metric gate judges whole periods: an interval shorter than the longest
     period, or a bake (`bakes`: names of bake options in c; 0 = none)
     shorter than it, could only judge periods of the previous step or none.
     Refused before any change, naming the field. ]]
function M.check_periods(label, c, gates, bakes)
  local period, g = gate.longest_period(gates)
  if not period then return end
  local function too_short(field, seconds)
    options.bad(label, field, string.format("%s is shorter than the %s period of gate `%s`; "
      .. "it could not judge a whole period of its own", duration.format(seconds), duration.format(period),
      tostring(g.name)))
  end
  if c.interval < period then too_short("interval", c.interval) end
  for _, field in ipairs(bakes or {}) do
    local seconds = c[field]
    if seconds and seconds > 0 and seconds < period then too_short(field, seconds) end
  end
end

-- Everything before the first change: the strategy's look-ups, the version, the gates.
local function prepare(spec, c, label)
  local resuming = Run.resuming(c.name)
  local plan = resuming and type(resuming.done.plan) == "table" and resuming.done.plan or nil
  local ctx = spec.prepare(c, { label = label, resuming = resuming, plan = plan })
  assert(ctx.base_td, "strategy " .. spec.name .. ": prepare must set ctx.base_td")
  ctx.version = version.resolve(label, c.version, ctx.base_td, ctx.container)
  ctx.gates = M.resolve_gates(label, c.gates, ctx.green)
  gate.prepare_all(ctx.gates, ctx)
  if spec.verify then spec.verify(c, ctx, label) end
  M.check_periods(label, c, ctx.gates, spec.bakes)
  return ctx
end

function M.run(spec, o, label)
  label = label or spec.name
  local c = check(spec, label, o)
  if c.session then return c.session:run(M.run_checked, spec, c, label) end
  return M.run_checked(spec, c, label)
end

function M.run_checked(spec, c, label)
  -- a resumed fleet's first pass: only a rollout whose journal ended goes on (rollout/run.lua)
  Run.check_replay(c.name)
  local ctx = prepare(spec, c, label)
  -- `ecsplay plan`: what the run would do, instead of doing it (rollout/plan.lua)
  if context.plan then return plan.describe(spec, c, ctx, label, context.plan) end
  local run = Run.new(label, c, { name = c.name })
  for k, v in pairs(ctx.report or {}) do run.report[k] = v end
  run.report.previous_task_definition = run.report.previous_task_definition or ctx.base_td
  -- its live state for `ecsplay status`, and the commands that steer it (rollout/control.lua)
  local live = control.attach(run)
  local ok, res = pcall(run.guard, run, function()
    if ctx.plan then
      run:step("plan", spec.plan_desc or "the plan", function() return ctx.plan end)
    end
    local new_td = version.deploy(run, ctx.version, ctx.base_td)
    run.report.task_definition = new_td
    spec.body(run, c, ctx, new_td)
  end)
  live:finish(control.final_state(run.report.status))
  if not ok then error(res, 0) end
  return res
end

-- Each defined strategy's spec by name. check_options is the check a run
-- starts with, alone (no AWS call): `ecsplay lint` runs it on literal options.
M.SPECS = {}
function M.check_options(name, o, label) return check(M.SPECS[name], label or name, o) end

-- The strategy module: M.run(o, label) runs spec.
function M.define(spec)
  spec.allowed = allowed_keys(spec)
  M.SPECS[spec.name] = spec
  return { spec = spec, run = function(o, label) return M.run(spec, o, label) end }
end

return M
