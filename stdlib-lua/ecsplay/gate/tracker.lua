--[[
ecsplay.gate.tracker: running a list of gates and deciding on their
measurements. The bake (ecsplay.rollout.bake) owns the loop and its clock —
when to measure, when the bake is over, raising GateFailed — and asks the
tracker, once a round, to measure every gate and for its verdict.

  tracker.prepare_all(gates, ctx)  every gate's prepare, before any change
  tracker.new(gates, defaults)     -> tracker (gate.tracker)
    :measure(ctx)   -> list of {gate=, m=measurement}: the gates measured this
                       round (a metric gate only when a period it has not
                       judged yet is visible, gate.window)
    :verdict(skip)  -> "ok" | "abort", reason, gate
    :reset_streaks()  forgets the streaks (going on after a paused failure)
    :all_passed()   -> true when every non-dry-run gate's last measurement passed
  tracker.describe(m)              one line for a measurement (gate.describe)
  tracker.format_value(v, unit)    a measured value with its unit ("0.17%", "148 ms")
  tracker.longest_period(gates)    -> seconds, gate: the longest metric period
  tracker.ready_at(gates, ctx)     -> when every metric gate's last bake period is visible
]]
local errors = require "ecsplay.errors"
local sched = require "ecsplay.sched"
local window = require "ecsplay.gate.window"

local M = {}

-- The results a gate's measure may return; anything else counts as an error.
M.RESULTS = { pass = true, fail = true, inconclusive = true }

--[[ A measured value with its unit, as people read it: "0.17%", "148 ms",
     "4" (unit "count" or none), "0.43 p-value"; nil for no value. ]]
function M.format_value(v, unit)
  if v == nil then return nil end
  if type(v) ~= "number" then return tostring(v) end
  if unit == "%" then return string.format("%.2f%%", v) end
  if unit == "ms" then return string.format("%.0f ms", v) end
  local n = (math.type(v) == "integer" or (v == math.floor(v) and math.abs(v) < 1e15))
    and string.format("%d", v) or string.format("%.4g", v)
  if unit == nil or unit == "count" then return n end
  return n .. " " .. unit
end

