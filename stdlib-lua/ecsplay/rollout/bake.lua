--[[
Measuring gates while something bakes, shared by every strategy.

Who owns what: the bake owns the measurement loop and its clock — when to
measure (every `interval`, on a grid all rollouts share: below), when the
step started (the time the bake began, right after its change was
verified), how long it bakes, when its verdict is
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

The rounds' grid: a bake measures at the multiples of `interval` since the
epoch (shifted by the gates' delay when that is not whole intervals:
grid_anchor), not "interval after the bake began". CloudWatch periods are
minute-aligned and a period becomes visible at its end + the gate's delay
(gate/window.lua), on that grid, so a round on it sees everything a round at
started + k * interval would see, never later; and every rollout measuring
with the same interval measures at the same instant, where the shared batcher
(aws/batch.lua) merges their GetMetricData queries into a few calls. The
verdict's due time stays a round of its own when it is off the grid (a bake
with no metric gate). A new step seen by tick anchors the grid at the moment
its first period is visible (new_step).

Steering (rollout/control.lua): the bake's waits are where a running rollout
takes its commands — promote ends the bake, abort rolls back (kind rollout,
code Aborted), pause holds it past its end with the gates still measuring
until unpause. A failed gate whose on_failure (the gate's, else the
rollout's) is "pause" holds the weights instead of rolling back
(hold_after_failure) while a person decides; approval steps wait here too
(rollout/approval.lua, w:approval). w.hold_until (simulated time) bounds a
hold where the service stops waiting by itself (an ECS pause hook's
timeout): the run rolls back then, saying w.hold_what. Between a strategy's
polls of a service that moves the traffic itself, w:moving and
w:wait_moving take the commands (below).
]]
local sched = require "ecsplay.sched"
local duration = require "ecsplay.duration"
local errors = require "ecsplay.errors"
local gate = require "ecsplay.gate"
local present = require "ecsplay.gate.present"
local control = require "ecsplay.rollout.control"

local M = {}

local Watcher = {}
Watcher.__index = Watcher

local function gcd(a, b)
  while b ~= 0 do a, b = b, a % b end
  return a
end

--[[ The anchor of the rounds' grid (anchor + k * interval): when a step's
     first metric period is visible, reduced modulo the largest step that
     divides both the interval and the period, so that it does not depend on
     when the step began (every rollout with the like gates gets the same
     grid) while each instant of the grid is one where a period becomes
     visible (interval a multiple of the period) or each such instant is on it
     (interval dividing the period). 0 (the epoch) without metric gates. ]]
local function grid_anchor(gates, interval, t)
  local visible = gate.ready_at(gates, { step_started = t, bake = 0 })
  local period = gate.longest_period(gates)
  if not (visible and period) then return 0 end
  local step = (math.type(interval) == "integer" and math.type(period) == "integer")
    and gcd(interval, period) or interval
  return visible % step
end

function M.watcher(run, c, gates, fields)
  local now = sched.now()
  local anchor = grid_anchor(gates or {}, c.interval, now)
  return setmetatable({ run = run, c = c, gates = gates or {}, fields = fields or {},
    tracker = gate.tracker(gates or {}, c), rounds = {}, anchor = anchor,
    next_at = sched.next_tick(c.interval, now, anchor), started = now, step_started = now,
    live = control.of(run) }, Watcher)
end

-- The first instant of the rounds' grid after t (default: now).
function Watcher:next_round(t)
  return sched.next_tick(self.c.interval, t or sched.now(), self.anchor)
end

local ROLLBACK = { action = "rollback" }

-- What a failure of gate g does: its own on_failure, else the rollout's, else roll back.
function Watcher:policy(g)
  return (type(g) == "table" and g.on_failure) or self.c.on_failure or ROLLBACK
end

local function gate_failed(message)
  return errors.new("gate", { code = "GateFailed", message = message })
end

-- A number the journal can hold (JSON has no NaN or infinity), or nil.
local function finite(v)
  if type(v) == "number" and v == v and v ~= math.huge and v ~= -math.huge then return v end
end

--[[ The round as one {"t":"gate"} journal line, for the run's report
     (ecsplay.report): each gate's verdict, value, unit, threshold and window.
     Not a step: a line that cannot be written never stops the run. ]]
