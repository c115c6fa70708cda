--[[
AppSpec files for ECS deployments: JSON, or the block-style YAML subset that
AppSpec files are written in, and the extraction of the ECS fields CodeDeploy
uses.

Why a YAML subset and not YAML: AppSpec files use nested maps, "- " lists,
plain or quoted scalars, comments and one-line flow lists ("[a, b]"). Anchors,
tags, multi-document streams and block scalars never appear in them; anything
outside the subset is rejected naming the line, so a user never gets a
silently different reading of their file than AWS would give.

M.parse(text)  -> document, where  |  nil, message
M.ecs(document, where) -> { task_definition=, container_name=, container_port=,
                            platform_version=, network_configuration=, hooks={{event=, fn=}} }
                          |  nil, message
`where[tbl][key]` is the line a key was written on (YAML only; nil for JSON).
]]
local cjson = require "cjson.safe"

local M = {}

M.HOOK_EVENTS = { "BeforeInstall", "AfterInstall", "AfterAllowTestTraffic",
                  "BeforeAllowTraffic", "AfterAllowTraffic" }

-- A malformed AppSpec: caught at this module's edge (M.parse), which answers nil, message.
local function fail(line, msg)
  error({ appspec = true, msg = line and ("line " .. line .. ": " .. msg) or msg }, 0)
end

-- ---------------------------------------------------------------- scalars

-- Plain scalars become numbers/booleans/nil the way YAML 1.2's core schema reads them.
local function plain_scalar(s, line)
  local c = s:sub(1, 1)
  if c == "&" or c == "*" or c == "!" then
    fail(line, "anchors, aliases and tags ('" .. c .. "') are not supported in AppSpec files")
  end
  if c == "|" or c == ">" then
    fail(line, "block scalars ('" .. c .. "') are not supported in AppSpec files; write the value on one line")
  end
  if c == "@" or c == "`" then fail(line, "a plain value cannot start with '" .. c .. "'; quote it") end
  if s == "true" or s == "True" or s == "TRUE" then return true end
  if s == "false" or s == "False" or s == "FALSE" then return false end
  if s == "null" or s == "Null" or s == "NULL" or s == "~" then return nil end
  if s:match("^[-+]?%d+$") then return math.tointeger(tonumber(s)) or tonumber(s) end
  if s:match("^[-+]?%d*%.%d+$") or s:match("^[-+]?%d+%.%d*$") or s:match("^[-+]?%d+%.?%d*[eE][-+]?%d+$") then
    return tonumber(s)
  end
  return s
end

