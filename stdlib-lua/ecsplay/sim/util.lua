--[[
Small helpers every simulated service uses, kept in one place.
]]
local tables = require "ecsplay.util.tables"
local duration = require "ecsplay.duration"
local errors = require "ecsplay.errors"

local M = {}

-- A deep copy: state handed out in answers must not alias the world's tables.
M.copy = tables.copy

-- A duration from a scenario (seconds, or "90s", "5m", "1h30m"); raises a
-- scenario error "<where>: <what was expected>" so a bad scenario names its field.
function M.duration(v, where)
  local s, err = duration.parse(v)
  if not s then error(errors.new("scenario", { field = where, message = where .. ": " .. err }), 0) end
  return s
end

return M
