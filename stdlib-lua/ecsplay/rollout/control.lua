--[[
Steering a running rollout: its live state for `ecsplay status`, the commands
of `ecsplay promote|pause|unpause|abort` (and of the playbook's own code, the
scenario's script and an approval's HTTP callback), and the waits that notice
them (docs/strategies.md "Steering a running rollout").

Files, next to the run's journal <runs>/<run-id>.jsonl:
  <run-id>.state.json     the live state, rewritten whole (temporary file +
                          rename) at every event and every few seconds while
                          it waits: { run, name, strategy, playbook, journal,
                          pid, host, proc_start, state, step, weights, gates,
                          approval, paused, acked, updated }
  <run-id>.control.jsonl  the commands, one JSON line each, appended by other
                          processes: { id, command, full, as, user, host, sent }
The run reads new command lines at its next wait (bake.lua waits in slices of
about half a second of wall time, also between a strategy's polls of a service
that moves the traffic itself) and journals each with what it did
({"t":"control",...,"effect":..,"after":{paused,full}}); one that cannot act
there is answered "not applicable now: ..." (Live:not_applicable). `ecsplay
resume` restores the steering state from those lines (restore_from_journal).

  control.attach(run)          the Live state of a run (strategy.lua), published
  control.of(run)              run's Live (a detached one for a run not attached)
  Live:sleep_until(t)          → commands received before t (empty when t came)
  Live:apply(cmd, where)       → "abort" | "end" | "continue" (see apply)
  Live:not_applicable(cmd, why), Live:pause_later(cmd, hold_at, cannot_hold)
  Live:finish(status)          the run ended
  control.handle(target)       the Lua API (ecsplay.rollout.control): :promote{full=},
                               :pause(), :unpause(), :abort(), :approve(by), :state()
  control.send(journal, cmd)   appends a command line (the CLI)
  control.resolve(run, dir)    RUN (id, unique prefix, journal path) → journal path
  control.status(journal)      → the state object `ecsplay status` prints [, its unfinished run]
]]
local files = require "ecsplay.util.files"
local sched = require "ecsplay.sched"
local json = require "ecsplay.json"
local core = require "ecsplay.core"
local crypto = require "ecsplay.core.crypto"
local errors = require "ecsplay.errors"
local context = require "ecsplay.context"
local duration = require "ecsplay.duration"
local strings = require "ecsplay.util.strings"
local journal_file = require "ecsplay.rollout.journal_file"

local M = {}

M.COMMANDS = { promote = true, pause = true, unpause = true, abort = true, approve = true, reject = true }
-- wall seconds between two looks at the control file while a run waits
M.SLICE_WALL = 0.5
-- wall seconds between two rewrites of the state file while nothing happens
M.HEARTBEAT = 5
-- a run on another host whose state file is older than this is reported gone
M.STALE = 120

local live_runs = {}       -- run id → Live, in this process
local handles_made = false -- the playbook holds a control handle: waits look for its commands

local function bad(message, code)
  error(errors.new("bad_input", { code = code or "BadControl", message = message }), 0)
end

-- A journal's end status → the state `ecsplay status` shows.
local FINAL = { succeeded = "succeeded", rolled_back = "rolled-back", rollback_failed = "failed" }
function M.final_state(status) return FINAL[status] or "failed" end

------------------------------------------------------------------ who and where

local function read_first_line(path)
  local f = io.open(path, "rb")
  if not f then return nil end
  local line = f:read("l")
  f:close()
  return line
end

function M.hostname()
  local h = read_first_line("/proc/sys/kernel/hostname") or read_first_line("/etc/hostname")
    or os.getenv("HOSTNAME")
  return (h and h ~= "") and h or "localhost"
end

function M.username()
  local u = os.getenv("USER") or os.getenv("LOGNAME")
  if not u or u == "" then
    -- a container or CI job may set neither: ask the system (once per command sent)
    local p = io.popen("id -un 2>/dev/null")
    u = p and p:read("l")
    if p then p:close() end
  end
  return (u and u ~= "") and u or "unknown"
