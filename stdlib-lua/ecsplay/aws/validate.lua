-- Parameter validation against a service model, before anything is sent.
-- validate.input(model, op, params) raises errors.param_validation:
--   { kind="validation", code="ParamValidation", message=, path=, service=, operation=,
--     errors={ {path=, kind=, message=}, ... } }
-- collecting every problem found (up to MAX_ERRORS), the message listing them.
-- Each problem's `kind` says what is wrong, so code (the simulator's front end)
-- decides by kind, never by the English of the message:
--   unknown_member    a member the shape does not have (the message may suggest one)
--   missing_required  a required member left out
--   type              a value of the wrong type (also: a list with holes, a bad timestamp)
--   enum              a string not in the shape's enum
--   range             a number below min / above max (or NaN)
--   length            a string, blob or list shorter than min / longer than max
--   union             more than one member of a union set
--   no_input          parameters given to an operation that takes none
local timestamp = require "ecsplay.util.timestamp"
local strings = require "ecsplay.util.strings"
local errors = require "ecsplay.errors"
local crypto = require "ecsplay.core.crypto"

local M = {}
local MAX_ERRORS = 10
local ENUM_SHOWN = 12

-- The one "did you mean" rule (ecsplay.util.strings); kept here under the old
-- names for code and tests that call validate.suggest / validate.levenshtein.
M.suggest = strings.suggest
M.levenshtein = strings.levenshtein

local function describe(v)
  local t = type(v)
  if t == "string" then
    local s = #v > 40 and (v:sub(1, 37) .. "...") or v
    return string.format("string %q", s)
  elseif t == "number" then
    return (math.type(v) == "integer" and "integer " or "number ") .. tostring(v)
  elseif t == "table" then
    if next(v) == nil then return "an empty table" end
    if v[1] ~= nil then return "a list (array table)" end
    return "a table with keys"
  end
  return t
end

-- Is t a proper sequence (keys 1..n only)? → ok, first bad key
local function is_array(t)
  local n = #t
  for k in pairs(t) do
    if math.type(k) ~= "integer" or k < 1 or k > n then return false, k end
  end
  return true
end

local function join_path(path, name)
  if path == "" then return name end
  return path .. "." .. name
end

local Checker = {}
Checker.__index = Checker

