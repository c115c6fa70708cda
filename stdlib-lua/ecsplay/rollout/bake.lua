--[[
Measuring gates while something bakes, shared by every strategy.

Who owns what: the bake owns the measurement loop and its clock — when to
measure (every `interval`), when the step started (the time the bake began,
right after its change was verified), how long it bakes, when its verdict is
due (the bake is over and, for metric gates, its last period is visible:
gate.ready_at), and raising GateFailed. The gate tracker
(ecsplay.gate.tracker) owns the verdicts: once a round the bake asks it to
measure (each metric gate picks the periods it judges from the clock the
bake hands it: now, step_started, bake, overtime; gate/window.lua), then for
its verdict (keep going or abort, from each gate's streaks and limits) and
whether every gate's last measurement passed. Neither decides the other's
part: the tracker never sleeps, the bake never judges a measurement.

  local w = bake.watcher(run, c, gates, fields)   -- c: interval + limits
  w:tick()          measures when an interval has passed since the last
                    measurement; raises GateFailed when the tracker says abort
  w:bake(seconds)   measures every interval for `seconds`; returns when the
                    verdict is due and every gate's last measurement passed,
                    raises GateFailed on abort or when the gates still have
                    not all passed well after it (a quiet new version is
                    never promoted on no data)
  w.rounds          every round's measurements, for the report
]]
local sched = require "ecsplay.sched"
local duration = require "ecsplay.duration"
local errors = require "ecsplay.errors"
local gate = require "ecsplay.gate"

local M = {}

local Watcher = {}
Watcher.__index = Watcher

function M.watcher(run, c, gates, fields)
  local now = sched.now()
  return setmetatable({ run = run, c = c, gates = gates or {}, fields = fields or {},
    tracker = gate.tracker(gates or {}, c), rounds = {}, next_at = now + c.interval,
    started = now, step_started = now }, Watcher)
end

local function gate_failed(message)
  return errors.new("gate", { code = "GateFailed", message = message })
end

-- One round of measurements now; raises GateFailed on abort.
function Watcher:measure(extra)
  local now = sched.now()
  local mctx = { now = now, interval = self.c.interval, bake_started = self.started,
    step_started = self.step_started, bake = self.seconds, cluster = self.c.cluster }
  -- past the verdict's time (gates that had not all passed): the windows may
  -- run on past the bake's last period, the traffic being still the step's
  mctx.overtime = self.due ~= nil and now > self.due
  for k, v in pairs(self.fields) do mctx[k] = v end
  for k, v in pairs(extra or {}) do mctx[k] = v end
  local round = {}
  for _, m in ipairs(self.tracker:measure(mctx)) do
    round[#round + 1] = { gate = m.gate.name, result = m.m.result, value = m.m.value,
      threshold = m.m.threshold, detail = m.m.detail, dry_run = m.gate.dry_run or nil,
      window = m.m.window, time = now }
    self.run:log(m.m.result == "pass" and "info" or "warn", "gate",
      string.format("  gate %s: %s%s", m.gate.name, gate.describe(m.m),
        m.gate.dry_run and " [dry run]" or ""),
      { gate = m.gate.name, result = m.m.result, value = m.m.value, phase = mctx.phase })
  end
  -- a round where no gate had anything new to judge (no metric period visible yet) is not reported
  if #round > 0 then self.rounds[#self.rounds + 1] = round end
  self.next_at = sched.now() + self.c.interval
  local verdict, why = self.tracker:verdict()
  if verdict == "abort" then error(gate_failed(why), 0) end
  return round
end

--[[ A new step seen by tick: the metric gates judge periods from now on,
     and the rounds move onto the grid (every interval) through the moment
     the step's first period becomes visible, so each is judged as soon as
     CloudWatch shows it: a step that lasts only until its first periods are
     published (CodeDeploy's last shift before it finishes) is still judged. ]]
function Watcher:new_step(key)
  local now = sched.now()
  self.step_key, self.step_started = key, now
  local visible = gate.ready_at(self.gates, { step_started = now, bake = 0 })
  if visible then
    local i = self.c.interval
    self.next_at = visible - math.floor((visible - now) / i) * i
  end
end

--[[ For strategies whose steps happen outside the watcher (CodeDeploy
     shifting traffic, ECS deploying): a new phase or weight in `extra` starts
     a new step, so the metric gates judge only periods from the first time
     the watcher saw it (a later time than the change itself: never too early). ]]
function Watcher:tick(extra)
  if #self.gates == 0 then return end
  local key = extra and (tostring(extra.phase) .. "\0" .. tostring(extra.weight)) or ""
  if key ~= self.step_key then self:new_step(key) end
  if sched.now() >= self.next_at then self:measure(extra) end
end

function Watcher:all_passed() return self.tracker:all_passed() end

function Watcher:bake(seconds, extra)
  local started = sched.now()
  self.started, self.step_started, self.seconds = started, started, seconds
  if #self.gates == 0 then
    sched.sleep(seconds)
    return
  end
  local c = self.c
  -- the verdict is due once the bake is over and its last metric periods are visible
  local due = math.max(started + seconds, gate.ready_at(self.gates, { step_started = started, bake = seconds,
    interval = c.interval }) or 0)
  self.due = due
  local cap = due + math.max(seconds, c.interval * (c.inconclusive_limit + c.failure_limit))
  while true do
    local remaining = due - sched.now()
    sched.sleep(remaining > 0 and math.min(c.interval, remaining) or c.interval)
    self:measure(extra)
    local now = sched.now()
    if now >= due and self.tracker:all_passed() then return end
    if now >= cap then
      error(gate_failed(string.format("gates did not all pass by the end of the bake (%s)%s",
        duration.format(now - started), extra and extra.phase and (" at " .. extra.phase) or "")), 0)
    end
  end
end

return M
