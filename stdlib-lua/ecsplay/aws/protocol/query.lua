-- The AWS query protocol: ELBv2, STS, and CloudWatch as Debian's boto3/awscli speak it.
-- Requests are form-encoded (Action=Op&Version=...&Names.member.1=...), responses XML:
--   <OpResponse xmlns=NS><OpResult>...</OpResult><ResponseMetadata>..</ResponseMetadata></OpResponse>
-- Serialization follows botocore's QuerySerializer and its XML parser, shape by shape.
local core_xml = require "ecsplay.core.xml"
local errors = require "ecsplay.errors"
local proto = require "ecsplay.aws.protocol"
local model_lib = require "ecsplay.aws.model"
local timestamp = require "ecsplay.util.timestamp"
local xmlwrite = require "ecsplay.aws.protocol.xmlwrite"

local M = {}

local function op_of(m, opname)
  local op = m.operations[opname] or (m.by_snake and m.operations[m.by_snake[opname] or ""])
  if not op then error(string.format("%s: unknown operation %q", m.service or "aws", tostring(opname)), 3) end
  return op
end

---------------------------------------------------------------------------------------
-- Form encoding.
local UNRESERVED_NOT = "[^" .. proto.UNRESERVED_CLASS .. "]"
local function pct_char(c) return string.format("%%%02X", c:byte()) end
local needs_pct = proto.string_memo(proto.NOT_UNRESERVED_BYTES).has
local function pct(s)
  if not needs_pct(s) then return s end -- names, ids, numbers: no copy
  return (s:gsub(UNRESERVED_NOT, pct_char))
end
M.percent_encode = pct

local find = string.find
local function unpct(s)
  if not find(s, "%", 1, true) and not find(s, "+", 1, true) then return s end -- most are plain
  s = s:gsub("%+", " ")
  return (s:gsub("%%(%x%x)", function(h) return string.char(tonumber(h, 16)) end))
end

-- Parse an x-www-form-urlencoded body → { key = value } (the last value wins).
function M.parse_form(body)
  local form = {}
  for pair in (body or ""):gmatch("[^&]+") do
    local k, v = pair:match("^([^=]*)=(.*)$")
    if not k then k, v = pair, "" end
    form[unpct(k)] = unpct(v)
  end
  return form
end

local function scalar_text(sh, v, path)
  local t = sh.type
  if t == "boolean" then return v and "true" or "false" end
  if t == "timestamp" then
    local e, err = timestamp.to_epoch(v)
    if not e then error(string.format("cannot encode `%s`: %s", path, err), 0) end
    return timestamp.iso8601_compact(e)
  end
  if t == "blob" then return proto.base64(v) end
  if type(v) == "number" then
    if t == "integer" or t == "long" then v = math.tointeger(v) or v end
    local s, err = proto.format_number(v)
    if not s then error(string.format("cannot encode `%s`: %s", path, err), 0) end
    return s
  end
  return tostring(v)
end

local serialize

local function last_replaced(prefix, name)
  local head = prefix:match("^(.*)%.[^.]*$")
  return head and (head .. "." .. name) or name
end

