-- The AWS JSON protocols (awsJson1_0, awsJson1_1): ECS, CodeDeploy, CloudWatch (1.0).
-- Requests: POST / with X-Amz-Target: <targetPrefix>.<Operation> and a JSON body.
-- Encoding is shape-directed (lists stay arrays when empty, timestamps are epoch seconds,
-- blobs base64), so it does not depend on how a JSON library guesses at Lua tables.
local cjson = require "cjson"
local errors = require "ecsplay.errors"
local proto = require "ecsplay.aws.protocol"
local model_lib = require "ecsplay.aws.model"
local timestamp = require "ecsplay.util.timestamp"
local reference = require "ecsplay.aws.protocol.json_reference"
local typing = require "ecsplay.aws.protocol.json_typing"

local M = {}

---------------------------------------------------------------------------------------
-- Decoding: lua-cjson (json_reference.lua is the strict decoder the tests hold it to).
local NULL = reference.null
local function is_null(v)
  return v == nil or v == NULL or v == cjson.null
end

-- → value or nil, message
function M.decode(s)
  local ok, v = pcall(cjson.decode, s)
  if ok then return v end
  return nil, tostring(v)
end

---------------------------------------------------------------------------------------
-- Encoding.
local ESC = { ['"'] = '\\"', ["\\"] = "\\\\", ["\b"] = "\\b", ["\f"] = "\\f", ["\n"] = "\\n",
  ["\r"] = "\\r", ["\t"] = "\\t" }
local function escape_char(c)
  return ESC[c] or string.format("\\u%04x", c:byte())
end
local escapes = proto.string_memo(proto.CONTROL_BYTES .. '"\\')
local needs_escape = escapes.has
local function quote(s)
  -- most strings (names, ARNs, ids) need no escape: skip gsub's copy for them
  if not needs_escape(s) then return '"' .. s .. '"' end
  return '"' .. s:gsub('[%c"\\]', escape_char) .. '"'
end
M.quote = quote

--[[ Encoding walks without paths first (path = false: no string built per member or
     item); the first problem raises NEEDS_PATH and build_request walks again with
     paths, to raise the message naming where. ]]
local NEEDS_PATH = setmetatable({}, { __tostring = function() return "json: needs a path" end })
local function fail_at(path, fmt, ...)
  if not path then error(NEEDS_PATH, 0) end
  error(string.format(fmt, path, ...), 0)
end

local function number(v, path)
  local s, err = proto.format_number(v)
  if not s then fail_at(path, "cannot encode `%s`: %s", err) end
  return s
end

