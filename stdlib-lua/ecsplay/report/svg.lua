--[[
The report's pictures, as inline SVG (no script, no fetch):

  svg.timeline(rollout)      the weight on the new version over time: one
                             segment per step (data-step="N", data-weight),
                             thin jumps between them, the rollback's drop
                             (data-undo) and a mark per event that is not a
                             change (data-mark="abort|control|undo|end")
  svg.gate_chart(rollout, g) one gate's values over the rollout's time: one
                             series (data-gate="NAME": a polyline and a dot per
                             measurement, data-verdict), its threshold
                             (data-threshold) and the steps as bands

Every text goes through esc (HTML/XML escaping); both pictures share the
rollout's time axis so they line up on the page.
]]
local duration = require "ecsplay.duration"

local M = {}

local W, LEFT, RIGHT, TOP, BOTTOM = 960, 56, 16, 14, 26

function M.esc(s)
  return (tostring(s):gsub("[&<>\"']", { ["&"] = "&amp;", ["<"] = "&lt;", [">"] = "&gt;", ['"'] = "&quot;",
    ["'"] = "&#39;" }))
end
local esc = M.esc

local function fmt(v) return string.format("%.1f", v) end

-- The rollout's time span (at least a minute, so a one-line journal still draws).
local function span(r)
  local from, to = r.started, r.ended
  for _, s in ipairs(r.steps) do
    from = from and s.started and math.min(from, s.started) or from or s.started
    to = to and s.ended and math.max(to, s.ended) or to or s.ended
  end
  from = from or 0
  to = to or from
  if to - from < 60 then to = from + 60 end
  return from, to
end

local function axis(r, height)
  local from, to = span(r)
  local plot_w, plot_h = W - LEFT - RIGHT, height - TOP - BOTTOM
  return {
    from = from, to = to, height = height, plot_h = plot_h,
    x = function(t) return LEFT + (math.max(from, math.min(to, t or from)) - from) / (to - from) * plot_w end,
  }
end

local TICKS = { 60, 120, 300, 600, 900, 1800, 3600, 7200, 10800, 21600, 43200, 86400 }

