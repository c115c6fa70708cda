-- A tiny XML writer for the simulator's query-protocol responses: indented like AWS's own
-- responses, text and attribute values escaped.
local M = {}

local ESC = { ["&"] = "&amp;", ["<"] = "&lt;", [">"] = "&gt;", ['"'] = "&quot;", ["\r"] = "&#xD;" }

function M.escape(s)
  return (tostring(s):gsub('[&<>"\r]', ESC))
end

local W = {}
W.__index = W

function M.new()
  return setmetatable({ buf = {}, depth = 0 }, W)
end

local function attrs_str(attrs)
  if not attrs then return "" end
  local keys = {}
  for k in pairs(attrs) do keys[#keys + 1] = k end
  table.sort(keys)
  local out = {}
  for _, k in ipairs(keys) do out[#out + 1] = string.format(' %s="%s"', k, M.escape(attrs[k])) end
  return table.concat(out)
end

function W:pad()
  return string.rep("  ", self.depth)
end

-- <name attrs>  (children follow; close with :close(name))
function W:open(name, attrs)
  self.buf[#self.buf + 1] = self:pad() .. "<" .. name .. attrs_str(attrs) .. ">\n"
  self.depth = self.depth + 1
end

function W:close(name)
  self.depth = self.depth - 1
  self.buf[#self.buf + 1] = self:pad() .. "</" .. name .. ">\n"
end

-- <name>text</name>, or <name/> when text is nil.
function W:leaf(name, text)
  if text == nil then
    self.buf[#self.buf + 1] = self:pad() .. "<" .. name .. "/>\n"
  else
    self.buf[#self.buf + 1] = self:pad() .. "<" .. name .. ">" .. M.escape(text) .. "</" .. name .. ">\n"
  end
end

function W:result()
  return table.concat(self.buf)
end

return M
