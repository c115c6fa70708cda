--[[
Measuring gates while something bakes, shared by every strategy.

  local w = bake.watcher(run, c, gates, fields)   -- c: interval + limits
  w:tick()          measures when an interval has passed since the last
                    measurement; raises GateFailed when the tracker says abort
  w:bake(seconds)   measures every interval for `seconds`; returns when the
                    bake is over and every gate's last measurement passed,
                    raises GateFailed on abort or when the gates still have
                    not all passed well after the bake (a quiet new version
                    is never promoted on no data)
]]
local sched = require "ecsplay.sched"
local duration = require "ecsplay.duration"
local gate = require "ecsplay.gate"

local M = {}

local Watcher = {}
Watcher.__index = Watcher

function M.watcher(run, c, gates, fields)
  return setmetatable({ run = run, c = c, gates = gates or {}, fields = fields or {},
    tracker = gate.tracker(gates or {}, c), rounds = {}, next_at = sched.now() + c.interval,
    started = sched.now() }, Watcher)
end

-- One round of measurements now; raises GateFailed on abort.
function Watcher:measure(extra)
  local mctx = { now = sched.now(), interval = self.c.interval, bake_started = self.started,
    cluster = self.c.cluster }
  for k, v in pairs(self.fields) do mctx[k] = v end
  for k, v in pairs(extra or {}) do mctx[k] = v end
  local round = {}
  for _, m in ipairs(self.tracker:measure(mctx)) do
    round[#round + 1] = { gate = m.gate.name, result = m.m.result, value = m.m.value,
      threshold = m.m.threshold, detail = m.m.detail, dry_run = m.gate.dry_run or nil }
    self.run:log(m.m.result == "pass" and "info" or "warn", "gate",
      string.format("  gate %s: %s%s", m.gate.name, gate.describe(m.m),
        m.gate.dry_run and " [dry run]" or ""),
      { gate = m.gate.name, result = m.m.result, value = m.m.value, phase = mctx.phase })
  end
  self.rounds[#self.rounds + 1] = round
  self.next_at = sched.now() + self.c.interval
  local verdict, why = self.tracker:verdict()
  if verdict == "abort" then
    error({ code = "GateFailed", message = why, measurements = self.rounds }, 0)
  end
  return round
end

function Watcher:tick(extra)
  if #self.gates == 0 then return end
  if sched.now() >= self.next_at then self:measure(extra) end
end

function Watcher:all_passed() return self.tracker:all_passed() end

function Watcher:bake(seconds, extra)
  local started = sched.now()
  self.started = started
  if #self.gates == 0 then
    sched.sleep(seconds)
    return
  end
  local c = self.c
  local cap = started + seconds + math.max(seconds, c.interval * (c.inconclusive_limit + c.failure_limit))
  while true do
    local remaining = started + seconds - sched.now()
    sched.sleep(remaining > 0 and math.min(c.interval, remaining) or c.interval)
    self:measure(extra)
    local now = sched.now()
    if now >= started + seconds and self.tracker:all_passed() then return end
    if now >= cap then
      error({ code = "GateFailed", message = string.format(
        "gates did not all pass by the end of the bake (%s)%s", duration.format(now - started),
        extra and extra.phase and (" at " .. extra.phase) or ""), measurements = self.rounds }, 0)
    end
  end
end

--[[ The options every gated strategy shares, checked with `options`. ]]
function M.check_options(options, strategy, o, c)
  c.interval = options.duration(strategy, o, "interval", 60)
  if c.interval <= 0 then options.bad(strategy, "interval", "expected a duration above 0") end
  c.failure_limit = options.integer(strategy, o, "failure_limit", 1, 1)
  c.inconclusive_limit = options.integer(strategy, o, "inconclusive_limit", 3, 1)
  c.error_limit = options.integer(strategy, o, "error_limit", 3, 1)
  c.on_abort = options.func(strategy, o, "on_abort")
  c.notify = options.func(strategy, o, "notify")
  c.journal = o.journal
  if o.gates ~= nil and type(o.gates) ~= "table" and type(o.gates) ~= "function" then
    options.bad(strategy, "gates", "expected a list of gates (or a function(green) returning one)")
  end
  c.gates = o.gates or {}
end

--[[ gates may be a list or a function(side) returning one, for strategies
     whose new side is only known once the current traffic has been read. ]]
function M.resolve_gates(options, strategy, gates, side)
  if type(gates) == "function" then
    local ok, list = pcall(gates, side)
    if not ok then error(list, 0) end
    if type(list) ~= "table" then
      options.bad(strategy, "gates", "the gates function must return a list of gates, got " .. type(list))
    end
    return list
  end
  return gates
end

return M
