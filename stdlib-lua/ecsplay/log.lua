--[[
Output for people and for machines. Text: one line per event with the time
(virtual under --simulate), the message and key=value fields. JSON
(--log-format json): one object per line, {"time":..,"level":..,"event":..,...}.
Every line passes through redact() first: a secret registered with
add_secret (access secrets, session tokens) is never written, whatever code
tried to log it.
]]
local M = {}

local format = "text"
local verbosity = 0
local sink = nil                 -- function(level, line) from the C host
local clock = os.time
local secrets = {}
local LEVELS = { debug = 1, info = 2, warn = 3, error = 4 }

function M.configure(opts)
  if opts.format then
    if opts.format ~= "text" and opts.format ~= "json" then
      error("--log-format: expected text or json, got " .. tostring(opts.format), 0)
    end
    format = opts.format
  end
  if opts.verbosity then verbosity = tonumber(opts.verbosity) or 0 end
  if opts.sink ~= nil then sink = opts.sink or nil end
  if opts.clock then clock = opts.clock end
end

function M.format() return format end

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

local function stamp(t)
  local whole = math.floor(t)
  return os.date("!%H:%M:%S", whole)
end

local function iso(t)
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

local function emit(level, line)
  line = M.redact(line)
  if sink then
    sink(level, line)
  else
    local out = (level == "error" or level == "warn") and format == "text" and io.stderr or io.stdout
    out:write(line, "\n")
    out:flush()
  end
end

--[[ log.event(level, event, message, fields): the one writer.
     event: a short machine name ("step", "gate", "rollback", ...). ]]
function M.event(level, event, message, fields)
  if LEVELS[level] < (verbosity > 0 and 1 or verbosity < 0 and 3 or 2) then return end
  local t = clock()
  if format == "json" then
    -- time, level, event, message first, then the fields sorted: stable lines
    -- that read well in a CI log and diff cleanly between runs
    local json = require "ecsplay.json" -- lazy: cjson loads only for --log-format json (start-up cost)
    local parts = {}
    local function add(k, v)
      local ev = json.encode(v)
      if ev then parts[#parts + 1] = json.encode(k) .. ":" .. ev end
    end
    add("time", iso(t)) add("level", level) add("event", event) add("message", message)
    if fields then
      local keys = {}
      for k in pairs(fields) do
        if k ~= "time" and k ~= "level" and k ~= "event" and k ~= "message" then keys[#keys + 1] = tostring(k) end
      end
      table.sort(keys)
      for _, k in ipairs(keys) do add(k, fields[k]) end
    end
    emit(level, "{" .. table.concat(parts, ",") .. "}")
  else
    local parts = { "[" .. stamp(t) .. "]" }
    if level == "warn" then parts[#parts + 1] = "warning:" end
    if level == "error" then parts[#parts + 1] = "error:" end
    parts[#parts + 1] = message
    -- structured events already say everything in their message; fields are
    -- for the JSON form. Plain log calls show their fields as key=value.
    if fields and event == "log" then
      local keys = {}
      for k in pairs(fields) do keys[#keys + 1] = k end
      table.sort(keys)
      for _, k in ipairs(keys) do parts[#parts + 1] = k .. "=" .. fmt_value(fields[k]) end
    end
    emit(level, table.concat(parts, " "))
  end
end

function M.debug(msg, fields) M.event("debug", "log", tostring(msg), fields) end
function M.info(msg, fields) M.event("info", "log", tostring(msg), fields) end
function M.warn(msg, fields) M.event("warn", "log", tostring(msg), fields) end
function M.error(msg, fields) M.event("error", "log", tostring(msg), fields) end

return M
