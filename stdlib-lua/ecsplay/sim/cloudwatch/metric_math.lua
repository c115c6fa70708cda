--[[
Metric math for the simulated CloudWatch (GetMetricData expressions and alarms
on Metrics). Pure: no world, no clock; the caller supplies an environment.

Supported subset (what rollout gates use; anything else is a ValidationError
naming the expression):
  numbers, query ids (m1, e1, ...), "strings" (METRICS filter only)
  + - * / and unary minus, ^ (power), parentheses
  SUM(x) AVG(x) MIN(x) MAX(x)  x an array -> series per timestamp over the
                               members present; x a series -> scalar over its
                               points (as AWS); x a scalar -> x
  METRICS() METRICS("s")       array of the request's MetricStat queries
                               (those whose Id or Label contains s)
  FILL(x, v | REPEAT | LINEAR) fill the gaps of the period grid
  ABS(x) RATE(x) DIFF(x) PERIOD(x)
  [a, b, ...]                  an explicit array
Semantics: series op series keeps the timestamps both have; series op scalar
maps every point; a division by zero drops that point (CloudWatch returns no
value there); array op x applies to each member.

Values: { k = "scalar", v = n } | { k = "series", ts = {...}, vs = {...},
period = p } (ts ascending) | { k = "array", list = { series... } }.

env = {
  lookup  = function(id) -> value or nil (unknown id),
  metrics = function(filter_or_nil) -> { series, ... },
  grid    = function(period) -> { t1, t2, ... } ascending bucket starts,
  period  = default period (seconds) }
]]
local M = {}

-- A malformed expression: caught at this module's edge (M.parse, M.eval), which answer nil, message.
local function fail(msg) error({ math_error = msg }, 0) end