function serialize(m, sh, v, prefix, out)
  local t = sh.type
  if t == "structure" then
    for _, name in ipairs(sh.order or {}) do
      local fv = v[name]
      if fv ~= nil then
        local mem = sh.members[name]
        local key = mem.locationName or name
        if prefix ~= "" then key = prefix .. "." .. key end
        local msh = m.shapes[mem.shape]
        if msh.type == "list" and mem.flattened then
          msh = setmetatable({ flattened = true }, { __index = msh })
        end
        serialize(m, msh, fv, key, out)
      end
    end
  elseif t == "list" then
    if #v == 0 then
      out[#out + 1] = { prefix, "" }
      return
    end
    local list_prefix
    if sh.flattened then
      list_prefix = sh.member.locationName and last_replaced(prefix, sh.member.locationName) or prefix
    else
      list_prefix = prefix .. "." .. (sh.member.locationName or "member")
    end
    local msh = m.shapes[sh.member.shape]
    for i = 1, #v do serialize(m, msh, v[i], list_prefix .. "." .. i, out) end
  elseif t == "map" then
    local full = sh.flattened and prefix or prefix .. ".entry"
    local kname, vname = sh.key.locationName or "key", sh.value.locationName or "value"
    local keys = {}
    for k in pairs(v) do keys[#keys + 1] = k end
    table.sort(keys)
    local vsh = m.shapes[sh.value.shape]
    for i, k in ipairs(keys) do
      out[#out + 1] = { full .. "." .. i .. "." .. kname, k }
      serialize(m, vsh, v[k], full .. "." .. i .. "." .. vname, out)
    end
  else
    out[#out + 1] = { prefix, scalar_text(sh, v, prefix) }
  end
end

-- The flattened form pairs for an input: { {key, value}, ... } in model order.
function M.serialize(m, shape, params)
  local out = {}
  local sh = type(shape) == "string" and m.shapes[shape] or shape
  serialize(m, sh, params or {}, "", out)
  return out
end

---------------------------------------------------------------------------------------
-- Client half.
-- user_agent: the User-Agent header's value, if any
function M.build_request(m, opname, params, user_agent)
  local op = op_of(m, opname)
  local parts = { "Action=" .. pct(op.name), "Version=" .. pct(m.metadata.apiVersion) }
  if op.input then
    for _, kv in ipairs(M.serialize(m, op.input, params)) do
      parts[#parts + 1] = pct(kv[1]) .. "=" .. pct(kv[2])
    end
  end
  return {
    method = "POST", path = "/",
    headers = { ["Content-Type"] = "application/x-www-form-urlencoded; charset=utf-8",
      ["User-Agent"] = user_agent },
    body = table.concat(parts, "&"),
  }
end

-- The XML parser: ecsplay.core.xml; a test may install another with the same
-- contract (parse(s) → {name=, attrs=, children=, text=} or nil, message).
local xml_parse = core_xml.parse
function M.set_xml_parser(fn) xml_parse = fn end
local function parse_xml(s)
  return xml_parse(s)
end

local function local_name(n)
  return (n:gsub("^.*:", ""))
end

-- Children grouped by local name, computed once per element (structures look up every
-- member by name; a linear scan each time is quadratic on wide shapes).
local EMPTY = {}
local function by_name(el)
  local idx = el.__by_name
  if idx then return idx end
  idx = {}
  for _, c in ipairs(el.children or EMPTY) do
    local n = local_name(c.name)
    local l = idx[n]
    if l then l[#l + 1] = c else idx[n] = { c } end
  end
  el.__by_name = idx
  return idx
end

local function child(el, name)
  local l = by_name(el)[name]
  return l and l[1] or nil
end

local function children_named(el, name)
  return by_name(el)[name] or EMPTY
end

local function text_of(el)
  return el.text or ""
end

-- Text that is not a value of its shape: an error when strict, else the text as it is.
local function bad_text(strict, what, s, path)
  if strict then
    error(errors.new("validation", { code = "ValidationError",
      message = string.format("invalid %s value %q for `%s`", what, s, path) }), 0)
  end
  return s
end

-- Convert scalar text by shape. strict → error on a bad value; else keep the text.
local function scalar_from_text(sh, s, path, strict)
  local t = sh.type
  if t == "string" then return s end
  if t == "integer" or t == "long" then
    local n = math.tointeger(tonumber(s))
    if n == nil then return bad_text(strict, "integer", s, path) end
    return n
  elseif t == "double" or t == "float" then
    local n = tonumber(s)
    if n == nil then
      local l = s:lower()
      if l == "nan" then return 0 / 0 elseif l == "infinity" then return math.huge
      elseif l == "-infinity" then return -math.huge end
      return bad_text(strict, "number", s, path)
    end
    return n + 0.0
  elseif t == "boolean" then
    if s == "true" then return true elseif s == "false" then return false end
    return bad_text(strict, "boolean", s, path)
  elseif t == "timestamp" then
    local e = timestamp.to_epoch(s)
    if not e then return bad_text(strict, "timestamp", s, path) end
    return e
  elseif t == "blob" then
    local d = proto.unbase64(s)
    if not d then return bad_text(strict, "base64", s, path) end
    return d
  end
  return s
end

local from_xml

local function list_items(m, sh, items, path)
  local r, msh = {}, m.shapes[sh.member.shape]
  for i, el in ipairs(items) do r[i] = from_xml(m, msh, el, path .. "[" .. i .. "]") end
  return r
end

local function map_entries(m, sh, entries, path)
  local r = {}
  local kname, vname = sh.key.locationName or "key", sh.value.locationName or "value"
  local vsh = m.shapes[sh.value.shape]
  for _, e in ipairs(entries) do
    local k, v = child(e, kname), child(e, vname)
    if k then r[text_of(k)] = v and from_xml(m, vsh, v, path .. "." .. text_of(k)) or nil end
  end
  return r
end

function from_xml(m, sh, el, path)
  local t = sh.type
  if t == "structure" then
    local r = {}
    for name, mem in pairs(sh.members or {}) do
      local msh = m.shapes[mem.shape]
      local xname = mem.locationName or name
      local p = path == "" and name or path .. "." .. name
      if (msh.type == "list") and (mem.flattened or msh.flattened) then
        local items = children_named(el, msh.member.locationName or xname)
        if #items > 0 then r[name] = list_items(m, msh, items, p) end
      elseif msh.type == "map" and (mem.flattened or msh.flattened) then
        local entries = children_named(el, xname)
        if #entries > 0 then r[name] = map_entries(m, msh, entries, p) end
      else
        local c = child(el, xname)
        if c then r[name] = from_xml(m, msh, c, p) end
      end
    end
    return r
  elseif t == "list" then
    return list_items(m, sh, children_named(el, sh.member.locationName or "member"), path)
  elseif t == "map" then
    return map_entries(m, sh, children_named(el, "entry"), path)
  end
  return scalar_from_text(sh, text_of(el), path, false)
end

--[[ Compiled readers: per shape (weak: dropped with its model), fn(el) → value, the
     same as from_xml with each member's element name and reader looked up once and the
     element's children walked once (no name index built per element). Shapes with
     flattened members, two members on one element name, and maps read through from_xml. ]]
local readers = setmetatable({}, { __mode = "k" })
local reader_of

local function name_of(el)
  local n = el.name
  if find(n, ":", 1, true) then return local_name(n) end
  return n
end

local function read_text(el) return el.text or "" end

local function struct_reader(m, sh)
  local names, reads = {}, {}
  for name, mem in pairs(sh.members or {}) do
    local msh = m.shapes[mem.shape]
    local xname = mem.locationName or name
    if mem.flattened or msh.flattened or names[xname] then
      return function(el) return from_xml(m, sh, el, "") end
    end
    names[xname], reads[xname] = name, reader_of(m, msh)
  end
  return function(el)
    local r = {}
    local children = el.children or EMPTY
    for i = 1, #children do
      local c = children[i]
      local xname = name_of(c)
      local name = names[xname]
      if name and r[name] == nil then -- the first element of a name, as child() finds
        local read = reads[xname]
        if read == read_text then r[name] = c.text or "" else r[name] = read(c) end
      end
    end
    return r
  end
end

local function list_reader(m, sh)
  local item_name, read = sh.member.locationName or "member", reader_of(m, m.shapes[sh.member.shape])
  return function(el)
    local r, n = {}, 0
    local children = el.children or EMPTY
    for i = 1, #children do
      local c = children[i]
      if name_of(c) == item_name then
        n = n + 1
        r[n] = read(c)
      end
    end
    return r
  end
end

local function build_reader(m, sh)
  local t = sh.type
  if t == "structure" then return struct_reader(m, sh)
  elseif t == "list" and not sh.flattened then return list_reader(m, sh)
  elseif t == "string" then return read_text
  elseif t ~= "list" and t ~= "map" then
    return function(el) return scalar_from_text(sh, el.text or "", "", false) end
  end
  return function(el) return from_xml(m, sh, el, "") end
end

function reader_of(m, sh)
  local read = readers[sh]
  if read then return read end
  local built
  readers[sh] = function(el) return built(el) end -- stand-in while a recursive shape builds
  built = build_reader(m, sh)
  readers[sh] = built
  return built
end

-- Output from a parsed XML tree (exposed so tests and tools can supply a tree directly).
function M.output_from_tree(m, opname, root)
  local op = op_of(m, opname)
  if not op.output then return {} end
  local el = root
  if op.resultWrapper then
    el = child(root, op.resultWrapper)
    if not el then return {} end
  end
  return reader_of(m, m.shapes[op.output])(el)
end

-- Error from an XML tree: <ErrorResponse><Error><Type/><Code/><Message/></Error><RequestId/>
-- or EC2-style <Response><Errors><Error>..</Error></Errors><RequestID/></Response>.
function M.error_from_tree(root, status)
  local err = child(root, "Error")
  if not err then
    local errs = child(root, "Errors")
    err = errs and child(errs, "Error")
  end
  if local_name(root.name) == "Error" then err = root end
  if not err then return nil end
  local function txt(el, name)
    local c = el and child(el, name)
    return c and text_of(c) or nil
  end
  return {
    code = txt(err, "Code") or tostring(status), message = txt(err, "Message") or "",
    type = txt(err, "Type"), status = status,
    request_id = txt(root, "RequestId") or txt(root, "RequestID") or txt(err, "RequestId"),
  }
end

-- → true, output  |  false, err{code, message, status, request_id, type}
function M.parse_response(m, opname, status, headers, body)
  local op = op_of(m, opname)
  local hdr_rid = proto.header(headers, "x-amzn-requestid")
  local root, perr
  if body and body:find("<", 1, true) then root, perr = parse_xml(body) end
  if status < 200 or status >= 300 then
    local e = root and M.error_from_tree(root, status)
    if not e then
      e = { code = tostring(status), status = status,
        message = (body and body ~= "" and not root) and body:sub(1, 200) or "" }
    end
    e.request_id = e.request_id or hdr_rid
    return false, e
  end
  if not op.output then return true, {} end
  if not root then
    if body == nil or body:match("^%s*$") then return true, {} end
    return false, { code = "InvalidResponse", status = status, request_id = hdr_rid,
      message = string.format("could not parse the %s %s response as XML: %s", m.service or "",
        op.name, perr or "no XML") }
  end
  -- an XML document that is not this operation's answer (a sign-in page, another
  -- protocol's document) is unreadable, not an empty result: botocore fails on it too
  local rname = local_name(root.name)
  if rname ~= op.name .. "Response" and not (op.resultWrapper and child(root, op.resultWrapper)) then
    return false, { code = "InvalidResponse", status = status, request_id = hdr_rid,
      message = string.format("the %s %s response is <%s>, not <%sResponse>", m.service or "",
        op.name, tostring(rname), op.name) }
  end
  return true, M.output_from_tree(m, op.name, root)
end

---------------------------------------------------------------------------------------
-- Server half: decode a form into typed params by shape.
local function has(ctx, key)
  return ctx.form[key] ~= nil or ctx.prefixes[key] ~= nil
end

local deform

local function deform_list(ctx, sh, key, flattened)
  if ctx.form[key] == "" and not ctx.prefixes[key] then return {} end
  local list_prefix
  if flattened then
    list_prefix = sh.member.locationName and last_replaced(key, sh.member.locationName) or key
  else
    list_prefix = key .. "." .. (sh.member.locationName or "member")
  end
  if not ctx.prefixes[list_prefix] then return nil end
  local r, msh, i = {}, ctx.m.shapes[sh.member.shape], 1
  while has(ctx, list_prefix .. "." .. i) do
    r[i] = deform(ctx, msh, list_prefix .. "." .. i)
    i = i + 1
  end
  return r
end

function deform(ctx, sh, key)
  local t = sh.type
  if t == "structure" then
    local r, any = {}, false
    for name, mem in pairs(sh.members or {}) do
      local k = mem.locationName or name
      if key ~= "" then k = key .. "." .. k end
      local msh = ctx.m.shapes[mem.shape]
      local v
      if msh.type == "list" then
        v = deform_list(ctx, msh, k, mem.flattened or msh.flattened)
      elseif has(ctx, k) then
        v = deform(ctx, msh, k)
      end
      if v ~= nil then r[name], any = v, true end
    end
    if not any and key ~= "" and ctx.form[key] == nil then return nil end
    return r
  elseif t == "list" then
    return deform_list(ctx, sh, key, sh.flattened)
  elseif t == "map" then
    local full = sh.flattened and key or key .. ".entry"
    local kname, vname = sh.key.locationName or "key", sh.value.locationName or "value"
    local r, vsh, i = {}, ctx.m.shapes[sh.value.shape], 1
    while has(ctx, full .. "." .. i) do
      local k = ctx.form[full .. "." .. i .. "." .. kname]
      local vk = full .. "." .. i .. "." .. vname
      if k ~= nil and has(ctx, vk) then r[k] = deform(ctx, vsh, vk) end
      i = i + 1
    end
    return r
  end
  local s = ctx.form[key]
  if s == nil then return nil end
  return scalar_from_text(sh, s, key, true)
end

local function serr(code, message, status)
  return nil, { code = code, message = message, status = status or 400 }
end

-- → opname, params  |  nil, err{code, message, status}
function M.decode_request(m, body, headers)
  local form = M.parse_form(body)
  local action = form.Action
  if not action or action == "" then
    return serr("MissingAction", "the request must contain the parameter Action")
  end
  local op = m.operations[action]
  if not op then
    return serr("InvalidAction", string.format("the action %s is not valid for this web service", action))
  end
  if form.Version and form.Version ~= m.metadata.apiVersion then
    return serr("InvalidAction", string.format("the action %s is not valid for version %s",
      action, form.Version))
  end
  if not op.input then return op.name, {} end
  local prefixes = {}
  for k in pairs(form) do
    local p = k
    while true do
      p = p:match("^(.*)%.[^.]*$")
      if not p or prefixes[p] then break end
      prefixes[p] = true
    end
  end
  local ctx = { m = m, form = form, prefixes = prefixes }
  local ok, r = pcall(deform, ctx, m.shapes[op.input], "")
  if not ok then
    if errors.is(r, "validation") then return serr(r.code, r.message) end
    error(r, 0)
  end
  return op.name, r or {}
end

-- Encode output as XML elements into writer w.
local to_xml

local function leaf_text(sh, v)
  local t = sh.type
  if t == "timestamp" then
    local e = timestamp.to_epoch(v)
    return timestamp.iso8601(e or 0)
  end
  if t == "boolean" then return v and "true" or "false" end
  if t == "blob" then return proto.base64(v) end
  if type(v) == "number" then
    if t == "integer" or t == "long" then v = math.tointeger(v) or v end
    return proto.format_number(v) or tostring(v)
  end
  return tostring(v)
end

local function list_xml(m, w, sh, v, name, flattened)
  local msh = m.shapes[sh.member.shape]
  if flattened then
    local iname = sh.member.locationName or name
    for i = 1, #v do to_xml(m, w, msh, v[i], iname) end
    return
  end
  if #v == 0 then return w:leaf(name) end
  w:open(name)
  local iname = sh.member.locationName or "member"
  for i = 1, #v do to_xml(m, w, msh, v[i], iname) end
  w:close(name)
end

-- Per structure shape, its members in model order with their element names and shapes
-- (weak: dropped with its model).
local xml_members = setmetatable({}, { __mode = "k" })
local function members_of(m, sh)
  local ms = xml_members[sh]
  if ms then return ms end
  ms = { names = {}, xnames = {}, shapes = {}, flattened = {} }
  for i, mname in ipairs(sh.order or {}) do
    local mem = sh.members[mname]
    local msh = m.shapes[mem.shape]
    ms.names[i], ms.xnames[i], ms.shapes[i] = mname, mem.locationName or mname, msh
    ms.flattened[i] = (mem.flattened or msh.flattened) and true or false
  end
  xml_members[sh] = ms
  return ms
end

function to_xml(m, w, sh, v, name)
  local t = sh.type
  if t == "structure" then
    local ms = members_of(m, sh)
    local names, shapes = ms.names, ms.shapes
    local opened = false -- <name/> when no member is set
    for i = 1, #names do
      local fv = v[names[i]]
      if fv ~= nil then
        if not opened then w:open(name) opened = true end
        local msh = shapes[i]
        if msh.type == "list" then
          list_xml(m, w, msh, fv, ms.xnames[i], ms.flattened[i])
        else
          to_xml(m, w, msh, fv, ms.xnames[i])
        end
      end
    end
    if opened then w:close(name) else w:leaf(name) end
  elseif t == "list" then
    list_xml(m, w, sh, v, name, sh.flattened)
  elseif t == "map" then
    local keys = {}
    for k in pairs(v) do keys[#keys + 1] = k end
    table.sort(keys)
    local kname, vname = sh.key.locationName or "key", sh.value.locationName or "value"
    local vsh = m.shapes[sh.value.shape]
    if #keys == 0 then return w:leaf(name) end
    w:open(name)
    for _, k in ipairs(keys) do
      w:open("entry")
      w:leaf(kname, k)
      to_xml(m, w, vsh, v[k], vname)
      w:close("entry")
    end
    w:close(name)
  else
    w:leaf(name, leaf_text(sh, v))
  end
end

local function xml_headers()
  return { ["Content-Type"] = "text/xml" }
end

-- → 200, headers, body (XML like AWS's)
function M.encode_response(m, opname, output, request_id)
  local op = op_of(m, opname)
  request_id = request_id or proto.request_id()
  local w = xmlwrite.new()
  local root = op.name .. "Response"
  w:open(root, { xmlns = m.metadata.xmlNamespace })
  if op.output then
    to_xml(m, w, m.shapes[op.output], output or {}, op.resultWrapper or (op.name .. "Result"))
  end
  w:open("ResponseMetadata")
  w:leaf("RequestId", request_id)
  w:close("ResponseMetadata")
  w:close(root)
  local h = xml_headers()
  h["x-amzn-RequestId"] = request_id
  return 200, h, w:result()
end

-- code: shape name or wire code; the XML carries the wire code (error.code in the model).
function M.encode_error(m, code, message, status, request_id)
  local name, sh = model_lib.error_shape(m, code)
  local e = sh and sh.error or {}
  status = status or e.httpStatusCode or (sh and sh.fault and 500) or 400
  request_id = request_id or proto.request_id()
  local fault
  if e.senderFault ~= nil then fault = e.senderFault and "Sender" or "Receiver"
  else fault = status < 500 and "Sender" or "Receiver" end
  local w = xmlwrite.new()
  w:open("ErrorResponse", { xmlns = m.metadata.xmlNamespace })
  w:open("Error")
  w:leaf("Type", fault)
  w:leaf("Code", e.code or name or code)
  w:leaf("Message", message or "")
  w:close("Error")
  w:leaf("RequestId", request_id)
  w:close("ErrorResponse")
  local h = xml_headers()
  h["x-amzn-RequestId"] = request_id
  return status, h, w:result()
end

return M