local function journal_round(run, round, mctx, verdict, why)
  if #round == 0 or not run.jnote then return end
  local gates = {}
  for i, r in ipairs(round) do
    local w = type(r.window) == "table" and r.window or nil
    gates[i] = { name = tostring(r.gate), verdict = r.result, value = finite(r.value),
      shown = r.value ~= nil and finite(r.value) == nil and tostring(r.value):sub(1, 200) or nil,
      unit = r.unit, threshold = r.threshold and tostring(r.threshold), dry_run = r.dry_run,
      window = w and { from = finite(w.from), to = finite(w.to) } or nil }
  end
  run:jnote { t = "gate", step = finite(mctx.step), weight = finite(mctx.weight),
    phase = mctx.phase and tostring(mctx.phase), abort = verdict == "abort" or nil,
    reason = verdict == "abort" and why or nil, gates = gates }
end

local function gate_names(gates)
  local names = {}
  for i, g in ipairs(gates) do names[i] = tostring(type(g) == "table" and g.name or g) end
  return names
end

local function all_pass(entries)
  for _, e in ipairs(entries) do
    if e.verdict ~= "pass" and not e.dry_run then return false end
  end
  return true
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
  local round, entries = {}, {}
  for _, m in ipairs(self.tracker:measure(mctx)) do
    round[#round + 1] = { gate = m.gate.name, result = m.m.result, value = m.m.value,
      threshold = m.m.threshold, detail = m.m.detail, dry_run = m.gate.dry_run or nil,
      window = m.m.window, unit = m.m.unit, time = now }
    local fields = present.gate_fields(m.gate, m.m)
    entries[#entries + 1] = fields
    self.run:log(m.m.result == "pass" and "info" or "warn", "gate",
      string.format("gate %s: %s%s", m.gate.name, gate.describe(m.m),
        m.gate.dry_run and " [dry run]" or ""), present.at(fields, mctx))
  end
  -- people read one line per round (the gate events above are for machines)
  if #entries > 0 then
    local pos = { step = mctx.step, step_count = mctx.step_count, weight = mctx.weight, phase = mctx.phase,
      elapsed = now - self.step_started, bake = self.seconds }
    pos.gates = entries
    self.run:log(all_pass(entries) and "info" or "warn", "round", present.round_line(entries, pos), pos)
  end
  -- a round where no gate had anything new to judge (no metric period visible yet) is not reported
  if #round > 0 then self.rounds[#self.rounds + 1] = round end
  self.next_at = self:next_round()
  local verdict, why, g = self.tracker:verdict(self:skip_paused())
  journal_round(self.run, round, mctx, verdict, why)
  self.live:measured(round)
  if verdict == "abort" then self:failed(why, g, extra) end
  return round
end

--[[ A gate's verdict was abort (g: the gate; nil: the bake's own limit): roll
     back (raise GateFailed), or, when its on_failure says pause and the run
     waits here (a bake or an approval, not a phase another service drives),
     hold the weights until someone decides (hold_after_failure). ]]
function Watcher:failed(why, g, extra)
  local p = self:policy(g)
  if p.action == "pause" and not self.can_hold and not self.holding then
    -- said, not silently ignored: the service moving the traffic cannot be held
    local what = self:moving_what()
    self.live:record({ command = "on_failure", source = "gate", user = "ecsplay", host = self.live.host },
      "not applicable now: on_failure = pause cannot hold while " .. what .. ": rolling back")
    error(gate_failed(why .. "; on_failure = pause could not hold while " .. what), 0)
  end
  if p.action ~= "pause" or not self.can_hold or self.holding then error(gate_failed(why), 0) end
  self:hold_after_failure(why, p, extra)
end

-- While holding after a failure, the gates that pause are not judged again.
function Watcher:skip_paused()
  if not self.holding then return nil end
  return function(g) return self:policy(g).action == "pause" end
end

--[[ Paused after a failure (on_failure = "pause"): the weights stay, the
     gates go on measuring (one that rolls back still does), and the run waits
     for `ecsplay promote` / `unpause` (go on: the streaks are forgotten;
     promote also ends the bake), `abort` (roll back), or the timeout
     (on_timeout). ]]
