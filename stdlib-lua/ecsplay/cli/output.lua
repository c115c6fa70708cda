--[[
How a run looks: the renderer the command line hands ecsplay.log (policy
here, the writing in log.lua). Three modes, chosen once per run:

  terminal  standard output is a terminal (and TERM is not "dumb"): the lines
            of the plain mode with coloured verdicts (none with NO_COLOR), plus
            a live progress line at the bottom, rewritten in place with \r (the
            rollout, its step and weight, the bake's countdown, the next
            measurement), redrawn every second on a real clock (the ticker)
  plain     anything else with --log-format text: one line per event, no
            escape codes, no \r
  json      --log-format json: one JSON object per line on standard output
            and nothing else there: a playbook's print() becomes a `print`
            event; at the end a failed run's error is an `error` event and
            the run's `summary` event (scope "run") says how it ended
            (docs/events.md)

In both text modes each round of gate measurements is one line (the `round`
event; log.lua folds the per-gate `gate` events into it), and the run ends
with a summary table per rollout: its steps, the weight, how long each was
held, and each gate's min/max/last value there. -q leaves the table out.

  local out = output.start(opts)   after setup.environment; installs the renderer
  output.refused(opts, code, msg)  a run that could not start: its JSON events (json only)
  local t = out:ticker()           inside the scheduler: the progress line's clock (or nil)
  out:finish(code, message)        after the run: the table or the final JSON events;
                                   uninstalls the renderer
]]
local core = require "ecsplay.core"
local sched = require "ecsplay.sched"
local log = require "ecsplay.log"
local errors = require "ecsplay.errors"
local context = require "ecsplay.context"
local duration = require "ecsplay.duration"
local present = require "ecsplay.gate.present"
local tracker = require "ecsplay.gate.tracker"
local exit = require "ecsplay.cli.exit"

local M = {}

local Out = {}
Out.__index = Out

local ESC = string.char(27)
local CLEAR = "\r" .. ESC .. "[K"
local COLORS = { pass = "32", fail = "31", inconclusive = "33", error = "35", warn = "33", error_level = "31" }

-- What the exit code says about the run, for its summary event.
local STATUS_BY_CODE = { [0] = "succeeded", [1] = "failed", [2] = "bad_input", [3] = "rollback_failed",
  [130] = "interrupted", [143] = "interrupted" }

local function mode_for(opts)
  if log.format() == "json" then return "json" end
  if log.has_sink() or opts.log_sink then return "plain" end
  local term = os.getenv("TERM")
  if core.isatty(1) and term ~= "dumb" then return "terminal" end
  return "plain"
end

local function paint(self, code, s)
  if not self.color or not code then return s end
  return ESC .. "[" .. code .. "m" .. s .. ESC .. "[0m"
end

---------------------------------------------------------------- state: rollouts, rows, gates

