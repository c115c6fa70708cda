-- The AWS JSON protocols (awsJson1_0, awsJson1_1): ECS, CodeDeploy, CloudWatch (1.0).
-- Requests: POST / with X-Amz-Target: <targetPrefix>.<Operation> and a JSON body.
-- Encoding is shape-directed (lists stay arrays when empty, timestamps are epoch seconds,
-- blobs base64), so it does not depend on how a JSON library guesses at Lua tables.
local cjson = require "cjson"
local errors = require "ecsplay.errors"
local proto = require "ecsplay.aws.protocol"
local model_lib = require "ecsplay.aws.model"
local timestamp = require "ecsplay.util.timestamp"

local M = {}

---------------------------------------------------------------------------------------
-- Decoding: lua-cjson. lua_decode below is a small strict decoder kept as the
-- reference the protocol tests hold cjson to (M.lua_decode); nothing else uses it.
local NULL = setmetatable({}, { __tostring = function() return "null" end })
local function is_null(v)
  return v == nil or v == NULL or v == cjson.null
end

local function lua_decode(s)
  local pos = 1
  local function fail(what)
    error(errors.response { code = "InvalidJSON", message = string.format("%s at character %d", what, pos) }, 0)
  end
  local function ws() pos = s:find("[^ \t\r\n]", pos) or #s + 1 end
  local value
  local escapes = { b = "\b", f = "\f", n = "\n", r = "\r", t = "\t", ['"'] = '"', ["\\"] = "\\", ["/"] = "/" }
  local function str()
    local out, i = {}, pos + 1
    while true do
      local j = s:find('["\\]', i)
      if not j then fail("unterminated string") end
      out[#out + 1] = s:sub(i, j - 1)
      if s:byte(j) == 34 then pos = j + 1 return table.concat(out) end
      local e = s:sub(j + 1, j + 1)
      if e == "u" then
        local hex = s:match("^%x%x%x%x", j + 2)
        if not hex then pos = j fail("bad \\u escape") end
        local cp = tonumber(hex, 16)
        local nexti = j + 6
        if cp >= 0xD800 and cp <= 0xDBFF then
          local lo = s:match("^\\u(%x%x%x%x)", nexti)
          if lo then
            cp = 0x10000 + ((cp - 0xD800) << 10) + (tonumber(lo, 16) - 0xDC00)
            nexti = nexti + 6
          end
        end
        out[#out + 1] = utf8.char(cp)
        i = nexti
      elseif escapes[e] then
        out[#out + 1] = escapes[e]
        i = j + 2
      else
        pos = j fail("bad escape")
      end
    end
  end
  function value()
    ws()
    local c = s:sub(pos, pos)
    if c == "{" then
      local t = {}
      pos = pos + 1 ws()
      if s:sub(pos, pos) == "}" then pos = pos + 1 return t end
      while true do
        ws()
        if s:sub(pos, pos) ~= '"' then fail("expected a string key") end
        local k = str()
        ws()
        if s:sub(pos, pos) ~= ":" then fail("expected ':'") end
        pos = pos + 1
        t[k] = value()
        ws()
        local d = s:sub(pos, pos)
        pos = pos + 1
        if d == "}" then return t end
        if d ~= "," then pos = pos - 1 fail("expected ',' or '}'") end
      end
    elseif c == "[" then
      local t, n = {}, 0
      pos = pos + 1 ws()
      if s:sub(pos, pos) == "]" then pos = pos + 1 return t end
      while true do
        n = n + 1
        t[n] = value()
        ws()
        local d = s:sub(pos, pos)
        pos = pos + 1
        if d == "]" then return t end
        if d ~= "," then pos = pos - 1 fail("expected ',' or ']'") end
      end
    elseif c == '"' then
      return str()
    elseif s:find("^true", pos) then pos = pos + 4 return true
    elseif s:find("^false", pos) then pos = pos + 5 return false
    elseif s:find("^null", pos) then pos = pos + 4 return NULL
    else
      local num = s:match("^-?%d+%.?%d*[eE]?[+-]?%d*", pos)
      local n = num and tonumber(num)
      if not n then fail("unexpected " .. (c == "" and "end of input" or string.format("%q", c))) end
      pos = pos + #num
      return n
    end
  end
  local v = value()
  ws()
  if pos <= #s then fail("trailing characters") end
  return v
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
local function quote(s)
  -- most strings (names, ARNs, ids) need no escape: skip gsub's copy for them
  if not s:find('[%c"\\]') then return '"' .. s .. '"' end
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

-- Encode a Lua value as JSON by shape (shape name or shape table).
function M.encode_shape(m, shape, v)
  local sh = type(shape) == "string" and m.shapes[shape] or shape
  local out = {}
  local ok, err = pcall(encode, m, sh, v, out, false)
  if not ok then
    if err ~= NEEDS_PATH then error(err, 0) end
    encode(m, sh, v, {}, "") -- raises the message with its path
  end
  return table.concat(out)
end

---------------------------------------------------------------------------------------
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

function M.build_request(m, opname, params)
  local h = head_of(m, op_of(m, opname))
  local body = "{}"
  if h.input then body = M.encode_shape(m, h.input, params or {}) end
  local headers = { ["Content-Type"] = h.content_type, ["X-Amz-Target"] = h.target }
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
  if body == nil or body == "" or body:match("^%s*$") then return true, {} end
  local v, err = M.decode(body)
  if type(v) ~= "table" or v[1] ~= nil then -- a result is always a JSON object
    return false, { code = "InvalidResponse", status = status,
      request_id = proto.header(headers, "x-amzn-requestid"),
      message = string.format("could not parse the %s %s response as JSON: %s", m.service or "",
        op.name, err or "not an object") }
  end
  return true, lenient(m, m.shapes[op.output], v) or {}
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
      local ok, r = pcall(typed, m, m.shapes[op.input], v, "", true)
      if not ok then
        if errors.is(r, "validation") then return serr(r.code, r.message) end
        error(r, 0)
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
  local ok, v = pcall(lua_decode, s)
  if ok then return v end
  if errors.is(v, "response") then return nil, v.message end
  error(v, 0)
end
return M