-- One line: "fail 6.12% (want < 1%) 61 of 1000 requests" (result, value, threshold, detail).
function M.describe(m)
  if not m then return "not measured" end
  local parts = { m.result }
  if m.value ~= nil then parts[#parts + 1] = M.format_value(m.value, m.unit) end
  if m.threshold then parts[#parts + 1] = "(want " .. m.threshold .. ")" end
  if m.detail then parts[#parts + 1] = m.detail end
  if m.window then parts[#parts + 1] = "[" .. window.describe(m.window) .. "]" end
  return table.concat(parts, " ")
end

-- The longest period of the metric gates (nil when there are none) and its gate.
function M.longest_period(gates)
  local longest, which
  for _, g in ipairs(gates or {}) do
    if type(g) == "table" and g.windowed and (not longest or g.period > longest) then
      longest, which = g.period, g
    end
  end
  return longest, which
end

-- When the last period of the bake is visible for every metric gate (nil: none).
function M.ready_at(gates, ctx)
  local t
  for _, g in ipairs(gates or {}) do
    if type(g) == "table" and g.windowed then
      local r = window.ready_at(g, ctx)
      if r and (not t or r > t) then t = r end
    end
  end
  return t
end

-- Calls every gate's prepare (resolving names, proving resources exist).
function M.prepare_all(gates, ctx)
  for i, g in ipairs(gates or {}) do
    if type(g) ~= "table" or type(g.measure) ~= "function" then
      error(errors.bad_input("gates[" .. i .. "]: expected a gate (gate.alb_5xx_rate{...}, gate.check(...), "
        .. "...), got " .. type(g), "gates"), 0)
    end
    if g.prepare then g:prepare(ctx) end
  end
end

--[[ One measurement of gate g. A gate that raises (an API error, a provider
     that is down) or returns something that is not a measurement gives an
     { result = "error" } measurement; only an interruption goes through. ]]
local function measure_one(g, ctx)
  local ok, m = pcall(g.measure, g, ctx)
  if not ok then
    -- a broken rehearsal (a scenario's behaviour function failed) ends the run:
    -- no measurement of that world means anything
    if sched.is_interrupt(m) or errors.is(m, "scenario") then error(m, 0) end
    return { result = "error", detail = errors.describe(m) }
  end
  if type(m) ~= "table" or not M.RESULTS[m.result] then
    -- a custom gate's bug is the provider failing, not a crash of the rollout
    return { result = "error", detail = string.format("gate `%s` returned %s; expected a measurement "
      .. "{ result = \"pass\"|\"fail\"|\"inconclusive\", value=, threshold= }", tostring(g.name),
      type(m) == "table" and ("result = " .. tostring(m.result)) or tostring(m)) }
  end
  return m
end

--[[ The streaks, per gate: a pass resets everything; a fail resets the
     inconclusive and error streaks; no data resets the error streak; only a
     pass ends a failure streak (fail, no data, fail is two failures in a row:
     missing data is no evidence of recovery). ]]
local function count(e, m)
  if m.result == "pass" then
    e.fails, e.inconclusive, e.errors = 0, 0, 0
  elseif m.result == "fail" then
    e.fails, e.inconclusive, e.errors = e.fails + 1, 0, 0
  elseif m.result == "inconclusive" then
    e.inconclusive, e.errors = e.inconclusive + 1, 0
  else
    e.errors = e.errors + 1
  end
  e.last = m
end

local Tracker = {}
Tracker.__index = Tracker

--[[ defaults: { failure_limit=, inconclusive_limit=, error_limit= } (the
     rollout's); a gate's own limits win. ]]
function M.new(gates, defaults)
  defaults = defaults or {}
  local t = setmetatable({ entries = {} }, Tracker)
  for i, g in ipairs(gates or {}) do
    t.entries[i] = {
      gate = g,
      failure_limit = g.failure_limit or defaults.failure_limit or 1,
      inconclusive_limit = g.inconclusive_limit or defaults.inconclusive_limit or 3,
      error_limit = g.error_limit or defaults.error_limit or 3,
      fails = 0, inconclusive = 0, errors = 0, last = nil,
    }
  end
  return t
end

-- The context a metric gate measures in this round (its window chosen), or
-- nil when it has nothing new to judge: no visible period of the step yet,
-- or none after the last one it judged.
local function round_ctx(e, ctx)
  if not e.gate.windowed then return ctx end
  local w = window.of(e.gate, ctx)
  if not w or (e.judged_to and w.to <= e.judged_to) then return nil end
  e.judged_to = w.to
  local c = {}
  for k, v in pairs(ctx) do c[k] = v end
  c.window = w
  return c
end

--[[ Measures a round's gates at once: the first in this task, each other in a task of
     its own, so that their reads meet in one round of the shared batcher (aws/batch.lua)
     and a rollout's gates share GetMetricData calls with each other as well as with
     other rollouts' (one call a round, not one a gate). Every task has ended before this
     returns or raises; an interruption (a signal, this task cancelled) is passed on to
     the others and raised once they are done. → the measurements, in `todo`'s order ]]
local function measure_round(todo)
  local ms = {}
  if #todo < 2 or not sched.in_task() then
    for i, t in ipairs(todo) do ms[i] = measure_one(t.gate, t.ctx) end
    return ms
  end
  local tasks = {}
  for i = 2, #todo do tasks[i - 1] = sched.spawn(measure_one, todo[i].gate, todo[i].ctx) end
  local ok, first = pcall(measure_one, todo[1].gate, todo[1].ctx)
  local raised = not ok and first or nil
  ms[1] = first
  if raised ~= nil then sched.cancel_all(tasks, errors.describe(raised)) end
  for i, t in ipairs(tasks) do
    local tok, value, interrupt = sched.settle(t, tasks)
    raised = raised or interrupt
    if tok then ms[i + 1] = value else raised = raised or value end
  end
  if raised ~= nil then error(raised, 0) end
  return ms
end

function Tracker:measure(ctx)
  local todo = {}
  for _, e in ipairs(self.entries) do
    local gctx = round_ctx(e, ctx)
    if gctx then todo[#todo + 1] = { entry = e, gate = e.gate, ctx = gctx } end
  end
  local ms, out = measure_round(todo), {}
  for i, t in ipairs(todo) do
    local m = ms[i]
    if t.ctx.window and m.window == nil then m.window = t.ctx.window end
    count(t.entry, m)
    out[i] = { gate = t.gate, m = m }
  end
  return out
end

-- The streaks that abort, each with the words the reason uses.
local STREAKS = {
  { "fails", "failure_limit", "failed" },
  { "inconclusive", "inconclusive_limit", "was inconclusive" },
  { "errors", "error_limit", "could not be measured" },
}

-- skip(gate) → true: that gate is not judged (bake.lua: gates already paused on).
-- The third result is the gate whose streak aborts.
function Tracker:verdict(skip)
  for _, e in ipairs(self.entries) do
    if not e.gate.dry_run and not (skip and skip(e.gate)) then
      for _, s in ipairs(STREAKS) do
        local n, limit = e[s[1]], e[s[2]]
        if n >= limit then
          return "abort", string.format("gate `%s` %s %d time(s) in a row (limit %d): %s",
            e.gate.name, s[3], n, limit, M.describe(e.last)), e.gate
        end
      end
    end
  end
  return "ok"
end

-- Forgets every streak (a person decided to go on after a failure: bake.lua).
function Tracker:reset_streaks()
  for _, e in ipairs(self.entries) do e.fails, e.inconclusive, e.errors = 0, 0, 0 end
end

function Tracker:all_passed()
  for _, e in ipairs(self.entries) do
    if not e.gate.dry_run and (not e.last or e.last.result ~= "pass") then return false end
  end
  return true
end

return M
