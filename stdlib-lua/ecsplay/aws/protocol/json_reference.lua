-- A small strict JSON decoder: the reference the protocol tests hold lua-cjson to
-- (ecsplay.aws.protocol.json.lua_decode); nothing else uses it. JSON null decodes to
-- M.null, the json codec's null.
local errors = require "ecsplay.errors"

local M = {}

local NULL = setmetatable({}, { __tostring = function() return "null" end })
M.null = NULL

function M.decode(s)
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

return M
