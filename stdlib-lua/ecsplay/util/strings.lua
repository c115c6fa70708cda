--[[
ecsplay.util.strings: text helpers every layer shares: one-line messages,
value descriptions for error text, and the one "did you mean" rule.
Part of the closed kernel: requires nothing.
]]
local M = {}

--[[ The part of s after its last "/" (all of s when it has none), or nil when that part is
     empty: an ARN's resource name ("arn:...:service/prod/api" → "api"). The same answer as
     s:match("([^/]+)$"), in time linear in #s: that pattern restarts at every byte and
     backtracks over the whole first segment each time, ~23 µs on a 53-byte ARN. ]]
function M.last_segment(s)
  local tail = s:match("^.*/(.*)$") -- the greedy .* backs up to the last "/" once
  if tail == nil then tail = s end
  if tail == "" then return nil end
  return tail
end

-- One line, at most `limit` bytes: control characters and runs of blanks
-- collapsed, so a message from outside never breaks a log line.
function M.one_line(s, limit)
  s = tostring(s or ""):gsub("[%c%s]+", " "):gsub("^ +", ""):gsub(" +$", "")
  limit = limit or 600
  if #s > limit then s = s:sub(1, limit - 3) .. "..." end
  return s
end

-- How a value is shown in an error: `string "4"`, `integer 4`, `a table`.
function M.describe_value(v)
  local t = type(v)
  if t == "string" then
    local s = #v > 40 and (v:sub(1, 37) .. "...") or v
    return string.format("string %q", s)
  elseif t == "number" then
    return (math.type(v) == "integer" and "integer " or "number ") .. tostring(v)
  elseif t == "table" then
    return "a table"
  elseif t == "nil" then
    return "nothing"
  end
  return t .. " " .. tostring(v)
end

function M.levenshtein(a, b)
  if a == b then return 0 end
  local la, lb = #a, #b
  local prev = {}
  for j = 0, lb do prev[j] = j end
  for i = 1, la do
    local cur = { [0] = i }
    local ca = a:byte(i)
    for j = 1, lb do
      local cost = (ca == b:byte(j)) and 0 or 1
      local v = prev[j] + 1
      if cur[j - 1] + 1 < v then v = cur[j - 1] + 1 end
      if prev[j - 1] + cost < v then v = prev[j - 1] + cost end
      cur[j] = v
    end
    prev = cur
  end
  return prev[lb]
end

--[[ The closest name to a misspelt one, or nil: a case-insensitive match
     first, then the smallest edit distance within half the name's length
     (at least 2); ties go to the alphabetically first so every run answers
     the same. `candidates` is a list, or a set (names as keys). ]]
function M.suggest(name, candidates)
  name = tostring(name)
  local list = {}
  if candidates[1] ~= nil or next(candidates) == nil then
    for _, c in ipairs(candidates) do list[#list + 1] = c end
  else
    for c in pairs(candidates) do list[#list + 1] = c end
  end
  local lname = name:lower()
  for _, c in ipairs(list) do
    if c:lower() == lname then return c end
  end
  local best, bestd = nil, math.max(2, #name // 2) + 1
  for _, c in ipairs(list) do
    local d = M.levenshtein(lname, c:lower())
    if d < bestd or (d == bestd and best and c < best) then best, bestd = c, d end
  end
  return best
end

-- "; did you mean `x`?" (or with %q quoting for values), else "" or the list
-- of what is allowed when `list_all` is set.
function M.did_you_mean(name, candidates, opts)
  opts = opts or {}
  local hint = M.suggest(name, candidates)
  if hint then
    return opts.quote and string.format("; did you mean %q?", hint)
      or ("; did you mean `" .. hint .. "`?")
  end
  if opts.list_all then
    local names = {}
    if candidates[1] ~= nil then
      for _, c in ipairs(candidates) do names[#names + 1] = c end
    else
      for c in pairs(candidates) do names[#names + 1] = c end
    end
    table.sort(names)
    return "; expected one of " .. table.concat(names, ", ")
  end
  return ""
end

return M
