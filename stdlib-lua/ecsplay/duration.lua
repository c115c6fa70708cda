--[[
Durations as users write them: numbers are seconds; strings are "90s", "5m",
"1h30m", "1.5h", "250ms", "2d" or a bare number. parse() returns seconds or
nil and a message that says what was expected.
]]
local strings = require "ecsplay.util.strings"

local M = {}

local UNITS = { ms = 0.001, s = 1, m = 60, h = 3600, d = 86400 }

function M.parse(d)
  if type(d) == "number" then
    if d ~= d or d < 0 or d == math.huge then
      return nil, "expected a duration of 0 seconds or more, got " .. tostring(d)
    end
    return d
  end
  if type(d) ~= "string" then
    return nil, "expected a duration (seconds, or a string like \"90s\", \"5m\", \"1h30m\"), got "
      .. strings.describe_value(d)
  end
  local s = d:gsub("%s+", "")
  if s == "" then return nil, "expected a duration, got an empty string" end
  local n = tonumber(s)
  if n then return M.parse(n) end
  local total, pos = 0, 1
  while pos <= #s do
    local num, unit, after = s:match("^(%d+%.?%d*)(%a+)()", pos)
    if not num or not UNITS[unit] then
      return nil, string.format("bad duration %q: expected numbers with units ms, s, m, h or d, "
        .. "like \"90s\", \"5m\" or \"1h30m\"", d)
    end
    total = total + tonumber(num) * UNITS[unit]
    pos = after
  end
  return total
end

-- Like parse, but raises a usage error naming `what` (e.g. "bake").
function M.check(d, what, level)
  local v, err = M.parse(d)
  if not v then error((what and (what .. ": ") or "") .. err, (level or 1) + 1) end
  return v
end

-- 330 -> "5m30s"; 0.25 -> "250ms"; -5 -> "-5s" (a difference of two times can be negative)
function M.format(s)
  if s < 0 then return "-" .. M.format(-s) end
  if s < 1 and s > 0 then return string.format("%dms", math.floor(s * 1000 + 0.5)) end
  s = math.floor(s + 0.5)
  local h, m, sec = s // 3600, (s % 3600) // 60, s % 60
  local out = {}
  if h > 0 then out[#out + 1] = h .. "h" end
  if m > 0 then out[#out + 1] = m .. "m" end
  if sec > 0 or #out == 0 then out[#out + 1] = sec .. "s" end
  return table.concat(out)
end

return M
