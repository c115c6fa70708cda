--[[
rollout.fleet: many rollouts from one playbook, as one change (docs/strategies.md "Fleets").

  local summary = rollout.fleet {
    services,                                  -- the members (a list 1..n, no holes, no two of one
                                               -- name): any values (with run=), or functions,
                                               -- or { name=, run=, undo= } tables
    run = function(svc, i) return rollout.canary{ ... } end,   -- each member's rollout
    name = function(svc, i) return svc end,    -- its name in the summary (default: the string,
                                               -- the table's name, or "member i")
    undo = function(svc, report, i) ... end,   -- puts a member that SUCCEEDED back (abort_all)
    limit = 10,                                -- members rolling at once (default: all)
    max_failures = 0,                          -- failures the fleet tolerates (the budget)
    on_failure = "abort_all" | "continue",     -- when a failure spends the budget
  }

Members run through ecsplay.map with `limit` at once, each in a task of its own (so the fleet
can stop it). A member fails when its function raises (a strategy has then rolled it back
itself). Failures up to `max_failures` are tolerated; the one after spends the budget, and
from then on no member starts ("not_started"). Then, with on_failure = "continue", members
already running finish; with "abort_all" (the default), they are cancelled where they wait
(each rolls itself back, as on Ctrl-C: "rolled_back"), and members that had succeeded are put
back by `undo`, newest first ("rolled_back"; without undo= they stay "succeeded" and the
summary says so). Before a put-back the member's rollout journal records its intent (a
"revert" line, Run:journal_revert), so that after a kill it no longer reads as a success.
A signal during that abort phase does not cut the rollbacks or put-backs short; once they
are done the fleet raises that interruption (130/143, status "interrupted").
On `ecsplay resume` (context.resume) the fleet first replays every member whose journal
ended (Run.replay_first: no change; its failure counts against the budget, abort_all), and only
then, in a second pass, resumes the members that were mid-flight and starts those that never
started, the latter only while the budget holds (Fleet:run_all).
On SIGINT/SIGTERM each running member rolls itself back and the fleet waits for every one of
them (no member starts any more); then the worst error raises (ecsplay.map: a failed
rollback's before the interruption), so the exit is 130/143 with every journal rolled back;
its report is the summary (status "interrupted", each member rolled_back, failed or succeeded),
and its message counts them so ("(fleet: 2 rolled back, 2 not started)", map's opts.note).

The summary: { status = "succeeded" | "failed" | "interrupted", members = { { name=, status=,
duration= seconds|nil (unknown: see duration_of), error= text|nil, report= the member's
result|nil }, ... } in list order, counts = { succeeded=, failed=, rolled_back=, not_started= },
budget_spent = bool }. The fleet returns
it when the budget was not spent, and otherwise raises errors.new("rollout", { code =
"FleetFailed", report = summary }) (exit 1), or kind "rollback" (code "FleetRollbackFailed",
exit 3) when a member's rollback or an undo= failed.
]]
local sched = require "ecsplay.sched"
local log = require "ecsplay.log"
local errors = require "ecsplay.errors"
local duration = require "ecsplay.duration"
local strings = require "ecsplay.util.strings"
local ecsplay = require "ecsplay"
local Run = require "ecsplay.rollout.run"
local context = require "ecsplay.context"

local M = {}

local KNOWN = { run = true, name = true, undo = true, limit = true, max_failures = true, on_failure = true }
local POLICIES = { "abort_all", "continue" }

local function bad(field, msg)
  error(errors.bad_input("rollout.fleet: " .. (field and (field .. ": ") or "") .. msg, field), 0)
end

--[[ The member list is a sequence 1..n: ipairs would stop at a hole ({ args.svc1, args.svc2,
     args.svc3 } with svc2 missing runs svc1 alone) and see nothing of { a = ..., b = ... },
     both silently. Every key must be an integer 1..max, none missing. ]]
local function check_sequence(list)
  local max = 0
  for k in pairs(list) do
    if math.type(k) ~= "integer" or k < 1 then
      bad("[1]", "expected a list of members (keys 1..n), got the key " .. strings.describe_value(k))
    end
    if k > max then max = k end
  end
  for i = 1, max do
    if list[i] == nil then
      bad("[1]", string.format("expected a list 1..%d with no holes, but [%d] is missing (nil)", max, i))
    end
  end
end

local function check_options(o)
  if type(o) ~= "table" then bad(nil, "expected a table such as rollout.fleet{ services, run = fn }") end
  for k in pairs(o) do
    if k ~= 1 and not KNOWN[k] then
      local names = {}
      for n in pairs(KNOWN) do names[#names + 1] = n end
      bad(tostring(k), "unknown option" .. strings.did_you_mean(tostring(k), names, { quote = true, list_all = true }))
    end
  end
  local list = o[1]
  if type(list) ~= "table" then
    bad("[1]", "expected the list of members first, got " .. strings.describe_value(list))
  end
  check_sequence(list)
  for _, f in ipairs { "run", "name", "undo" } do
    if o[f] ~= nil and type(o[f]) ~= "function" then
      bad(f, "expected a function, got " .. strings.describe_value(o[f]))
    end
  end
  if o.limit ~= nil and (math.type(o.limit) ~= "integer" or o.limit < 1) then
    bad("limit", "expected an integer of 1 or more, got " .. strings.describe_value(o.limit))
  end
  if o.max_failures ~= nil and (math.type(o.max_failures) ~= "integer" or o.max_failures < 0) then
    bad("max_failures", "expected an integer of 0 or more, got " .. strings.describe_value(o.max_failures))
  end
  local policy = o.on_failure or "abort_all"
  if policy ~= "abort_all" and policy ~= "continue" then
    bad("on_failure", "expected \"abort_all\" or \"continue\", got " .. strings.describe_value(policy)
      .. strings.did_you_mean(tostring(policy), POLICIES, { quote = true }))
  end
  return list, policy
end

--[[ A member's name: name=(item, i)'s, else a table member's name=, else the member itself when
     it is a string, else "member i". A name is text (a number is taken as its text): a table
     would name the member "table: 0x...". A name= that raises is bad input, before anything
     starts, like the other options. ]]
local function name_of(o, item, i)
  local name, field = nil, nil
  if o.name then
    local ok, v = pcall(o.name, item, i)
    if not ok then
      if sched.is_interrupt(v) then error(v, 0) end
      bad("name", string.format("raised for member [1][%d]: %s", i, strings.one_line(errors.describe(v), 300)))
    end
    name, field = v, "name"
  end
  if name == nil and type(item) == "table" then name, field = item.name, "[1][" .. i .. "].name" end
  if name == nil then return type(item) == "string" and item or ("member " .. i) end
  if type(name) == "number" then return tostring(name) end
  if type(name) ~= "string" then
    bad(field, string.format("expected a string (the name of member [1][%d]), got %s", i,
      strings.describe_value(name)))
  end
  return name
end

--[[ Two members of one name would be two rollouts of the same service at once, each
     overwriting the other's changes: refused before anything starts. ]]
local function check_unique(members)
  local first = {}
  for i, m in ipairs(members) do
    local j = first[m.name]
    if j then
      bad("[1][" .. i .. "]", string.format("duplicate member %q: [1][%d] and [1][%d] have the same name "
        .. "(two rollouts of one service at once would overwrite each other's changes)", m.name, j, i))
    end
    first[m.name] = i
  end
end

-- A member of the list: { name=, run=fn(), undo=fn(report)|nil }.
local function member_of(o, item, i)
  local m = { index = i, status = "not_started" }
  if type(item) == "table" and o.run == nil then
    if type(item.run) ~= "function" then
      bad("[1][" .. i .. "]", "a member table needs run = function() ... end (or give the fleet run=)")
    end
    m.run, m.undo = item.run, item.undo
  elseif type(item) == "function" and o.run == nil then
    m.run = item
  elseif o.run ~= nil then
    m.run = function() return o.run(item, i) end
    if o.undo then m.undo = function(report) return o.undo(item, report, i) end end
  else
    bad("[1][" .. i .. "]", "expected a function or { name=, run= } (or give the fleet run=), got "
      .. strings.describe_value(item))
  end
  m.name = name_of(o, item, i)
  return m
end


--[[ How long a member ran, from two times on one clock. A member that started before this
     process followed a served simulator's clock (the fleet's first members start before any
     answer came) has its start on the machine's clock: its rollout's report's own `started`
     is then the start (a rollout stamps it after its first AWS answers), else the duration is
     unknown (nil), never a difference across two clocks. ]]
local function duration_of(m, report)
  local now, started = sched.now(), m.started
  if m.start_clock ~= sched.clock_name() then
    started = type(report) == "table" and type(report.started) == "number" and report.started or nil
  end
  if started == nil or started > now then return nil end
  return now - started
end

-- A cancelled member's error (the fleet stopped it) as opposed to a signal's.
local function cancelled(e) return sched.is_interrupt(e) and e.code == "Cancelled" end

local Fleet = {}
Fleet.__index = Fleet

-- A failure: spends the budget when it is the one past max_failures.
function Fleet:failed(m, err)
  m.status, m.error = "failed", errors.describe(err)
  m.rollback_failed = errors.is(err, "rollback")
  m.left = type(err) == "table" and err.left or nil
  self.failures = self.failures + 1
  log.event("error", "fleet", string.format("fleet: %s failed: %s", m.name, strings.one_line(m.error, 300)))
  if self.failures > self.max_failures and not self.spent then
    self.spent, self.spent_by = true, m
    log.event("warn", "fleet", string.format("fleet: %d failure(s), budget %d spent: no member starts from now on%s",
      self.failures, self.max_failures, self.policy == "abort_all" and "; stopping the members still running" or ""))
    if self.policy == "abort_all" then self:stop_running(m) end
  end
end

--[[ Cancels every member still running (they roll themselves back where they wait). A member
     in the scheduler's ready queue cannot be cancelled until it waits again: try until each
     is cancelled or done. A member replaying its journal (a resumed fleet's first pass) is
     let be: it changes nothing, and cut short it would not report what its journal says (a
     success that abort_all must put back). ]]
function Fleet:stop_running(by)
  local reason = string.format("stopped by the fleet: %s failed", by.name)
  while true do
    local pending = false
    for _, m in ipairs(self.members) do
      if m.task and not m.task.done and not m.cancel_sent and not m.replaying then
        if m.task:cancel(reason) then m.cancel_sent = true else pending = true end
      end
    end
    if not pending then return end
    sched.yield()
  end
end

--[[ Waits for a member's task to end, also when an interruption reaches the waiting worker
     (as ecsplay.parallel/map wait for theirs): a signal reached the member too, which rolls
     itself back meanwhile; a cancellation of the worker (the fleet's caller stopped it) is
     passed on to the member. Leaving at the interruption instead would let the playbook end
     while members are mid-rollback, and the scheduler would cancel them there. Once an
     interruption came, no member starts any more (self.interrupted).
     → ok, value, the interruption's error or nil. ]]
function Fleet:settle(m)
  local interrupt
  while true do
    local waited, ok, value = pcall(m.task.result, m.task)
    if waited then return ok, value, interrupt end
    if not sched.is_interrupt(ok) then error(ok, 0) end
    interrupt = interrupt or ok
    self.interrupted = true
    if cancelled(ok) and not m.task.done and not m.cancel_sent then
      -- the member may sit in the ready queue: it takes the cancellation once it waits again
      while not m.task.done and not m.task:cancel(errors.describe(ok)) do sched.yield() end
      m.cancel_sent = true
    end
  end
end

--[[ Whether member m may start now. After a signal nothing starts, also when it came while
     this worker was not waiting. Once the budget is spent no member starts, except on
     resume: in the replay pass (a member whose journal ended replays it whatever the budget:
     a success replayed is one that abort_all puts back) and a member whose rollout was
     mid-flight when the run was killed (it resumes, as a running member would go on). ]]
function Fleet:may_start(m, pass)
  if self.interrupted or sched.signal_received() then return false end
  if pass == "replay" or m.journal_open then return true end
  return not self.spent
end

--[[ One member in a task of its own; records how it ended. pass: nil (a run), or on resume
     "replay" (the first pass: only a member whose journal ended goes on, Run.replay_first)
     or "rest" (the members the first pass left). ]]
function Fleet:run_member(m, pass)
  if not self:may_start(m, pass) then return end
  m.status, m.started, m.start_clock = "running", sched.now(), sched.clock_name()
  local probe = pass == "replay" and {} or nil
  if not probe then log.event("info", "fleet", "fleet: starting " .. m.name) end
  m.task, m.replaying = sched.spawn(probe and Run.replay_first(probe, m.run) or m.run), probe ~= nil
  -- a mid-flight member resumed after the budget was spent: abort_all stops it at once
  -- (it rolls itself back from its journal)
  if self.spent and self.policy == "abort_all" and pass == "rest" then self:stop_running(self.spent_by) end
  local ok, value, interrupt = self:settle(m)
  m.replaying = nil
  if probe and not ok and Run.is_not_replayed(value) then
    -- nothing to replay: it runs in the second pass (m.journal_open: it has a journal to resume)
    m.status, m.started, m.start_clock, m.task = "not_started", nil, nil, nil
    m.deferred, m.journal_open = true, probe.open
    if interrupt then error(interrupt, 0) end
    return
  end
  self.ends = self.ends + 1
  m.end_order = self.ends
  m.duration = duration_of(m, ok and value or type(value) == "table" and value.report or nil)
  if ok then
    m.status, m.report = "succeeded", value
    -- an interruption while it finished: ecsplay.map raises it once every member has settled
    return
  end
  local err = value
  if interrupt or (sched.is_interrupt(err) and not (m.cancel_sent and cancelled(err))) then
    -- the run stops (a signal, or the fleet's caller cancelled it): the member rolled itself
    -- back, and its own error (interrupted, or its rollback's) is the worker's, so the worst
    -- one of all members decides the exit code (ecsplay.map)
    m.status = sched.is_interrupt(err) and "rolled_back" or "failed"
    m.error, m.rollback_failed = errors.describe(err), errors.is(err, "rollback")
    m.left = type(err) == "table" and err.left or nil
    error(err, 0)
  end
  if (m.cancel_sent and cancelled(err)) or errors.is(err, "RolloutStopped") then
    -- stopped by the fleet (RolloutStopped: in the run `ecsplay resume` resumes), not failed
    m.status, m.error = "rolled_back", errors.describe(err)
    return
  end
  if m.cancel_sent and errors.is(err, "rollback") then m.rollback_failed = true end
  self:failed(m, err)
end

-- abort_all: members that had succeeded go back through undo=, newest first.
function Fleet:undo_succeeded()
  local done = {}
  for _, m in ipairs(self.members) do
    if m.status == "succeeded" then done[#done + 1] = m end
  end
  -- the order they ended in (not their end times: the first may be on another clock, see duration_of)
  table.sort(done, function(a, b) return a.end_order > b.end_order end)
  for _, m in ipairs(done) do
    if m.undo then
      log.event("warn", "fleet", "fleet: putting back " .. m.name)
      -- its journal says so first: after a kill it no longer reads as a plain success
      local run = type(m.report) == "table" and Run.of_report(m.report) or nil
      if run then run:journal_revert("the fleet failed: putting back " .. m.name) end
      local ok, err = pcall(m.undo, m.report)
      if ok then
        m.status = "rolled_back"
        if run then run:end_put_back() end
      else
        m.rollback_failed, m.error = true, "its undo failed: " .. errors.describe(err)
        m.left = "it had succeeded and putting it back failed (" .. strings.one_line(errors.describe(err), 200)
          .. "): it may still run the new version"
        log.event("error", "fleet", string.format("fleet: putting back %s failed: %s", m.name, m.error))
      end
    else
      m.kept = true
      log.event("warn", "fleet", "fleet: " .. m.name .. " had succeeded and has no undo=: left as it is")
    end
  end
end

function Fleet:summary()
  local counts = { succeeded = 0, failed = 0, rolled_back = 0, not_started = 0 }
  local members, rollback_failed = {}, false
  for i, m in ipairs(self.members) do
    counts[m.status] = (counts[m.status] or 0) + 1
    rollback_failed = rollback_failed or m.rollback_failed == true
    members[i] = { name = m.name, status = m.status, duration = m.duration, error = m.error, report = m.report,
      rollback_failed = m.rollback_failed, kept = m.kept }
  end
  local status = self.interrupted and "interrupted" or self.spent and "failed" or "succeeded"
  return { status = status, members = members, counts = counts,
    budget_spent = self.spent, max_failures = self.max_failures, on_failure = self.policy,
    rollback_failed = rollback_failed }
end

local function summary_line(s)
  local parts = {}
  for _, k in ipairs { "succeeded", "failed", "rolled_back", "not_started" } do
    if s.counts[k] > 0 then parts[#parts + 1] = string.format("%d %s", s.counts[k], k:gsub("_", " ")) end
  end
  return table.concat(parts, ", ")
end

-- The summary in the log: a line per member.
local function log_summary(s)
  for _, m in ipairs(s.members) do
    log.event(m.status == "succeeded" and "info" or "warn", "fleet", string.format("fleet: %-20s %-11s %s%s",
      m.name, m.status, m.duration and duration.format(m.duration) or "-",
      m.error and ("  " .. strings.one_line(m.error, 200)) or ""))
  end
end

-- A copy of err (a member's error, raised by ecsplay.map) whose report is the fleet's summary.
local function with_report(err, s)
  if type(err) ~= "table" then return err end
  local copy = setmetatable({}, getmetatable(err))
  for k, v in pairs(err) do copy[k] = v end
  copy.report = s
  return copy
end

--[[ What a failed rollback left, member by member (the exit-3 message lists it, cli/exit.lua):
     each member's own `left` (its rollout's, which names `ecsplay rollback JOURNAL`), else
     its error. ]]
local function left_of(members)
  local out = {}
  for _, m in ipairs(members) do
    if m.rollback_failed then
      local left = m.left
      if type(left) == "table" and not errors.is_error(left) then
        for _, l in ipairs(left) do out[#out + 1] = m.name .. ": " .. errors.describe(l) end
      else
        out[#out + 1] = m.name .. ": " .. errors.describe(left or m.error)
      end
    end
  end
  return out
end

-- A signal's name as the interruption's message says it.
--[[ The error an interrupted fleet raises, once every member settled and the put-backs ran:
     err (ecsplay.map's worst member error, or nil) when it is a failed rollback (exit 3);
     FleetRollbackFailed when a put-back failed; else, after a signal (one that a member's
     rollback or a put-back took, which are never cut short, or that came while the fleet
     cancelled its members), that signal's interruption (130/143); else err. The summary is
     its report. ]]
function Fleet:interruption(err, s)
  if errors.is(err, "rollback") then return err end
  local sig = sched.signal_received()
  local how = sig and ("interrupted by " .. sched.signal_name(sig)) or "interrupted"
  if s.rollback_failed then
    return errors.new("rollback", { code = "FleetRollbackFailed", report = s, rollback_failed = true,
      left = left_of(self.members), message = string.format("fleet %s and a rollback did not complete: %s",
        how, summary_line(s)) })
  end
  if not sig or (errors.is(err, "interrupted") and err.signal == sig) then return err end
  return errors.new("interrupted", { signal = sig, report = s, rolled_back = true,
    message = string.format("%s; fleet: %s", how, summary_line(s)) })
end

--[[ Runs the members, `limit` at once. On `ecsplay resume` in two passes: first every member
     whose journal ended replays it (no change: its rollout ends as journaled), so that the
     failures of the killed run count against the budget (and abort_all) before any member is
     started; then the rest in list order: a member mid-flight when the run was killed resumes
     from its journal, and one that never started starts only if the budget is not spent.
     → ecsplay.map's pcall: true, or false and its error. ]]
function Fleet:run_all(limit)
  -- an interruption's message counts the members in the fleet's words, as the summary does
  -- (not "N of M map members failed": those rolled back, or never started)
  local opts = { limit = limit, note = function() return "fleet: " .. summary_line(self:summary()) end }
  if not context.resume then
    return pcall(ecsplay.map, self.members, function(m) return self:run_member(m) end, opts)
  end
  local ok, err = pcall(ecsplay.map, self.members, function(m) return self:run_member(m, "replay") end, opts)
  if not ok then return ok, err end
  local rest = {}
  for _, m in ipairs(self.members) do
    if m.deferred then rest[#rest + 1] = m end
  end
  if #rest == 0 then return true end
  log.event("info", "fleet", string.format("fleet: resumed: %d member(s) replayed from their journals "
    .. "(%d failure(s), budget %d%s); now the other %d", #self.members - #rest, self.failures, self.max_failures,
    self.spent and " spent: no member that never started starts" or "", #rest))
  return pcall(ecsplay.map, rest, function(m) return self:run_member(m, "rest") end, opts)
end

function M.run(o)
  local list, policy = check_options(o)
  local self = setmetatable({ policy = policy, max_failures = o.max_failures or 0, failures = 0,
    spent = false, members = {}, ends = 0 }, Fleet)
  for i, item in ipairs(list) do self.members[i] = member_of(o, item, i) end
  check_unique(self.members)
  if #self.members > 0 then
    local ok, err = self:run_all(o.limit)
    if not ok then
      self.interrupted = true
      -- a signal (or the caller's cancellation): every member has settled; an abort under way
      -- still puts back what had succeeded; the summary says how each ended, and is the
      -- error's report, as for FleetFailed (not one member's own report)
      if self.spent and policy == "abort_all" then self:undo_succeeded() end
      local s = self:summary()
      log_summary(s)
      error(with_report(self:interruption(err, s), s), 0)
    end
  end
  if self.spent and policy == "abort_all" then self:undo_succeeded() end
  -- a signal the members' rollbacks or the put-backs took (they are never cut short): the
  -- run was interrupted all the same
  local signalled = sched.signal_received() ~= nil
  if signalled then self.interrupted = true end
  local s = self:summary()
  log_summary(s)
  if signalled then error(self:interruption(nil, s), 0) end
  local line = summary_line(s)
  if not self.spent then
    log.event("info", "fleet", "fleet: " .. (line ~= "" and line or "no members"))
    return s
  end
  if s.rollback_failed then
    error(errors.new("rollback", { code = "FleetRollbackFailed", report = s, rollback_failed = true,
      left = left_of(self.members),
      message = string.format("fleet failed (%d failure(s), budget %d) and a rollback did not complete: %s",
        self.failures, self.max_failures, line) }), 0)
  end
  error(errors.new("rollout", { code = "FleetFailed", report = s, rolled_back = policy == "abort_all",
    message = string.format("fleet failed: %d failure(s), budget %d; %s", self.failures, self.max_failures, line) }), 0)
end

return M
