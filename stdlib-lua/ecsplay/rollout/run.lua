--[[
One rollout run: the undo stack, the journal, the report and the output that
every strategy shares. A strategy is a plan of steps:

  local run = Run.new("canary", opts, { name = "canary api" })
  return run:guard(function()
    local td = run:step("register", "register task definition", function() ... end)
    run:step("weight:1", "shift 10%", function() traffic.set(...) end,
             { op = "set_weights", point = p, weights = home })
  end)

step() records the undo of a change (journal line, fsynced) before making it.
guard() runs the plan; on any failure (gate, API error, Lua error, SIGINT,
SIGTERM) it carries out the undo stack newest first and raises an error that
says what happened and whether the rollback completed (exit codes 1/3/130/143).
]]
local sched = require "ecsplay.sched"
local log = require "ecsplay.log"
local json = require "ecsplay.json"
local actions = require "ecsplay.rollout.actions"
local errors = require "ecsplay.errors"
local journal_mod = require "ecsplay.rollout.journal"

local Run = {}
Run.__index = Run

local RolloutFailed = {}
RolloutFailed.__index = RolloutFailed
RolloutFailed.__tostring = function(e)
  local s = e.message
  if e.rollback_failed then s = s .. " — ROLLBACK FAILED: " .. tostring(e.left) end
  return s
end
Run.RolloutFailed = RolloutFailed

