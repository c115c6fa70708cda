--[[
ecsplay.gate.window: which CloudWatch periods a metric gate may judge.

A metric gate judges whole periods of its metrics that
  * begin at or after the step started (its weight change was verified) plus
    the gate's `settle`: a period that mixes the previous step's traffic is
    never counted for this one;
  * CloudWatch has finished publishing: period end + the gate's `delay` <= now.
    An ALB publishes a minute's metrics once the minute is over, and
    CloudWatch makes them readable minutes later (docs/simulator.md cites
    AWS), so the newest periods are missing or partial if read too early.
Of those, a measurement looks at the last `window` seconds (default: the
rollout's interval, at least one period; for a gate with `whole_step`, such
as gate.baseline, every visible period of the step). During a bake the periods end at the
bake's last period; the step's verdict waits until that one is visible.

  window.DEFAULT_DELAY              seconds (180: ALB metrics, docs/strategies.md)
  window.check(kind, opts, period)  checks period=, delay=, settle=, window=
                                    -> the gate's fields { period=, delay=, ... }
  window.of(g, ctx)                 -> { from=, to=, period= } or nil (nothing visible yet)
  window.last_end(g, ctx)           -> end of the bake's last period (nil without a bake)
  window.ready_at(g, ctx)           -> when that period is visible
  window.describe(w)                "10:04-10:09" (UTC)

ctx: now, interval, step_started (epoch seconds; nil outside a rollout: then
only the publishing delay limits the window), bake (seconds at this step, nil
for none), overtime (true once the verdict time has passed: the gates keep
judging the periods after the bake's last one).
]]
local strings = require "ecsplay.util.strings"
local duration = require "ecsplay.duration"
local errors = require "ecsplay.errors"

local M = {}

-- CloudWatch's ALB metrics are readable about two minutes after their minute
-- ends, within three (docs/simulator.md); gates wait for the bound.
M.DEFAULT_DELAY = 180

local function bad(kind, field, msg)
  error(errors.bad_input("gate." .. kind .. ": " .. field .. ": " .. msg, field), 0)
end

local function seconds(kind, opts, field, default)
  local v = opts[field]
  if v == nil then return default end
  local s, err = duration.parse(v)
  if not s then bad(kind, field, err) end
  return s
end

-- A CloudWatch period a gate can judge: whole minutes (ALB metrics have no
-- finer resolution), or 1-30 s for high-resolution custom metrics.
local function valid_period(p)
  return math.type(p) == "integer" and p > 0 and (p % 60 == 0 or p == 1 or p == 5 or p == 10
    or p == 20 or p == 30)
end

--[[ Checks the window options of a metric gate and returns the gate's
     fields. `period` is the kind's own period (gate.cloudwatch's metrics),
     else opts.period (default 60). ]]
function M.check(kind, opts, period)
  if period == nil then
    period = opts.period == nil and 60 or opts.period
    if math.type(period) ~= "integer" or period <= 0 or period % 60 ~= 0 then
      bad(kind, "period", "expected seconds, a multiple of 60 (ALB metrics are per minute), like 60 or 300, "
        .. "got " .. strings.describe_value(opts.period))
    end
  elseif not valid_period(period) then
    bad(kind, "period", "expected seconds: 1, 5, 10, 20, 30 or a multiple of 60, got " .. strings.describe_value(period))
  end
  local f = { period = period, windowed = true }
  f.delay = seconds(kind, opts, "delay", M.DEFAULT_DELAY)
  f.settle = seconds(kind, opts, "settle", 0)
  f.window = seconds(kind, opts, "window", nil)
  if f.window and f.window < period then
    bad(kind, "window", string.format("expected at least the gate's period (%s), got %s",
      duration.format(period), duration.format(f.window)))
  end
  return f
end

local function floor_to(t, p) return math.floor(t / p) * p end
local function ceil_to(t, p) return math.ceil(t / p) * p end

-- Start of the first period that belongs to the step (nil outside a rollout).
local function first_start(g, ctx)
  if not ctx.step_started then return nil end
  return ceil_to(ctx.step_started + (g.settle or 0), g.period)
end

--[[ End of the bake's last period: the bake's whole periods after the first
     start, at least one (a bake shorter than a period whose start is not on
     a boundary still gets its one period, judged when it is visible). ]]
function M.last_end(g, ctx)
  local first = first_start(g, ctx)
  if not (first and ctx.bake) then return nil end
  local n = math.max(1, math.floor((ctx.step_started + ctx.bake - first) / g.period))
  return first + n * g.period
end

-- When the bake's last period is visible (nil without a bake).
function M.ready_at(g, ctx)
  local last = M.last_end(g, ctx)
  return last and (last + (g.delay or M.DEFAULT_DELAY)) or nil
end

-- The periods a measurement now judges, or nil when none of the step's is visible yet.
function M.of(g, ctx)
  local p = g.period or 60
  local to = floor_to(ctx.now - (g.delay or M.DEFAULT_DELAY), p)
  local last = M.last_end(g, ctx)
  if last and not ctx.overtime then to = math.min(to, last) end
  local first = first_start(g, ctx)
  local len = ceil_to(math.max(p, g.window or ctx.interval or p), p)
  local from = to - len
  if first and g.whole_step and not g.window then from = first end
  if first then from = math.max(from, first) end
  if to - from < p then return nil end
  return { from = from, to = to, period = p }
end

-- "10:04-10:09" (UTC, the log's time of day; seconds only for sub-minute periods).
function M.describe(w)
  if not w then return "no period yet" end
  local fmt = (w.from % 60 == 0 and w.to % 60 == 0) and "!%H:%M" or "!%H:%M:%S"
  return os.date(fmt, math.floor(w.from)) .. "-" .. os.date(fmt, math.floor(w.to))
end

return M
