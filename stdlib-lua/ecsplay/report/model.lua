--[[
A run's report as data, read from its run journal (rollout/journal.lua lists
the line types): what every format of ecsplay.report renders, and what
`--report FILE.json` writes as it is.

  model.from_journal(path, live) → report
    path  any journal of the run: the other rollouts of the same playbook run
          are found through it (journal_file.members)
    live  what the process that just ran knows and the journal does not:
          { exit_code=, command="run"|"rollback"|"resume", message= } (optional)
  model.from_lines(lines, live) → report     one journal's decoded lines (tests)
  model.clean(s)   a journal string as the report shows it: one line, secrets out

The report (format "ecsplay-report/1"; times are epoch seconds, virtual
under --simulate):
  run      { id, playbook, args, command, status, exit_code, started, ended,
             duration, message, versions = { new, previous } }
  rollouts { { name, strategy, run, journal, status, started, ended, duration,
               reason, versions,
               steps  { { index, weight, message, started, ended, held,
                          gates = { { name, min, max, last, verdict, rounds } } } },
               gates  { { name, unit, threshold, threshold_value, min, max, last,
                          verdict, counts = { pass=, fail=, ... },
                          measurements = { { time, value, shown, verdict, step,
                                             phase, window = { from, to } } } } },
               events { { time, kind, text, who } },  kind: change, step, gate,
                          abort, control (its action in `action`), undo, end
             } }
Secrets never reach it: argument values whose names look secret are
replaced, URLs lose their user info and signing parameters, and every string
passes through log.redact (the keys and tokens the process knows).
]]
local json = require "ecsplay.json"
local log = require "ecsplay.log"
local strings = require "ecsplay.util.strings"
local journal_file = require "ecsplay.rollout.journal_file"
local actions = require "ecsplay.rollout.actions"
local control = require "ecsplay.rollout.control"

local M = {}

M.FORMAT = "ecsplay-report/1"

-- Exit codes a journal's end status stands for (docs/cli.md), when no process told us.
local EXIT_OF_STATUS = { succeeded = 0, rolled_back = 1, rollback_failed = 3 }
-- Worst first: the run's status is the worst of its rollouts'.
local STATUS_RANK = { rollback_failed = 5, running = 4, rolling_back = 4, rolled_back = 3, unknown = 2, succeeded = 1 }

local SECRET_NAME = { "secret", "token", "password", "passwd", "credential", "auth", "key", "signature",
  "private", "cookie", "session" }

local function is_null(v) return v == nil or v == json.null end

local function str(v)
  if is_null(v) then return nil end
  return tostring(v)
end

-- A string from the journal as the report shows it.
function M.clean(s, limit)
  if is_null(s) then return nil end
  s = tostring(s)
  s = s:gsub("(%a[%w+.-]*://)[^/@%s]*@", "%1")                       -- user info in URLs
  s = s:gsub("([Xx]%-[Aa]mz%-[%a-]+=)[^&%s\"']*", "%1****")          -- presigned URL parameters
  s = log.redact(s)
  return strings.one_line(s, limit or 2000)
end

