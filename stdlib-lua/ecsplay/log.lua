--[[
Output for people and for machines: the one writer every event goes through.

  log.event(level, event, message, fields)   level: debug | info | warn | error;
                                             event: a short machine name ("step", "gate", ...)
  log.debug/info/warn/error(message, fields) event "log" (a playbook's own lines)
  log.lazy_event(level, event, build, ...)   as log.event(level, event, build(...)), built
                                             only when shown (an event made per AWS call)

Text: one line per event with the time (virtual under --simulate), the
message and, for plain log calls, their fields as key=value. JSON
(--log-format json): one object per line, {"time":..,"level":..,"event":..,
"message":..,<fields, sorted>}; docs/events.md is its contract.

Run context: a rollout sets who is speaking (set_context: run_id, strategy,
rollout, step, weight) for the task (coroutine) it runs in; every event that
task logs carries those fields (JSON: always present, null when unset), so
the lines of two rollouts run in parallel stay apart.

Renderer: the command line may hand configure{renderer=} a function(rec)
that decides how events look (the terminal's round lines, progress line and
summary table: ecsplay.cli.output). It sees every event, shown or not (rec.shown
says whether the level filter passes it; a hidden lazy_event comes without message
or fields), and writes with log.write_line.
Without one, shown events are written as format_line(rec) says.

Levels: -v shows debug; -q keeps warnings, errors and what was undone
(QUIET_KEEPS), since a quiet run must still say what it put back. The text
format shows each gate's measurement in its round's line (`round` events),
so `gate` (and `baking`) events are lines of their own only with -v (TEXT_FOLDED).
Every line passes through redact() first: a secret registered with
add_secret (access secrets, session tokens) is never written, whatever code
tried to log it.
]]
local M = {}

local format = "text"
local verbosity = 0
local sink = nil                 -- function(level, line) from the C host
local renderer = nil             -- function(rec) from the command line (ecsplay.cli.output)
-- renderer_hidden = "in_context": a hidden lazy event (aws/call.lua's per-call `aws.call`)
-- reaches the renderer only inside a run context (it follows rollouts); "all": always
local renderer_hidden = "all"
local first_time = nil           -- the time of the first event the renderer was set for
local clock = os.time
local secrets = {}
local LEVELS = { debug = 1, info = 2, warn = 3, error = 4 }
-- events -q still shows at any level: what a rollback undid, and a
-- playbook's print() (an event only in JSON mode, where it is never dropped)
local QUIET_KEEPS = { undo = true, print = true }
-- events the text format shows as lines of their own only with -v: each
-- gate's measurement is in its round's line, a bake's start in the progress
-- line (and in the strategies' own lines)
local TEXT_FOLDED = { gate = true, baking = true }

-- The run context fields, in the order JSON documents them (docs/events.md).
M.CONTEXT_FIELDS = { "run_id", "strategy", "rollout", "step", "weight" }
local IS_CONTEXT = {}
for _, k in ipairs(M.CONTEXT_FIELDS) do IS_CONTEXT[k] = true end
local contexts = setmetatable({}, { __mode = "k" })   -- coroutine -> context table
-- The context of an event made outside any run context: one table, not one per event
-- (a run makes an `aws.call` event per AWS call); renderers only read it.
local NO_CONTEXT = setmetatable({}, { __newindex = function()
  error("ecsplay.log: an event's context is read-only", 2)
end })
local running = coroutine.running
-- Fields some JSON events always carry, null when the event has no value
-- for them (docs/events.md): a reader never needs to ask whether a key exists.
M.ALWAYS = {
  gate = { "gate", "value", "unit", "threshold", "verdict", "window" },
  summary = { "scope", "status", "exit_code", "duration", "versions" },
  error = { "code", "exit_code" },
}

function M.configure(opts)
  if opts.format then
    if opts.format ~= "text" and opts.format ~= "json" then
      error("--log-format: expected text or json, got " .. tostring(opts.format), 0)
    end
    format = opts.format
  end
  if opts.verbosity then verbosity = tonumber(opts.verbosity) or 0 end
  if opts.sink ~= nil then sink = opts.sink or nil end
  if opts.renderer ~= nil then
    renderer, first_time = opts.renderer or nil, nil
    renderer_hidden = opts.renderer_hidden or "all"
  end
  if opts.clock then clock = opts.clock end
end

function M.format() return format end
function M.verbosity() return verbosity end
function M.has_sink() return sink ~= nil end
function M.now() return clock() end
--[[ The time of the first event, shown or hidden, since the renderer was installed (nil
     before one): the command line's run duration counts from it, since by then a served
     simulator's clock, which this process follows from its first answer, is the clock. ]]
function M.first_time() return first_time end

--[[ set_context(fields): the run context of the calling task from now on
     (nil clears it); update_context(fields) changes the given keys only. ]]
function M.set_context(fields)
  local ctx = nil
  if fields then
    ctx = {}
    for _, k in ipairs(M.CONTEXT_FIELDS) do ctx[k] = fields[k] end
  end
  contexts[coroutine.running()] = ctx
end

function M.update_context(fields)
  local co = coroutine.running()
  local ctx = contexts[co]
  if not ctx then ctx = {} contexts[co] = ctx end
  for k, v in pairs(fields) do
    if IS_CONTEXT[k] then ctx[k] = v end
  end
end

-- The calling task's run context (a copy; {} when none).
function M.context()
  local out = {}
  for k, v in pairs(contexts[coroutine.running()] or {}) do out[k] = v end
  return out
end

function M.add_secret(s)
  if type(s) == "string" and #s >= 4 then secrets[s] = true end
end

local function plain_escape(s) return (s:gsub("[%^%$%(%)%%%.%[%]%*%+%-%?]", "%%%0")) end

function M.redact(s)
  s = tostring(s)
  for secret in pairs(secrets) do
    if s:find(secret, 1, true) then s = s:gsub(plain_escape(secret), "****") end
  end
  -- signatures in Authorization-like strings, wherever they come from
  s = s:gsub("(Signature=)%x+", "%1****")
  return s
end

function M.stamp(t)
  return os.date("!%H:%M:%S", math.floor(t))
end

function M.iso(t)
  local whole = math.floor(t)
  return os.date("!%Y-%m-%dT%H:%M:%S", whole) .. string.format(".%03dZ", math.floor((t - whole) * 1000))
end

local function fmt_value(v)
  if type(v) == "number" then
    if math.type(v) == "float" then
      if v == math.floor(v) and math.abs(v) < 1e15 then return string.format("%d", v) end
      return string.format("%.4g", v)
    end
    return tostring(v)
  end
  if type(v) == "table" then
    local parts = {}
    for i, x in ipairs(v) do parts[i] = fmt_value(x) end
    if #parts > 0 then return table.concat(parts, ",") end
    local keys = {}
    for k in pairs(v) do keys[#keys + 1] = tostring(k) end
    table.sort(keys)
    for _, k in ipairs(keys) do parts[#parts + 1] = k .. "=" .. fmt_value(v[k]) end
    return "{" .. table.concat(parts, " ") .. "}"
  end
  local s = tostring(v)
  if s:find("[%s\"]") then return string.format("%q", s) end
  return s
end

--[[ write_line(level, line): one finished line out, redacted: to the host's
     sink when there is one, else warnings and errors of the text format to
     standard error and everything else to standard output. ]]
function M.write_line(level, line)
  line = M.redact(line)
  if sink then
    sink(level, line)
  else
    local out = (level == "error" or level == "warn") and format == "text" and io.stderr or io.stdout
    out:write(line, "\n")
    out:flush()
  end
end

-- The JSON object of an event: time, level, event, message first, then the
-- context and the event's fields, sorted (a field of the event wins over the
-- context's): stable lines that read well in a CI log and diff cleanly.
local function json_line(rec)
  local json = require "ecsplay.json" -- lazy: cjson loads only for --log-format json (start-up cost)
  local parts = {}
  local function add(k, v)
    local ev = json.encode(v)
    if ev then parts[#parts + 1] = json.encode(k) .. ":" .. ev end
  end
  add("time", M.iso(rec.time)) add("level", rec.level) add("event", rec.event) add("message", rec.message)
  local fields, all, keys = rec.fields or {}, {}, {}
  for _, k in ipairs(M.CONTEXT_FIELDS) do
    local v = rec.context[k]
    if v == nil then v = json.null end
    all[k] = v
  end
  for _, k in ipairs(M.ALWAYS[rec.event] or {}) do all[k] = json.null end
  for k, v in pairs(fields) do
    if k ~= "time" and k ~= "level" and k ~= "event" and k ~= "message" then all[tostring(k)] = v end
  end
  for k in pairs(all) do keys[#keys + 1] = k end
  table.sort(keys)
  for _, k in ipairs(keys) do add(k, all[k]) end
  return "{" .. table.concat(parts, ",") .. "}"
end

-- The text line of an event: "[HH:MM:SS] warning: message key=value ...".
local function text_line(rec)
  local parts = { "[" .. M.stamp(rec.time) .. "]" }
  if rec.level == "warn" then parts[#parts + 1] = "warning:" end
  if rec.level == "error" then parts[#parts + 1] = "error:" end
  parts[#parts + 1] = rec.message
  -- structured events already say everything in their message; fields are
  -- for the JSON form. Plain log calls show their fields as key=value.
  if rec.fields and rec.event == "log" then
    local keys = {}
    for k in pairs(rec.fields) do keys[#keys + 1] = k end
    table.sort(keys)
    for _, k in ipairs(keys) do parts[#parts + 1] = k .. "=" .. fmt_value(rec.fields[k]) end
  end
  return table.concat(parts, " ")
end

-- The line an event is written as, in the configured format.
function M.format_line(rec)
  if format == "json" then return json_line(rec) end
  return text_line(rec)
end

-- the lowest level shown: debug with -v, warnings with -q, else info
local function is_shown(level, event)
  local shown = LEVELS[level] >= (verbosity > 0 and 1 or verbosity < 0 and 3 or 2)
    or (verbosity < 0 and QUIET_KEEPS[event] == true)
  if shown and format == "text" and verbosity <= 0 and TEXT_FOLDED[event] then shown = false end
  return shown
end

--[[ log.event(level, event, message, fields): the one writer. ]]
function M.event(level, event, message, fields)
  local shown = is_shown(level, event)
  if not shown and not renderer then return end
  local rec = { time = clock(), level = level, event = event, message = message, fields = fields,
    context = contexts[running()] or NO_CONTEXT, shown = shown }
  if renderer then
    if not first_time then first_time = rec.time end
    renderer(rec)
  else
    M.write_line(level, M.format_line(rec))
  end
end

--[[ log.lazy_event(level, event, build, ...): log.event(level, event, build(...)) for an
     event made often and seldom shown (aws/call.lua's per-call `aws.call`): build(...) →
     message, fields runs only when the event is shown. A renderer still sees a hidden one
     (its time and run context, as for any hidden event), without message or fields; one
     installed with renderer_hidden = "in_context" only inside a run context (outside one
     the event only counts for first_time(): no record, no renderer call). ]]
function M.lazy_event(level, event, build, ...)
  if is_shown(level, event) then return M.event(level, event, build(...)) end
  local render = renderer
  if not render then return end
  local ctx = contexts[running()]
  if not ctx and renderer_hidden == "in_context" then
    -- the clock read only for the first one (this runs on every AWS call)
    if not first_time then first_time = clock() end
    return
  end
  local t = clock()
  if not first_time then first_time = t end
  render({ time = t, level = level, event = event, context = ctx or NO_CONTEXT, shown = false })
end

function M.debug(msg, fields) M.event("debug", "log", tostring(msg), fields) end
function M.info(msg, fields) M.event("info", "log", tostring(msg), fields) end
function M.warn(msg, fields) M.event("warn", "log", tostring(msg), fields) end
function M.error(msg, fields) M.event("error", "log", tostring(msg), fields) end

return M
