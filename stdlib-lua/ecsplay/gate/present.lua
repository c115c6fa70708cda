--[[
ecsplay.gate.present: how a round of measurements reads, for people and for
machines. The bake (rollout/bake.lua) logs each measurement as a `gate`
event and each round as one `round` event; this module gives both their
fields and the round its one line (docs/events.md is the contract):

  present.gate_fields(g, m)        a measurement as data: gate (its name), label,
                                   value, unit, threshold, verdict (and result, its
                                   older name), window, detail, dry_run
  present.at(fields, pos)          a copy with pos's step, weight and phase: the
                                   `gate` event's fields
  present.cell(entry, mark)        one gate of a round: "5xx 0.20% < 1% ✓"
  present.round_line(entries, pos) "step 3/5 25% [2m/3m]  5xx 0.20% < 1% ✓  p99 148 ms < 300 ms ✓"
  present.MARKS                    verdict -> ✓ ✗ ? !

entries are gate_fields tables; pos = { step=, step_count=, weight=, phase=,
elapsed=, bake= } (each optional). Labels are the gates' short names
("5xx", "p99", "alarm"); where two gates of a round share one, their full
names are used.
]]
local duration = require "ecsplay.duration"
local tracker = require "ecsplay.gate.tracker"

local M = {}

M.MARKS = { pass = "✓", fail = "✗", inconclusive = "?", error = "!" }

local function iso(t)
  local whole = math.floor(t)
  return os.date("!%Y-%m-%dT%H:%M:%S", whole) .. string.format(".%03dZ", math.floor((t - whole) * 1000))
end

-- A measurement's window for JSON: ISO times and the period in seconds.
local function window_fields(w)
  if type(w) ~= "table" or type(w.from) ~= "number" or type(w.to) ~= "number" then return nil end
  return { from = iso(w.from), to = iso(w.to), period = w.period }
end

-- A number JSON can carry (no NaN or infinity), else nil.
local function finite(v)
  if type(v) == "number" and v == v and v ~= math.huge and v ~= -math.huge then return v end
  return nil
end

function M.gate_fields(g, m)
  local value = m.value
  if type(value) == "number" then value = finite(value) elseif value ~= nil then value = tostring(value) end
  return {
    gate = g.name, label = g.label or g.name, value = value, unit = m.unit or g.unit,
    threshold = m.threshold and tostring(m.threshold) or nil, verdict = m.result, result = m.result,
    window = window_fields(m.window),
    detail = m.detail, dry_run = g.dry_run or nil,
  }
end

function M.at(fields, pos)
  local out = {}
  for k, v in pairs(fields) do out[k] = v end
  out.step, out.weight, out.phase = pos.step, pos.weight, pos.phase
  return out
end

-- A threshold worth repeating on a passing cell: a comparison ("< 1%", ">= 2").
local function comparison(threshold)
  return type(threshold) == "string" and threshold:match("^[<>=!]") ~= nil
end

function M.cell(e, mark, label)
  local parts = { label or e.label or e.gate }
  local v = tracker.format_value(e.value, e.unit)
  parts[#parts + 1] = v or "-"
  if comparison(e.threshold) then parts[#parts + 1] = e.threshold end
  parts[#parts + 1] = mark or M.MARKS[e.verdict] or e.verdict
  local s = table.concat(parts, " ")
  if e.verdict ~= "pass" then
    local why = {}
    if e.detail then why[#why + 1] = e.detail
    elseif e.threshold and not comparison(e.threshold) then why[#why + 1] = "want " .. e.threshold end
    if #why > 0 then s = s .. " (" .. table.concat(why, "; ") .. ")" end
  end
  if e.dry_run then s = s .. " [dry run]" end
  return s
end

-- The label each entry is shown with: its own, unless another gate of the
-- round has the same one (then its full name).
function M.labels(entries)
  local seen, out = {}, {}
  for _, e in ipairs(entries) do
    local l = e.label or e.gate
    seen[l] = (seen[l] or 0) + 1
  end
  for i, e in ipairs(entries) do
    local l = e.label or e.gate
    out[i] = seen[l] > 1 and e.gate or l
  end
  return out
end

-- "step 3/5 25% [2m/3m]": where the round stands, from what pos knows.
function M.position(pos)
  local parts = {}
  if pos.step then
    parts[#parts + 1] = "step " .. tostring(pos.step) .. (pos.step_count and ("/" .. tostring(pos.step_count)) or "")
  elseif pos.phase then
    parts[#parts + 1] = tostring(pos.phase)
  end
  if type(pos.weight) == "number" then parts[#parts + 1] = string.format("%g%%", pos.weight) end
  if type(pos.elapsed) == "number" then
    local bake = type(pos.bake) == "number" and pos.bake > 0 and pos.bake or nil
    -- past the bake, the step is held until the metrics of its last minutes are
    -- published (CloudWatch's delay): say so rather than show "6m/5m" bare
    local late = bake and pos.elapsed > bake and ", awaiting the bake's metrics" or ""
    parts[#parts + 1] = "[" .. duration.format(math.max(0, pos.elapsed))
      .. (bake and ("/" .. duration.format(bake)) or "") .. late .. "]"
  end
  return table.concat(parts, " ")
end

-- "10:09-10:10" (seconds shown when a bound is not on the minute), from a window's ISO times.
local function window_text(w)
  local from, to = w.from:sub(12, 19), w.to:sub(12, 19)
  if from:sub(-3) == ":00" and to:sub(-3) == ":00" then from, to = from:sub(1, 5), to:sub(1, 5) end
  return from .. "-" .. to
end

-- The window the round judged, when its metric gates share one: "  [10:09-10:10]".
local function shared_window(entries)
  local w
  for _, e in ipairs(entries) do
    if e.window then
      local text = window_text(e.window)
      if w and w ~= text then return "" end
      w = text
    end
  end
  return w and ("  [" .. w .. "]") or ""
end

function M.round_line(entries, pos, marks)
  local labels, cells = M.labels(entries), {}
  for i, e in ipairs(entries) do cells[i] = M.cell(e, marks and marks[i], labels[i]) end
  local head = M.position(pos or {})
  return (head ~= "" and (head .. "  ") or "") .. table.concat(cells, "  ") .. shared_window(entries)
end

return M