-- A finite number (JSON's 10 decodes as 10.0: integral values become integers again), or nil.
local function num(v)
  if type(v) == "number" and v == v and v ~= math.huge and v ~= -math.huge then
    return math.tointeger(v) or v
  end
end

local function secret_name(name)
  local lower = tostring(name):lower()
  for _, w in ipairs(SECRET_NAME) do
    if lower:find(w, 1, true) then return true end
  end
  return false
end

-- A path as the report shows it: relative to the current folder when inside it.
local function shown_path(p)
  local cwd = os.getenv("PWD")
  p = M.clean(p, 500)
  if p and cwd and cwd ~= "" and p:sub(1, #cwd + 1) == cwd .. "/" then return p:sub(#cwd + 2) end
  return p
end

local function clean_args(args)
  if type(args) ~= "table" then return {} end
  local out = {}
  for k, v in pairs(args) do
    if type(k) == "string" then out[M.clean(k, 200)] = secret_name(k) and "****" or M.clean(v, 500) end
  end
  return out
end

------------------------------------------------------------------ one rollout

-- "< 1%" → 1, "< 300 ms" → 300; the number a chart draws the threshold at.
local function threshold_number(text)
  if type(text) ~= "string" then return nil end
  return tonumber(text:match("[<>]=?%s*(%-?[%d.]+)"))
end

local function gate_entry(r, name)
  local g = r.gate_by_name[name]
  if not g then
    g = { name = name, measurements = json.array(), counts = {} }
    r.gate_by_name[name] = g
    r.gates[#r.gates + 1] = g
  end
  return g
end

local function step_event(r, obj)
  local index = num(obj.step)
  if not index or r.step_by_index[index] then return end   -- resumed: a step is logged again
  local s = { index = index, weight = num(obj.weight), message = M.clean(obj.message, 300),
    started = num(obj.time), gates = json.array() }
  r.step_by_index[index] = s
  r.steps[#r.steps + 1] = s
  r.open_step = s
  r.events[#r.events + 1] = { time = s.started, kind = "step", text = s.message or ("step " .. index) }
end

-- Without step lines (a strategy that logs no step), the gate rounds' phases are the steps.
local function phase_step(r, obj)
  if #r.steps > 0 and not r.by_phase then return end
  r.by_phase = true
  local key = tostring(obj.phase) .. "\0" .. tostring(obj.weight)
  if r.last_phase == key then return end
  r.last_phase = key
  local s = { index = #r.steps + 1, weight = num(obj.weight), message = M.clean(obj.phase, 300),
    started = num(obj.time), gates = json.array() }
  if r.open_step and not r.open_step.ended then r.open_step.ended = s.started end
  r.steps[#r.steps + 1] = s
  r.open_step = s
end

local function gate_round(r, obj)
  if is_null(obj.step) and not is_null(obj.phase) then phase_step(r, obj) end
  if type(obj.gates) == "table" and #obj.gates > r.gate_order_n then
    -- the gates in the order the rollout declares them: its fullest round lists them all
    r.gate_order = {}
    for i, m in ipairs(obj.gates) do r.gate_order[M.clean(m.name, 200) or "gate"] = i end
    r.gate_order_n = #obj.gates
  end
  local failed = {}
  for _, m in ipairs(type(obj.gates) == "table" and obj.gates or {}) do
    local name = M.clean(m.name, 200) or "gate"
    local g = gate_entry(r, name)
    local verdict = str(m.verdict) or "error"
    g.unit = g.unit or M.clean(m.unit, 40)
    if not is_null(m.threshold) and verdict ~= "inconclusive" then g.threshold = M.clean(m.threshold, 200) end
    local w = type(m.window) == "table" and { from = num(m.window.from), to = num(m.window.to) } or nil
    g.measurements[#g.measurements + 1] = { time = num(obj.time), value = num(m.value),
      shown = M.clean(m.shown, 200), verdict = verdict, step = num(obj.step) or (r.open_step and r.open_step.index),
      phase = M.clean(obj.phase, 100), window = w, dry_run = m.dry_run == true or nil }
    g.counts[verdict] = (g.counts[verdict] or 0) + 1
    if verdict == "fail" or verdict == "error" then
      failed[#failed + 1] = string.format("%s %s%s", name, verdict,
        num(m.value) and (" " .. strings.one_line(string.format("%.4g", m.value))) or "")
    end
  end
  if obj.abort then
    r.reason = M.clean(obj.reason, 500) or r.reason
    r.events[#r.events + 1] = { time = num(obj.time), kind = "abort",
      text = "gates aborted the rollout: " .. (r.reason or table.concat(failed, ", ")) }
  elseif #failed > 0 then
    r.events[#r.events + 1] = { time = num(obj.time), kind = "gate", text = table.concat(failed, "; ") }
  end
end

-- Who decided, from a control line ({"t":"control", command, user, host, as,
-- source, effect}: rollout/control.lua): "as (user@host)" as the run logged it.
local function who_of(obj)
  if obj.source == "timer" then return "the timeout" end
  if is_null(obj.user) and is_null(obj.host) and is_null(obj.as) then return nil end
  return M.clean(control.describe_who { user = str(obj.user), host = str(obj.host), as = str(obj.as) }, 200)
end

local function control_event(r, obj)
  local action = M.clean(obj.command or obj.action, 60) or "control"
  local effect = M.clean(obj.effect or obj.message, 300)
  local shown = action .. (obj.full == true and " --full" or "")
  r.events[#r.events + 1] = { time = num(obj.time), kind = "control", action = action,
    text = effect and (shown .. ": " .. effect) or shown, who = who_of(obj) }
end

local function undo_event(r, obj)
  local u = r.undo_by_index[num(obj.index) or -1]
  local text = "undone"
  if u then
    local ok, d = pcall(actions.describe, u.action)
    text = "undone: " .. (M.clean(ok and d or u.desc, 300) or "a step")
  end
  r.events[#r.events + 1] = { time = num(obj.time), kind = "undo", text = text }
  r.undone = (r.undone or 0) + 1
end

local function end_event(r, obj)
  r.status = str(obj.status) or r.status
  r.ended = num(obj.time)
  r.exit_code = num(obj.exit_code) or r.exit_code
  if type(obj.versions) == "table" then
    r.versions = { new = M.clean(obj.versions.new or obj.versions.to, 300),
      previous = M.clean(obj.versions.previous or obj.versions.from, 300) }
  end
  r.events[#r.events + 1] = { time = r.ended, kind = "end", text = "ended: " .. (r.status or "?") }
end

local function change_event(r, obj)
  r.events[#r.events + 1] = { time = num(obj.time), kind = "change",
    text = M.clean(obj.desc, 300) or M.clean(obj.key, 100) or "a change", key = M.clean(obj.key, 100) }
  local undo = obj.undo
  if type(undo) == "table" then
    r.undo_by_index[#r.undo_by_index + 1] = { action = undo, desc = obj.desc }
    if undo.op == "update_service" and r.previous == nil then r.previous = M.clean(undo.taskDefinition, 300) end
  end
end

local HANDLERS = {
  ["do"] = function(r, obj)
    if r.open_step and not r.open_step.ended then r.open_step.ended = num(obj.time) end
    change_event(r, obj)
  end,
  done = function(r, obj)
    if obj.key == "register" and type(obj.result) == "string" then r.new_version = M.clean(obj.result, 300) end
  end,
  step = step_event,
  gate = gate_round,
  control = control_event,
  undone = function(r, obj)
    if r.open_step and not r.open_step.ended then r.open_step.ended = num(obj.time) end
    undo_event(r, obj)
  end,
  ["end"] = function(r, obj)
    if r.open_step and not r.open_step.ended then r.open_step.ended = num(obj.time) end
    end_event(r, obj)
  end,
}

-- min, max, last and the last verdict of measurements (numbers only for the first three).
local function summarise(ms)
  local s = { rounds = #ms }
  for _, m in ipairs(ms) do
    if m.value then
      s.min = s.min and math.min(s.min, m.value) or m.value
      s.max = s.max and math.max(s.max, m.value) or m.value
      s.last = m.value
    end
    s.verdict = m.verdict
  end
  return s
end

local function finish_rollout(r, last_time)
  local first_seen = {}
  for i, g in ipairs(r.gates) do first_seen[g] = i end
  table.sort(r.gates, function(a, b)
    local ia, ib = r.gate_order[a.name] or math.huge, r.gate_order[b.name] or math.huge
    if ia ~= ib then return ia < ib end
    return first_seen[a] < first_seen[b]
  end)
  for _, s in ipairs(r.steps) do
    s.ended = s.ended or r.ended or last_time
    s.held = (s.started and s.ended) and (s.ended - s.started) or nil
  end
  for _, g in ipairs(r.gates) do
    local sum = summarise(g.measurements)
    g.min, g.max, g.last, g.verdict = sum.min, sum.max, sum.last, sum.verdict
    g.threshold_value = threshold_number(g.threshold)
    for _, s in ipairs(r.steps) do
      local mine = {}
      for _, m in ipairs(g.measurements) do if m.step == s.index then mine[#mine + 1] = m end end
      if #mine > 0 then
        local ss = summarise(mine)
        ss.name = g.name
        s.gates[#s.gates + 1] = ss
      end
    end
  end
  r.ended = r.ended or last_time
  r.duration = (r.started and r.ended) and (r.ended - r.started) or nil
  r.status = r.status or "unknown"
  r.versions = r.versions or { new = r.new_version, previous = r.previous ~= r.new_version and r.previous or nil }
  r.exit_code = r.exit_code or EXIT_OF_STATUS[r.status]
  for _, k in ipairs { "gate_by_name", "step_by_index", "undo_by_index", "open_step", "by_phase", "last_phase",
    "new_version", "previous", "gate_order", "gate_order_n" } do r[k] = nil end
  return r
end

-- One rollout's report from its journal's decoded lines (in file order).
local function rollout_of(lines, path)
  local start = {}
  for _, obj in ipairs(lines) do if obj.t == "start" then start = obj break end end
  local r = { name = M.clean(start.name, 200), strategy = M.clean(start.strategy, 60), run = M.clean(start.run, 200),
    journal = shown_path(path), started = num(start.time), steps = json.array(), gates = json.array(),
    events = json.array(),
    gate_by_name = {}, step_by_index = {}, undo_by_index = {}, gate_order = {}, gate_order_n = 0 }
  local last_time = r.started
  for _, obj in ipairs(lines) do
    last_time = num(obj.time) or last_time
    local h = HANDLERS[obj.t]
    if h then h(r, obj) end
  end
  return finish_rollout(r, last_time), start
end

------------------------------------------------------------------ the run

local function run_of(rollouts, starts, live)
  live = live or {}
  local first = starts[1] or {}
  local cfg = type(first.config) == "table" and first.config or {}
  local run = { id = M.clean(first.group or first.run, 200), playbook = shown_path(first.playbook),
    args = clean_args(first.args), endpoint = M.clean(cfg.endpoint_url, 300), region = M.clean(cfg.region, 60),
    command = live.command or "report", message = M.clean(live.message, 2000) }
  local worst, rank = nil, 0
  for _, r in ipairs(rollouts) do
    local k = STATUS_RANK[r.status] or 2
    if k > rank then worst, rank = r.status, k end
    if r.started and (not run.started or r.started < run.started) then run.started = r.started end
    if r.ended and (not run.ended or r.ended > run.ended) then run.ended = r.ended end
    run.versions = run.versions or ((r.versions.new or r.versions.previous) and r.versions or nil)
  end
  run.status = worst or "no rollout"
  run.duration = (run.started and run.ended) and (run.ended - run.started) or nil
  if live.exit_code ~= nil then
    run.exit_code = live.exit_code
  elseif #rollouts > 0 then
    local code = 0
    for _, r in ipairs(rollouts) do
      if r.exit_code == nil then code = nil break end
      code = math.max(code, r.exit_code)
    end
    run.exit_code = code
  end
  run.versions = run.versions or {}
  return run
end

-- Decodes a journal's text into its lines (lines that do not read back are skipped).
local function decode_lines(text)
  local out = {}
  for line in text:gmatch("([^\n]*)\n") do
    local ok, obj = pcall(json.decode, line)
    if ok and type(obj) == "table" and type(obj.t) == "string" then out[#out + 1] = obj end
  end
  return out
end

local function read_text(path)
  local f = io.open(path, "rb")
  if not f then return "" end
  local text = f:read("a") or ""
  f:close()
  return text
end

function M.from_lines(lines, live)
  local r, start = rollout_of(lines, live and live.journal)
  return { format = M.FORMAT, run = run_of({ r }, { start }, live), rollouts = json.array { r } }
end

--[[ Reads the run's journals (raises bad_input when path is no journal, as
     `ecsplay rollback` does) and builds the report. ]]
function M.from_journal(path, live)
  local state = journal_file.read(path)
  local members = journal_file.members(state)
  local rollouts, starts = json.array(), {}
  for _, m in ipairs(members) do
    local r, start = rollout_of(decode_lines(read_text(m.path)), m.given or m.path)
    rollouts[#rollouts + 1] = r
    starts[#starts + 1] = start
  end
  return { format = M.FORMAT, run = run_of(rollouts, starts, live), rollouts = rollouts }
end

-- An empty report: a run that wrote no journal (no rollout started).
function M.empty(live)
  return { format = M.FORMAT, run = run_of({}, {}, live), rollouts = json.array() }
end

return M