function Checker:add(path, kind, msg)
  if #self.errors < MAX_ERRORS then
    self.errors[#self.errors + 1] = { path = path, kind = kind, message = msg }
  end
end

local function len_of(s)
  return utf8.len(s) or #s
end

-- kind: "range" for a value, "length" for a string's, a blob's or a list's size.
function Checker:range(sh, v, path, what, kind)
  if sh.min and v < sh.min then
    self:add(path, kind, string.format("%s at `%s` is %s; the minimum is %s", what, path,
      tostring(v), tostring(sh.min)))
  elseif sh.max and v > sh.max then
    self:add(path, kind, string.format("%s at `%s` is %s; the maximum is %s", what, path,
      tostring(v), tostring(sh.max)))
  end
end

function Checker:wrong(path, expected, v)
  self:add(path, "type", string.format("wrong type at `%s`: expected %s, got %s", path, expected, describe(v)))
end

function Checker:value(sh, v, path)
  local t = sh.type
  if t == "structure" then
    if type(v) ~= "table" then return self:wrong(path, "a table (structure)", v) end
    return self:structure(sh, v, path)
  elseif t == "list" then
    if type(v) ~= "table" then return self:wrong(path, "a list (array table)", v) end
    local ok, bad = is_array(v)
    if not ok then
      return self:add(path, "type", string.format("wrong type at `%s`: expected a list (array table), "
        .. "found key %s", path, type(bad) == "string" and string.format("%q", bad) or tostring(bad)))
    end
    self:range(sh, #v, path, "the number of items", "length")
    local msh = self.m.shapes[sh.member.shape]
    for i = 1, #v do self:value(msh, v[i], string.format("%s[%d]", path, i)) end
  elseif t == "map" then
    if type(v) ~= "table" then return self:wrong(path, "a table (map)", v) end
    local ksh, vsh = self.m.shapes[sh.key.shape], self.m.shapes[sh.value.shape]
    local keys = {}
    for k in pairs(v) do keys[#keys + 1] = k end
    table.sort(keys, function(a, b) return tostring(a) < tostring(b) end)
    for _, k in ipairs(keys) do
      local kp = string.format("%s[%q]", path, tostring(k))
      if type(k) ~= "string" then
        self:add(kp, "type", string.format("wrong type at `%s`: map keys must be strings, got %s", kp,
          describe(k)))
      else
        self:value(ksh, k, kp)
        self:value(vsh, v[k], kp)
      end
    end
  elseif t == "string" then
    if type(v) ~= "string" then return self:wrong(path, "a string", v) end
    if sh.enum then
      local found = false
      for _, e in ipairs(sh.enum) do
        if e == v then found = true break end
      end
      if not found then
        local shown = {}
        for i = 1, math.min(#sh.enum, ENUM_SHOWN) do shown[i] = sh.enum[i] end
        local more = #sh.enum > ENUM_SHOWN and string.format(" (and %d more)", #sh.enum - ENUM_SHOWN) or ""
        self:add(path, "enum", string.format("invalid value %q at `%s`; expected one of: %s%s%s", v, path,
          table.concat(shown, ", "), more, strings.did_you_mean(v, sh.enum, { quote = true })))
        return
      end
    end
    self:range(sh, len_of(v), path, "the length of the string", "length")
  elseif t == "integer" or t == "long" then
    if type(v) ~= "number" or math.type(v) ~= "integer" and v ~= math.floor(v) then
      return self:wrong(path, "an integer", v)
    end
    self:range(sh, v, path, "the value", "range")
  elseif t == "double" or t == "float" then
    if type(v) ~= "number" then return self:wrong(path, "a number", v) end
    if v ~= v then return self:add(path, "range", string.format("invalid value at `%s`: NaN", path)) end
    self:range(sh, v, path, "the value", "range")
  elseif t == "boolean" then
    if type(v) ~= "boolean" then return self:wrong(path, "a boolean (true or false)", v) end
  elseif t == "timestamp" then
    if type(v) == "string" then
      local ok, err = timestamp.parse(v)
      if not ok then self:add(path, "type", string.format("invalid timestamp at `%s`: %s", path, err)) end
    elseif type(v) ~= "number" then
      return self:wrong(path, "a timestamp (epoch seconds or an ISO 8601 string)", v)
    end
  elseif t == "blob" then
    if type(v) ~= "string" then return self:wrong(path, "a string (binary data)", v) end
    self:range(sh, #v, path, "the length of the data", "length")
  end
  -- "document" and unknown types: any value.
end

function Checker:structure(sh, v, path)
  if sh.document then return end
  local members = sh.members or {}
  local keys = {}
  for k in pairs(v) do keys[#keys + 1] = k end
  table.sort(keys, function(a, b) return tostring(a) < tostring(b) end)
  local set = 0
  for _, k in ipairs(keys) do
    local mem = type(k) == "string" and members[k]
    local p = join_path(path, tostring(k))
    if not mem then
      if type(k) ~= "string" then
        self:add(p, "type", string.format("unexpected list item at `%s`: expected a table with named members",
          p))
      else
        -- the path only adds something when the member is nested
        local where = p ~= k and string.format(" at `%s`", p) or ""
        self:add(p, "unknown_member", string.format("unknown parameter `%s`%s%s", k, where,
          strings.did_you_mean(k, sh.order or {})))
      end
    else
      set = set + 1
      self:value(self.m.shapes[mem.shape], v[k], p)
    end
  end
  for _, r in ipairs(sh.required or {}) do
    if v[r] == nil then
      local p = join_path(path, r)
      self:add(p, "missing_required", string.format("missing required parameter `%s`", p))
    end
  end
  if sh.union and set > 1 then
    self:add(path, "union", string.format("`%s` is a union: set exactly one of its members, found %d",
      path == "" and "input" or path, set))
  end
end

--[[ The fast pass: the same rules as Checker, as a yes/no answer with no messages, paths
     or sorting (what a call with good parameters, nearly every call, pays). A "no" runs
     the Checker, which finds and words the problems; so a fit must never say yes where
     the Checker would find one. Compiled per shape (weak: dropped with its model): a fit
     is true (any value), "string" / "boolean" (a value of that Lua type) or fn(v) → bool,
     with each member's fit and each enum's set looked up once. ]]
local fits = setmetatable({}, { __mode = "k" })
local fit_of

local function in_range(sh, v)
  return not (sh.min and v < sh.min) and not (sh.max and v > sh.max)
end

local function holds(f, v)
  if f == true then return true end
  if f == "string" or f == "boolean" then return type(v) == f end
  return f(v)
end

local function structure_fit(shapes, sh)
  local member_fits = {}
  for name, mem in pairs(sh.members or {}) do member_fits[name] = fit_of(shapes, shapes[mem.shape]) end
  local required, union = sh.required or {}, sh.union
  local document = sh.document
  return function(v)
    if type(v) ~= "table" then return false end
    if document then return true end
    local set = 0
    for k, x in pairs(v) do
      local f = type(k) == "string" and member_fits[k]
      if not f then return false end
      if f ~= true then
        if f == "string" or f == "boolean" then
          if type(x) ~= f then return false end
        elseif not f(x) then
          return false
        end
      end
      set = set + 1
    end
    for i = 1, #required do
      if v[required[i]] == nil then return false end
    end
    return not (union and set > 1)
  end
end

local function string_fit(sh)
  if not sh.enum and not sh.min and not sh.max then return "string" end
  local enum
  if sh.enum then
    enum = {}
    for _, e in ipairs(sh.enum) do enum[e] = true end
  end
  local min, max = sh.min, sh.max
  -- a string's length in characters is between a quarter of its bytes and its bytes, so
  -- the byte count alone settles nearly every check (utf8.len only near the limits)
  local short_enough_bytes = min and math.max(4 * min, 1) or 0
  return function(v)
    if type(v) ~= "string" or (enum and enum[v] ~= true) then return false end
    local bytes = #v
    if (not max or bytes <= max) and (not min or min <= 0 or bytes >= short_enough_bytes
        or (min <= 1 and bytes >= 1)) then
      return true
    end
    return in_range(sh, len_of(v))
  end
end

local function list_fit(shapes, sh)
  local item = fit_of(shapes, shapes[sh.member.shape])
  return function(v)
    if type(v) ~= "table" or not is_array(v) or not in_range(sh, #v) then return false end
    for i = 1, #v do
      if not holds(item, v[i]) then return false end
    end
    return true
  end
end

local function map_fit(shapes, sh)
  local key, value = fit_of(shapes, shapes[sh.key.shape]), fit_of(shapes, shapes[sh.value.shape])
  return function(v)
    if type(v) ~= "table" then return false end
    for k, x in pairs(v) do
      if type(k) ~= "string" or not holds(key, k) or not holds(value, x) then return false end
    end
    return true
  end
end

local function build_fit(shapes, sh)
  local t = sh.type
  if t == "structure" then return structure_fit(shapes, sh)
  elseif t == "string" then return string_fit(sh)
  elseif t == "list" then return list_fit(shapes, sh)
  elseif t == "map" then return map_fit(shapes, sh)
  elseif t == "integer" or t == "long" then
    return function(v)
      return type(v) == "number" and (math.type(v) == "integer" or v == math.floor(v)) and in_range(sh, v)
    end
  elseif t == "double" or t == "float" then
    return function(v) return type(v) == "number" and v == v and in_range(sh, v) end
  elseif t == "boolean" then return "boolean"
  elseif t == "timestamp" then
    return function(v)
      if type(v) == "string" then return not not (timestamp.parse(v)) end
      return type(v) == "number"
    end
  elseif t == "blob" then
    return function(v) return type(v) == "string" and in_range(sh, #v) end
  end
  return true -- "document" and unknown types: any value
end

function fit_of(shapes, sh)
  local f = fits[sh]
  if f ~= nil then return f end
  local built
  fits[sh] = function(v) return holds(built, v) end -- stand-in while a recursive shape builds
  built = build_fit(shapes, sh)
  fits[sh] = built
  return built
end

-- Does v fit the shape (name or table)? The fast pass alone (tests hold it to problems()).
function M.fits(m, shape, v)
  local sh = type(shape) == "string" and m.shapes[shape] or shape
  return holds(fit_of(m.shapes, sh), v)
end

-- M.input's fast pass: do params (nil: none) fit an input whose fit is f (nil: the
-- operation takes no input)? No messages; M.input's checker words a no.
local function input_fits(f, params)
  if params == nil then params = {} end
  if type(params) ~= "table" then return false end
  if f == nil then return next(params) == nil end
  return holds(f, params)
end

local function input_fit_of(m, op)
  return op.input and fit_of(m.shapes, m.shapes[op.input]) or nil
end

--[[ The operation's fast pass as one function: fits(params) → true when M.input would
     accept params, false when it would raise (M.input then says why). For a caller that
     validates the same operation often (aws/call.lua's plans): the shape's fit is looked
     up once, and whether no parameters at all fit (a List* call's {}) is known at once. ]]
function M.input_fit(m, op)
  local f = input_fit_of(m, op)
  local empty_fits = input_fits(f, {})
  return function(params)
    if params == nil or type(params) == "table" and next(params) == nil
      and getmetatable(params) == nil then
      return empty_fits
    end
    return input_fits(f, params)
  end
end

-- The problems the Checker finds in v for the shape (name or table): { {path, kind, message} }
function M.problems(m, shape, v)
  local sh = type(shape) == "string" and m.shapes[shape] or shape
  local c = setmetatable({ m = m, errors = {} }, Checker)
  c:value(sh, v, "")
  return c.errors
end

local function raise(m, opname, problems)
  local prefix = string.format("%s %s: ", m.service or "aws", opname)
  local msgs = {}
  for i, e in ipairs(problems) do msgs[i] = string.format("(%d) %s", i, e.message) end
  local message
  if #problems == 1 then
    message = prefix .. problems[1].message
  else
    message = prefix .. string.format("%d invalid parameters: ", #problems) .. table.concat(msgs, " ")
  end
  error(errors.param_validation {
    message = message, path = problems[1].path, errors = problems,
    service = m.service, operation = opname,
  }, 0)
end

-- Raise a ParamValidation error unless params fit the operation's input shape.
function M.input(m, opname, params)
  local op = m.operations[opname] or (m.by_snake and m.operations[m.by_snake[opname] or ""])
  if op then opname = op.name end
  if not op then
    error(errors.param_validation { service = m.service, operation = opname, path = "",
      message = string.format("%s: unknown operation %q", m.service or "aws", tostring(opname)),
      errors = {} }, 0)
  end
  if input_fits(input_fit_of(m, op), params) then return true end
  if params == nil then params = {} end
  local c = setmetatable({ m = m, errors = {} }, Checker)
  if type(params) ~= "table" then
    c:add("", "type", "parameters must be a table, got " .. describe(params))
  elseif op.input then
    c:structure(m.shapes[op.input], params, "")
  elseif next(params) ~= nil then
    c:add("", "no_input", "this operation takes no parameters")
  end
  if #c.errors > 0 then raise(m, opname, c.errors) end
  return true
end

-- Same as input() but returns ok, err instead of raising.
function M.check(m, opname, params)
  local ok, err = pcall(M.input, m, opname, params)
  if ok then return true end
  return false, err
end

-- Fill top-level members marked idempotencyToken that the caller left unset (as botocore
-- does). Modifies and returns params.
local token_members = setmetatable({}, { __mode = "k" }) -- op → { member names } (weak)

function M.fill_idempotency_tokens(m, opname, params)
  local op = m.operations[opname] or (m.by_snake and m.operations[m.by_snake[opname] or ""])
  if not op or not op.input then return params end
  local names = token_members[op]
  if not names then
    names = {}
    for name, mem in pairs(m.shapes[op.input].members or {}) do
      if mem.idempotencyToken then names[#names + 1] = name end
    end
    token_members[op] = names
  end
  params = params or {}
  for i = 1, #names do
    if params[names[i]] == nil then params[names[i]] = crypto.uuid4() end
  end
  return params
end

return M