--[[ opts: the strategy's options (journal=, notify=, on_abort=, name=) ]]
function Run.new(strategy, opts, meta)
  local ecsplay = require "ecsplay"
  local self = setmetatable({
    strategy = strategy,
    name = (meta and meta.name) or strategy,
    opts = opts,
    undo = {},
    notify_fn = opts.notify,
    on_abort_fn = opts.on_abort,
    report = { strategy = strategy, steps = {}, started = sched.now(), status = "running" },
  }, Run)
  local resume = ecsplay._resume and ecsplay._resume[self.name]
  if resume then
    self.resume = resume
    self.id = resume.start.run
    self.journal = journal_mod.open(nil, resume.path)
    for _, u in ipairs(resume.undo) do
      self.undo[#self.undo + 1] = { key = u.key, action = u.action, index = u.index }
    end
    self.next_undo_index = #(resume.all_undo or {})
    self:log("info", "resume", string.format("resuming %s: %d step(s) already done", self.name,
      self:count_done()))
  else
    self.id = journal_mod.new_id(strategy, require("ecsplay.core").realtime())
    self.next_undo_index = 0
    local want = opts.journal
    if want == nil then want = not ecsplay.simulated or os.getenv("ECSPLAY_RUNS_DIR") ~= nil end
    if want then
      local run_info = ecsplay._run or {}
      self.journal = journal_mod.open {
        run = self.id, name = self.name, strategy = strategy,
        playbook = run_info.playbook, args = run_info.args, config = run_info.config,
      }
    end
  end
  self.report.run_id = self.id
  self.report.journal = self.journal and self.journal.path or nil
  return self
end

-- The journal state when `ecsplay resume` re-runs the strategy named `name`:
-- strategies skip the "already in progress" checks that their own earlier
-- run would otherwise trip.
function Run.resuming(name)
  local r = require("ecsplay")._resume
  return r and r[name] or nil
end

-- True when the journal shows step `key` completed (resume only).
function Run:done(key)
  return self.resume ~= nil and self.resume.done[key] ~= nil
end

function Run:count_done()
  local n = 0
  for _ in pairs(self.resume and self.resume.done or {}) do n = n + 1 end
  return n
end

function Run:log(level, event, message, fields)
  log.event(level, event, message, fields)
  if self.notify_fn then
    local ev = { event = event, level = level, message = message, strategy = self.strategy,
      run = self.id, time = sched.now() }
    for k, v in pairs(fields or {}) do if ev[k] == nil then ev[k] = v end end
    -- a broken webhook must not break the rollout
    local ok, err = pcall(self.notify_fn, ev)
    if not ok then
      if sched.is_interrupt(err) then error(err, 0) end
      log.event("warn", "notify", "notify hook failed: " .. tostring(err))
    end
  end
end

function Run:jwrite(obj)
  if self.journal then self.journal:write(obj) end
end

local function same_action(a, b)
  return json.encode(a) == json.encode(b)
end

--[[ Runs fn as the step `key`, after recording `undo` (an actions.lua table)
     unless the very same undo is already on the stack. On resume a step the
     journal shows done returns its recorded result without running. ]]
function Run:step(key, desc, fn, undo)
  if self.resume and self.resume.done[key] ~= nil then
    self:log("debug", "skip", "already done: " .. desc, { key = key })
    local r = self.resume.done[key]
    return r ~= true and r or nil
  end
  local journal_undo = nil
  if undo then
    local dup = false
    for _, u in ipairs(self.undo) do if same_action(u.action, undo) then dup = true end end
    if not dup then
      self.next_undo_index = self.next_undo_index + 1
      self.undo[#self.undo + 1] = { key = key, action = undo, index = self.next_undo_index }
      journal_undo = undo
    end
  end
  self:jwrite { t = "do", key = key, desc = desc, undo = journal_undo or json.null }
  local result = fn()
  local jr = result
  if type(jr) == "table" then
    local ok = json.encode(jr)
    if not ok then jr = nil end
  elseif type(jr) ~= "string" and type(jr) ~= "number" and type(jr) ~= "boolean" then
    jr = nil
  end
  self:jwrite { t = "done", key = key, result = jr == nil and json.null or jr }
  return result
end

-- Carries out the undo stack newest first; returns the list of failures.
function Run:rollback(reason)
  local failures = {}
  if #self.undo == 0 then return failures end
  self:log("warn", "rollback", "rolling back: " .. reason, { steps = #self.undo })
  while #self.undo > 0 do
    local u = table.remove(self.undo)
    local ok, err = pcall(actions.run, u.action)
    if ok then
      self:jwrite { t = "undone", index = u.index }
      self:log("info", "undo", "undone: " .. actions.describe(u.action))
    else
      local msg = actions.describe(u.action) .. " FAILED: "
        .. tostring(type(err) == "table" and (err.message or err.code) or err)
      failures[#failures + 1] = msg
      self:log("error", "undo", msg)
    end
  end
  return failures
end

local function reason_of(err)
  if type(err) == "table" then
    local mt = getmetatable(err)
    if mt and mt.__tostring then return tostring(err) end
    if err.message then return (err.code and (err.code .. ": ") or "") .. tostring(err.message) end
  end
  return tostring(err)
end
Run.reason_of = reason_of

--[[ Runs body(); returns the report on success. On failure: hooks, rollback,
     then raises (see the file comment). ]]
function Run:guard(body)
  local trace
  local ok, err = xpcall(body, function(e)
    trace = debug.traceback("", 2)
    return e
  end)
  if ok then
    self.report.status = "succeeded"
    self.report.ended = sched.now()
    self:jwrite { t = "end", status = "succeeded" }
    return self.report
  end
  local reason = reason_of(err)
  local interrupted = sched.is_interrupt(err)
  self.report.status = "rolling_back"
  self.report.reason = reason
  self:log("error", "abort", self.name .. " aborted: " .. reason)
  if self.on_abort_fn then
    local hok, herr = pcall(self.on_abort_fn, { reason = reason, error = err, report = self.report })
    if not hok then self:log("warn", "hook", "on_abort hook failed: " .. reason_of(herr)) end
  end
  local changed = self.next_undo_index > 0 or self.report.changed
  local failures = self:rollback(reason)
  self.report.ended = sched.now()
  if #failures > 0 then
    self.report.status = "rollback_failed"
    self:jwrite { t = "end", status = "rollback_failed" }
    self:log("error", "summary", string.format("%s: rollback FAILED; left to fix by hand: %s",
      self.name, table.concat(failures, "; ")))
  else
    self.report.status = "rolled_back"
    self:jwrite { t = "end", status = "rolled_back" }
    self:log("warn", "summary", self.name .. ": rolled back, stable version serving all traffic")
  end
  if errors.is(err, "BadInput") and not changed then
    error(err, 0) -- nothing changed: usage error, exit 2
  end
  if interrupted then
    err.rolled_back = #failures == 0
    if #failures > 0 then
      err.rollback_failed = true
      err.left = table.concat(failures, "; ")
    end
    err.message = (err.message or tostring(err)) .. (#failures == 0 and "; rolled back" or "")
    error(err, 0)
  end
  error(setmetatable({
    code = "RolloutFailed",
    message = string.format("%s rolled back: %s", self.name, reason),
    cause = err, report = self.report, traceback = trace,
    rollback_failed = #failures > 0 or nil,
    left = #failures > 0 and table.concat(failures, "; ") or nil,
  }, RolloutFailed), 0)
end

function Run:mark_changed() self.report.changed = true end

return Run
