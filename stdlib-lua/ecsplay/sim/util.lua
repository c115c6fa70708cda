--[[
Small helpers every simulated service uses, kept in one place.
]]
local duration = require "ecsplay.duration"

local M = {}

-- A deep copy: state handed out in answers must not alias the world's tables.
function M.copy(v)
  if type(v) ~= "table" then return v end
  local out = {}
  for k, x in pairs(v) do out[k] = M.copy(x) end
  return out
end

-- A duration from a scenario (seconds, or "90s", "5m", "1h30m"); raises
-- "<where>: <what was expected>" so a bad scenario names its field.
function M.duration(v, where)
  local s, err = duration.parse(v)
  if not s then error(where .. ": " .. err, 0) end
  return s
end

return M
