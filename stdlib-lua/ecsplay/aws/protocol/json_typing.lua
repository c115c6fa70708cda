--[[
ecsplay.aws.protocol.json_typing: decoded JSON given Lua types by shape (aws/protocol/json.lua's
second half): timestamps to epoch seconds, blobs decoded, integers and doubles as the model
says, unknown members dropped. Compiled per shape (typer_of); the copying walk (typed) is the
reference the tests hold the compiled typers to, and words the errors.

  typing.typed(m, shape, v, path, strict)   → a typed copy (strict: raises a validation error)
  typing.type_in_place(m, shape, v, strict) → v typed in place (this module's callers' own)
]]
local cjson = require "cjson"
local errors = require "ecsplay.errors"
local proto = require "ecsplay.aws.protocol"
local timestamp = require "ecsplay.util.timestamp"
local reference = require "ecsplay.aws.protocol.json_reference"

local M = {}

local NULL, cnull = reference.null, cjson.null
local function is_null(v)
  return v == nil or v == NULL or v == cnull
end
-- a compiled typer's "cannot type this": the copying walk then words the problem
local NEEDS_PATH = setmetatable({}, { __tostring = function() return "json: needs a path" end })

-- Typing decoded JSON by shape. strict (server side) reports mismatches; lenient
-- (client side) keeps what it cannot convert. Unknown members are dropped (as botocore).
--[[ Per structure shape: decoded key → { member name, member shape } (weak: dropped with
     the model), so typing walks the keys an answer has, not every member the shape
     could have. false when two members share a wire name (then members are walked). ]]
local wire_index = setmetatable({}, { __mode = "k" })
local function wire_of(m, sh)
  local idx = wire_index[sh]
  if idx == nil then
    idx = {}
    for name, mem in pairs(sh.members or {}) do
      local wire = mem.locationName or name
      if idx[wire] then idx = false break end
      idx[wire] = { name, m.shapes[mem.shape] }
    end
    wire_index[sh] = idx
  end
  return idx
end

--[[ The client side's typing (strict = false below, the same rules): never fails, so it
     needs no paths for messages; what it cannot convert it keeps. ]]
local lenient
function lenient(m, sh, v)
  if v == nil or v == NULL or v == cjson.null then return nil end
  local t = sh.type
  if t == "structure" then
    if sh.document or type(v) ~= "table" then return v end
    local r, idx = {}, wire_of(m, sh)
    if idx then
      for k, fv in pairs(v) do
        local e = idx[k]
        if e then r[e[1]] = lenient(m, e[2], fv) end
      end
    else
      for name, mem in pairs(sh.members or {}) do
        local fv = v[mem.locationName or name]
        if fv ~= nil then r[name] = lenient(m, m.shapes[mem.shape], fv) end
      end
    end
    return r
  elseif t == "list" then
    if type(v) ~= "table" then return v end
    local r, n, msh = {}, 0, m.shapes[sh.member.shape]
    for i = 1, #v do
      local x = lenient(m, msh, v[i])
      if x ~= nil then n = n + 1 r[n] = x end
    end
    return r
  elseif t == "string" then
    return v
  elseif t == "map" then
    if type(v) ~= "table" then return v end
    local r, vsh = {}, m.shapes[sh.value.shape]
    for k, x in pairs(v) do r[k] = lenient(m, vsh, x) end
    return r
  elseif t == "integer" or t == "long" then
    if type(v) ~= "number" then return v end
    return math.tointeger(v) or v
  elseif t == "double" or t == "float" then
    if type(v) ~= "number" then return v end
    return v + 0.0
  elseif t == "timestamp" then
    if type(v) == "string" then return timestamp.to_epoch(v) or v end
    return v
  elseif t == "blob" then
    if type(v) ~= "string" then return v end
    return proto.unbase64(v) or v
  end
  return v -- boolean, document, unknown types
end

