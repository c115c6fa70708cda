-- The JMESPath subset the waiters and paginators of our five services use:
--   identifiers and sub-expressions (a.b), flatten projections (a[].b), filter projections
--   (a[?expr].b), indexes (a[0]), literals (`1`, `true`, `"x"`), comparisons
--   (== != < <= > >=), && || ! and parentheses, the length() function and @.
-- e.g. length(services[?!(length(deployments) == `1` && runningCount == desiredCount)]) == `0`
-- compile(expr) → fn(value) (raises on syntax outside the subset); search(expr, value).
local tables = require "ecsplay.util.tables"

local M = {}

---------------------------------------------------------------------------------------
-- Tokens
local function tokenize(s)
  local toks, i = {}, 1
  local function push(t, v) toks[#toks + 1] = { t = t, v = v, pos = i } end
  while i <= #s do
    local c = s:sub(i, i)
    if c:match("%s") then
      i = i + 1
    elseif c:match("[%a_]") then
      local id = s:match("^[%w_]+", i)
      push("id", id)
      i = i + #id
    elseif c:match("%d") or (c == "-" and s:sub(i + 1, i + 1):match("%d")) then
      local n = s:match("^%-?%d+", i)
      push("num", tonumber(n))
      i = i + #n
    elseif c == "`" then
      local j = s:find("`", i + 1, true)
      if not j then error(string.format("jmespath: unterminated literal at %d in %q", i, s), 0) end
      local raw = s:sub(i + 1, j - 1)
      local v
      if raw == "true" then v = true
      elseif raw == "false" then v = false
      elseif raw == "null" then v = nil
      elseif tonumber(raw) then v = tonumber(raw)
      elseif raw:match('^".*"$') then v = raw:sub(2, -2)
      else v = raw end
      push("lit", v)
      i = j + 1
    elseif c == '"' then
      local j = s:find('"', i + 1, true)
      if not j then error(string.format("jmespath: unterminated quoted name in %q", s), 0) end
      push("id", s:sub(i + 1, j - 1))
      i = j + 1
    else
      local two = s:sub(i, i + 1)
      if two == "[]" or two == "[?" or two == "==" or two == "!=" or two == "<=" or two == ">="
        or two == "&&" or two == "||" then
        push(two)
        i = i + 2
      elseif ("[]().,!<>@"):find(c, 1, true) then
        push(c)
        i = i + 1
      else
        error(string.format("jmespath: unexpected %q at %d in %q", c, i, s), 0)
      end
    end
  end
  push("eof")
  return toks
end

---------------------------------------------------------------------------------------
-- Values
local function is_list(v)
  return type(v) == "table" and (v[1] ~= nil or next(v) == nil)
end
M.is_list = is_list

local function truthy(v)
  if v == nil or v == false or v == "" then return false end
  if type(v) == "table" and next(v) == nil then return false end
  return true
end
M.truthy = truthy

-- JMESPath's equality is deep equality of JSON values (the waiters compare with it too)
local equal = tables.equal
M.equal = equal

local FUNCS = {
  length = function(v)
    -- null (a list the response left out) has no length: no match rather than an error.
    if v == nil then return nil end
    if type(v) == "string" then return utf8.len(v) or #v end
    if type(v) == "table" then
      if is_list(v) then return #v end
      local n = 0
      for _ in pairs(v) do n = n + 1 end
      return n
    end
    error("jmespath: length() expects a string, list or object", 0)
  end,
}

---------------------------------------------------------------------------------------
-- Parser (top-down operator precedence, as the JMESPath reference implementation).
local LBP = { eof = 0, [")"] = 0, ["]"] = 0, [","] = 0, ["||"] = 2, ["&&"] = 3,
  ["=="] = 5, ["!="] = 5, ["<"] = 5, ["<="] = 5, [">"] = 5, [">="] = 5,
  ["[]"] = 9, ["[?"] = 21, ["."] = 40, ["["] = 55 }

local P = {}
P.__index = P

function P:peek() return self.toks[self.i] end
function P:next()
  local t = self.toks[self.i]
  self.i = self.i + 1
  return t
end
function P:expect(t)
  local tok = self:next()
  if tok.t ~= t then
    error(string.format("jmespath: expected %s at %d in %q, got %s", t, tok.pos, self.src, tok.t), 0)
  end
  return tok
end

local function identity(v) return v end

function P:expr(rbp)
  local left = self:nud(self:next())
  while rbp < (LBP[self:peek().t] or 0) do
    left = self:led(self:next(), left)
  end
  return left
end

local function projection(left, right)
  return function(v)
    local l = left(v)
    if not is_list(l) then return nil end
    local out = {}
    for _, e in ipairs(l) do
      local r = right(e)
      if r ~= nil then out[#out + 1] = r end
    end
    return out
  end
end

local function flatten(left)
  return function(v)
    local l = left(v)
    if not is_list(l) then return nil end
    local out = {}
    for _, e in ipairs(l) do
      -- An empty table is kept (it is usually an empty structure; an empty list kept here
      -- yields nothing further down a projection anyway).
      if type(e) == "table" and e[1] ~= nil then
        for _, x in ipairs(e) do out[#out + 1] = x end
      else
        out[#out + 1] = e
      end
    end
    return out
  end
end

-- What follows a projection: stops at anything binding weaker than a projection.
function P:projection_rhs(rbp)
  local t = self:peek().t
  if (LBP[t] or 0) < 10 then return identity end
  if t == "." then
    self:next()
    return self:dot_rhs(rbp)
  end
  return self:expr(rbp)
end

function P:dot_rhs(rbp)
  local t = self:peek().t
  if t ~= "id" then
    error(string.format("jmespath: expected a name after '.' in %q", self.src), 0)
  end
  return self:expr(rbp)
end

function P:nud(tok)
  local t = tok.t
  if t == "id" then
    if self:peek().t == "(" then
      self:next()
      local fn = FUNCS[tok.v]
      if not fn then error(string.format("jmespath: function %s() is not supported", tok.v), 0) end
      local args = {}
      if self:peek().t ~= ")" then
        repeat
          args[#args + 1] = self:expr(0)
        until self:peek().t ~= "," or not self:next()
      end
      self:expect(")")
      return function(v)
        local vals = {}
        for i, a in ipairs(args) do vals[i] = a(v) end
        return fn(table.unpack(vals, 1, #args))
      end
    end
    local name = tok.v
    return function(v)
      if type(v) == "table" then return v[name] end
      return nil
    end
  elseif t == "lit" then
    local v = tok.v
    return function() return v end
  elseif t == "@" then
    return identity
  elseif t == "!" then
    local e = self:expr(45)
    return function(v) return not truthy(e(v)) end
  elseif t == "(" then
    local e = self:expr(0)
    self:expect(")")
    return e
  elseif t == "[]" then
    return projection(flatten(identity), self:projection_rhs(9))
  end
  error(string.format("jmespath: unexpected %s at %d in %q", t, tok.pos, self.src), 0)
end

local CMP = {
  ["=="] = function(a, b) return equal(a, b) end,
  ["!="] = function(a, b) return not equal(a, b) end,
  ["<"] = function(a, b) return a < b end,
  ["<="] = function(a, b) return a <= b end,
  [">"] = function(a, b) return a > b end,
  [">="] = function(a, b) return a >= b end,
}

function P:led(tok, left)
  local t = tok.t
  if t == "." then
    local right = self:dot_rhs(40)
    return function(v) return right(left(v)) end
  elseif t == "[]" then
    return projection(flatten(left), self:projection_rhs(9))
  elseif t == "[?" then
    local cond = self:expr(0)
    self:expect("]")
    local right = self:projection_rhs(21)
    return function(v)
      local l = left(v)
      if not is_list(l) then return nil end
      local out = {}
      for _, e in ipairs(l) do
        if truthy(cond(e)) then
          local r = right(e)
          if r ~= nil then out[#out + 1] = r end
        end
      end
      return out
    end
  elseif t == "[" then
    local n = self:expect("num").v
    self:expect("]")
    return function(v)
      local l = left(v)
      if not is_list(l) then return nil end
      if n < 0 then return l[#l + n + 1] end
      return l[n + 1]
    end
  elseif CMP[t] then
    local right = self:expr(5)
    local f = CMP[t]
    local ordered = t ~= "==" and t ~= "!="
    return function(v)
      local a, b = left(v), right(v)
      if ordered and (type(a) ~= "number" or type(b) ~= "number") then return nil end
      return f(a, b)
    end
  elseif t == "&&" then
    local right = self:expr(3)
    return function(v)
      local a = left(v)
      if not truthy(a) then return a end
      return right(v)
    end
  elseif t == "||" then
    local right = self:expr(2)
    return function(v)
      local a = left(v)
      if truthy(a) then return a end
      return right(v)
    end
  end
  error(string.format("jmespath: unexpected %s at %d in %q", t, tok.pos, self.src), 0)
end

local cache = {}

function M.compile(src)
  local f = cache[src]
  if f then return f end
  local p = setmetatable({ toks = tokenize(src), i = 1, src = src }, P)
  f = p:expr(0)
  if p:peek().t ~= "eof" then
    error(string.format("jmespath: unexpected %s at %d in %q", p:peek().t, p:peek().pos, src), 0)
  end
  cache[src] = f
  return f
end

function M.search(src, value)
  return M.compile(src)(value)
end

return M
