--[[
JSON for playbooks and the runtime: lua-cjson underneath, with errors that say
where (cjson's "Expected value but found invalid token at character 12").
json.null is cjson's null sentinel; decode keeps JSON null as json.null.
]]
local cjson = require "cjson"

local M = { null = cjson.null }
local encoder = cjson.new()
encoder.encode_sparse_array(true)
encoder.encode_invalid_numbers(false)
local decoder = cjson.new()
decoder.decode_invalid_numbers(false)

-- Marks a table to be encoded as a JSON array even when empty.
local array_mt = { __jsontype = "array" }
function M.array(t) return setmetatable(t or {}, array_mt) end

local function has_empty_arrays(v, seen)
  if type(v) ~= "table" then return false end
  if getmetatable(v) == array_mt and next(v) == nil then return true end
  seen = seen or {}
  if seen[v] then return false end
  seen[v] = true
  for _, x in pairs(v) do if has_empty_arrays(x, seen) then return true end end
  return false
end

-- cjson 2.1.0 always writes "/" as "\/"; every backslash in its output starts an
-- escape pair and "/" never appears unescaped inside strings, so this is exact.
local function unescape_slashes(s) return (s:gsub("\\/", "/")) end

function M.encode(v)
  local ok, s = pcall(encoder.encode, v)
  if not ok then return nil, "cannot encode JSON: " .. tostring(s) end
  s = unescape_slashes(s)
  if has_empty_arrays(v) then
    -- cjson 2.1.0 writes every empty table as {}; mark empty arrays and patch them
    local marker = "\0ecsplay-empty-array\0"
    local function mark(x, seen)
      if type(x) ~= "table" then return x end
      if getmetatable(x) == array_mt and next(x) == nil then return marker end
      if seen[x] then return x end
      seen[x] = true
      local copy = {}
      for k, y in pairs(x) do copy[k] = mark(y, seen) end
      return copy
    end
    s = unescape_slashes(encoder.encode(mark(v, {}))):gsub('"\\u0000ecsplay%-empty%-array\\u0000"', "[]")
  end
  return s
end

function M.decode(s)
  if type(s) ~= "string" then return nil, "cannot decode JSON: expected a string, got " .. type(s) end
  local ok, v = pcall(decoder.decode, s)
  if not ok then return nil, "invalid JSON: " .. tostring(v):gsub("^.-: ", "") end
  return v
end

return M