-- The rollout an event belongs to (its run context), created on first sight.
function Out:rollout_of(rec)
  local ctx = rec.context or {}
  local key = ctx.run_id
  if not key then return nil end
  local r = self.rollouts[key]
  if not r then
    r = { key = key, name = ctx.rollout or key, strategy = ctx.strategy, rows = {}, gate_order = {},
      gate_info = {} }
    self.rollouts[key] = r
    self.order[#self.order + 1] = r
  end
  return r
end

-- The row (step or phase, and weight) events at `pos` belong to: the current
-- one, or a new one that closes it.
local function row_for(r, pos, t)
  local where = pos.step or pos.phase
  if where == nil and pos.weight == nil then return r.rows[#r.rows] end
  local key = tostring(where) .. "|" .. tostring(pos.weight)
  local cur = r.rows[#r.rows]
  if cur and cur.key == key then return cur end
  if cur and not cur.ended then cur.ended = t end
  local row = { key = key, step = pos.step, step_count = pos.step_count, phase = pos.phase,
    weight = pos.weight, started = t, gates = {} }
  r.rows[#r.rows + 1] = row
  return row
end

-- A gate's value in the row: min, max and last of its judged (pass/fail) values in its own unit.
local function note_gate(r, row, e)
  local name = e.gate
  if not r.gate_info[name] then
    r.gate_info[name] = {}
    r.gate_order[#r.gate_order + 1] = name
  end
  local info = r.gate_info[name]
  info.label = e.label or name
  if info.unit == nil and (e.verdict == "pass" or e.verdict == "fail") then info.unit = e.unit end
  if type(e.value) ~= "number" or (e.verdict ~= "pass" and e.verdict ~= "fail") or e.unit ~= info.unit then
    return
  end
  local g = row.gates[name] or {}
  g.min = g.min and math.min(g.min, e.value) or e.value
  g.max = g.max and math.max(g.max, e.value) or e.value
  g.last = e.value
  row.gates[name] = g
end

-- Follows the events that shape the table and the progress line.
function Out:track(rec)
  local f, r = rec.fields or {}, self:rollout_of(rec)
  if not r then return end
  r.last_step, r.last_weight = rec.context.step, rec.context.weight
  local ev = rec.event
  if ev == "step" then
    row_for(r, f, rec.time)
    self.progress = { rollout = r, step = f.step, step_count = f.step_count, weight = f.weight,
      phase = f.phase, since = rec.time }
  elseif ev == "baking" then
    -- the table's columns in the rollout's order of gates, not the order they first reported
    for _, name in ipairs(f.gate_names or {}) do
      if not r.gate_info[name] then
        r.gate_info[name] = { label = name }
        r.gate_order[#r.gate_order + 1] = name
      end
    end
    local row = row_for(r, f, rec.time)
    self.progress = { rollout = r, step = f.step, step_count = row and row.step_count,
      weight = f.weight, phase = f.phase, since = rec.time, bake = f.bake, interval = f.interval,
      due = rec.time + (f.verdict_in or f.bake or 0), next_at = rec.time + (f.interval or 0) }
  elseif ev == "round" then
    local row = row_for(r, f, rec.time)
    for _, e in ipairs(f.gates or {}) do if row then note_gate(r, row, e) end end
    local p = self.progress
    if p and p.rollout == r then
      p.next_at = p.interval and rec.time + p.interval or nil
      if not p.bake then p.step, p.weight, p.phase = f.step, f.weight, f.phase end
    else -- measured outside a bake (a phase another service drives): where it stands, no countdown
      self.progress = { rollout = r, step = f.step, step_count = f.step_count, weight = f.weight,
        phase = f.phase, since = rec.time - (f.elapsed or 0) }
    end
  elseif ev == "summary" and f.scope == "rollout" then
    r.status, r.ended, r.versions, r.duration = f.status, rec.time, f.versions, f.duration
    local last = r.rows[#r.rows]
    if last and not last.ended then last.ended = rec.time end
    if self.progress and self.progress.rollout == r then self.progress = nil end
  elseif ev == "abort" then
    -- the step held its weight until the abort: the rollback after it (which may wait out a
    -- scale-in) is not part of the step's time
    local last = r.rows[#r.rows]
    if last and not last.ended then last.ended = rec.time end
    if self.progress and self.progress.rollout == r then self.progress = nil end
  end
end

---------------------------------------------------------------- the progress line (terminal)

-- "canary api · step 2/4 25% · bake 3m12s left of 5m · next measurement in 41s"
function Out:progress_text(now)
  local p = self.progress
  if not p then return nil end
  local parts = { p.rollout.name }
  local head = present.position { step = p.step, step_count = p.step_count, weight = p.weight, phase = p.phase }
  if head ~= "" then parts[#parts + 1] = head end
  if p.bake then
    local left = p.since + p.bake - now
    if left > 0 then
      parts[#parts + 1] = "bake " .. duration.format(math.ceil(left)) .. " left of " .. duration.format(p.bake)
    elseif p.due and p.due > now then
      parts[#parts + 1] = "baked; verdict in " .. duration.format(math.ceil(p.due - now))
        .. " (CloudWatch's last periods)"
    else
      parts[#parts + 1] = "baked; waiting for every gate to pass"
    end
    if p.next_at and p.next_at > now then
      parts[#parts + 1] = "next measurement in " .. duration.format(math.ceil(p.next_at - now))
    end
  else
    parts[#parts + 1] = "for " .. duration.format(math.floor(math.max(0, now - p.since)))
  end
  return table.concat(parts, " · ")
end

local function width()
  local cols = tonumber(os.getenv("COLUMNS") or "")
  return (cols and cols >= 20) and cols or 80
end

-- Cuts s to n characters (UTF-8 aware, so a cut never splits a character).
local function cut(s, n)
  local count, i = 0, 1
  while i <= #s do
    count = count + 1
    if count > n then return s:sub(1, i - 1) end
    local b = s:byte(i)
    i = i + (b >= 0xF0 and 4 or b >= 0xE0 and 3 or b >= 0xC0 and 2 or 1)
  end
  return s
end

function Out:draw_progress()
  if self.mode ~= "terminal" or self.finished then return end
  local text = self:progress_text(sched.now())
  if text then
    io.stdout:write(CLEAR, paint(self, "2", cut("▸ " .. log.redact(text), width() - 1)))
    self.drawn = true
  elseif self.drawn then
    io.stdout:write(CLEAR)
    self.drawn = false
  end
  io.stdout:flush()
end

function Out:clear_progress()
  if self.drawn then
    io.stdout:write(CLEAR)
    io.stdout:flush()
    self.drawn = false
  end
end

---------------------------------------------------------------- lines

-- A round's line with its verdict marks coloured (terminal).
function Out:round_text(rec)
  local f = rec.fields or {}
  if not self.color or type(f.gates) ~= "table" then return rec.message end
  local marks = {}
  for i, e in ipairs(f.gates) do
    marks[i] = paint(self, COLORS[e.verdict], present.MARKS[e.verdict] or tostring(e.verdict))
  end
  local pos = { step = f.step, step_count = f.step_count, weight = f.weight, phase = f.phase,
    elapsed = f.elapsed, bake = f.bake }
  return present.round_line(f.gates, pos, marks)
end

function Out:text_line(rec)
  local shown = rec
  if rec.event == "round" then
    shown = setmetatable({ message = self:round_text(rec) }, { __index = rec })
  end
  local line = log.format_line(shown)
  if self.color then
    line = line:gsub("^(%[[%d:]+%] )warning:", "%1" .. paint(self, COLORS.warn, "warning:"))
      :gsub("^(%[[%d:]+%] )error:", "%1" .. paint(self, COLORS.error_level, "error:"))
  end
  return line
end

function Out:render(rec)
  self:track(rec)
  if self.mode == "json" then
    if rec.shown then log.write_line(rec.level, log.format_line(rec)) end
    return
  end
  self:clear_progress()
  if rec.shown then log.write_line(rec.level, self:text_line(rec)) end
  -- a rollout's table follows its summary line
  if rec.event == "summary" and type(rec.fields) == "table" and rec.fields.scope == "rollout" then
    self:print_tables(rec.time, self:rollout_of(rec))
  end
  self:draw_progress()
end

---------------------------------------------------------------- the summary table (text)

-- A value in the table, its unit in the column's header: "0.17" (%), "148" (ms).
local function fmt(v, unit)
  if unit == "%" then return string.format("%.2f", v) end
  if unit == "ms" then return string.format("%.0f", v) end
  return tracker.format_value(v, nil)
end

-- "0.00/0.17/0.17" for a gate in a row, "-" when it was not judged there.
local function gate_cell(g, unit)
  if not g then return "-" end
  return fmt(g.min, unit) .. "/" .. fmt(g.max, unit) .. "/" .. fmt(g.last, unit)
end

local function row_step(row)
  if row.step then return tostring(row.step) .. (row.step_count and ("/" .. row.step_count) or "") end
  return tostring(row.phase or "-")
end

-- The table of rollout r: a header, then one line per row; columns padded to fit.
local function table_lines(r, now)
  local header = { "step", "weight", "held" }
  for _, name in ipairs(r.gate_order) do
    local info = r.gate_info[name]
    local unit = info.unit and info.unit ~= "count" and (" (" .. info.unit .. ")") or ""
    header[#header + 1] = info.label .. unit .. " min/max/last"
  end
  local rows = { header }
  for _, row in ipairs(r.rows) do
    local cells = { row_step(row), row.weight and string.format("%g%%", row.weight) or "-",
      duration.format(math.max(0, (row.ended or now) - row.started)) }
    for _, name in ipairs(r.gate_order) do cells[#cells + 1] = gate_cell(row.gates[name], r.gate_info[name].unit) end
    rows[#rows + 1] = cells
  end
  local widths = {}
  for _, cells in ipairs(rows) do
    for i, c in ipairs(cells) do widths[i] = math.max(widths[i] or 0, utf8.len(c) or #c) end
  end
  local out = {}
  for _, cells in ipairs(rows) do
    local parts = {}
    for i, c in ipairs(cells) do
      parts[i] = i < #cells and (c .. string.rep(" ", widths[i] - (utf8.len(c) or #c))) or c
    end
    out[#out + 1] = "  " .. table.concat(parts, "  ")
  end
  return out
end

local function version_text(versions)
  local v = type(versions) == "table" and versions[1]
  if not v or not v.to then return "" end
  local function short(arn) return (tostring(arn):match("task%-definition/(.+)$") or tostring(arn)) end
  return " (" .. (v.from and (short(v.from) .. " → ") or "") .. short(v.to) .. ")"
end

-- The tables not printed yet (only: that rollout's); none under -q.
function Out:print_tables(now, only)
  if log.verbosity() < 0 then return end
  for _, r in ipairs(self.order) do
    if #r.rows > 0 and not r.printed and (only == nil or only == r) then
      r.printed = true
      local status = r.status or "ended"
      local took = r.duration and (" in " .. duration.format(r.duration)) or ""
      local lines = { string.format("summary: %s %s%s%s", r.name, status:gsub("_", " "), took,
        version_text(r.versions)) }
      for _, l in ipairs(table_lines(r, now)) do lines[#lines + 1] = l end
      for _, l in ipairs(lines) do log.write_line("info", l) end
    end
  end
end

---------------------------------------------------------------- the end of a run (json)

function Out:rollout_summaries()
  local list = {}
  for _, r in ipairs(self.order) do
    if r.status then -- a rollout this run ran to its end (not one `ecsplay rollback` names)
      list[#list + 1] = { rollout = r.name, run_id = r.key, strategy = r.strategy, status = r.status,
        duration = r.duration }
    end
  end
  return list
end

function Out:versions()
  local json = require "ecsplay.json" -- lazy: only for --log-format json, which loaded it already
  local list = json.array {}
  for _, r in ipairs(self.order) do
    for _, v in ipairs(type(r.versions) == "table" and r.versions or {}) do list[#list + 1] = v end
  end
  return list
end

function Out:final_events(code, message, failure)
  local json = require "ecsplay.json" -- lazy: as above
  -- a run of one rollout: its last events are that rollout's too
  local only = #self.order == 1 and self.order[1] or nil
  log.set_context(only and { run_id = only.key, strategy = only.strategy, rollout = only.name,
    step = only.last_step, weight = only.last_weight } or nil)
  local status = STATUS_BY_CODE[code] or "failed"
  if code ~= exit.FINISHED then
    local err = failure and failure.err
    local text = tostring(message or ""):gsub("^ecsplay: ", "")
    log.event("error", "error", (text:match("^[^\n]*")), {
      exit_code = code, code = type(err) == "table" and err.code or nil,
      kind = errors.is_error(err) and err.kind or nil, where = failure and failure.where or nil,
      details = text:find("\n") and text:match("\n(.*)$") or nil })
  end
  local rollouts = self:rollout_summaries()
  -- from the run's first event (log.first_time): by then a served simulator's clock,
  -- which this process follows from its first answer, is the clock
  local took = math.max(0, sched.now() - (log.first_time() or self.started))
  log.event(code == exit.FINISHED and "info" or "error", "summary",
    string.format("%s: exit %d after %s", status, code, duration.format(took)),
    { scope = "run", status = status, exit_code = code, duration = took,
      versions = self:versions(), rollouts = #rollouts > 0 and rollouts or json.array {} })
  log.set_context(nil)
end

---------------------------------------------------------------- start, ticker, finish

function M.start(opts)
  local self = setmetatable({ rollouts = {}, order = {}, mode = mode_for(opts), started = sched.now(),
    help = opts.help }, Out)
  self.color = self.mode == "terminal" and os.getenv("NO_COLOR") == nil
  -- a hidden debug event (aws/call.lua's per-call `aws.call`) outside a terminal only
  -- follows its rollout (log keeps the run's first time), so outside a rollout it need not
  -- reach the renderer at all; on a terminal each event redraws the progress line
  log.configure { renderer_hidden = self.mode == "terminal" and "all" or "in_context",
    renderer = function(rec)
      if rec.shown or rec.level ~= "debug" or rec.event == "summary" or self.mode == "terminal" then
        return self:render(rec)
      end
      if rec.context.run_id then self:track(rec) end
    end }
  if self.mode == "json" then
    -- standard output carries JSON only: a playbook's print() is an event too
    self.saved_print = _G.print
    _G.print = function(...)
      local parts = table.pack(...)
      for i = 1, parts.n do parts[i] = tostring(parts[i]) end
      log.event("info", "print", table.concat(parts, "\t", 1, parts.n))
    end
  elseif self.mode == "terminal" then
    -- a playbook's print() goes above the progress line, not onto it
    local print = _G.print
    self.saved_print = print
    _G.print = function(...)
      self:clear_progress()
      print(...)
      self:draw_progress()
    end
  end
  return self
end

--[[ A run refused before it could start (a playbook that cannot be read or
     compiled): with --log-format json its error and summary are events too.
     → code, message unchanged. ]]
function M.refused(opts, code, message)
  if opts.log_format == "json" and pcall(log.configure, { format = "json", verbosity = opts.verbosity,
    sink = opts.log_sink, clock = sched.now }) then
    M.start(opts):finish(code, message, nil)
  end
  return code, message
end

--[[ The progress line's clock: on a terminal, with the machine's clock, a task
     that redraws it every second (a rehearsal on a virtual or served clock
     redraws it at each event instead). Cancelled by finish. ]]
function Out:ticker()
  if self.mode ~= "terminal" or sched.is_virtual() then return nil end
  self.tick_task = sched.spawn(function()
    while not self.finished do
      if not pcall(sched.sleep, 1) or sched.is_virtual() or sched.server_clock() then return end
      self:draw_progress()
    end
  end)
  return self.tick_task
end

function Out:stop_ticker()
  local t = self.tick_task
  self.tick_task = nil
  if t and not t.done then t:cancel("the run ended") end
end

function Out:finish(code, message, failure)
  if self.finished then return end
  self:stop_ticker()
  self:clear_progress()
  self.finished = true
  local help_stop = failure and context.params_help ~= nil and failure.err == context.params_help
  -- `PLAYBOOK --help`: its text is the output, not a run
  local a_run = not (self.help and (code == exit.FINISHED or help_stop))
  if a_run and self.mode == "json" then
    self:final_events(code, message, failure)
  elseif a_run then
    self:print_tables(sched.now())
  end
  log.configure { renderer = false }
  if self.saved_print then _G.print = self.saved_print end
end

return M