function Watcher:hold_after_failure(why, p, extra)
  local live, run = self.live, self.run
  if self.hold_until and self.hold_until < sched.now() + p.timeout then
    -- the service stops waiting first (an ECS pause hook's timeout rolls back): so does the hold
    p = { action = "pause", timeout = math.max(0, self.hold_until - sched.now()), on_timeout = "rollback" }
  end
  self.holding = true
  live.paused = true
  live:set_state("paused", "gate failed: " .. why)
  run:log("warn", "pause", string.format("%s: paused instead of rolling back: %s; waiting up to %s for "
    .. "`ecsplay promote` or `unpause` (go on) or `abort` (roll back); then: %s", run.name, why,
    duration.format(p.timeout), p.on_timeout), { reason = why, timeout = p.timeout, on_timeout = p.on_timeout })
  local deadline = sched.now() + p.timeout
  local outcome
  while not outcome do
    for _, cmd in ipairs(live:sleep_until(math.min(deadline, self.next_at))) do
      local r = live:apply(cmd, "hold")
      if r == "abort" then error(control.aborted(cmd), 0) end
      if r == "end" then outcome = cmd.command break end
    end
    if not outcome and sched.now() >= deadline then
      if p.on_timeout ~= "promote" then
        error(gate_failed(string.format("%s; paused %s with no decision (on_timeout = rollback)", why,
          duration.format(p.timeout))), 0)
      end
      live:record({ command = "timeout", source = "timer", user = "ecsplay", host = live.host },
        "paused " .. duration.format(p.timeout) .. " with no decision: going on (on_timeout = promote)")
      outcome = "promote"
    end
    if not outcome and sched.now() >= self.next_at then self:measure(extra) end
  end
  self.tracker:reset_streaks()
  self.holding = false
  live.paused, live.paused_reason = false, nil
  live:set_state("running")
  if outcome == "promote" then self.promoted = true end
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
    self.anchor, self.next_at = visible, visible - math.floor((visible - now) / i) * i
  end
end

--[[ For strategies whose steps happen outside the watcher (CodeDeploy
     shifting traffic, ECS deploying): a new phase or weight in `extra` starts
     a new step, so the metric gates judge only periods from the first time
     the watcher saw it (a later time than the change itself: never too early). ]]
function Watcher:tick(extra)
  self:take_commands_between_polls()
  local key = extra and (tostring(extra.phase) .. "\0" .. tostring(extra.weight)) or ""
  if key ~= self.step_key and extra then
    self.live:set_step({ phase = extra.phase, weight = extra.weight })
  end
  if #self.gates == 0 then return end
  if key ~= self.step_key then self:new_step(key) end
  if sched.now() >= self.next_at then self:measure(extra) end
end

function Watcher:all_passed() return self.tracker:all_passed() end

--[[ While the strategy's own service moves the traffic (CodeDeploy shifting,
     ECS deploying), the strategy says what the commands can do there:
       w:moving { what = "CodeDeploy shifts the traffic ...", (each field a value
                  or a function giving it now)
                  promote = function(cmd) → effect | nil, why not (may call the
                            service's own control: ContinueDeployment, ...),
                  hold_at = the effect of a pause taken now and held at the
                            service's next stop (nil: it cannot hold),
                  cannot_hold = why a pause cannot hold here }
     abort rolls back now (the strategy's undo stops the service's deployment),
     unpause lifts a pause taken for later; every other command that cannot
     act is answered "not applicable now: ..." (journaled, never ignored). ]]
function Watcher:moving(how) self.how = how end

-- A field of w:moving's table: a value, or a function giving it now (the service's state changes).
local function now_of(v)
  if type(v) == "function" then return v() end
  return v
end

-- What moves the traffic now, for messages.
function Watcher:moving_what()
  return now_of(self.how and self.how.what) or (tostring(self.run.strategy) .. " moves the traffic on its own")
end

-- One command between the service's polls; → true when it changed the deployment (poll again now).
function Watcher:take_between_polls(cmd)
  local live, how = self.live, self.how or {}
  local c = cmd.command
  if c == "abort" or c == "reject" then
    live:record(cmd, "rolling back now")
    error(control.aborted(cmd), 0)
  elseif c == "pause" then
    live:pause_later(cmd, now_of(how.hold_at), now_of(how.cannot_hold) or ("the run cannot hold while "
      .. self:moving_what()))
  elseif c == "unpause" then
    live:apply(cmd, "bake")
  elseif c == "promote" and how.promote then
    local effect, why = how.promote(cmd)
    if effect then
      live.paused, live.paused_reason, live.state = false, nil, "running"
      live:record(cmd, effect)
      return true
    end
    live:not_applicable(cmd, why)
  else
    live:not_applicable(cmd, (c == "approve" and "no approval step waits" or "nothing to end")
      .. " while " .. self:moving_what())
  end
  return false
