--[[
ecsplay.errors: the one error vocabulary. Every error ecsplay raises is made
by errors.new(kind, fields) and is an Error: a table with at least
  kind     what happened (the table KINDS below)
  code     a short CamelCase code (AWS's own for AWS errors: RuleNotFound, ...)
  message  one line saying what and why
and, by kind, service/operation/status/request_id/retryable (AWS calls),
field/file/line (bad input), gate/value (gates), left (a failed rollback),
signal (an interruption), details (extra lines shown under the message, such
as the paths searched for a missing module).

  errors.is(e)            is e an ecsplay error
  errors.is(e, x)         ... whose kind or code is x (or one of the list x)
  errors.describe(e)      the one way any value raised becomes text
  errors.describe(e, { code = true })   ... naming the code even for the kinds
                          whose text is their message alone (the runner's last line)
  errors.bad_input(msg, field)   what a playbook raises for bad input (exit 2)

The runner maps kinds to exit codes in one table (ecsplay.cli.exit); no
place decides by matching English. Error objects never carry secrets:
messages are built from names and codes, and errors.scrub() is applied to
any text that comes from outside.
]]
local strings = require "ecsplay.util.strings"

local M = {}

-- kind → what it means (docs/playbooks.md "Errors" lists the same).
M.KINDS = {
  service = "AWS answered with an error",
  transport = "the request did not get an answer (connection, timeout, reset)",
  response = "an answer that could not be read",
  validation = "parameters that do not fit the model; nothing was sent",
  credentials = "no usable credentials",
  config = "a bad configuration or credentials file, region or endpoint",
  waiter = "a waiter reached a failure state or timed out",
  bad_input = "bad usage or input found before anything changed",
  gate = "a gate failed",
  rollout = "a rollout failed and was rolled back",
  rollback = "a rollback could not complete",
  interrupted = "SIGINT or SIGTERM (signal = 2 or 15), or a task cancelled (code Cancelled)",
  journal = "a run journal that cannot be read or written",
  scenario = "a simulator scenario that is wrong or failed",
  internal = "a bug in ecsplay, or tasks that all wait on each other (code Deadlock)",
}

local Error = {}
Error.__index = Error
M.Error = Error

M.one_line = strings.one_line

local FIELDS = { "kind", "code", "message", "service", "operation", "status", "request_id",
  "retryable", "path", "errors", "waiter", "last_state", "url", "attempts", "source",
  "field", "file", "line", "gate", "value", "left", "signal", "changed", "cause",
  "report", "traceback", "rolled_back", "rollback_failed", "strategy", "name", "step", "run",
  "details" }

-- Kinds whose text is their message alone: the message already says what is
-- wrong in the user's terms (a field, a file and line, a signal).
local MESSAGE_ONLY = { validation = true, bad_input = true, interrupted = true,
  scenario = true, journal = true, rollout = true, rollback = true }

Error.__tostring = function(e)
  if MESSAGE_ONLY[e.kind] then
    return e.message or e.code
  end
  local parts = {}
  local who = e.service and (e.operation and (e.service .. " " .. e.operation) or e.service)
  if who then parts[#parts + 1] = who .. ": " end
  parts[#parts + 1] = tostring(e.code or "Error")
  if e.status then parts[#parts + 1] = string.format(" (%s)", tostring(e.status)) end
  local msg = e.message and strings.one_line(e.message) or ""
  if msg ~= "" then parts[#parts + 1] = ": " .. msg end
  if e.request_id then parts[#parts + 1] = string.format(" [request %s]", e.request_id) end
  return table.concat(parts)
end

-- Default codes per kind, so no error is ever without one.
local DEFAULT_CODE = {
  service = "Error", transport = "ConnectionError", response = "InvalidResponse",
  validation = "ParamValidation", credentials = "NoCredentials", config = "InvalidConfig",
  waiter = "WaiterFailed", bad_input = "BadInput", gate = "GateFailed",
  rollout = "RolloutFailed", rollback = "RollbackFailed", interrupted = "Interrupted",
  journal = "JournalError", scenario = "ScenarioError", internal = "InternalError",
}

--[[ The one constructor. fields is copied (unknown fields are dropped);
     messages are folded onto one line. ]]
function M.new(kind, fields)
  if not M.KINDS[kind] then error("errors.new: unknown kind " .. tostring(kind), 2) end
  fields = fields or {}
  local e = {}
  for _, k in ipairs(FIELDS) do e[k] = fields[k] end
  e.kind = kind
  e.code = e.code or DEFAULT_CODE[kind]
  if e.retryable == nil then e.retryable = (kind == "transport") end
  if e.message ~= nil then e.message = strings.one_line(e.message, 2000) end
  return setmetatable(e, Error)
end

-- Shorthands for the kinds raised most; each is errors.new underneath.
function M.aws(t) return M.new("service", t) end
function M.transport(t) return M.new("transport", t) end
function M.response(t) return M.new("response", t) end
function M.credentials(t) return M.new("credentials", t) end
function M.config(t) return M.new("config", t) end
function M.param_validation(t)
  local f = {}
  for k, v in pairs(t) do f[k] = v end
  f.code = "ParamValidation"
  return M.new("validation", f)
end

-- Bad usage or input (a playbook's options, a gate, a journal path, a
-- playbook argument): exit 2 while nothing has changed. Playbooks call it as
--   error(require("ecsplay.errors").bad_input("replicas: expected 1 to 10", "replicas"), 0)
function M.bad_input(message, field)
  return M.new("bad_input", { message = message, field = field })
end

-- Is v one of our error objects (any kind)?
function M.is_error(v)
  return type(v) == "table" and getmetatable(v) == Error
end

-- errors.is(e, x): e is an ecsplay error whose kind or code is x (or is in the
-- list x). errors.is(e): e is an ecsplay error. Plain tables with a `code`
-- (a decoded AWS error body) also match by code.
function M.is(e, x)
  if type(e) ~= "table" then return false end
  if x == nil then return M.is_error(e) end
  if type(x) == "table" then
    for _, c in ipairs(x) do
      if M.is(e, c) then return true end
    end
    return false
  end
  return e.code == x or (M.is_error(e) and e.kind == x)
end

-- "text" .. e and e .. "text" work on error objects as on strings (code
-- written for string errors, e.g. around pcall(require, ...), keeps working).
Error.__concat = function(a, b)
  return (type(a) == "table" and tostring(a) or a) .. (type(b) == "table" and tostring(b) or b)
end

local NO_MESSAGE = "an error raised with a table value (no message; raise a string or errors.new(...))"

--[[ The one way an error value becomes text. Strings stay as they are, error
     objects use their __tostring (plus their details, one per line), other
     tables with a message say "Code: message" (with only a code, "Code"; with
     neither, NO_MESSAGE, never an address), anything else is tostring'd.
     opts.code: name the code of an error object whose text would not, as
     " [Code]" (the runner's last line, so every failure names its code). ]]
function M.describe(e, opts)
  if type(e) == "string" then return e end
  if type(e) == "table" then
    if M.is_error(e) then
      local text = tostring(e)
      if opts and opts.code and MESSAGE_ONLY[e.kind] and e.message then
        text = text .. " [" .. tostring(e.code) .. "]"
      end
      if type(e.details) == "table" then
        for _, line in ipairs(e.details) do text = text .. "\n\t" .. tostring(line) end
      end
      return text
    end
    local mt = getmetatable(e)
    if mt and mt.__tostring then return tostring(e) end
    if e.message then
      return (e.code and (tostring(e.code) .. ": ") or "") .. tostring(e.message)
    end
    if e.code then return tostring(e.code) end
    -- error({}): "table: 0x..." would say nothing, and differ from run to run
    return NO_MESSAGE
  end
  return tostring(e)
end

--[[ The error a pcall caught, as a value to keep: error() and error(nil) raise nil, which
     code that tells a failure by its error not being nil (a task's end, ecsplay.map's
     members) would otherwise take for a success. ]]
M.NO_VALUE = "an error was raised with no value (error() or error(nil)); give error() a message"

function M.caught(e)
  if e == nil then return M.NO_VALUE end
  return e
end

-- Remove every occurrence of the given secret strings from s (used on text that comes from
-- outside, e.g. a credential_process's stderr, before it goes into a message).
function M.scrub(s, secrets)
  s = tostring(s)
  for _, secret in ipairs(secrets or {}) do
    if type(secret) == "string" and #secret >= 4 then
      local i = 1
      while true do
        local a, b = s:find(secret, i, true)
        if not a then break end
        s = s:sub(1, a - 1) .. "[redacted]" .. s:sub(b + 1)
        i = a + 10
      end
    end
  end
  return s
end

return M
