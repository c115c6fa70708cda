-- Protocol selection and the helpers both codecs share.
-- Codecs (ecsplay.protocol.json, ecsplay.protocol.query) each export:
--   client: build_request(model, op, params [, user_agent]) → {method, path, headers, body}
--           parse_response(model, op, status, headers, body) → true, output | false, err
--   server: decode_request(model, body, headers) → op, params | nil, err{code,message,status}
--           encode_response(model, op, output, request_id) → status, headers, body
--           encode_error(model, code, message, status, request_id) → status, headers, body
local core = require "ecsplay.core"
local crypto = require "ecsplay.core.crypto"

local M = {}

local codecs = {}
local function codec(name)
  local c = codecs[name]
  if not c then
    -- lazy: each codec requires this module for the shared helpers (a cycle if loaded here)
    c = require("ecsplay.aws.protocol." .. name)
    codecs[name] = c
  end
  return c
end

local function speaks(model, name)
  for _, p in ipairs(model.metadata.protocols or { model.metadata.protocol }) do
    if p == name then return true end
  end
  return false
end
M.speaks = speaks

-- The client protocols ecsplay has a codec for.
M.SPOKEN = { json = true, query = true }

--[[ The client protocols to try for a model, best first: its `metadata.protocols` in the
     model's order (else its one `protocol`), keeping those ecsplay speaks (CloudWatch:
     smithy-rpc-v2-cbor, json, query → json, query). `only` (a configured override) narrows
     the list to that one protocol. Raises a message for an override that cannot be. ]]
function M.candidates(model, only)
  local name = model.service or "service"
  if only ~= nil then
    if not M.SPOKEN[only] then
      error(string.format("expected \"json\" or \"query\", got %s",
        type(only) == "string" and string.format("%q", only) or type(only)), 0)
    end
    if not speaks(model, only) then
      error(string.format("%s does not speak the %s protocol (it speaks %s)", name, only,
        table.concat(model.metadata.protocols or { model.metadata.protocol }, ", ")), 0)
    end
    return { only }
  end
  local list = {}
  for _, p in ipairs(model.metadata.protocols or { model.metadata.protocol }) do
    if M.SPOKEN[p] then list[#list + 1] = p end
  end
  if #list == 0 then
    error(string.format("%s: no supported protocol in %s", name,
      table.concat(model.metadata.protocols or { model.metadata.protocol }, ", ")), 0)
  end
  return list
end

-- The codec for a protocol name ("json" or "query").
M.codec = codec

-- The client codec for a model: `preferred` when the service speaks it, else the first of
-- M.candidates (CloudWatch: json 1.0).
function M.for_model(model, preferred)
  local ok, list = pcall(M.candidates, model, preferred)
  if not ok then error(list, 2) end
  return codec(list[1]), list[1]
end

-- Case-insensitive header lookup (clients and servers disagree on case).
function M.header(headers, name)
  if not headers then return nil end
  local v = headers[name]
  if v ~= nil then return v end
  local lname = name:lower()
  for k, val in pairs(headers) do
    if k:lower() == lname then return val end
  end
  return nil
end

-- The server codec for an incoming request: X-Amz-Target or a JSON content type → json;
-- a form body → query. → codec, name  or  nil, message.
function M.for_request(model, headers)
  local ct = (M.header(headers, "content-type") or ""):lower()
  local name
  if M.header(headers, "x-amz-target") or ct:find("json", 1, true) then
    name = "json"
  elseif ct == "" or ct:find("x-www-form-urlencoded", 1, true) then
    name = "query"
  else
    return nil, "unsupported content type " .. ct
  end
  if not speaks(model, name) then
    return nil, string.format("%s does not accept the %s protocol", model.service or "service", name)
  end
  return codec(name), name
end

-- Numbers as Python's repr/str would write them (what botocore sends): integers plain,
-- floats with the shortest round-tripping digits and a ".0" when integral.
-- The text of each number written, remembered (at most NUMBERS_KEPT of each kind, then all
-- forgotten at once): the same counts, ports and timestamps are written over and over (a
-- service's createdAt in every DescribeServices answer), and formatting one is a
-- snprintf. Integers and floats apart: 2 and 2.0 are one table key, "2" and "2.0" two texts
-- (and 0.0 and -0.0 not kept at all).
local format, math_type, floor, huge = string.format, math.type, math.floor, math.huge
local SHORTEST = { "%.15g", "%.16g", "%.17g" }
local NUMBERS_KEPT = 4096
local int_text, int_count, float_text, float_count = {}, 0, {}, 0

local function float_to_text(v)
  if v == floor(v) and (v < 1e16 and v > -1e16) then return format("%.1f", v) end
  for i = 1, 3 do
    local s = format(SHORTEST[i], v)
    if tonumber(s) == v then return s end
  end
  return format("%.17g", v)
end

function M.format_number(v)
  if math_type(v) == "integer" then
    local s = int_text[v]
    if s then return s end
    s = format("%d", v)
    if int_count >= NUMBERS_KEPT then int_text, int_count = {}, 0 end
    int_text[v], int_count = s, int_count + 1
    return s
  end
  if v ~= v or v == huge or v == -huge then
    return nil, "cannot send a non-finite number"
  end
  if v == 0 then return float_to_text(v) end -- 0.0 and -0.0: one key, two texts
  local s = float_text[v]
  if s then return s end
  s = float_to_text(v)
  if float_count >= NUMBERS_KEPT then float_text, float_count = {}, 0 end
  float_text[v], float_count = s, float_count + 1
  return s
end

--[[ Which strings hold any byte of `chars` (what needs escaping), remembered per string:
     memo.known[s] is true (one does), false (none) or nil (not seen: memo.learn(s) finds
     out and remembers). At most `kept` strings are remembered, then all are forgotten at
     once (a table read before then still answers right). The same names, ARNs and states
     are written over and over: a table lookup per string is cheaper than a call, and the
     scan of a new one is C's (core.byte_set), a few instructions a byte. ]]
function M.string_memo(chars, kept)
  kept = kept or 4096
  local has_byte = core.byte_set(chars)
  local memo, count = { known = {} }, 0
  function memo.learn(s)
    local r = has_byte(s)
    if count >= kept then memo.known, count = {}, 0 end
    memo.known[s] = r
    count = count + 1
    return r
  end
  function memo.has(s)
    local r = memo.known[s]
    if r == nil then r = memo.learn(s) end
    return r
  end
  return memo
end

-- Byte sets for string_memo: the C0 controls and DEL (Lua's %c), and the bytes that are
-- not RFC 3986's unreserved ones (A-Z a-z 0-9 - _ . ~).
local function bytes_where(keep)
  local out = {}
  for b = 0, 255 do
    if keep(b) then out[#out + 1] = string.char(b) end
  end
  return table.concat(out)
end
M.CONTROL_BYTES = bytes_where(function(b) return b < 32 or b == 127 end)
M.UNRESERVED_CLASS = "A-Za-z0-9%-_%.~" -- as a Lua pattern's set (query.lua's gsub uses it too)
M.NOT_UNRESERVED_BYTES = bytes_where(function(b)
  return not string.char(b):match("^[" .. M.UNRESERVED_CLASS .. "]$")
end)

-- base64 (C: ecsplay.core.crypto). unbase64 → decoded string, or nil and a message.
M.base64 = crypto.base64
M.unbase64 = crypto.unbase64

-- A request id for server responses when the caller gives none.
M.request_id = crypto.uuid4

return M
