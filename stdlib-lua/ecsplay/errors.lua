-- The error object every AWS call raises (PLAYBOOK_API.md):
--   { service=, operation=, code=, message=, status=, request_id=, retryable=, kind= }
-- kind says where it came from: "service" (AWS answered with an error), "transport"
-- (connection error, timeout, reset), "validation" (ParamValidation, nothing was sent),
-- "response" (an answer we could not read), "credentials", "config", "waiter".
-- tostring(e) is one line, e.g.
--   elbv2 ModifyRule: RuleNotFound (400): The specified rule does not exist. [request 1234-...]
-- Error objects never carry secrets: messages are built by ecsplay code from names and
-- codes, and errors.scrub() is applied to every message that includes outside text.
local M = {}

local Error = {}
Error.__index = Error
M.Error = Error

-- One line, at most `limit` bytes: newlines and runs of blanks collapsed.
local function one_line(s, limit)
  s = tostring(s or ""):gsub("[%c%s]+", " "):gsub("^ +", ""):gsub(" +$", "")
  limit = limit or 600
  if #s > limit then s = s:sub(1, limit - 3) .. "..." end
  return s
end
M.one_line = one_line

Error.__tostring = function(e)
  local parts = {}
  local who = e.service and (e.operation and (e.service .. " " .. e.operation) or e.service)
  if who then parts[#parts + 1] = who .. ": " end
  parts[#parts + 1] = tostring(e.code or "Error")
  if e.status then parts[#parts + 1] = string.format(" (%s)", tostring(e.status)) end
  local msg = e.message and one_line(e.message) or ""
  if msg ~= "" then parts[#parts + 1] = ": " .. msg end
  if e.request_id then parts[#parts + 1] = string.format(" [request %s]", e.request_id) end
  return table.concat(parts)
end

local FIELDS = { "service", "operation", "code", "message", "status", "request_id",
  "retryable", "kind", "path", "errors", "waiter", "last_state", "url", "attempts", "source" }

-- Build an error object from a table of fields (copied; unknown fields ignored).
local function make(t, kind)
  local e = {}
  for _, k in ipairs(FIELDS) do e[k] = t[k] end
  e.kind = e.kind or kind
  e.code = e.code or "Error"
  if e.retryable == nil then e.retryable = false end
  if e.message ~= nil then e.message = one_line(e.message, 2000) end
  return setmetatable(e, Error)
end

-- errors.aws{service=, operation=, code=, message=, status=, request_id=, retryable=}
function M.aws(t) return make(t, "service") end

-- errors.transport{service=, operation=, code="ConnectionError"|"Timeout"|..., message=}
function M.transport(t)
  local e = make(t, "transport")
  if t.retryable == nil then e.retryable = true end
  return e
end

-- A response that could not be understood (malformed XML/JSON, wrong content type, ...).
function M.response(t) return make(t, "response") end

-- Credentials / configuration problems (no credentials, bad config file, ...).
function M.credentials(t) return make(t, "credentials") end
function M.config(t) return make(t, "config") end

-- The ParamValidation variant: from validate.lua's error table (keeps path and errors).
-- Its tostring is the validation message alone, which already names service and operation.
local ParamError = setmetatable({}, { __index = Error })
ParamError.__index = ParamError
ParamError.__tostring = function(e) return e.message end
M.ParamError = ParamError

function M.param_validation(t)
  local e = make(t, "validation")
  e.code = "ParamValidation"
  return setmetatable(e, ParamError)
end

-- Bad usage or input found before anything changed (a playbook's options, a
-- gate, a journal path): the runner exits 2 for it while no change was sent.
local BadInput = { __tostring = function(e) return e.message end }
BadInput.__index = BadInput
M.BadInput = BadInput

function M.bad_input(message, field)
  return setmetatable({ code = "BadInput", bad_input = true, message = message, field = field }, BadInput)
end

-- Is v one of our error objects (any kind)?
function M.is_error(v)
  if type(v) ~= "table" then return false end
  local mt = getmetatable(v)
  return mt == Error or mt == ParamError
end

-- errors.is(e, code) → true when e is an error object (or any table with .code) whose code
-- equals code, or is in code when code is a list. errors.is(e) → is it an ecsplay error.
function M.is(e, code)
  if type(e) ~= "table" then return false end
  if code == nil then return M.is_error(e) end
  if type(code) == "table" then
    for _, c in ipairs(code) do
      if e.code == c then return true end
    end
    return false
  end
  return e.code == code
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