-- Reads a quoted scalar starting at s[i] (a quote); returns value, index after it.
local function quoted(s, i, line)
  local q = s:sub(i, i)
  local out = {}
  local j = i + 1
  while j <= #s do
    local c = s:sub(j, j)
    if q == "'" and c == "'" then
      if s:sub(j + 1, j + 1) == "'" then out[#out + 1] = "'"; j = j + 2
      else return table.concat(out), j + 1 end
    elseif q == '"' and c == "\\" then
      local e = s:sub(j + 1, j + 1)
      local map = { n = "\n", t = "\t", r = "\r", ['"'] = '"', ["\\"] = "\\", ["/"] = "/", ["0"] = "\0" }
      if map[e] then out[#out + 1] = map[e]; j = j + 2
      else fail(line, "unsupported escape '\\" .. e .. "' in a double-quoted value") end
    elseif q == '"' and c == '"' then
      return table.concat(out), j + 1
    else
      out[#out + 1] = c; j = j + 1
    end
  end
  fail(line, "unterminated " .. (q == '"' and "double" or "single") .. "-quoted value")
end

-- Removes a comment (" #" outside quotes) and trailing blanks.
local function strip_comment(s)
  local i, n, q = 1, #s, nil
  while i <= n do
    local c = s:sub(i, i)
    if q then
      if q == '"' and c == "\\" then i = i + 1
      elseif c == q then q = nil end
    elseif c == '"' or c == "'" then
      q = c
    elseif c == "#" and (i == 1 or s:sub(i - 1, i - 1):match("%s")) then
      return (s:sub(1, i - 1):gsub("%s+$", ""))
    end
    i = i + 1
  end
  return (s:gsub("%s+$", ""))
end

-- Finds the "key:" separator outside quotes: returns key, rest or nil.
local function split_key(s, line)
  local key, rest
  if s:sub(1, 1) == '"' or s:sub(1, 1) == "'" then
    local k, j = quoted(s, 1, line)
    local after = s:sub(j)
    if after:match("^%s*:$") or after:match("^%s*:%s") then
      return k, (after:gsub("^%s*:%s*", ""))
    end
    return nil
  end
  local i = 1
  while true do
    local p = s:find(":", i, true)
    if not p then return nil end
    if p == #s or s:sub(p + 1, p + 1):match("%s") then
      key = s:sub(1, p - 1):gsub("%s+$", "")
      rest = s:sub(p + 1):gsub("^%s+", "")
      if key == "" then return nil end
      if key:sub(1, 1) == "?" then fail(line, "complex keys ('?') are not supported in AppSpec files") end
      return key, rest
    end
    i = p + 1
  end
end

-- ---------------------------------------------------------------- flow collections

-- Parses a one-line flow value ("[a, 'b', {c: 1}]") starting at s[i].
local function flow_value(s, i, line)
  i = s:find("%S", i) or #s + 1
  local c = s:sub(i, i)
  if c == "[" then
    local list = {}
    i = s:find("%S", i + 1) or #s + 1
    if s:sub(i, i) == "]" then return list, i + 1 end
    while true do
      local v
      v, i = flow_value(s, i, line)
      list[#list + 1] = v
      i = s:find("%S", i) or #s + 1
      local d = s:sub(i, i)
      if d == "]" then return list, i + 1 end
      if d ~= "," then fail(line, "expected ',' or ']' in a flow list, found '" .. d .. "'") end
      i = i + 1
    end
  elseif c == "{" then
    local map = {}
    i = s:find("%S", i + 1) or #s + 1
    if s:sub(i, i) == "}" then return map, i + 1 end
    while true do
      local k
      if s:sub(i, i) == '"' or s:sub(i, i) == "'" then
        k, i = quoted(s, i, line)
      else
        local j = s:find("[:,}]", i)
        if not j then fail(line, "unterminated flow map") end
        k = s:sub(i, j - 1):gsub("%s+$", "")
        i = j
      end
      i = s:find("%S", i) or #s + 1
      if s:sub(i, i) ~= ":" then fail(line, "expected ':' after key '" .. k .. "' in a flow map") end
      local v
      v, i = flow_value(s, i + 1, line)
      map[k] = v
      i = s:find("%S", i) or #s + 1
      local d = s:sub(i, i)
      if d == "}" then return map, i + 1 end
      if d ~= "," then fail(line, "expected ',' or '}' in a flow map, found '" .. d .. "'") end
      i = s:find("%S", i + 1) or #s + 1
    end
  elseif c == '"' or c == "'" then
    return quoted(s, i, line)
  elseif c == "" then
    fail(line, "missing value in a flow collection")
  else
    local j = s:find("[,%]}]", i) or #s + 1
    return plain_scalar((s:sub(i, j - 1):gsub("%s+$", "")), line), j
  end
end

-- A value written after "key:" or "- " on the same line.
local function inline_value(s, line)
  local c = s:sub(1, 1)
  if c == "[" or c == "{" then
    local v, j = flow_value(s, 1, line)
    if s:find("%S", j) then fail(line, "unexpected text after a flow collection") end
    return v
  elseif c == '"' or c == "'" then
    local v, j = quoted(s, 1, line)
    if s:find("%S", j) then fail(line, "unexpected text after a quoted value") end
    return v
  end
  return plain_scalar(s, line)
end

-- ---------------------------------------------------------------- block structure

local Parser = {}
Parser.__index = Parser

local function is_item(text) return text == "-" or text:sub(1, 2) == "- " end

function Parser:block(indent)
  local l = self.lines[self.i]
  if is_item(l.text) then return self:seq(l.indent) end
  return self:map(l.indent)
end

function Parser:note(tbl, key, line)
  local w = self.where[tbl]
  if not w then w = {}; self.where[tbl] = w end
  w[key] = line
end

-- The value of "key:" with nothing after the colon: a nested block, or null.
function Parser:nested(indent)
  local nxt = self.lines[self.i]
  if nxt and (nxt.indent > indent or (nxt.indent == indent and is_item(nxt.text))) then
    return self:block(nxt.indent)
  end
  return nil
end

-- A new map or list, noted as starting on the current line.
function Parser:container()
  local t = {}
  self.where[t] = { [0] = self.lines[self.i].n }
  return t
end

-- The current line while it belongs to the block at `indent` (nil at a shallower line); a deeper one is refused.
function Parser:line_at(indent)
  local l = self.lines[self.i]
  if not l or l.indent < indent then return nil end
  if l.indent > indent then fail(l.n, "unexpected indentation (expected column " .. (indent + 1) .. ")") end
  return l
end

function Parser:map(indent)
  local map = self:container()
  while true do
    local l = self:line_at(indent)
    if not l then break end
    if is_item(l.text) then fail(l.n, "a list item where a 'key: value' line was expected") end
    local key, rest = split_key(l.text, l.n)
    if not key then fail(l.n, "expected 'key: value', found '" .. l.text .. "'") end
    if map[key] ~= nil or self.where[map][key] then fail(l.n, "duplicate key '" .. key .. "'") end
    self:note(map, key, l.n)
    self.i = self.i + 1
    if rest == "" then map[key] = self:nested(indent)
    else map[key] = inline_value(rest, l.n) end
  end
  return map
end

function Parser:seq(indent)
  local list = self:container()
  while true do
    local l = self:line_at(indent)
    if not l then break end
    if not is_item(l.text) then break end -- a sibling key of the parent map
    local content = l.text:sub(2):gsub("^%s+", "")
    self:note(list, #list + 1, l.n)
    if content == "" then
      self.i = self.i + 1
      local nxt = self.lines[self.i]
      if nxt and nxt.indent > indent then list[#list + 1] = self:block(nxt.indent)
      else fail(l.n, "empty list item") end
    elseif is_item(content) or (not content:match("^[%[{]") and split_key(content, l.n)) then
      -- "- key: v" opens a map (or "- - x" a list) whose column is where content starts
      local col = indent + (#l.text - #content)
      l.indent, l.text = col, content
      list[#list + 1] = self:block(col)
    else
      self.i = self.i + 1
      local v = inline_value(content, l.n)
      if v == nil then fail(l.n, "null list items are not supported") end
      list[#list + 1] = v
    end
  end
  return list
end

local function parse_yaml(text)
  local lines = {}
  local n = 0
  for raw in (text .. "\n"):gmatch("([^\n]*)\n") do
    n = n + 1
    raw = raw:gsub("\r$", "")
    local lead = raw:match("^[ \t]*")
    local body = strip_comment(raw)
    if body:match("%S") then
      if lead:find("\t", 1, true) then fail(n, "tab used for indentation; use spaces") end
      local text = body:sub(#lead + 1)
      if text == "---" and #lines == 0 then
        -- the optional document start marker
      elseif text == "---" or text == "..." then
        fail(n, "multiple YAML documents are not supported in an AppSpec file")
      elseif text:sub(1, 1) == "%" then
        fail(n, "YAML directives are not supported in AppSpec files")
      else
        lines[#lines + 1] = { n = n, indent = #lead, text = text }
      end
    end
  end
  if #lines == 0 then fail(nil, "the AppSpec content is empty") end
  local p = setmetatable({ lines = lines, i = 1, where = {} }, Parser)
  local first = lines[1]
  local doc
  if first.text:sub(1, 1) == "[" or first.text:sub(1, 1) == "{" then
    if #lines > 1 then fail(lines[2].n, "multi-line flow collections are not supported") end
    doc = inline_value(first.text, first.n)
  else
    doc = p:block(first.indent)
  end
  local left = lines[p.i]
  if left then fail(left.n, "unexpected content (check the indentation)") end
  return doc, p.where
end

-- ---------------------------------------------------------------- JSON

local function parse_json(text)
  local doc, err = cjson.new().decode(text)
  if doc == nil then
    local pos = tonumber(tostring(err):match("character (%d+)"))
    local line = pos and select(2, text:sub(1, pos):gsub("\n", "")) + 1
    fail(line, "invalid JSON: " .. tostring(err))
  end
  -- cjson.null sentinels mean "absent" to the reader below
  local function clean(v)
    if type(v) == "table" then
      for k, x in pairs(v) do
        if type(x) == "userdata" then v[k] = nil else clean(x) end
      end
    end
    return v
  end
  return clean(doc), {}
end

function M.parse(text)
  if type(text) ~= "string" then return nil, "the AppSpec content is missing" end
  local ok, doc, where = pcall(function()
    -- AppSpec documents are maps: "{" first means JSON, anything else YAML
    if text:match("^%s*{") then return parse_json(text) end
    return parse_yaml(text)
  end)
  if not ok then
    if type(doc) == "table" and doc.appspec then return nil, doc.msg end
    error(doc, 0)
  end
  return doc, where
end

-- ---------------------------------------------------------------- ECS fields

local function at(where, tbl, key)
  local w = where[tbl]
  local n = w and (w[key] or w[0])
  return n and (" (line " .. n .. ")") or ""
end

local function map_keys(t)
  local n = 0
  for k in pairs(t) do
    if math.type(k) ~= "integer" then n = n + 1 end
  end
  return n
end

local function is_list(t) return type(t) == "table" and (#t > 0 or next(t) == nil) and map_keys(t) == 0 end

-- AppSpec's AwsvpcConfiguration uses PascalCase; ECS's API is camelCase.
local function network_config(nc, where)
  if nc == nil then return nil end
  local a = type(nc) == "table" and (nc.AwsvpcConfiguration or nc.awsvpcConfiguration)
  if type(a) ~= "table" then
    return nil, "Resources[0].TargetService.Properties.NetworkConfiguration needs AwsvpcConfiguration" .. at(where, nc, "AwsvpcConfiguration")
  end
  local out = { awsvpcConfiguration = {
    subnets = a.Subnets or a.subnets,
    securityGroups = a.SecurityGroups or a.securityGroups,
    assignPublicIp = a.AssignPublicIp or a.assignPublicIp,
  } }
  for _, f in ipairs({ "subnets", "securityGroups" }) do
    local v = out.awsvpcConfiguration[f]
    if v ~= nil and not is_list(v) then
      return nil, "NetworkConfiguration.AwsvpcConfiguration." .. f:sub(1, 1):upper() .. f:sub(2) .. " must be a list" .. at(where, a, f:sub(1, 1):upper() .. f:sub(2))
    end
  end
  return out
end

-- The Hooks section: { {event=, fn=}, ... } (empty when absent), or nil and a message.
local function read_hooks(doc, where)
  local out = {}
  local valid = {}
  for _, e in ipairs(M.HOOK_EVENTS) do valid[e] = true end
  local hooks = doc.Hooks
  if hooks == nil then return out end
  if not is_list(hooks) then return nil, "Hooks must be a list of '- EventName: FunctionName' entries" .. at(where, doc, "Hooks") end
  local seen = {}
  for i, h in ipairs(hooks) do
    if type(h) ~= "table" or map_keys(h) ~= 1 then
      return nil, "Hooks[" .. (i - 1) .. "] must be one 'EventName: FunctionName' pair" .. at(where, hooks, i)
    end
    local ev, fn = next(h)
    if not valid[ev] then
      return nil, "Hooks[" .. (i - 1) .. "]: '" .. tostring(ev) .. "' is not an ECS lifecycle hook (expected one of "
        .. table.concat(M.HOOK_EVENTS, ", ") .. ")" .. at(where, h, ev)
    end
    if type(fn) ~= "string" or fn == "" then
      return nil, "Hooks[" .. (i - 1) .. "]." .. ev .. " must name a Lambda function" .. at(where, h, ev)
    end
    if seen[ev] then return nil, "Hooks: " .. ev .. " is given twice" .. at(where, h, ev) end
    seen[ev] = true
    out[#out + 1] = { event = ev, fn = fn }
  end
  return out
end

function M.ecs(doc, where)
  where = where or {}
  local P = "Resources[0].TargetService"
  if type(doc) ~= "table" or is_list(doc) and next(doc) ~= nil then
    return nil, "the AppSpec must be a map with Resources (and optionally version and Hooks)"
  end
  local res = doc.Resources
  if type(res) ~= "table" or not is_list(res) or #res == 0 then
    return nil, "Resources must be a non-empty list" .. at(where, doc, "Resources")
  end
  if #res > 1 then return nil, "ECS AppSpec files take exactly one resource, found " .. #res .. at(where, res, 2) end
  local ts = type(res[1]) == "table" and res[1].TargetService
  if type(ts) ~= "table" then
    return nil, "Resources[0] must be a map with TargetService" .. at(where, res, 1)
  end
  if ts.Type ~= "AWS::ECS::Service" then
    return nil, P .. ".Type must be AWS::ECS::Service, found " .. tostring(ts.Type) .. at(where, ts, "Type")
  end
  local props = ts.Properties
  if type(props) ~= "table" then return nil, P .. ".Properties is missing" .. at(where, ts, "Properties") end
  if type(props.TaskDefinition) ~= "string" or props.TaskDefinition == "" then
    return nil, P .. ".Properties.TaskDefinition is missing (a task definition ARN or family:revision)" .. at(where, props, "TaskDefinition")
  end
  local lb = props.LoadBalancerInfo
  if type(lb) ~= "table" then
    return nil, P .. ".Properties.LoadBalancerInfo is missing (ContainerName and ContainerPort)" .. at(where, props, "LoadBalancerInfo")
  end
  if type(lb.ContainerName) ~= "string" or lb.ContainerName == "" then
    return nil, P .. ".Properties.LoadBalancerInfo.ContainerName is missing" .. at(where, lb, "ContainerName")
  end
  local port = math.tointeger(tonumber(lb.ContainerPort))
  if not port or port < 1 or port > 65535 then
    return nil, P .. ".Properties.LoadBalancerInfo.ContainerPort must be a port number, found " .. tostring(lb.ContainerPort) .. at(where, lb, "ContainerPort")
  end
  local nc, err = network_config(props.NetworkConfiguration, where)
  if err then return nil, err end
  local out = {
    task_definition = props.TaskDefinition,
    container_name = lb.ContainerName,
    container_port = port,
    platform_version = props.PlatformVersion,
    network_configuration = nc,
    hooks = {},
  }
  local hooks, herr = read_hooks(doc, where)
  if not hooks then return nil, herr end
  out.hooks = hooks
  return out
end

return M