-- Tokens: { t = "num"|"id"|"str"|"op", v = ... }
local function tokenize(s)
  local toks, i, n = {}, 1, #s
  while i <= n do
    local c = s:sub(i, i)
    if c:match("%s") then
      i = i + 1
    elseif c:match("[%d%.]") then
      local num = s:match("^%d*%.?%d+[eE][%+%-]?%d+", i) or s:match("^%d*%.?%d*", i)
      local v = tonumber(num)
      if not v then fail(string.format("invalid number '%s' at position %d", num, i)) end
      toks[#toks + 1] = { t = "num", v = v, pos = i }
      i = i + #num
    elseif c:match("[%a_]") then
      local id = s:match("^[%a_][%w_]*", i)
      toks[#toks + 1] = { t = "id", v = id, pos = i }
      i = i + #id
    elseif c == '"' or c == "'" then
      local j = s:find(c, i + 1, true)
      if not j then fail(string.format("unterminated string at position %d", i)) end
      toks[#toks + 1] = { t = "str", v = s:sub(i + 1, j - 1), pos = i }
      i = j + 1
    elseif c:match("[%+%-%*/%^%(%),%[%]]") then
      toks[#toks + 1] = { t = "op", v = c, pos = i }
      i = i + 1
    else
      fail(string.format("unexpected character '%s' at position %d", c, i))
    end
  end
  return toks
end

-- Recursive-descent parser producing a small AST; `ps` is { toks = tokens, p = next index }.
local function peek(ps) return ps.toks[ps.p] end
local function is_op(ps, v) local t = ps.toks[ps.p]; return t and t.t == "op" and t.v == v end
local function expect(ps, v)
  if not is_op(ps, v) then
    local t = ps.toks[ps.p]
    fail(string.format("expected '%s' %s", v, t and ("at position " .. t.pos) or "at end"))
  end
  ps.p = ps.p + 1
end

local expr

-- Comma-separated expressions up to `close` (consumed); none at all only when `empty_ok`.
local function expr_list(ps, close, empty_ok)
  local items = {}
  if not (empty_ok and is_op(ps, close)) then
    repeat
      items[#items + 1] = expr(ps)
      local more = is_op(ps, ",")
      if more then ps.p = ps.p + 1 end
    until not more
  end
  expect(ps, close)
  return items
end

local function primary(ps)
  local t = peek(ps)
  if not t then fail("unexpected end of expression") end
  if t.t == "num" then ps.p = ps.p + 1 return { n = "num", v = t.v } end
  if t.t == "str" then ps.p = ps.p + 1 return { n = "str", v = t.v } end
  if t.t == "id" then
    ps.p = ps.p + 1
    if is_op(ps, "(") then
      ps.p = ps.p + 1
      return { n = "call", f = t.v:upper(), args = expr_list(ps, ")", true) }
    end
    return { n = "id", v = t.v }
  end
  if is_op(ps, "(") then
    ps.p = ps.p + 1
    local e = expr(ps)
    expect(ps, ")")
    return e
  end
  if is_op(ps, "[") then
    ps.p = ps.p + 1
    return { n = "list", items = expr_list(ps, "]", false) }
  end
  fail(string.format("unexpected '%s' at position %d", tostring(t.v), t.pos))
end

local unary
local function power(ps)
  local base = primary(ps)
  if is_op(ps, "^") then ps.p = ps.p + 1 return { n = "bin", op = "^", a = base, b = unary(ps) } end
  return base
end
unary = function(ps)
  if is_op(ps, "-") then ps.p = ps.p + 1 return { n = "neg", a = unary(ps) } end
  if is_op(ps, "+") then ps.p = ps.p + 1 return unary(ps) end
  return power(ps)
end

-- One precedence level of left-associative binary operators (op1, op2) over the tighter `operand`.
local function left_assoc(op1, op2, operand)
  return function(ps)
    local a = operand(ps)
    while is_op(ps, op1) or is_op(ps, op2) do
      local op = ps.toks[ps.p].v
      ps.p = ps.p + 1
      a = { n = "bin", op = op, a = a, b = operand(ps) }
    end
    return a
  end
end
local term = left_assoc("*", "/", unary)
expr = left_assoc("+", "-", term)

local function parse(s)
  local ps = { toks = tokenize(s), p = 1 }
  local ast = expr(ps)
  local t = ps.toks[ps.p]
  if t then fail(string.format("unexpected '%s' at position %d", tostring(t.v), t.pos)) end
  return ast
end

local function scalar(v) return { k = "scalar", v = v } end
local function series(ts, vs, period) return { k = "series", ts = ts, vs = vs, period = period } end

local function apply(op, x, y)
  if op == "+" then return x + y
  elseif op == "-" then return x - y
  elseif op == "*" then return x * y
  elseif op == "/" then if y == 0 then return nil end return x / y
  else return x ^ y end
end

local binop
binop = function(op, a, b)
  if a.k == "array" or b.k == "array" then
    if a.k == "array" and b.k == "array" then fail("cannot combine two arrays of time series with '" .. op .. "'") end
    local out = {}
    for _, s in ipairs(a.k == "array" and a.list or b.list) do
      out[#out + 1] = a.k == "array" and binop(op, s, b) or binop(op, a, s)
    end
    return { k = "array", list = out }
  end
  if a.k == "scalar" and b.k == "scalar" then
    local v = apply(op, a.v, b.v)
    if v == nil then fail("division by zero") end
    return scalar(v)
  end
  if a.k == "series" and b.k == "series" then
    local idx = {}
    for i, t in ipairs(b.ts) do idx[t] = b.vs[i] end
    local ts, vs = {}, {}
    for i, t in ipairs(a.ts) do
      local y = idx[t]
      if y ~= nil then
        local v = apply(op, a.vs[i], y)
        if v ~= nil then ts[#ts + 1] = t; vs[#vs + 1] = v end
      end
    end
    return series(ts, vs, a.period or b.period)
  end
  local s = a.k == "series" and a or b
  local ts, vs = {}, {}
  for i, t in ipairs(s.ts) do
    local v = a.k == "series" and apply(op, s.vs[i], b.v) or apply(op, a.v, s.vs[i])
    if v ~= nil then ts[#ts + 1] = t; vs[#vs + 1] = v end
  end
  return series(ts, vs, s.period)
end

local REDUCE = {
  SUM = function(vs) local s = 0 for _, v in ipairs(vs) do s = s + v end return s end,
  AVG = function(vs) local s = 0 for _, v in ipairs(vs) do s = s + v end return s / #vs end,
  MIN = function(vs) local m = math.huge for _, v in ipairs(vs) do if v < m then m = v end end return m end,
  MAX = function(vs) local m = -math.huge for _, v in ipairs(vs) do if v > m then m = v end end return m end,
}

local function reduce(f, x)
  if x.k == "scalar" then return x end
  if x.k == "series" then
    if #x.vs == 0 then return series({}, {}, x.period) end
    return scalar(REDUCE[f](x.vs))
  end
  -- array: per timestamp over the members that have a value there
  local at, order, period = {}, {}, nil
  for _, s in ipairs(x.list) do
    if s.k ~= "series" then fail(f .. " expects time series") end
    period = period or s.period
    for i, t in ipairs(s.ts) do
      if not at[t] then at[t] = {}; order[#order + 1] = t end
      local bucket = at[t]
      bucket[#bucket + 1] = s.vs[i]
    end
  end
  table.sort(order)
  local vs = {}
  for i, t in ipairs(order) do vs[i] = REDUCE[f](at[t]) end
  return series(order, vs, period)
end

local function each_series(x, fn_name, fn)
  if x.k == "array" then
    local out = {}
    for i, s in ipairs(x.list) do out[i] = fn(s) end
    return { k = "array", list = out }
  end
  if x.k ~= "series" then fail(fn_name .. " expects a time series") end
  return fn(x)
end

local function fill(env, x, how)
  return each_series(x, "FILL", function(s)
    local grid = env.grid(s.period or env.period)
    local idx = {}
    for i, t in ipairs(s.ts) do idx[t] = s.vs[i] end
    local ts, vs = {}, {}
    local last
    for gi, t in ipairs(grid) do
      local v = idx[t]
      if v == nil then
        if how == "REPEAT" then
          v = last
        elseif how == "LINEAR" then
          -- between the neighbouring real values; none on one side: nothing
          local prev_t, prev_v, next_t, next_v
          for j = gi - 1, 1, -1 do if idx[grid[j]] then prev_t, prev_v = grid[j], idx[grid[j]] break end end
          for j = gi + 1, #grid do if idx[grid[j]] then next_t, next_v = grid[j], idx[grid[j]] break end end
          if prev_t and next_t then v = prev_v + (next_v - prev_v) * (t - prev_t) / (next_t - prev_t) end
        else
          v = how
        end
      end
      if v ~= nil then ts[#ts + 1] = t; vs[#vs + 1] = v; last = v end
    end
    return series(ts, vs, s.period)
  end)
end

local eval

-- Checks a call's argument count: `lo` exactly, or lo to hi.
local function argc(f, args, lo, hi)
  if #args < lo or #args > (hi or lo) then
    fail(string.format("%s takes %s argument(s), got %d", f, hi and hi ~= lo and (lo .. "-" .. hi) or lo, #args))
  end
end

-- The functions of metric math besides SUM/AVG/MIN/MAX: FUNCTIONS[name](env, args) -> value.
local FUNCTIONS = {}

function FUNCTIONS.METRICS(env, args)
  argc("METRICS", args, 0, 1)
  local filter
  if args[1] then
    local a = eval(args[1], env)
    if a.k ~= "str" then fail("METRICS expects a string filter") end
    filter = a.v
  end
  return { k = "array", list = env.metrics(filter) }
end

function FUNCTIONS.FILL(env, args)
  argc("FILL", args, 2)
  local x, how = eval(args[1], env), eval(args[2], env)
  local h
  if how.k == "scalar" then h = how.v
  elseif how.k == "kw" then h = how.v
  else fail("FILL expects a number, REPEAT or LINEAR as its second argument") end
  return fill(env, x, h)
end

function FUNCTIONS.ABS(env, args)
  argc("ABS", args, 1)
  local x = eval(args[1], env)
  if x.k == "scalar" then return scalar(math.abs(x.v)) end
  return each_series(x, "ABS", function(s)
    local vs = {}
    for i, v in ipairs(s.vs) do vs[i] = math.abs(v) end
    return series(s.ts, vs, s.period)
  end)
end

-- RATE (per second) and DIFF: the change from each point to the next.
local function change(f)
  return function(env, args)
    argc(f, args, 1)
    return each_series(eval(args[1], env), f, function(s)
      local ts, vs = {}, {}
      for i = 2, #s.ts do
        local d = s.vs[i] - s.vs[i - 1]
        ts[#ts + 1] = s.ts[i]
        vs[#vs + 1] = f == "RATE" and d / (s.ts[i] - s.ts[i - 1]) or d
      end
      return series(ts, vs, s.period)
    end)
  end
end
FUNCTIONS.RATE = change("RATE")
FUNCTIONS.DIFF = change("DIFF")

function FUNCTIONS.PERIOD(env, args)
  argc("PERIOD", args, 1)
  local x = eval(args[1], env)
  if x.k ~= "series" then fail("PERIOD expects a time series") end
  return scalar(x.period or env.period)
end

local function eval_call(node, env)
  local f, args = node.f, node.args
  if REDUCE[f] then
    argc(f, args, 1)
    return reduce(f, eval(args[1], env))
  end
  local fn = FUNCTIONS[f]
  if not fn then
    fail("unsupported function '" .. f .. "' (supported: SUM AVG MIN MAX METRICS FILL ABS RATE DIFF PERIOD)")
  end
  return fn(env, args)
end

local function eval_list(node, env)
  local list = {}
  for _, item in ipairs(node.items) do
    local v = eval(item, env)
    if v.k == "series" then list[#list + 1] = v
    elseif v.k == "array" then for _, s in ipairs(v.list) do list[#list + 1] = s end
    else fail("array members must be time series") end
  end
  return { k = "array", list = list }
end

eval = function(node, env)
  local n = node.n
  if n == "num" then return scalar(node.v) end
  if n == "str" then return { k = "str", v = node.v } end
  if n == "id" then
    local up = node.v:upper()
    if up == "REPEAT" or up == "LINEAR" then return { k = "kw", v = up } end
    local v = env.lookup(node.v)
    if v == nil then fail("unrecognized identifier '" .. node.v .. "'") end
    return v
  end
  if n == "neg" then return binop("*", scalar(-1), eval(node.a, env)) end
  if n == "bin" then
    local a, b = eval(node.a, env), eval(node.b, env)
    for _, x in ipairs({ a, b }) do
      if x.k ~= "scalar" and x.k ~= "series" and x.k ~= "array" then fail("operator '" .. node.op .. "' needs numbers or time series") end
    end
    return binop(node.op, a, b)
  end
  if n == "list" then return eval_list(node, env) end
  return eval_call(node, env)
end

-- Runs fn(...): its result, or nil and the message of a metric math error (anything else raises).
local function protect(fn, ...)
  local ok, res = pcall(fn, ...)
  if ok then return res end
  if type(res) == "table" and res.math_error then return nil, res.math_error end
  error(res, 0)
end

-- Parses expr: ast, or nil and a message.
function M.parse(expr_text)
  return protect(parse, expr_text)
end

-- Evaluates expr (a string or a parsed ast): value, or nil and a message.
function M.eval(expr_or_ast, env)
  return protect(function()
    local ast = expr_or_ast
    if type(expr_or_ast) == "string" then ast = parse(expr_or_ast) end
    return eval(ast, env)
  end)
end

-- The query ids an expression refers to (for dependency checks).
function M.references(ast)
  local out = {}
  local function walk(node)
    if node.n == "id" then out[#out + 1] = node.v end
    if node.a then walk(node.a) end
    if node.b then walk(node.b) end
    for _, x in ipairs(node.args or node.items or {}) do walk(x) end
  end
  walk(ast)
  return out
end

M.series = series
M.scalar = scalar
return M