local function sorted_keys(t)
  local keys = {}
  for k in pairs(t) do keys[#keys + 1] = k end
  table.sort(keys, function(a, b) return tostring(a) < tostring(b) end)
  return keys
end

-- Untyped values (document shapes): arrays when t[1] is set, objects otherwise.
local function encode_any(v, out, path)
  local t = type(v)
  if is_null(v) then out[#out + 1] = "null"
  elseif t == "string" then out[#out + 1] = quote(v)
  elseif t == "number" then out[#out + 1] = number(v, path)
  elseif t == "boolean" then out[#out + 1] = tostring(v)
  elseif t == "table" then
    if v[1] ~= nil then
      out[#out + 1] = "["
      for i = 1, #v do
        if i > 1 then out[#out + 1] = "," end
        encode_any(v[i], out, path)
      end
      out[#out + 1] = "]"
    else
      out[#out + 1] = "{"
      for i, k in ipairs(sorted_keys(v)) do
        if i > 1 then out[#out + 1] = "," end
        out[#out + 1] = quote(tostring(k)) .. ":"
        encode_any(v[k], out, path)
      end
      out[#out + 1] = "}"
    end
  else
    error(path and string.format("cannot encode a %s at `%s` as JSON", t, path) or NEEDS_PATH, 0)
  end
end

-- Per structure shape, its members' `"wireName":` prefixes, quoted once (weak: dropped
-- with their model).
local member_keys = setmetatable({}, { __mode = "k" })
local function keys_of(sh)
  local keys = member_keys[sh]
  if not keys then
    keys = {}
    for name, mem in pairs(sh.members or {}) do keys[name] = quote(mem.locationName or name) .. ":" end
    member_keys[sh] = keys
  end
  return keys
end

local NO_ORDER = {}

local function encode(m, sh, v, out, path)
  local t = sh.type
  if t == "structure" then
    if sh.document then return encode_any(v, out, path) end
    out[#out + 1] = "{"
    local first = true
    local order = sh.order or NO_ORDER
    if #order > 0 and next(v) ~= nil then
      local keys = keys_of(sh)
      for i = 1, #order do
        local name = order[i]
        local fv = v[name]
        if not is_null(fv) then
          if not first then out[#out + 1] = "," end
          first = false
          out[#out + 1] = keys[name]
          encode(m, m.shapes[sh.members[name].shape], fv, out,
            path and (path == "" and name or path .. "." .. name))
        end
      end
    end
    out[#out + 1] = "}"
  elseif t == "list" then
    out[#out + 1] = "["
    local msh = m.shapes[sh.member.shape]
    for i = 1, #v do
      if i > 1 then out[#out + 1] = "," end
      encode(m, msh, v[i], out, path and path .. "[" .. i .. "]")
    end
    out[#out + 1] = "]"
  elseif t == "map" then
    out[#out + 1] = "{"
    local vsh = m.shapes[sh.value.shape]
    for i, k in ipairs(sorted_keys(v)) do
      if i > 1 then out[#out + 1] = "," end
      out[#out + 1] = quote(tostring(k)) .. ":"
      encode(m, vsh, v[k], out, path and path .. "." .. tostring(k))
    end
    out[#out + 1] = "}"
  elseif t == "timestamp" then
    local e, err = timestamp.to_epoch(v)
    if not e then fail_at(path, "cannot encode `%s`: %s", err) end
    out[#out + 1] = number(e, path)
  elseif t == "blob" then
    out[#out + 1] = quote(proto.base64(v))
  elseif t == "integer" or t == "long" then
    out[#out + 1] = number(math.tointeger(v) or v, path)
  elseif t == "document" then
    encode_any(v, out, path)
  else
    encode_any(v, out, path)
  end
end

--[[ Compiled encoders: per shape (weak: dropped with its model), a closure
     fn(v, out, n) → n that appends v's JSON to out[n + 1 ...] by the same rules as encode
     above, with each member's key, shape and encoder looked up once instead of per value.
     It raises on anything unusual (a bad number, a wrong type); encode_shape then walks
     generically (encode above), which gives the same answer or the message with its path. ]]
local cnull = cjson.null
local concat = table.concat
local encoders = setmetatable({}, { __mode = "k" })
local encoder_of

-- Untyped values and the scalar types whose encoding is encode_any's.
local function put_any(v, out, n)
  local t = type(v)
  if t == "string" then
    local e = escapes.known[v]
    if e == nil then e = escapes.learn(v) end
    if e then n = n + 1 out[n] = quote(v) return n end
    out[n + 1] = '"' out[n + 2] = v out[n + 3] = '"'
    return n + 3
  elseif t == "number" then
    n = n + 1 out[n] = number(v, false) return n
  elseif t == "boolean" then
    n = n + 1 out[n] = v and "true" or "false" return n
  elseif v == nil or v == NULL or v == cnull then
    n = n + 1 out[n] = "null" return n
  elseif t == "table" then
    local sub = {}
    encode_any(v, sub, false)
    n = n + 1 out[n] = concat(sub)
    return n
  end
  error(NEEDS_PATH, 0)
end

--[[ A string member that needs no escape (most are) is written as two pieces, its key with
     the opening quote and the string; its closing quote starts the next piece ("pending"):
     table.concat's cost is per piece. Pieces per member i:
       keys[i] / quoted_keys[i]: `{"name":` or `,"name":` (`"` first when a quote is
       pending), [1] after "{", [2] after a member, [3] after a member whose quote is
       pending; quoted_keys also end with the value's opening quote. ]]
local CLOSE = { "}", '"}' }

local function struct_encoder(m, sh)
  local order = sh.order or NO_ORDER
  local count = #order
  if count == 0 then return function(_, out, n) n = n + 1 out[n] = "{}" return n end end
  local names, keys, quoted_keys, encs = {}, { {}, {}, {} }, { {}, {}, {} }, {}
  for i = 1, count do
    local name = order[i]
    local mem = sh.members[name]
    local key = quote(mem.locationName or name) .. ":"
    names[i] = name
    keys[1][i], keys[2][i], keys[3][i] = "{" .. key, "," .. key, '","' .. key:sub(2)
    encs[i] = encoder_of(m, m.shapes[mem.shape])
    if encs[i] == put_any then
      quoted_keys[1][i], quoted_keys[2][i], quoted_keys[3][i] = keys[1][i] .. '"', keys[2][i] .. '"',
        keys[3][i] .. '"'
    end
  end
  local quoted_first = quoted_keys[1]
  return function(v, out, n)
    if next(v) == nil then n = n + 1 out[n] = "{}" return n end
    local state = 1 -- 1: nothing written yet, 2: after a member, 3: after one with its quote pending
    local known = escapes.known -- false: a string that needs no escape
    for i = 1, count do
      local fv = v[names[i]]
      if fv ~= nil then
        local escaped = quoted_first[i] and known[fv]
        if escaped == nil and quoted_first[i] and type(fv) == "string" then escaped = escapes.learn(fv) end
        if escaped == false then
          out[n + 1] = quoted_keys[state][i] out[n + 2] = fv
          n = n + 2
          state = 3
        elseif fv ~= NULL and fv ~= cnull then
          n = n + 1
          out[n] = keys[state][i]
          n = encs[i](fv, out, n)
          state = 2
        end
      end
    end
    n = n + 1
    if state == 1 then out[n] = "{}" else out[n] = CLOSE[state - 1] end
    return n
  end
end

-- A list of strings that need no escape: `["a` then `","b` ..., then `"]`.
local function plain_strings(v, count)
  local known = escapes.known
  for i = 1, count do
    local x = v[i]
    local escaped = known[x]
    if escaped == nil then
      if type(x) ~= "string" then return false end
      escaped = escapes.learn(x)
    end
    if escaped then return false end
  end
  return true
end

local function list_encoder(m, sh)
  local enc = encoder_of(m, m.shapes[sh.member.shape])
  return function(v, out, n)
    local count = #v
    if enc == put_any and count > 0 and plain_strings(v, count) then
      out[n + 1] = '["' out[n + 2] = v[1]
      n = n + 2
      for i = 2, count do
        out[n + 1] = '","' out[n + 2] = v[i]
        n = n + 2
      end
      n = n + 1 out[n] = '"]'
      return n
    end
    n = n + 1 out[n] = "["
    for i = 1, count do
      if i > 1 then n = n + 1 out[n] = "," end
      n = enc(v[i], out, n)
    end
    n = n + 1 out[n] = "]"
    return n
  end
end

local function map_encoder(m, sh)
  local enc = encoder_of(m, m.shapes[sh.value.shape])
  return function(v, out, n)
    n = n + 1 out[n] = "{"
    for i, k in ipairs(sorted_keys(v)) do
      if i > 1 then n = n + 1 out[n] = "," end
      n = n + 1 out[n] = quote(tostring(k)) .. ":"
      n = enc(v[k], out, n)
    end
    n = n + 1 out[n] = "}"
    return n
  end
end

local function put_timestamp(v, out, n)
  local e = timestamp.to_epoch(v)
  if not e then error(NEEDS_PATH, 0) end
  n = n + 1 out[n] = number(e, false)
  return n
end

local function put_blob(v, out, n)
  n = n + 1 out[n] = quote(proto.base64(v))
  return n
end

local function put_integer(v, out, n)
  n = n + 1 out[n] = number(math.tointeger(v) or v, false)
  return n
end

local function build_encoder(m, sh)
  local t = sh.type
  if t == "structure" then
    if sh.document then return put_any end
    return struct_encoder(m, sh)
  elseif t == "list" then return list_encoder(m, sh)
  elseif t == "map" then return map_encoder(m, sh)
  elseif t == "timestamp" then return put_timestamp
  elseif t == "blob" then return put_blob
  elseif t == "integer" or t == "long" then return put_integer
  end
  return put_any
end

function encoder_of(m, sh)
  local e = encoders[sh]
  if e then return e end
  -- a recursive shape reaches itself while being built: it calls through this stand-in
  local built
  encoders[sh] = function(v, out, n) return built(v, out, n) end
  built = build_encoder(m, sh)
  encoders[sh] = built
  return built
end

-- Encode a Lua value as JSON by shape (shape name or shape table).
--[[ One buffer for every encoding (it does not yield, so no two run at once): its slots
     are overwritten, not grown again per response; a buffer grown past BUFFER_KEPT slots
     is let go, so one huge answer does not stay in memory. ]]
local BUFFER_KEPT = 65536
local buffer

function M.encode_shape(m, shape, v)
  local sh = type(shape) == "string" and m.shapes[shape] or shape
  local out = buffer or {}
  buffer = nil -- taken: an encoder that errors midway leaves it to the collector
  local ok, n = pcall(encoder_of(m, sh), v, out, 0)
  if ok then
    local s = concat(out, "", 1, n)
    if n <= BUFFER_KEPT then buffer = out end
    return s
  end
  return M.encode_walk(m, sh, v)
end

-- The generic walk encode_shape falls back to: the same bytes, or the error with its path
-- (the reference the tests hold the compiled encoders to).
function M.encode_walk(m, shape, v)
  local sh = type(shape) == "string" and m.shapes[shape] or shape
  local out = {}
  local ok2, err = pcall(encode, m, sh, v, out, false)
  if not ok2 then
    if err ~= NEEDS_PATH then error(err, 0) end
    encode(m, sh, v, {}, "") -- raises the message with its path
  end
  return concat(out)
end


local typed, type_in_place = typing.typed, typing.type_in_place
M.typed, M.type_in_place = typed, type_in_place -- as before the split (the tests hold the two together)

---------------------------------------------------------------------------------------
-- Client half.
local function content_type(m)
  return "application/x-amz-json-" .. (m.metadata.jsonVersion or "1.0")
end

local function op_of(m, opname)
  local op = m.operations[opname] or (m.by_snake and m.operations[m.by_snake[opname] or ""])
  if not op then error(string.format("%s: unknown operation %q", m.service or "aws", tostring(opname)), 3) end
  return op
end

-- Per operation, what every request of it shares (weak: dropped with the model).
local request_heads = setmetatable({}, { __mode = "k" })
local function head_of(m, op)
  local h = request_heads[op]
  if not h then
    h = { content_type = content_type(m), target = m.metadata.targetPrefix .. "." .. op.name,
      query_mode = m.metadata.awsQueryCompatible and true or false,
      method = op.http and op.http.method or "POST", path = op.http and op.http.requestUri or "/",
      input = op.input and m.shapes[op.input] }
    request_heads[op] = h
  end
  return h
end

-- user_agent: the User-Agent header's value, if any (in the table as it is made: no rehash)
function M.build_request(m, opname, params, user_agent)
  local h = head_of(m, op_of(m, opname))
  local body = "{}" -- also what the encoder makes of no parameters (a List* call's {})
  if h.input and params ~= nil and not (type(params) == "table" and next(params) == nil) then
    body = M.encode_shape(m, h.input, params)
  end
  local headers = { ["Content-Type"] = h.content_type, ["X-Amz-Target"] = h.target,
    ["User-Agent"] = user_agent }
  if h.query_mode then headers["x-amzn-query-mode"] = "true" end
  return { method = h.method, path = h.path, headers = headers, body = body }
end

-- "aws.protocoltests#FooError:http://internal" → "FooError"
local function clean_code(c)
  if type(c) ~= "string" then return nil end
  c = c:gsub(":.*$", "")
  c = c:gsub("^.*#", "")
  if c == "" then return nil end
  return c
end

function M.parse_error(m, status, headers, body)
  local decoded = body and body ~= "" and M.decode(body) or nil
  if type(decoded) ~= "table" then decoded = {} end
  local code = clean_code(proto.header(headers, "x-amzn-errortype"))
    or clean_code(decoded.__type) or clean_code(decoded.code)
  local fault
  local qe = m.metadata.awsQueryCompatible and proto.header(headers, "x-amzn-query-error")
  if qe then
    local qcode, qfault = qe:match("^([^;]+);?(.*)$")
    if qcode then code, fault = qcode, qfault ~= "" and qfault or nil end
  end
  local msg = decoded.message or decoded.Message or decoded.errorMessage
  if is_null(msg) then msg = nil end
  if not code then
    code = tostring(status)
    if not msg and body and body ~= "" and not body:find("^%s*{") then msg = body:sub(1, 200) end
  end
  return {
    code = code, message = msg or "", status = status, type = fault,
    request_id = proto.header(headers, "x-amzn-requestid"),
  }
end

-- → true, output  |  false, err{code, message, status, request_id}
function M.parse_response(m, opname, status, headers, body)
  local op = op_of(m, opname)
  if status < 200 or status >= 300 then
    return false, M.parse_error(m, status, headers, body)
  end
  if not op.output then return true, {} end
  -- a body that opens an object is not blank: the pattern only for anything else
  if body == nil or body:byte(1) ~= 123 and body:match("^%s*$") then return true, {} end
  local v, err = M.decode(body)
  if type(v) ~= "table" or v[1] ~= nil then -- a result is always a JSON object
    return false, { code = "InvalidResponse", status = status,
      request_id = proto.header(headers, "x-amzn-requestid"),
      message = string.format("could not parse the %s %s response as JSON: %s", m.service or "",
        op.name, err or "not an object") }
  end
  return true, type_in_place(m, m.shapes[op.output], v, false) or {}
end

---------------------------------------------------------------------------------------
-- Server half (the simulator).
local function serr(code, message, status)
  return nil, { code = code, message = message, status = status or 400 }
end

-- → opname, params  |  nil, err{code, message, status}
function M.decode_request(m, body, headers)
  local target = proto.header(headers, "x-amz-target")
  if not target then return serr("UnknownOperationException", "missing X-Amz-Target header") end
  local prefix, opname = target:match("^(.-)%.([^.]+)$")
  local op = opname and m.operations[opname]
  if not op or prefix ~= m.metadata.targetPrefix then
    return serr("UnknownOperationException", "unknown operation " .. target)
  end
  local params = {}
  if body and not body:match("^%s*$") then
    local v, err = M.decode(body)
    if v == nil or type(v) ~= "table" or (v[1] ~= nil) then
      return serr("SerializationException", "the request body is not a JSON object: " .. (err or "wrong type"))
    end
    if op.input then
      local input = m.shapes[op.input]
      local ok, r = pcall(type_in_place, m, input, v, true)
      if not ok then
        -- the copying walk over a fresh decode (the failed pass changed v) names the problem
        ok, r = pcall(typed, m, input, M.decode(body), "", true)
        if not ok then
          if errors.is(r, "validation") then return serr(r.code, r.message) end
          error(r, 0)
        end
      end
      params = r or {}
    end
  end
  return op.name, params
end

function M.encode_response(m, opname, output, request_id)
  local op = op_of(m, opname)
  local body = "{}"
  if op.output then body = M.encode_shape(m, op.output, output or {}) end
  return 200, {
    ["Content-Type"] = content_type(m),
    ["x-amzn-RequestId"] = request_id or proto.request_id(),
  }, body
end

-- code: an error shape name ("ClusterNotFoundException"), a query code ("ResourceNotFound",
-- CloudWatch) or any common code ("ThrottlingException"). status defaults from the model.
function M.encode_error(m, code, message, status, request_id)
  local name, sh = model_lib.error_shape(m, code)
  local e = sh and sh.error or {}
  status = status or e.httpStatusCode or (sh and sh.fault and 500) or 400
  local headers = {
    ["Content-Type"] = content_type(m),
    ["x-amzn-RequestId"] = request_id or proto.request_id(),
  }
  if m.metadata.awsQueryCompatible then
    local fault = (e.senderFault or (not sh and status < 500)) and "Sender" or "Receiver"
    headers["x-amzn-query-error"] = (e.code or code) .. ";" .. fault
  end
  local body = '{"__type":' .. quote(name or code) .. ',"message":' .. quote(message or "") .. "}"
  return status, headers, body
end

M.null = NULL
M.lua_decode = function(s)
  local ok, v = pcall(reference.decode, s)
  if ok then return v end
  if errors.is(v, "response") then return nil, v.message end
  error(v, 0)
end
return M