-- The time axis: a tick every nice interval, labelled HH:MM (UTC, as the log).
local function time_axis(ax)
  local every = TICKS[#TICKS]
  for _, t in ipairs(TICKS) do
    if (ax.to - ax.from) / t <= 8 then every = t break end
  end
  local out = { string.format('<line class="axis" x1="%d" y1="%s" x2="%d" y2="%s"/>', LEFT,
    fmt(ax.height - BOTTOM), W - RIGHT, fmt(ax.height - BOTTOM)) }
  local t = math.ceil(ax.from / every) * every
  while t <= ax.to do
    local x = ax.x(t)
    out[#out + 1] = string.format('<line class="tick" x1="%s" y1="%d" x2="%s" y2="%s"/>'
      .. '<text class="label" x="%s" y="%s" text-anchor="middle">%s</text>', fmt(x), TOP, fmt(x),
      fmt(ax.height - BOTTOM), fmt(x), fmt(ax.height - 8), os.date("!%H:%M", math.floor(t)))
    t = t + every
  end
  return table.concat(out)
end

local function value_axis(ax, lo, hi, unit)
  local out = {}
  for i = 0, 4 do
    local v = lo + (hi - lo) * i / 4
    local y = ax.y(v)
    out[#out + 1] = string.format('<line class="grid" x1="%d" y1="%s" x2="%d" y2="%s"/>'
      .. '<text class="label" x="%d" y="%s" text-anchor="end">%s</text>', LEFT, fmt(y), W - RIGHT, fmt(y),
      LEFT - 6, fmt(y + 4), esc(string.format("%.3g", v) .. (unit or "")))
  end
  return table.concat(out)
end

local function open_svg(height, label)
  return string.format('<svg class="chart" viewBox="0 0 %d %d" width="%d" '
    .. 'height="%d" role="img" aria-label="%s">', W, height, W, height, esc(label))
end

local MARKED = { abort = true, control = true, undo = true, ["end"] = true }

local function event_marks(r, ax)
  local out, undone = {}, false
  for _, e in ipairs(r.events) do
    if MARKED[e.kind] and e.time and not (e.kind == "undo" and undone) then
      undone = undone or e.kind == "undo"   -- one mark for a rollback's undo steps
      local x = ax.x(e.time)
      out[#out + 1] = string.format('<line class="mark mark-%s" data-mark="%s" x1="%s" y1="%d" x2="%s" y2="%s">'
        .. '<title>%s %s</title></line>', esc(e.kind), esc(e.kind), fmt(x), TOP, fmt(x), fmt(ax.height - BOTTOM),
        esc(os.date("!%H:%M:%S", math.floor(e.time))), esc(e.text or e.kind))
    end
  end
  return table.concat(out)
end

local function first_undo_time(r)
  for _, e in ipairs(r.events) do
    if e.kind == "undo" and e.time then return e.time end
  end
end

-- The weights picture of one rollout.
function M.timeline(r)
  local height = 220
  local ax = axis(r, height)
  ax.y = function(w) return TOP + (1 - (w or 0) / 100) * ax.plot_h end
  local out = { open_svg(height, "weight on the new version over time, one segment per step"),
    value_axis(ax, 0, 100, "%"), time_axis(ax) }
  local prev
  for _, s in ipairs(r.steps) do
    local x1, x2 = ax.x(s.started), ax.x(s.ended or s.started)
    local title = string.format("step %d%s, held %s", s.index, s.weight and (": " .. s.weight .. "%") or "",
      duration.format(s.held or 0))
    if s.weight then
      local y = ax.y(s.weight)
      if prev and prev.weight then
        out[#out + 1] = string.format('<line class="jump" x1="%s" y1="%s" x2="%s" y2="%s"/>', fmt(x1),
          fmt(ax.y(prev.weight)), fmt(x1), fmt(y))
      end
      out[#out + 1] = string.format('<line class="segment" data-step="%d" data-weight="%s" x1="%s" y1="%s" '
        .. 'x2="%s" y2="%s"><title>%s</title></line>', s.index, esc(s.weight), fmt(x1), fmt(y),
        fmt(math.max(x2, x1 + 2)), fmt(y), esc(title))
      out[#out + 1] = string.format('<text class="label step-label" x="%s" y="%s">%s</text>', fmt(x1 + 3),
        fmt(y - 5), esc(s.weight .. "%"))
    else
      out[#out + 1] = string.format('<rect class="segment phase" data-step="%d" x="%s" y="%d" width="%s" '
        .. 'height="%s"><title>%s</title></rect><text class="label" x="%s" y="%d">%s</text>', s.index, fmt(x1),
        TOP, fmt(math.max(x2 - x1, 2)), fmt(ax.plot_h), esc((s.message or "") .. " — " .. title), fmt(x1 + 3),
        TOP + 12, esc(s.message or ("step " .. s.index)))
    end
    prev = s
  end
  local undo_at = first_undo_time(r)
  if undo_at and prev and prev.weight and prev.weight > 0 then
    local x = ax.x(undo_at)
    out[#out + 1] = string.format('<line class="undo" data-undo="1" x1="%s" y1="%s" x2="%s" y2="%s">'
      .. '<title>rolled back: no traffic on the new version</title></line>', fmt(x), fmt(ax.y(prev.weight)),
      fmt(x), fmt(ax.y(0)))
  end
  out[#out + 1] = event_marks(r, ax)
  out[#out + 1] = "</svg>"
  return table.concat(out)
end

local VERDICT_Y = { inconclusive = true, error = true }

-- One gate's values against its threshold.
function M.gate_chart(r, g)
  local height = 170
  local ax = axis(r, height)
  local hi = g.threshold_value or 0
  for _, m in ipairs(g.measurements) do
    if m.value then hi = math.max(hi, m.value) end
  end
  local lo = 0
  for _, m in ipairs(g.measurements) do
    if m.value and m.value < lo then lo = m.value end
  end
  hi = hi > lo and hi * 1.15 or lo + 1
  ax.y = function(v) return TOP + (1 - ((v or lo) - lo) / (hi - lo)) * ax.plot_h end
  local unit = g.unit and (" " .. g.unit) or ""
  local out = { open_svg(height, g.name .. ": values against the threshold"), value_axis(ax, lo, hi, unit),
    time_axis(ax) }
  for i, s in ipairs(r.steps) do
    if i % 2 == 0 then
      local x1, x2 = ax.x(s.started), ax.x(s.ended or s.started)
      out[#out + 1] = string.format('<rect class="band" x="%s" y="%d" width="%s" height="%s"/>', fmt(x1), TOP,
        fmt(math.max(0, x2 - x1)), fmt(ax.plot_h))
    end
  end
  if g.threshold_value then
    local y = ax.y(g.threshold_value)
    out[#out + 1] = string.format('<line class="threshold" data-threshold="%s" x1="%d" y1="%s" x2="%d" y2="%s">'
      .. '<title>threshold %s</title></line>', esc(g.threshold_value), LEFT, fmt(y), W - RIGHT, fmt(y),
      esc(g.threshold or ""))
  end
  local points, dots = {}, {}
  for _, m in ipairs(g.measurements) do
    local x = ax.x(m.time)
    local y = (m.value and not VERDICT_Y[m.verdict]) and ax.y(m.value) or (ax.height - BOTTOM - 4)
    if m.value and not VERDICT_Y[m.verdict] then points[#points + 1] = fmt(x) .. "," .. fmt(y) end
    dots[#dots + 1] = string.format('<circle class="dot v-%s" data-verdict="%s" cx="%s" cy="%s" r="3"><title>%s %s: %s'
      .. '</title></circle>', esc(m.verdict), esc(m.verdict), fmt(x), fmt(y),
      esc(m.time and os.date("!%H:%M:%S", math.floor(m.time)) or ""), esc(m.verdict),
      esc(m.value and (string.format("%.4g", m.value) .. unit) or m.shown or "no value"))
  end
  out[#out + 1] = string.format('<g class="series" data-gate="%s"><polyline class="line" points="%s"/>%s</g>',
    esc(g.name), table.concat(points, " "), table.concat(dots))
  out[#out + 1] = "</svg>"
  return table.concat(out)
end

return M
