--[[
ecsplay.util.tables: copying and small table helpers. Part of the closed
kernel: requires nothing.
]]
local M = {}

-- A deep copy of plain data (no metatables, no cycles: AWS inputs/outputs,
-- scenario tables, journal records).
function M.copy(v)
  if type(v) ~= "table" then return v end
  local c = {}
  for k, x in pairs(v) do c[k] = M.copy(x) end
  return c
end

-- A one-level copy.
function M.shallow_copy(t)
  local c = {}
  for k, v in pairs(t or {}) do c[k] = v end
  return c
end

--[[ Whether a and b hold the same plain data: tables compared key by key,
     deeply (no metatables, no cycles), everything else with ==, so 100 and
     100.0 (a count read back from JSON) are the same. JSON text is no test
     of this: the order of an encoded table's keys varies from table to table. ]]
function M.equal(a, b)
  if a == b then return true end
  if type(a) ~= "table" or type(b) ~= "table" then return false end
  for k, v in pairs(a) do
    if not M.equal(v, b[k]) then return false end
  end
  for k in pairs(b) do
    if a[k] == nil then return false end
  end
  return true
end

-- Sorted keys of a table (for stable output and messages).
function M.keys(t)
  local out = {}
  for k in pairs(t) do out[#out + 1] = k end
  table.sort(out, function(a, b) return tostring(a) < tostring(b) end)
  return out
end

-- A number as keys spell it: integers plainly, floats with every digit.
function M.number_text(v)
  return math.type(v) == "integer" and tostring(v) or string.format("%.17g", v)
end

local function by_text(a, b) return tostring(a) < tostring(b) end

--[[ A canonical text of plain data (keys sorted), for values that must match as keys do
     (a batch's parameters, a registration's content): appended to out from position n,
     → the new n. Strings are length-prefixed ("5:hello": no other value spells that)
     rather than %q-quoted: a key is made for every request. ]]
function M.canonical_into(v, out, n)
  local t = type(v)
  if t == "table" then
    local keys, count, plain = {}, 0, true
    for k in pairs(v) do
      count = count + 1
      keys[count] = k
      if type(k) ~= "string" then plain = false end
    end
    if count > 1 then table.sort(keys, (not plain) and by_text or nil) end
    n = n + 1
    out[n] = "{"
    for i = 1, count do
      local k = keys[i]
      n = M.canonical_into(k, out, n)
      n = n + 1
      out[n] = "="
      n = M.canonical_into(v[k], out, n)
      n = n + 1
      out[n] = ","
    end
    n = n + 1
    out[n] = "}"
  elseif t == "string" then
    n = n + 1
    out[n] = #v .. ":" .. v
  elseif t == "number" then
    n = n + 1
    out[n] = M.number_text(v)
  else
    n = n + 1
    out[n] = tostring(v)
  end
  return n
end

-- The canonical text of plain data as one string (see canonical_into).
function M.canonical(v)
  local out = {}
  return table.concat(out, "", 1, M.canonical_into(v, out, 0))
end

return M