end

-- { user=, host=, as= }: who sends a command (as: the name given with --as).
function M.who(as)
  return { user = M.username(), host = M.hostname(), as = as }
end

-- "alice@build-7" (or "bob (alice@build-7)" when --as bob was given).
function M.describe_who(w)
  if not w then return "someone" end
  local id = tostring(w.user or "unknown") .. "@" .. tostring(w.host or "?")
  if w.as and w.as ~= w.user then return tostring(w.as) .. " (" .. id .. ")" end
  return id
end

-- Field 22 of /proc/PID/stat: when the process started (guards against a reused pid).
local function proc_start(pid)
  if type(pid) == "number" then pid = string.format("%d", pid) end
  local stat = read_first_line("/proc/" .. tostring(pid) .. "/stat")
  if not stat then return nil end
  local rest = stat:match("%) (.*)$")
  if not rest then return nil end
  local n = 2
  for field in rest:gmatch("%S+") do
    n = n + 1
    if n == 22 then return field end
  end
  return nil
end
M.proc_start = proc_start

-- <dir>/<id>.jsonl → <dir>/<id>.state.json, <dir>/<id>.control.jsonl
function M.paths(journal)
  local base = journal:gsub("%.jsonl$", "")
  return base .. ".state.json", base .. ".control.jsonl"
end

-- Writes text as the whole of path (temporary file + rename: a reader never sees half).
local function write_atomic(path, text)
  local tmp = path .. ".tmp" .. tostring(core.pid())
  local f = io.open(tmp, "wb")
  if not f then return false end
  f:write(text)
  f:close()
  local ok = os.rename(tmp, path)
  if not ok then os.remove(tmp) end
  return ok
end

------------------------------------------------------------------ the live side

local Live = {}
Live.__index = Live

local function new_live(run)
  return setmetatable({ run = run, id = run and run.id, state = "running", paused = false,
    queue = {}, early_approvals = {}, acked = {}, gates = {}, weights = nil, step = nil,
    ctl_offset = 0, published_at = 0, script_next = 1 }, Live)
end

-- The Live of a run: the one attached, else a detached one (no files).
function M.of(run)
  if type(run) ~= "table" then return new_live(nil) end
  if not run.live then run.live = new_live(run) end
  return run.live
end

-- Commands the scenario scripts (controls and approvals), in time order.
local function scripted_commands()
  local sim = context.simulated and context.sim
  local sc = sim and sim.scenario
  if type(sc) ~= "table" then return {} end
  local start = sim.world and sim.world.start or 0
  local out = {}
  for i, a in ipairs(sc.approvals or {}) do
    out[#out + 1] = { command = a.reject and "reject" or "approve", as = a.by, at = start + a.at,
      source = "scenario", id = "scenario-approval-" .. i }
  end
  for i, c in ipairs(sc.controls or {}) do
    out[#out + 1] = { command = c.command, full = c.full, as = c.by, at = start + c.at,
      source = "scenario", id = "scenario-control-" .. i }
  end
  table.sort(out, function(a, b) if a.at ~= b.at then return a.at < b.at end return a.id < b.id end)
  for _, c in ipairs(out) do c.user, c.host = c.as or "scenario", "simulator" end
  return out
end

--[[ `ecsplay resume`: the steering state the run had when it stopped, from the
     {"t":"control"} lines of its journal (their `after` and `approval`, see
     Live:record): a `promote --full` taken (the run goes straight to 100 % and
     promotes instead of redoing the steps it skipped), a pause in effect (the
     run stays paused until unpause), and the approvals each approval step had
     (approval.lua counts them when it waits again). ]]