local function typed(m, sh, v, path, strict)
  if not strict then return lenient(m, sh, v) end
  if is_null(v) then return nil end
  local t = sh.type
  local function bad(expected)
    if strict then
      error(errors.new("validation", { code = "SerializationException", message = string.format(
        "expected %s at `%s`, found %s", expected, path == "" and "$" or path, type(v)) }), 0)
    end
    return v
  end
  if t == "structure" then
    if sh.document then return v end
    if type(v) ~= "table" then return bad("an object") end
    local r = {}
    for name, mem in pairs(sh.members or {}) do
      local fv = v[mem.locationName or name]
      if fv ~= nil then
        r[name] = typed(m, m.shapes[mem.shape], fv, path == "" and name or path .. "." .. name, strict)
      end
    end
    return r
  elseif t == "list" then
    if type(v) ~= "table" then return bad("an array") end
    local r, msh = {}, m.shapes[sh.member.shape]
    for i = 1, #v do
      local x = typed(m, msh, v[i], path .. "[" .. i .. "]", strict)
      if x ~= nil then r[#r + 1] = x end
    end
    return r
  elseif t == "map" then
    if type(v) ~= "table" then return bad("an object") end
    local r, vsh = {}, m.shapes[sh.value.shape]
    for k, x in pairs(v) do r[k] = typed(m, vsh, x, path .. "." .. tostring(k), strict) end
    return r
  elseif t == "string" then
    if type(v) ~= "string" then return bad("a string") end
    return v
  elseif t == "integer" or t == "long" then
    if type(v) ~= "number" then return bad("a number") end
    return math.tointeger(v) or (strict and bad("an integer") or v)
  elseif t == "double" or t == "float" then
    if type(v) ~= "number" then return bad("a number") end
    return v + 0.0
  elseif t == "boolean" then
    if type(v) ~= "boolean" then return bad("a boolean") end
    return v
  elseif t == "timestamp" then
    if type(v) == "number" then return v end
    if type(v) == "string" then
      local e = timestamp.to_epoch(v)
      if e then return e end
    end
    return bad("a timestamp")
  elseif t == "blob" then
    if type(v) ~= "string" then return bad("a base64 string") end
    local d = proto.unbase64(v)
    if not d then return bad("valid base64") end
    return d
  end
  return v
end
M.typed = typed

--[[ Compiled typing, in place: per shape and mode (weak: dropped with its model), what
     lenient (strict = false) or typed (strict = true) does to a value, done to the decoded
     table itself (members renamed nowhere in the JSON models, so a structure keeps its
     keys; unknown members and nulls are removed, lists compacted), so a response is not
     copied member by member. A typer is true (the value as it is), "string" / "boolean"
     (strict: that Lua type, as it is) or fn(v) → value. Strict mismatches raise
     NEEDS_PATH; the caller then types a fresh decode with typed, which words the problem.
     Only for tables this module decoded itself (M.typed keeps the copying walk). ]]
local typers = { [false] = setmetatable({}, { __mode = "k" }), [true] = setmetatable({}, { __mode = "k" }) }
local typer_of

local function mismatch(strict, v)
  if strict then error(NEEDS_PATH, 0) end
  return v
end

-- A non-null value through typer d.
local function apply(d, v)
  if d == true then return v end
  if d == "string" or d == "boolean" then
    if type(v) ~= d then error(NEEDS_PATH, 0) end
    return v
  end
  return d(v)
end

local function struct_typer(m, sh, strict)
  local decs = {}
  for name, mem in pairs(sh.members or {}) do
    -- a renamed member or two members on one wire name: the copying walk
    if (mem.locationName or name) ~= name then
      return strict and function(v) return typed(m, sh, v, "", true) end
        or function(v) return lenient(m, sh, v) end
    end
  end
  for name, mem in pairs(sh.members or {}) do decs[name] = typer_of(m, m.shapes[mem.shape], strict) end
  return function(v)
    if type(v) ~= "table" then return mismatch(strict, v) end
    for k, fv in pairs(v) do
      local d = decs[k]
      if d == nil or fv == cnull or fv == NULL then
        v[k] = nil
      elseif d ~= true then
        if d == "string" or d == "boolean" then
          if type(fv) ~= d then error(NEEDS_PATH, 0) end
        else
          v[k] = d(fv)
        end
      end
    end
    return v
  end
end

local function list_typer(m, sh, strict)
  local d = typer_of(m, m.shapes[sh.member.shape], strict)
  return function(v)
    if type(v) ~= "table" then return mismatch(strict, v) end
    local n = #v
    if n == 0 then return next(v) == nil and v or {} end -- {} for an object: no items
    local j = 0
    if d == true then
      -- items kept as they are (lenient strings, ...): only nulls to drop
      for i = 1, n do
        local x = v[i]
        if x ~= cnull and x ~= NULL then
          j = j + 1
          if j ~= i then v[j] = x end
        end
      end
    else
      for i = 1, n do
        local x = v[i]
        if x ~= cnull and x ~= NULL then
          j = j + 1
          v[j] = apply(d, x)
        end
      end
    end
    for i = j + 1, n do v[i] = nil end
    return v
  end
end

local function map_typer(m, sh, strict)
  local d = typer_of(m, m.shapes[sh.value.shape], strict)
  return function(v)
    if type(v) ~= "table" then return mismatch(strict, v) end
    for k, x in pairs(v) do
      if x == cnull or x == NULL then v[k] = nil else v[k] = apply(d, x) end
    end
    return v
  end
end

local SCALAR_TYPERS = {
  [false] = {
    integer = function(v) if type(v) ~= "number" then return v end return math.tointeger(v) or v end,
    double = function(v) if type(v) ~= "number" then return v end return v + 0.0 end,
    timestamp = function(v) if type(v) == "string" then return timestamp.to_epoch(v) or v end return v end,
    blob = function(v) if type(v) ~= "string" then return v end return proto.unbase64(v) or v end,
  },
  [true] = {
    string = "string", boolean = "boolean",
    integer = function(v)
      if type(v) ~= "number" then error(NEEDS_PATH, 0) end
      return math.tointeger(v) or error(NEEDS_PATH, 0)
    end,
    double = function(v) if type(v) ~= "number" then error(NEEDS_PATH, 0) end return v + 0.0 end,
    timestamp = function(v)
      if type(v) == "number" then return v end
      return type(v) == "string" and timestamp.to_epoch(v) or error(NEEDS_PATH, 0)
    end,
    blob = function(v)
      if type(v) ~= "string" then error(NEEDS_PATH, 0) end
      return proto.unbase64(v) or error(NEEDS_PATH, 0)
    end,
  },
}
for _, set in pairs(SCALAR_TYPERS) do set.long, set.float = set.integer, set.double end

local function build_typer(m, sh, strict)
  local t = sh.type
  if t == "structure" then
    if sh.document then return true end
    return struct_typer(m, sh, strict)
  elseif t == "list" then return list_typer(m, sh, strict)
  elseif t == "map" then return map_typer(m, sh, strict)
  end
  local d = SCALAR_TYPERS[strict][t]
  if d == nil then return true end
  return d
end

function typer_of(m, sh, strict)
  local cache = typers[strict]
  local d = cache[sh]
  if d ~= nil then return d end
  local built
  cache[sh] = function(v) return apply(built, v) end -- stand-in while a recursive shape builds
  built = build_typer(m, sh, strict)
  cache[sh] = built
  return built
end

-- Type a decoded value (this module's own, changed in place) by shape. → value or nil
local function type_in_place(m, sh, v, strict)
  if v == nil or v == NULL or v == cnull then return nil end
  return apply(typer_of(m, sh, strict), v)
end
M.type_in_place = type_in_place -- for the tests, which hold it to M.typed

return M
