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

return M
