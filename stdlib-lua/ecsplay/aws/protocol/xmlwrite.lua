-- A tiny XML writer for the simulator's query-protocol responses: indented like AWS's own
-- responses, text and attribute values escaped.
local proto = require "ecsplay.aws.protocol"

local M = {}

local ESC = { ["&"] = "&amp;", ["<"] = "&lt;", [">"] = "&gt;", ['"'] = "&quot;", ["\r"] = "&#xD;" }
local needs_escape = proto.string_memo('&<>"\r').has

function M.escape(s)
  s = tostring(s)
  if not needs_escape(s) then return s end -- most text needs none: no copy
  return (s:gsub('[&<>"\r]', ESC))
end
local escape = M.escape

-- Indentation per depth and tags per element name, built once (names come from models).
local function memo(build)
  return setmetatable({}, { __index = function(t, k)
    local v = build(k)
    t[k] = v
    return v
  end })
end
local PADS = memo(function(depth) return string.rep("  ", depth) end)
local OPEN_LINE = memo(function(name) return "<" .. name .. ">\n" end)
local OPEN = memo(function(name) return "<" .. name .. ">" end)
local CLOSE_LINE = memo(function(name) return "</" .. name .. ">\n" end)
local EMPTY_LINE = memo(function(name) return "<" .. name .. "/>\n" end)

local W = {}
W.__index = W

function M.new()
  return setmetatable({ buf = {}, n = 0, depth = 0 }, W)
end

local function attrs_str(attrs)
  local keys = {}
  for k in pairs(attrs) do keys[#keys + 1] = k end
  table.sort(keys)
  local out = {}
  for _, k in ipairs(keys) do out[#out + 1] = string.format(' %s="%s"', k, escape(attrs[k])) end
  return table.concat(out)
end

function W:pad()
  return PADS[self.depth]
end

-- <name attrs>  (children follow; close with :close(name))
function W:open(name, attrs)
  local buf, n = self.buf, self.n
  buf[n + 1] = PADS[self.depth]
  buf[n + 2] = attrs and ("<" .. name .. attrs_str(attrs) .. ">\n") or OPEN_LINE[name]
  self.n = n + 2
  self.depth = self.depth + 1
end

function W:close(name)
  local depth = self.depth - 1
  local buf, n = self.buf, self.n
  buf[n + 1] = PADS[depth]
  buf[n + 2] = CLOSE_LINE[name]
  self.n, self.depth = n + 2, depth
end

-- <name>text</name>, or <name/> when text is nil.
function W:leaf(name, text)
  local buf, n = self.buf, self.n
  buf[n + 1] = PADS[self.depth]
  if text == nil then
    buf[n + 2] = EMPTY_LINE[name]
    self.n = n + 2
  else
    buf[n + 2] = OPEN[name]
    buf[n + 3] = escape(text)
    buf[n + 4] = CLOSE_LINE[name]
    self.n = n + 4
  end
end

function W:result()
  return table.concat(self.buf, "", 1, self.n)
end

return M
