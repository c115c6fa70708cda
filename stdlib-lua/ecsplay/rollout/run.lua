--[[
One rollout run: the undo stack, the journal, the report and the output that
every strategy shares. rollout/strategy.lua drives it; a strategy's body is a
plan of steps:

  run:step("weight:1", "shift 10%", function() traffic.set(...) end,
           { op = "set_weights", point = p, weights = home })

step() records the undo of a change (journal line, fsynced) before making it;
a step whose line cannot be written to the journal does not make its change
(a "journal" error: the run rolls back), while the rollback's own lines never
stop it (rollout/journal_file.lua keeps them in a fallback copy, and the
run's message says where). On `ecsplay resume` a rollout takes its journal
state by name (resume_from); one whose journal ended ends the same way.
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
local tables = require "ecsplay.util.tables"
local aws = require "ecsplay.aws"
local actions = require "ecsplay.rollout.actions"
local journal_mod = require "ecsplay.rollout.journal"

local Run = {}
Run.__index = Run

-- Each rollout's Run by its report (the table a strategy returns), so that a playbook can
-- revert a rollout that succeeded (Run:revert, rollout/revert.lua) from its report alone.
local run_of_report = setmetatable({}, { __mode = "k" })
function Run.of_report(report) return run_of_report[report] end

-- The journal state when `ecsplay resume` re-runs the strategy named `name`:
-- strategies skip the "already in progress" checks that their own earlier
-- run would otherwise trip.
-- (context.resume[name] lists the journals of that name in start order;
-- Run.new takes the first, so a second rollout of the same name gets the next.)
-- A journal left empty (its rollout stopped before its start line) is no state
-- to resume from: that rollout starts over (Run.new), with the usual checks.
function Run.resuming(name)
  local queue = context.resume and context.resume[name]
  local state = queue and (queue.start and queue or queue[1])
  if state and state.empty then return nil end
  return state
end

--[[ `ecsplay resume` of a fleet (rollout/fleet.lua) replays first the members whose journal
     ended, so that their failures count before any member that never started is started.
     In that first pass a member runs in Run.replay_first(probe, fn): the first rollout it
     reaches (Run.check_replay, before any AWS call) goes on only when its journal ended (or
     was being put back): it replays it, and the member then runs on as it would. Otherwise
     it raises NotReplayed, and probe.open says whether it has a journal of its own (a
     rollout mid-flight when the run was killed) or none (it never started); the fleet runs
     it again in its second pass. Inherited by the tasks the member spawns (sched.inherit). ]]
local replay_probes = setmetatable({}, { __mode = "k" })
sched.inherit(replay_probes)

function Run.replay_first(probe, fn)
  return function(...)
    replay_probes[coroutine.running()] = probe
    return fn(...)
  end
end

function Run.check_replay(name)
  local probe = replay_probes[coroutine.running()]
  if not probe or probe.decided then return end
  local state = Run.resuming(name)
  if state and (state.ended or state.reverting) then
    probe.decided = true
    return
  end
  probe.open = state ~= nil
  error(errors.new("rollout", { code = "NotReplayed", name = name, message = string.format(
    "%s has no ended journal to replay: it waits for the fleet's members that have one", name) }), 0)
end

function Run.is_not_replayed(err) return errors.is(err, "NotReplayed") end

local function take_resume(name)
  local queue = context.resume and context.resume[name]
  if not queue then return nil end
  if queue.start then
    context.resume[name] = nil
    return queue
  end
  return table.remove(queue, 1)
end

-- Whether this run writes a journal: opts.journal, else not under --simulate
-- unless ECSPLAY_RUNS_DIR or --report (its report is read from the journal) asks for one.
local function wants_journal(opts)
  if opts.journal ~= nil then return opts.journal end
  return not context.simulated or os.getenv("ECSPLAY_RUNS_DIR") ~= nil or context.report ~= nil
end

--[[ opts: the strategy's checked options (journal=, notify=, on_abort=, name=, session=) ]]
function Run.new(strategy, opts, meta)
  local session = opts.session or aws.current_session()
  local self = setmetatable({
    strategy = strategy,
    name = (meta and meta.name) or strategy,
    opts = opts,
    -- the session its changes are made in (journaled: `ecsplay rollback` rebuilds it)
    session_options = session and session:options() or nil,
    session = session,
    undo = {},
    notify_fn = opts.notify,
    on_abort_fn = opts.on_abort,
    report = { strategy = strategy, steps = {}, started = sched.now(), status = "running" },
  }, Run)
  -- every event this task logs from now on names this rollout (ecsplay.log's run context)
  log.set_context { strategy = strategy, rollout = self.name }
  local resume = take_resume(self.name)
  if resume and not resume.empty then
    self:resume_from(resume)
  else
    -- an empty journal (resume.link: the group's line naming it) is started over under its own id,
    -- in its own file, so that the run leaves no journal that never ends
    self.id = resume and resume.link.run or journal_mod.new_id(strategy, core.realtime())
    self.next_undo_index = 0
    if wants_journal(opts) then self:open_journal(resume ~= nil) end
  end
  self.report.run_id = self.id
  self.report.journal = self.journal and self.journal.path or self.report.journal
  run_of_report[self.report] = self
  log.update_context { run_id = self.id }
  return self
end

-- Picks up a rollout from its journal state (`ecsplay resume`). One whose
-- journal ended is not run again: guard() ends it the same way (finished).
function Run:resume_from(resume)
  self.resume = resume
  self.id = resume.start.run
  log.update_context { run_id = self.id }
  self.next_undo_index = #(resume.all_undo or {})
  -- the journaled undo stack; of a run that ended "succeeded", what a revert (Run:revert) carries out
  for _, u in ipairs(resume.undo) do
    self.undo[#self.undo + 1] = { key = u.key, action = u.action, index = u.index }
  end
  if resume.ended or resume.reverting then
    -- being put back when the run was stopped (a "revert" line, no end since): it had
    -- succeeded; the resumed playbook puts it back again (Run:revert carries out what is left)
    self.finished = resume.ended or "succeeded"
    self.revert_journaled = resume.reverting ~= nil
    -- it had succeeded, then was put back (a fleet's undo=, an on_abort): not a failure
    self.put_back = resume.succeeded ~= nil and resume.ended == "rolled_back"
    -- it was stopped (its task cancelled: a fleet stopping its members), not failed
    self.stopped = resume.ended == "rolled_back" and resume.stopped or nil
    self.report.journal = resume.path
    return
  end
  self.journal = journal_mod.open(nil, resume.path)
  self:log("info", "resume", string.format("resuming %s: %d step(s) already done", self.name,
    self:count_done()))
end

--[[ A new journal. The rollouts of one playbook run form a group: the first
     one's run id names it, and each later one is listed in the first one's
     journal before its own start line is written (rollout/journal_file.lua),
     so `ecsplay resume` of any of them finds them all. A resumed run keeps
     its group and folder (fixed); otherwise a group is per runs folder.
     listed: the group already lists this rollout (its journal was left
     empty and starts over). ]]
function Run:open_journal(listed)
  local run_info = context.run_info or {}
  local meta = { run = self.id, name = self.name, strategy = self.strategy,
    playbook = run_info.playbook, args = run_info.args, config = run_info.config,
    session = self.session_options }
  local group = context.journal_group
  local dir = journal_mod.runs_dir()
  if group and (group.fixed or group.dir == dir) then
    meta.group = group.id
    group.journal = group.journal or journal_mod.open(nil, group.root)
    if not listed then
      group.journal:write { t = "rollout", name = self.name, run = self.id, journal = self.id .. ".jsonl" }
    end
    self.journal = journal_mod.open(meta, nil, group.dir)
  else
    meta.group = self.id
    self.journal = journal_mod.open(meta, nil, dir)
    context.journal_group = { id = self.id, dir = dir, root = self.journal.path, journal = self.journal }
  end
end

-- True when the journal shows step `key` completed (resume only).
function Run:done(key)
  return self.resume ~= nil and self.resume.done[key] ~= nil
end

-- True when the journal shows step `key` begun and not completed (resume
-- only): its change may have been made before the run was stopped, so the
-- step first looks for what it created (intent before effect).
function Run:started(key)
  return self.resume ~= nil and self.resume.intent ~= nil and self.resume.intent[key] == true
end

function Run:count_done()
  local n = 0
  for _ in pairs(self.resume and self.resume.done or {}) do n = n + 1 end
  return n
end

--[[ A rollout's summary event says how it ended besides its message
     (docs/events.md): status, duration, the versions, scope "rollout". ]]
function Run:summary_fields(fields)
  local out, r = {}, self.report
  for k, v in pairs(fields or {}) do out[k] = v end
  out.scope = "rollout"
  if out.status == nil then out.status = r.status == "running" and "succeeded" or r.status end
  if out.duration == nil then out.duration = sched.now() - r.started end
  if out.versions == nil then
    out.versions = { { rollout = self.name, from = r.previous_task_definition, to = r.task_definition } }
  end
  return out
end

function Run:log(level, event, message, fields)
  -- a new step or weight is the run context of every event after it (not a
  -- gate's: its fields say where it measured)
  if type(fields) == "table" and event ~= "gate" and event ~= "round"
    and (fields.step ~= nil or fields.weight ~= nil) then
    log.update_context { step = fields.step, weight = fields.weight }
  end
  if event == "summary" then fields = self:summary_fields(fields) end
  log.event(level, event, message, fields)
  -- a new step's weight, for the run's report (ecsplay.report); not a change, so never fatal
  if event == "step" and type(fields) == "table" then
    self:jnote { t = "step", step = fields.step, weight = fields.weight, message = message }
  end
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

--[[ Journals obj. A line that did not reach the journal's own file (disk
     full, read-only, see rollout/journal_file.lua) went to a fallback copy
     or standard error; with `must` (a step's lines) it then raises a
     "journal" error, so the step's change is not made and the run rolls
     back; a rollback's lines never raise (the journal cannot stop one). ]]
function Run:jwrite(obj, must)
  if not self.journal then return true end
  local ok, problem = self.journal:write(obj)
  if not ok and must then
    error(errors.new("journal", { code = "JournalUnwritable", message = problem }), 0)
  end
  return ok
end

--[[ Journals obj, a line that records no change and no undo (a measurement round, a step
     marker for the report): not fsynced (a crash may lose it, never a later undo record:
     the next fsynced line flushes it too); never raises. ]]
function Run:jnote(obj)
  if not self.journal then return true end
  return self.journal:write(obj, { sync = false })
end

-- "; the journal ... continue in ..." for the run's last message, or "".
function Run:journal_note()
  local problem = self.journal and self.journal.problem
  return problem and ("; " .. problem) or ""
end

--[[ A resumed rollout whose journal had ended: ends the same way without
     running again (succeeded: its report; rolled back: exit 1; a failed
     rollback: exit 3, which `ecsplay rollback` retries). ]]
function Run:end_as_journaled()
  local status, path = self.finished, self.report.journal
  self.report.status = status
  self.report.ended = sched.now()
  if status == "succeeded" or self.put_back then
    -- a rollout put back after it succeeded is what it was to the playbook: a success (its
    -- put-back, Run:revert, then finds nothing left to do)
    self.report.status = "succeeded"
    self:log("info", "resume", self.name .. ": already succeeded in the run being resumed"
      .. (self.put_back and ", and was put back since" or self.revert_journaled
        and ", and was being put back when it was stopped" or ""))
    return self.report
  end
  local fields = { report = self.report, strategy = self.strategy, name = self.name, run = self.id }
  if status == "rolled_back" and self.stopped then
    -- RolloutStopped: a fleet counts it rolled back, not failed (the failure was another's)
    fields.code, fields.rolled_back = "RolloutStopped", true
    fields.message = string.format("%s had been stopped (%s) and rolled back in the run being resumed", self.name,
      tostring(self.stopped))
    error(errors.new("rollout", fields), 0)
  end
  if status == "rolled_back" then
    fields.code, fields.rolled_back = "RolloutFailed", true
    fields.message = self.name .. " had already failed and rolled back in the run being resumed"
    error(errors.new("rollout", fields), 0)
  end
  fields.code, fields.rollback_failed = "RollbackFailed", true
  fields.message = self.name .. "'s rollback had already failed in the run being resumed"
  fields.left = "what the journal " .. tostring(path) .. " still lists; `ecsplay rollback " .. tostring(path)
    .. "` retries it"
  error(errors.new("rollback", fields), 0)
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
     journal shows done returns its recorded result without running; a step
     the journal shows begun (its "do" line, no "done") keeps the undo that
     line recorded, read from the world before its change: the one passed now
     was read after the killed run may have made the change (the canary
     already on the new revision), and undoing to it would undo nothing. ]]
function Run:step(key, desc, fn, undo)
  if self.resume and self.resume.done[key] ~= nil then
    self:log("debug", "skip", "already done: " .. desc, { key = key })
    local r = self.resume.done[key]
    return r ~= true and r or nil
  end
  local journal_undo = nil
  if undo and not self:started(key) then
    local dup = false
    -- compared as data: the same undo encodes to JSON with its keys in any order
    for _, u in ipairs(self.undo) do if tables.equal(u.action, undo) then dup = true end end
    if not dup then
      self.next_undo_index = self.next_undo_index + 1
      self.undo[#self.undo + 1] = { key = key, action = undo, index = self.next_undo_index }
      journal_undo = undo
    end
  end
  self:jwrite({ t = "do", key = key, desc = desc, undo = journal_undo or json.null }, true)
  local result = fn()
  local jr = journal_value(result)
  self:jwrite({ t = "done", key = key, result = jr == nil and json.null or jr }, true)
  return result
end

--[[ The session a resumed run's undo must run in: the one its journal's start line recorded
     (where the journaled changes were made), when this run is not already in that one (a
     playbook that no longer passes it). nil: the undo runs where the run does. ]]
function Run:journaled_session()
  local recorded = self.resume and self.resume.start and self.resume.start.session
  if type(recorded) ~= "table" or tables.equal(recorded, self.session_options) then return nil end
  local ok, session = pcall(journal_mod.session_of, self.resume.start)
  if not ok then
    self:log("error", "rollback", "cannot rebuild the session the journal recorded ("
      .. errors.describe(session) .. "): undoing in the run's own")
    return nil
  end
  self:log("warn", "rollback", "undoing in the session the journal recorded (" .. session:describe()
    .. "), not the run's own")
  return session
end

--[[ Carries out the undo stack newest first; returns failures, left (see
     ecsplay.undo.run). Each undo carried out is journaled. ]]
function Run:rollback(reason)
  if #self.undo == 0 then return {}, {} end
  -- the reason is said once, in the run's last line (cli/exit.lua); JSON has it here too
  self:log("warn", "rollback", string.format("rolling back %d change(s)", #self.undo),
    { steps = #self.undo, reason = reason })
  self:log("info", "rollback", "rollback plan: " .. actions.plan(self.undo))
  local session = self:journaled_session()
  if session then return session:run(self.undo_all, self) end
  return self:undo_all()
end

function Run:undo_all()
  return actions.undo(self.undo, {
    on_done = function(u)
      self:jwrite { t = "undone", index = u.index }
      self:log("info", "undo", "undone: " .. actions.describe(u.action))
    end,
    on_failed = function(_, _, text) self:log("error", "undo", text) end,
  })
end

--[[ Reverts a rollout that succeeded to the version it ran before (a playbook's put-back after
     a later failure: multi_region's on_abort, fleet's undo=; rollout/revert.lua). The same
     plan as `ecsplay rollback` of its finished journal: its undo stack newest first (the
     stable service back and healthy while it serves, traffic home, then the canary side's
     service back as it was, with no traffic), each undo journaled, then the end line
     "rolled_back"; in the rollout's own session. A rollout that did not succeed (or was
     reverted already) is left alone: → false. Raises a "rollback" error (RollbackFailed,
     what is left and how `ecsplay rollback` continues) when an undo fails. ]]
function Run:revert(reason)
  if self.report.status ~= "succeeded" then return false end
  if self.put_back then
    -- resumed: its journal shows it put back already in the run being resumed
    self.report.status = "rolled_back"
    return false
  end
  self:journal_revert(reason)
  self:log("warn", "revert", string.format("%s: reverting to the version it ran before (%s)", self.name,
    reason or "a later failure"))
  local nothing = #self.undo == 0
  local failures, left
  if self.session then
    failures, left = self.session:run(self.rollback, self, reason)
  else
    failures, left = self:rollback(reason)
  end
  self.undo = {}
  local left_text = self:finish_rollback(failures, left, nothing)
  if left_text then
    error(errors.new("rollback", { code = "RollbackFailed", rollback_failed = true, left = left_text,
      message = string.format("%s: reverting it did not complete; %s", self.name,
        actions.continue_text(self.journal and self.journal.path)) .. self:journal_note(),
      report = self.report, strategy = self.strategy, name = self.name, run = self.id }), 0)
  end
  return true
end

--[[ Journals, before a rollout that succeeded is put back (Run:revert, a fleet's undo=), that
     it is being put back: {"t":"revert","reason":..}, fsynced, after its end line, so that
     after a kill its journal no longer reads as a plain success (`ecsplay status` shows it
     being put back, `ecsplay rollback` finishes the put-back). Once per rollout; never raises. ]]
function Run:journal_revert(reason)
  -- resumed: its journal shows it put back already
  if self.put_back then return end
  if not self.journal and self.report.journal then
    -- a resumed rollout that ended as journaled: the revert is recorded in that journal
    self.journal = journal_mod.open(nil, self.report.journal)
  end
  if self.revert_journaled then return end
  self.revert_journaled = true
  self:jwrite { t = "revert", reason = reason and tostring(reason) or json.null }
end

--[[ After a put-back that was not Run:revert (a fleet's own undo=) completed: the rollout's
     journal ends "rolled_back" (Run:revert ends it itself). ]]
function Run:end_put_back()
  if self.report.status ~= "succeeded" then return end
  self.report.status = "rolled_back"
  self.report.ended = sched.now()
  if self.revert_journaled and not self.put_back then self:jwrite { t = "end", status = "rolled_back" } end
end

-- The playbook's on_abort hook; its failure is logged, never raised.
function Run:call_on_abort(err, reason)
  if not self.on_abort_fn then return end
  local ok, herr = pcall(self.on_abort_fn, { reason = reason, error = err, report = self.report })
  if not ok then self:log("warn", "hook", "on_abort hook failed: " .. errors.describe(herr)) end
end

--[[ Ends the report and the journal after a rollback; returns the left-over
     text or nil. nothing: the undo stack was empty (the run failed before
     its first change, or everything was undone already): no "rolled back",
     which would say that something had been changed. stopped: why its task was cancelled
     (a fleet stopping its members), journaled with the end line so that a resumed run
     tells it from a failure of its own. ]]
function Run:finish_rollback(failures, left, nothing, stopped)
  self.report.ended = sched.now()
  if #failures > 0 then
    local text = actions.left_text(failures, left)
    self.report.status = "rollback_failed"
    self:jwrite { t = "end", status = "rollback_failed" }
    self:log("error", "summary", string.format("%s: rollback FAILED; left as it is: %s; %s",
      self.name, text, actions.continue_text(self.journal and self.journal.path)))
    return text
  end
  self.report.status = "rolled_back"
  self:jwrite { t = "end", status = "rolled_back", stopped = stopped }
  if nothing then
    self:log("warn", "summary", self.name .. ": failed before changing anything; nothing to roll back")
  else
    self:log("warn", "summary", self.name .. ": rolled back, stable version serving all traffic")
  end
  return nil
end

-- What has been said on an interrupted error shared by several rollouts (one
-- signal reaches every waiting task as the same error): its own message, and
-- whether any of them had changed something.
local interrupt_said = setmetatable({}, { __mode = "k" })

--[[ The error a failed run raises (see the file comment): err is what made
     it fail, left the text of what its rollback could not undo (nil: the
     rollback completed), changed whether any step with an undo started,
     nothing whether the undo stack was empty (nothing to roll back). ]]
function Run:failure(err, reason, left, changed, trace, nothing)
  if left then
    return errors.new("rollback", { code = "RollbackFailed", rollback_failed = true, left = left,
      message = string.format("%s failed (%s) and its rollback did not complete; %s", self.name, reason,
        actions.continue_text(self.journal and self.journal.path)) .. self:journal_note(),
      cause = err, report = self.report, traceback = trace, strategy = self.strategy, name = self.name,
      run = self.id })
  end
  if errors.is(err, "bad_input") and not changed then return err end
  if sched.is_interrupt(err) then
    -- one signal reaches every waiting task as the same error: say it once, for all of them
    local said = interrupt_said[err]
    if not said then
      said = { message = err.message or errors.describe(err), note = self:journal_note() }
      interrupt_said[err] = said
    end
    said.changed = said.changed or not nothing
    err.message = said.message .. (said.changed and "; rolled back" or "; nothing was changed") .. said.note
    err.rolled_back = true
    return err
  end
  return errors.new("rollout", { code = "RolloutFailed", rolled_back = true,
    message = string.format(nothing and "%s failed (nothing was changed): %s" or "%s rolled back: %s",
      self.name, reason)
      .. (errors.is(err, "journal") and "" or self:journal_note()),
    cause = err, report = self.report, traceback = trace, strategy = self.strategy, name = self.name,
    run = self.id })
end

--[[ Runs body(); returns the report on success. On failure: the on_abort
     hook, the rollback, then raises (see the file comment). ]]
function Run:guard(body)
  if self.finished then return self:end_as_journaled() end
  local trace
  local ok, err = xpcall(body, function(e)
    trace = debug.traceback("", 2)
    return e
  end)
  if ok then
    self.report.status = "succeeded"
    self.report.ended = sched.now()
    self:jwrite { t = "end", status = "succeeded" }
    if self.journal and self.journal.problem then self:log("warn", "journal", self.name .. " succeeded, but "
      .. self.journal.problem) end
    return self.report
  end
  local reason = errors.describe(err)
  self.report.status = "rolling_back"
  self.report.reason = reason
  self:log("error", "abort", self.name .. " aborted", { reason = reason,
    code = type(err) == "table" and err.code or nil })
  self:call_on_abort(err, reason)
  local changed = self.next_undo_index > 0
  local nothing = #self.undo == 0
  local failures, left_over = self:rollback(reason)
  local stopped = sched.is_interrupt(err) and err.code == "Cancelled" and reason or nil
  local left = self:finish_rollback(failures, left_over, nothing, stopped)
  error(self:failure(err, reason, left, changed, trace, nothing), 0)
end

return Run