local function restore_from_journal(live, path)
  local f = path and io.open(path, "rb")
  if not f then return end
  local after, approvals, by
  for line in f:lines() do
    local obj = line:find('"control"', 1, true) and json.decode(line)
    if type(obj) == "table" and obj.t == "control" then
      if type(obj.after) == "table" then after, by = obj.after, obj end
      local a = obj.approval
      if type(a) == "table" and type(a.step) == "string" and type(a.approved_by) == "table" then
        approvals = approvals or {}
        approvals[a.step] = a.approved_by
      end
    end
  end
  f:close()
  live.resumed_approvals = approvals
  if not after then return end
  if after.full == true then
    live.full = true
    live:run_log("info", "control", string.format("resumed after `promote --full` by %s: going straight to 100%% "
      .. "and promoting, not redoing the steps it skipped", M.describe_who(by)))
  end
  if after.paused == true then
    live.paused, live.state = true, "paused"
    live.paused_reason = (type(after.paused_reason) == "string" and after.paused_reason or "paused")
      .. " (before the run was resumed)"
    live:run_log("info", "control", "resumed paused: " .. live.paused_reason
      .. "; it holds at its next wait until `ecsplay unpause` or `promote`")
  end
end

--[[ Attaches the live state to a run (strategy.lua, right after the run is
     created): registered for the Lua API, and published next to its journal. ]]
function M.attach(run)
  local live = M.of(run)
  live.pid, live.host, live.proc_start = core.pid(), M.hostname(), proc_start("self")
  live.started = core.realtime()
  local journal = run.journal and run.journal.path
  if journal then live.journal = journal live.state_path, live.control_path = M.paths(journal) end
  -- commands sent before this run started are not for it
  if live.control_path then
    local text = files.read(live.control_path)
    live.ctl_offset = text and #text or 0
  end
  if run.resume and not run.resume.ended then restore_from_journal(live, run.resume.path or run.resume.given) end
  live.script = scripted_commands()
  -- what the scenario sent before this rollout started was for an earlier one
  local now = sched.now()
  while live.script[live.script_next] and live.script[live.script_next].at < now do
    live.script_next = live.script_next + 1
  end
  live_runs[run.id] = live
  live:publish()
  return live
end

