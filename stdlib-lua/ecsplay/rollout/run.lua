--[[
One rollout run: the undo stack, the journal, the report and the output that
every strategy shares. rollout/strategy.lua drives it; a strategy's body is a
plan of steps:

  run:step("weight:1", "shift 10%", function() traffic.set(...) end,
           { op = "set_weights", point = p, weights = home })

step() records the undo of a change (journal line, fsynced) before making it.
guard() runs the plan; on any failure (gate, API error, Lua error, SIGINT,
SIGTERM) it carries out the undo stack newest first (actions.undo, through
ecsplay.undo) and raises, by how it ended:
  rollback completed      errors.new("rollout", { code = "RolloutFailed",
                            message=, cause=, report=, traceback=, rolled_back = true })
                          (exit 1)
  a rollback step failed  errors.new("rollback", { code = "RollbackFailed",
                            message=, left=, cause=, report=, rollback_failed = true })
                          (exit 3)
  interrupted             the interrupted error itself, rolled_back = true (exit 130/143)
  bad input, no change    the bad_input error itself (exit 2)
]]
local sched = require "ecsplay.sched"
local log = require "ecsplay.log"
local json = require "ecsplay.json"
local core = require "ecsplay.core"
local errors = require "ecsplay.errors"
local context = require "ecsplay.context"
local actions = require "ecsplay.rollout.actions"
local journal_mod = require "ecsplay.rollout.journal"

local Run = {}
Run.__index = Run

-- The journal state when `ecsplay resume` re-runs the strategy named `name`:
-- strategies skip the "already in progress" checks that their own earlier
-- run would otherwise trip.
function Run.resuming(name)
  return context.resume and context.resume[name] or nil
end

-- Whether this run writes a journal: opts.journal, else not under --simulate
-- unless ECSPLAY_RUNS_DIR asks for one.
local function wants_journal(opts)
  if opts.journal ~= nil then return opts.journal end
  return not context.simulated or os.getenv("ECSPLAY_RUNS_DIR") ~= nil
end

--[[ opts: the strategy's checked options (journal=, notify=, on_abort=, name=) ]]
function Run.new(strategy, opts, meta)
  local self = setmetatable({
    strategy = strategy,
    name = (meta and meta.name) or strategy,
    opts = opts,
    undo = {},
    notify_fn = opts.notify,
    on_abort_fn = opts.on_abort,
    report = { strategy = strategy, steps = {}, started = sched.now(), status = "running" },
  }, Run)
  local resume = Run.resuming(self.name)
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
    self.id = journal_mod.new_id(strategy, core.realtime())
    self.next_undo_index = 0
    if wants_journal(opts) then
      local run_info = context.run_info or {}
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
      log.event("warn", "notify", "notify hook failed: " .. errors.describe(err))
    end
  end
end

function Run:jwrite(obj)
  if self.journal then self.journal:write(obj) end
end

local function same_action(a, b)
  return json.encode(a) == json.encode(b)
end

-- A step's result as the journal can hold it (nil when it cannot).
local function journal_value(result)
  if type(result) == "table" then return json.encode(result) and result or nil end
  local t = type(result)
  if t == "string" or t == "number" or t == "boolean" then return result end
  return nil
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
  local jr = journal_value(result)
  self:jwrite { t = "done", key = key, result = jr == nil and json.null or jr }
  return result
end

--[[ Carries out the undo stack newest first; returns failures, left (see
     ecsplay.undo.run). Each undo carried out is journaled. ]]
function Run:rollback(reason)
  if #self.undo == 0 then return {}, {} end
  self:log("warn", "rollback", "rolling back: " .. reason, { steps = #self.undo })
  return actions.undo(self.undo, {
    on_done = function(u)
      self:jwrite { t = "undone", index = u.index }
      self:log("info", "undo", "undone: " .. actions.describe(u.action))
    end,
    on_failed = function(_, _, text) self:log("error", "undo", text) end,
  })
end

-- The playbook's on_abort hook; its failure is logged, never raised.
function Run:call_on_abort(err, reason)
  if not self.on_abort_fn then return end
  local ok, herr = pcall(self.on_abort_fn, { reason = reason, error = err, report = self.report })
  if not ok then self:log("warn", "hook", "on_abort hook failed: " .. errors.describe(herr)) end
end

-- Ends the report and the journal after a rollback; returns the left-over text or nil.
function Run:finish_rollback(failures, left)
  self.report.ended = sched.now()
  if #failures > 0 then
    local text = actions.left_text(failures, left)
    self.report.status = "rollback_failed"
    self:jwrite { t = "end", status = "rollback_failed" }
    self:log("error", "summary", string.format("%s: rollback FAILED; left to fix by hand: %s",
      self.name, text))
    return text
  end
  self.report.status = "rolled_back"
  self:jwrite { t = "end", status = "rolled_back" }
  self:log("warn", "summary", self.name .. ": rolled back, stable version serving all traffic")
  return nil
end

--[[ The error a failed run raises (see the file comment): err is what made
     it fail, left the text of what its rollback could not undo (nil: the
     rollback completed), changed whether any step with an undo started. ]]
function Run:failure(err, reason, left, changed, trace)
  if left then
    return errors.new("rollback", { code = "RollbackFailed", rollback_failed = true, left = left,
      message = string.format("%s failed (%s) and its rollback did not complete", self.name, reason),
      cause = err, report = self.report, traceback = trace, strategy = self.strategy, name = self.name,
      run = self.id })
  end
  if errors.is(err, "bad_input") and not changed then return err end
  if sched.is_interrupt(err) then
    -- one signal reaches every waiting task as the same error: say it once
    local msg = err.message or errors.describe(err)
    if not err.rolled_back then err.message = msg .. "; rolled back" end
    err.rolled_back = true
    return err
  end
  return errors.new("rollout", { code = "RolloutFailed", rolled_back = true,
    message = string.format("%s rolled back: %s", self.name, reason),
    cause = err, report = self.report, traceback = trace, strategy = self.strategy, name = self.name,
    run = self.id })
end

--[[ Runs body(); returns the report on success. On failure: the on_abort
     hook, the rollback, then raises (see the file comment). ]]
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
  local reason = errors.describe(err)
  self.report.status = "rolling_back"
  self.report.reason = reason
  self:log("error", "abort", self.name .. " aborted: " .. reason)
  self:call_on_abort(err, reason)
  local changed = self.next_undo_index > 0
  local left = self:finish_rollback(self:rollback(reason))
  error(self:failure(err, reason, left, changed, trace), 0)
end

return Run