end

function Watcher:take_commands_between_polls()
  local changed = false
  for _, cmd in ipairs(self.live:poll()) do
    if self:take_between_polls(cmd) then changed = true end
  end
  return changed
end

--[[ The strategy's sleep between two polls of its service, taking commands
     as they come (within about half a second of wall time, control.lua):
     → true when one changed the deployment (poll again now). ]]
function Watcher:wait_moving(t)
  while sched.now() < t do
    local changed = false
    local cmds = self.live:sleep_until(t)
    if #cmds == 0 then return false end
    for _, cmd in ipairs(cmds) do
      if self:take_between_polls(cmd) then changed = true end
    end
    if changed then return true end
  end
  return false
end

-- Waits until t unless a command ends the wait; → true when promote ended it.
function Watcher:wait_until(t)
  for _, cmd in ipairs(self.live:sleep_until(t)) do
    local r = self.live:apply(cmd, "bake")
    if r == "abort" then error(control.aborted(cmd), 0) end
    if r == "end" then return true end
  end
  return false
end

--[[ The bake: measures every interval for `seconds`, then returns when the
     verdict is due and every gate's last measurement passed. Commands act
     at once (rollout/control.lua): promote ends it, abort rolls back, pause
     holds it past its end (the gates still measuring) until unpause. ]]
function Watcher:bake(seconds, extra)
  local started = sched.now()
  self.started, self.step_started, self.seconds = started, started, seconds
  self.anchor = grid_anchor(self.gates, self.c.interval, started)
  local c, live = self.c, self.live
  local gated = #self.gates > 0
  if not (extra and extra.step) and extra and extra.phase then
    live:set_step({ phase = extra.phase, weight = extra.weight })
  end
  -- the verdict is due once the bake is over and its last metric periods are visible
  local due = math.max(started + seconds, gated and gate.ready_at(self.gates, { step_started = started,
    bake = seconds, interval = c.interval }) or 0)
  self.due = due
  -- for machines and the terminal's countdown (a text line of its own only with -v)
  self.run:log("info", "baking", string.format("baking %s with %d gate(s), measuring every %s",
    duration.format(seconds), #self.gates, duration.format(c.interval)), { bake = seconds,
    interval = c.interval, verdict_in = due - started, gate_names = #self.gates > 0 and gate_names(self.gates) or nil,
    step = extra and extra.step, weight = extra and extra.weight, phase = extra and extra.phase })
  local hold_rounds = c.interval * (c.inconclusive_limit + c.failure_limit)
  local cap = due + math.max(seconds, hold_rounds)
  self.can_hold, self.promoted = true, false
  local target
  while true do
    if not target then
      -- the next instant of the grid, or the verdict's due time if that comes first
      local now = sched.now()
      target = self:next_round(now)
      if now < due then target = math.min(target, due) end
    end
    -- held at a stop the service ends by itself (an ECS pause hook's timeout): no longer than it allows
    if live.paused and self.hold_until then
      if sched.now() >= self.hold_until then
        error(errors.new("rollout", { code = "HoldTimedOut", message = self.hold_what
          or "paused past the time the service waits" }), 0)
      end
      target = math.min(target, self.hold_until)
    end
    if self:wait_until(target) then break end
    if sched.now() >= target then
      target = nil
      if gated then self:measure(extra) end
      if self.promoted then break end
      local now = sched.now()
      if live.paused then
        cap = math.max(cap, now + hold_rounds) -- held: the limit counts from the unpause
      elseif now >= due and (not gated or self.tracker:all_passed()) then
        break
      elseif gated and now >= cap then
        self:failed(string.format("gates did not all pass by the end of the bake (%s)%s",
          duration.format(now - started), extra and extra.phase and (" at " .. extra.phase) or ""), nil, extra)
        cap = sched.now() + hold_rounds
        if self.promoted then break end
      end
    end
  end
  self.can_hold = false
end

return M