function Live:snapshot()
  local run = self.run or {}
  local info = context.run_info or {}
  local gates = {}
  for _, g in ipairs(self.gate_order or {}) do gates[#gates + 1] = self.gates[g] end
  return { run = self.id, name = run.name, strategy = run.strategy, playbook = info.playbook,
    journal = self.journal, pid = self.pid, host = self.host, proc_start = self.proc_start,
    state = self.state, paused = self.paused or nil, paused_reason = self.paused_reason,
    step = self.step, weights = self.weights, gates = json.array(gates), approval = self.approval,
    acked = json.array(self.acked), started = self.started, updated = core.realtime(), time = sched.now() }
end

-- Rewrites the state file (nothing for a run without a journal).
function Live:publish()
  self.published_at = core.monotonic()
  if not self.state_path then return end
  local text = json.encode(self:snapshot())
  if text then write_atomic(self.state_path, text .. "\n") end
end

function Live:set_state(state, reason)
  self.state = state
  if state == "paused" then self.paused_reason = reason end
  self:publish()
end

-- The step the run is at: { index=, of=, weight=, phase= } and the weights by name.
function Live:set_step(step, weights)
  self.step = step
  if weights then self.weights = weights end
  self:publish()
end

-- A round of gate measurements (bake.lua): the last one of each gate.
function Live:measured(round)
  self.gate_order = self.gate_order or {}
  for _, m in ipairs(round) do
    if not self.gates[m.gate] then self.gate_order[#self.gate_order + 1] = m.gate end
    self.gates[m.gate] = { name = m.gate, result = m.result, value = m.value, threshold = m.threshold,
      detail = m.detail, time = m.time }
  end
  self:publish()
end

function Live:finish(status)
  self.state = status
  self.paused, self.approval = false, nil
  self:publish()
  if self.id then live_runs[self.id] = nil end
end

-- New complete lines of the control file.
function Live:read_control()
  if not self.control_path then return {} end
  local f = io.open(self.control_path, "rb")
  if not f then return {} end
  local size = f:seek("end")
  if not size or size <= self.ctl_offset then f:close() return {} end
  f:seek("set", self.ctl_offset)
  local text = f:read(size - self.ctl_offset) or ""
  f:close()
  local last_nl = text:match("^.*()\n")
  if not last_nl then return {} end
  self.ctl_offset = self.ctl_offset + last_nl
  local out = {}
  for line in text:sub(1, last_nl):gmatch("([^\n]*)\n") do
    local cmd = line ~= "" and json.decode(line)
    if type(cmd) == "table" and M.COMMANDS[cmd.command] then
      cmd.source = cmd.source or "cli"
      out[#out + 1] = cmd
    elseif line ~= "" then
      self.run_log(self, "warn", "control", "ignored a line of " .. self.control_path
        .. " that is not a command: " .. strings.one_line(line, 80))
    end
  end
  return out
end

function Live.run_log(self, level, event, message, fields)
  if self.run and self.run.log then self.run:log(level, event, message, fields) end
end

-- Every command that arrived: in-process ones, the scenario's that are due, the file's.
function Live:poll()
  local out = {}
  for _, c in ipairs(self.queue) do out[#out + 1] = c end
  self.queue = {}
  local now = sched.now()
  local script = self.script or {}
  while script[self.script_next] and script[self.script_next].at <= now do
    out[#out + 1] = script[self.script_next]
    self.script_next = self.script_next + 1
  end
  for _, c in ipairs(self:read_control()) do out[#out + 1] = c end
  if self.http then
    for _, c in ipairs(self.http:poll()) do out[#out + 1] = c end
  end
  return out
end

--[[ How long one sleep may last so that a command is noticed soon: → simulated
     seconds (in process), or nil and wall seconds. In process only the playbook's
     own tasks can send (the scenario's times are known), so a sleep is cut into
     simulated seconds only when it made a control handle. Otherwise the sleep
     lasts until its time on the clock followed and is capped in wall time
     (sched.sleep's `wall`): against `sim serve --lockstep` the simulator still
     sees this run wait until its time, so the world jumps there as soon as every
     client waits (as fast as in process), and a command is still noticed within
     SLICE_WALL when another client holds the world still. ]]
local function slice(live)
  if sched.is_virtual() then return handles_made and 1 or nil, nil end
  return nil, live.http and 0.2 or M.SLICE_WALL
end

--[[ Waits until time t (the scheduler's clock) unless commands arrive first:
     returns them (a list, empty when t came). ]]
function Live:sleep_until(t)
  while true do
    local cmds = self:poll()
    if #cmds > 0 then return cmds end
    local now = sched.now()
    if now >= t then return cmds end
    local step = t - now
    local s, wall = slice(self)
    if s and s < step then step = s end
    local nxt = self.script and self.script[self.script_next]
    if nxt and nxt.at > now and nxt.at - now < step then step = nxt.at - now end
    if core.monotonic() - self.published_at >= M.HEARTBEAT then self:publish() end
    if self.http then self.http:serve(0.05) end
    sched.sleep(step, wall)
  end
end

--[[ Journals a command with what it did, logs it, and acknowledges it in the
     state file. The line carries the steering state after it (`after`: paused,
     full; `approval`: the approval step's label and who approved so far), which
     `ecsplay resume` restores (restore_from_journal): a resumed run does not redo
     what a `promote --full` skipped. ]]
function Live:record(cmd, effect, approval)
  local who = M.describe_who { user = cmd.user, host = cmd.host, as = cmd.as }
  if self.run and self.run.jwrite then
    self.run:jwrite({ t = "control", id = cmd.id, command = cmd.command, full = cmd.full or nil,
      as = cmd.as, user = cmd.user, host = cmd.host, sent = cmd.sent, source = cmd.source, effect = effect,
      after = { paused = self.paused and true or false, full = self.full or nil,
        paused_reason = self.paused and self.paused_reason or nil },
      approval = approval and { step = approval.label, approved_by = json.array(approval.approved_by) } or nil })
  end
  self:run_log(cmd.command == "abort" and "warn" or "info", "control", cmd.source == "timer" and effect
    or string.format("%s%s by %s: %s", cmd.command, cmd.full and " --full" or "", who, effect),
    { command = cmd.command, by = cmd.as or cmd.user, user = cmd.user, host = cmd.host, source = cmd.source })
  if cmd.id then
    table.insert(self.acked, 1, { id = cmd.id, command = cmd.command, effect = effect })
    while #self.acked > 20 do table.remove(self.acked) end
  end
  self:publish()
end

-- The error that ends a run aborted by a command (exit 1, after the rollback).
function M.aborted(cmd)
  local who = M.describe_who { user = cmd.user, host = cmd.host, as = cmd.as }
  local how = cmd.source == "cli" and " (ecsplay abort)" or cmd.source == "http" and " (HTTP callback)"
    or cmd.source == "scenario" and " (scenario)" or ""
  local what = cmd.command == "reject" and "approval rejected by " or "aborted by "
  return errors.new("rollout", { code = cmd.command == "reject" and "ApprovalRejected" or "Aborted",
    message = what .. who .. how })
end

--[[ What a command does where the run waits (where: "bake", "hold" — paused
     after a gate failed —, or "approval", with approval = the step's state):
       "abort"     roll back now (the caller raises control.aborted(cmd))
       "end"       end this wait now (promote; an approval that reached its minimum)
       "continue"  keep waiting (pause, unpause, an approval still short)
     The effect is journaled. ]]
function Live:apply(cmd, where, approval)
  local c = cmd.command
  if c == "abort" or c == "reject" then
    self:record(cmd, "rolling back")
    return "abort"
  elseif c == "pause" then
    if self.paused then self:record(cmd, "already paused") return "continue" end
    self.paused = true
    if where ~= "approval" then self.state = "paused" self.paused_reason = "paused by " .. M.describe_who(cmd) end
    self:record(cmd, "paused: holding the current weights, gates still measuring")
    return "continue"
  elseif c == "unpause" then
    if not self.paused then self:record(cmd, "not paused: nothing to do") return "continue" end
    self.paused = false
    if where ~= "approval" then self.state = "running" self.paused_reason = nil end
    self:record(cmd, where == "hold" and "unpaused: the run goes on" or "unpaused")
    return where == "hold" and "end" or "continue"
  end
  -- promote / approve
  if where == "approval" and approval then
    local who = cmd.as or cmd.user or "unknown"
    if approval.allowed and not approval.allowed[who] then
      self:record(cmd, string.format("refused: %s is not one of the approvers (%s)", who,
        table.concat(approval.approvers, ", ")))
      return "continue"
    end
    if not approval.by_set[who] then
      approval.by_set[who] = true
      approval.approved_by[#approval.approved_by + 1] = who
    end
    if cmd.full then self.full = true end
    local n = #approval.approved_by
    if n >= approval.min then
      self.paused = false
      self:record(cmd, string.format("approved (%d of %d)%s", n, approval.min,
        cmd.full and "; skipping to 100%" or ""), approval)
      return "end"
    end
    self:record(cmd, string.format("approval %d of %d", n, approval.min), approval)
    return "continue"
  end
  if c == "approve" then
    -- a scripted approval before its step: kept for the next approval step
    self.early_approvals[#self.early_approvals + 1] = cmd
    self:record(cmd, "kept for the next approval step")
    return "continue"
  end
  self.paused, self.paused_reason = false, nil
  self.state = "running"
  if cmd.full then self.full = true end
  self:record(cmd, cmd.full and "promoting: skipping the remaining steps to 100%"
    or (where == "hold" and "promoted past the failure: the run goes on" or "ending this bake now"))
  return "end"
end

-- A command that cannot act where the run is now: answered, journaled, never ignored.
function Live:not_applicable(cmd, why)
  self:record(cmd, "not applicable now: " .. why)
end

--[[ The pause command where the run cannot hold at once but will at its next
     holding point (`hold_at`: the effect to report), or not at all (nil:
     cannot_hold says why). ]]
function Live:pause_later(cmd, hold_at, cannot_hold)
  if self.paused then self:record(cmd, "already paused") return end
  if not hold_at then return self:not_applicable(cmd, cannot_hold) end
  self.paused = true
  self.state, self.paused_reason = "paused", "paused by " .. M.describe_who(cmd)
  self:record(cmd, hold_at)
end

-- Approvals kept from before the approval step started (scenario script).
function Live:take_early_approvals()
  local list = self.early_approvals
  self.early_approvals = {}
  return list
end

------------------------------------------------------------------ the Lua API

local Handle = {}
Handle.__index = Handle

local function target_live(target)
  local found = {}
  for id, live in pairs(live_runs) do
    if target == nil or id == target or id:sub(1, #target) == target
      or (live.run and live.run.name == target) then
      found[#found + 1] = live
    end
  end
  if #found == 1 then return found[1] end
  if #found == 0 then
    bad(target and ("ecsplay.rollout.control: no rollout " .. string.format("%q", target)
      .. " is running in this process") or "ecsplay.rollout.control: no rollout is running in this process")
  end
  local ids = {}
  for _, l in ipairs(found) do ids[#ids + 1] = l.id end
  table.sort(ids)
  bad("ecsplay.rollout.control: " .. (target and string.format("%q matches", target) or "there are")
    .. " several running rollouts (" .. table.concat(ids, ", ") .. "); give the run id or the rollout's name")
end

--[[ ecsplay.rollout.control(target): steering a rollout of this process from
     the playbook's own code (another task, or a step hook). target: a run id,
     a prefix of one or a rollout name; nil: the one running rollout. Commands
     are taken at the rollout's next wait, like `ecsplay promote` and co. ]]
function M.handle(target)
  if target ~= nil and (type(target) ~= "string" or target == "") then
    bad("ecsplay.rollout.control: expected a run id or rollout name (a string), got "
      .. strings.describe_value(target))
  end
  handles_made = true
  return setmetatable({ target = target }, Handle)
end

function Handle:send(command, opts)
  opts = opts or {}
  if opts.by ~= nil and (type(opts.by) ~= "string" or opts.by == "") then
    bad("ecsplay.rollout.control: " .. command .. ": by: expected a name (a string), got "
      .. strings.describe_value(opts.by))
  end
  local live = target_live(self.target)
  local who = M.who(opts.by)
  live.queue[#live.queue + 1] = { id = crypto.hex(crypto.random_bytes(6)), command = command,
    full = opts.full and true or nil, as = who.as, user = who.user, host = who.host,
    sent = sched.now(), source = "api" }
  return live.id
end

function Handle:promote(opts)
  if opts ~= nil and type(opts) ~= "table" then
    bad("ecsplay.rollout.control: promote: expected { full = true|false, by = NAME } or nothing, got "
      .. strings.describe_value(opts))
  end
  return self:send("promote", opts)
end
function Handle:approve(by) return self:send("approve", { by = by }) end
function Handle:pause() return self:send("pause") end
function Handle:unpause() return self:send("unpause") end
function Handle:abort() return self:send("abort") end
function Handle:state() return target_live(self.target):snapshot() end

------------------------------------------------------------------ the command line's side

-- Appends a command to a run's control file; → the command (with its id).
function M.send(journal, command, opts)
  opts = opts or {}
  local _, control_path = M.paths(journal)
  local who = M.who(opts.as)
  local cmd = { id = crypto.hex(crypto.random_bytes(6)), command = command, full = opts.full or nil,
    as = who.as, user = who.user, host = who.host, sent = core.realtime(), source = "cli" }
  local ok, err = core.fsync_append(control_path, json.encode(cmd) .. "\n")
  if not ok then bad("cannot write " .. control_path .. ": " .. tostring(err), "ControlUnwritable") end
  return cmd
end

local function shell_quote(s) return "'" .. s:gsub("'", "'\\''") .. "'" end

-- The run ids in a runs folder (journals: <id>.jsonl), sorted.
function M.list_runs(dir)
  local ids = {}
  local p = io.popen("ls -1 -- " .. shell_quote(dir) .. " 2>/dev/null")
  if not p then return ids end
  for name in p:lines() do
    local id = name:match("^(.+)%.jsonl$")
    if id and not id:match("%.control$") then ids[#ids + 1] = id end
  end
  p:close()
  table.sort(ids)
  return ids
end

local function join(dir, name) return dir:sub(-1) == "/" and (dir .. name) or (dir .. "/" .. name) end

--[[ RUN → the journal's path: a path (has a "/" or ends in .jsonl), a run id
     or a unique prefix of one in `dir` (default: the runs folder). Bad input
     otherwise: none matches, or several (listed). ]]
function M.resolve(run, dir)
  dir = dir or journal_file.runs_dir()
  if run:find("/", 1, true) or run:match("%.jsonl$") then
    local f = io.open(run, "rb")
    if not f then bad("no run journal " .. run .. " (no such file)", "RunNotFound") end
    f:close()
    return run
  end
  local ids = M.list_runs(dir)
  local matches = {}
  for _, id in ipairs(ids) do
    if id == run then return join(dir, id .. ".jsonl") end
    if id:sub(1, #run) == run then matches[#matches + 1] = id end
  end
  if #matches == 1 then return join(dir, matches[1] .. ".jsonl") end
  if #matches == 0 then
    bad(string.format("no run %q in %s (%d run(s) there%s; `ecsplay status` lists them)", run, dir, #ids,
      strings.did_you_mean(run, ids)), "RunNotFound")
  end
  local shown = { table.unpack(matches, 1, math.min(#matches, 10)) }
  bad(string.format("%q is ambiguous in %s: it starts %d runs: %s%s; give more of the run id", run, dir, #matches,
    table.concat(shown, ", "), #matches > 10 and string.format(" and %d more", #matches - 10) or ""), "AmbiguousRun")
end


-- Whether the process that published st still runs (same host: its pid and start time).
local function alive(st)
  if type(st) ~= "table" or not st.pid then return false end
  if st.host ~= M.hostname() then
    return (core.realtime() - (tonumber(st.updated) or 0)) < M.STALE
  end
  local start = proc_start(st.pid)
  if not start then return false end
  return st.proc_start == nil or tostring(st.proc_start) == start
end

--[[ The status of the run whose journal is at `path`: the journal says
     whether it ended; the state file what it is doing, if its process still
     runs; a run with no process is `gone`, with the command to run. memo: a
     table shared by the statuses of one look (journal_file.unfinished_run).
     → the status, and for a journal of a run killed before its end that left
     rollouts promoted, that run (journal_file.unfinished_run): its line points
     at the run's block (journal_file.run_block), which names them once. ]]
function M.status(path, memo)
  local jstate = journal_file.read(path)
  local start = jstate.start or {}
  local state_path = M.paths(path)
  local text = files.read(state_path)
  local st = text and json.decode(text)
  if type(st) ~= "table" then st = {} end
  local out = { run = start.run or st.run, name = start.name or st.name, strategy = start.strategy or st.strategy,
    playbook = start.playbook or st.playbook, journal = path, step = st.step, weights = st.weights,
    gates = json.array(st.gates or {}), approval = st.approval, pid = st.pid, time = st.time, host = st.host,
    paused_reason = st.paused_reason }
  local live = alive(st)
  if jstate.ended then
    out.state = FINAL[jstate.ended] or "failed"
    out.approval, out.paused_reason = nil, nil
    -- the weights after a rollback are the stable side's, not the last step's
    if out.state ~= "succeeded" then out.weights, out.step = nil, nil end
  elseif jstate.reverting then
    -- it had succeeded; a "revert" line says it is being put back (a fleet's undo=, an on_abort)
    out.state = "putting-back"
    out.approval, out.paused_reason, out.weights, out.step = nil, nil, nil, nil
    if not live then
      out.hint = string.format("it had succeeded and was being put back%s when its process went: "
        .. "`ecsplay rollback %s` finishes putting it back", journal_file.reverting_why(jstate), path)
    end
  elseif live then
    out.state = st.state or "running"
  else
    out.state = "gone"
    local undo_left = #jstate.undo
    out.hint = undo_left > 0
      and string.format("the process is gone with %d change(s) not undone: `ecsplay rollback %s` to undo them, "
        .. "or `ecsplay resume %s` to carry on", undo_left, path, path)
      or string.format("the process is gone: `ecsplay resume %s` to carry on", path)
  end
  -- its run was killed before its end: the rollouts it had promoted were never put back
  local run = not live and journal_file.unfinished_run(jstate, memo) or nil
  if run then
    local pointer = journal_file.run_pointer(run, jstate)
    out.hint = out.hint and (out.hint .. "\n  " .. pointer) or pointer
    out.unfinished_run = run.group
  end
  return out, run
end

-- A number as people write it (JSON gives 10.0 back for 10).
local function num(v)
  if type(v) == "number" and v == math.floor(v) and math.abs(v) < 1e15 then return string.format("%d", v) end
  if type(v) == "number" then return string.format("%.4g", v) end
  return tostring(v)
end

-- One line for people: "ID  name  state  step 2/4 25%  a=25 b=75  gate pass 0.1 (want < 1)".
function M.describe_status(s)
  local parts = { tostring(s.run), tostring(s.name or s.strategy or "?"), s.state }
  if s.step then
    local st = s.step
    parts[#parts + 1] = (st.index and st.of) and string.format("step %s/%s", num(st.index), num(st.of))
      or tostring(st.phase or "")
    if st.weight then parts[#parts + 1] = num(st.weight) .. "%" end
  end
  if type(s.weights) == "table" then
    local names = {}
    for k in pairs(s.weights) do names[#names + 1] = k end
    table.sort(names)
    local w = {}
    for _, k in ipairs(names) do w[#w + 1] = k .. "=" .. num(s.weights[k]) end
    if #w > 0 then parts[#parts + 1] = table.concat(w, " ") end
  end
  for _, g in ipairs(s.gates or {}) do
    local v = type(g.value) == "number" and string.format("%.4g", g.value)
      or (g.value ~= nil and tostring(g.value) or "")
    parts[#parts + 1] = string.format("%s %s%s%s", tostring(g.name), tostring(g.result), v ~= "" and (" " .. v) or "",
      g.threshold and (" (want " .. tostring(g.threshold) .. ")") or "")
  end
  local a = s.approval
  if a then
    parts[#parts + 1] = string.format("approval %d of %s%s, %s left", #(a.approved_by or {}), num(a.min or 1),
      a.approvers and (" from " .. table.concat(a.approvers, "/")) or "",
      duration.format(math.max(0, (a.deadline or 0) - (s.time or a.deadline or 0))))
  end
  if s.paused_reason and s.state == "paused" then parts[#parts + 1] = "(" .. s.paused_reason .. ")" end
  local line = table.concat(parts, "  ")
  if s.hint then line = line .. "\n  " .. s.hint end
  return line
end

return M
