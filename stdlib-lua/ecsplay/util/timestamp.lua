-- Timestamps on the AWS wire: ISO 8601 strings (query/XML) and epoch seconds (JSON).
-- Pure arithmetic in UTC: os.time() would apply the local time zone.
local M = {}

-- Days since 1970-01-01 for a proleptic Gregorian date (H. Hinnant's days_from_civil).
local function days_from_civil(y, m, d)
  if m <= 2 then y = y - 1 end
  local era = (y >= 0 and y or y - 399) // 400
  local yoe = y - era * 400
  local mp = (m + 9) % 12
  local doy = (153 * mp + 2) // 5 + d - 1
  local doe = yoe * 365 + yoe // 4 - yoe // 100 + doy
  return era * 146097 + doe - 719468
end

local function civil_from_days(z)
  z = z + 719468
  local era = (z >= 0 and z or z - 146096) // 146097
  local doe = z - era * 146097
  local yoe = (doe - doe // 1460 + doe // 36524 - doe // 146096) // 365
  local y = yoe + era * 400
  local doy = doe - (365 * yoe + yoe // 4 - yoe // 100)
  local mp = (5 * doy + 2) // 153
  local d = doy - (153 * mp + 2) // 5 + 1
  local m = mp < 10 and mp + 3 or mp - 9
  if m <= 2 then y = y + 1 end
  return y, m, d
end

-- Epoch seconds from calendar fields (UTC).
function M.timegm(y, mo, d, h, mi, s)
  return days_from_civil(y, mo, d) * 86400 + (h or 0) * 3600 + (mi or 0) * 60 + (s or 0)
end

-- Parse "2026-11-26T10:00:00Z", "...T10:00:00.123Z", "...+02:00", "2026-11-26" → epoch
-- seconds (integer when there is no fraction), or nil and a message.
function M.parse(s)
  if type(s) ~= "string" then return nil, "timestamp must be a string" end
  local y, mo, d, rest = s:match("^(%d%d%d%d)%-(%d%d)%-(%d%d)(.*)$")
  if not y then
    return nil, string.format("not an ISO 8601 timestamp: %q (expected like 2026-11-26T10:00:00Z)", s)
  end
  y, mo, d = tonumber(y), tonumber(mo), tonumber(d)
  local h, mi, sec, frac, tz = 0, 0, 0, nil, ""
  if rest ~= "" then
    local hh, mm, tail = rest:match("^[Tt ](%d%d):(%d%d)(.*)$")
    if not hh then return nil, string.format("not an ISO 8601 timestamp: %q", s) end
    h, mi = tonumber(hh), tonumber(mm)
    local ss, tail2 = tail:match("^:(%d%d)(.*)$")
    if ss then sec, tail = tonumber(ss), tail2 end
    local f, tail3 = tail:match("^[%.,](%d+)(.*)$")
    if f then frac, tail = f, tail3 end
    tz = tail
  end
  if mo < 1 or mo > 12 or d < 1 or d > 31 or h > 24 or mi > 59 or sec > 60 then
    return nil, string.format("timestamp out of range: %q", s)
  end
  local offset = 0
  if tz ~= "" and tz ~= "Z" and tz ~= "z" then
    local sign, oh, om = tz:match("^([+-])(%d%d):?(%d%d)$")
    if not sign then return nil, string.format("bad time zone in timestamp %q", s) end
    offset = (tonumber(oh) * 3600 + tonumber(om) * 60) * (sign == "-" and -1 or 1)
  end
  local t = M.timegm(y, mo, d, h, mi, sec) - offset
  if frac and tonumber(frac) ~= 0 then
    return t + tonumber("0." .. frac)
  end
  return t
end

-- Accept what users and wires hand us: epoch number, ISO string, or a string of digits.
function M.to_epoch(v)
  if type(v) == "number" then return v end
  if type(v) == "string" then
    local n = tonumber(v)
    if n and v:match("^%s*[%d%.eE+-]+%s*$") then return n end
    return M.parse(v)
  end
  return nil, "timestamp must be a number (epoch seconds) or an ISO 8601 string, got " .. type(v)
end

local function split(t)
  local whole = math.floor(t)
  local ms = math.floor((t - whole) * 1000 + 0.5)
  if ms >= 1000 then whole, ms = whole + 1, ms - 1000 end
  return whole, ms
end

-- Epoch seconds → "2026-11-26T10:00:00.000Z" (with_ms ~= false) or "2026-11-26T10:00:00Z".
function M.iso8601(t, with_ms)
  local whole, ms = split(t)
  local days = whole // 86400
  local secs = whole - days * 86400
  local y, m, d = civil_from_days(days)
  local base = string.format("%04d-%02d-%02dT%02d:%02d:%02d", y, m, d,
    secs // 3600, (secs % 3600) // 60, secs % 60)
  if with_ms == false then return base .. "Z" end
  return string.format("%s.%03dZ", base, ms)
end

-- The form botocore's query serializer sends: no fraction unless there is one.
function M.iso8601_compact(t)
  local _, ms = split(t)
  return M.iso8601(t, ms ~= 0)
end

return M
