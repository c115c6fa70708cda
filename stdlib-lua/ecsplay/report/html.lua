--[[
The report as one self-contained HTML page: inline CSS and SVG, no script,
nothing fetched (a Content-Security-Policy of default-src 'none' says so to
the browser too). html.render(report) → text; report: report/model.lua.

For people: the summary, then per rollout its timeline (weights over time),
one chart per gate against its threshold, the steps table (weight, time held,
each gate's min/max/last) and the events. For tests, elements are marked:
data-status on the page's status, data-rollout per rollout, data-step per
timeline segment, data-gate per gate series, data-step-row per steps-table
row, data-event="KIND" per event. Everything from the journal is escaped.
]]
local duration = require "ecsplay.duration"
local core = require "ecsplay.core"
local svg = require "ecsplay.report.svg"

local M = {}

local esc = svg.esc

local CSS = [[
body{font:14px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;margin:24px auto;max-width:1000px;
color:#1d2330;padding:0 12px}
h1{font-size:22px;margin:0 0 4px}h2{font-size:18px;margin:28px 0 4px;border-top:1px solid #d8dce3;padding-top:16px}
h3{font-size:15px;margin:18px 0 6px}code{font:12px ui-monospace,Menlo,Consolas,monospace}
.status{display:inline-block;padding:2px 10px;border-radius:10px;font-weight:600;color:#fff;background:#6b7280}
.status-succeeded{background:#15803d}.status-rolled_back{background:#b45309}.status-rollback_failed{background:#b91c1c}
table{border-collapse:collapse;margin:6px 0}td,th{padding:3px 10px 3px 0;text-align:left;vertical-align:top}
th{color:#4b5563;font-weight:600}table.grid td,table.grid th{border-bottom:1px solid #e5e7eb;padding:3px 10px}
td.num{text-align:right;font-variant-numeric:tabular-nums}
.chart{display:block;max-width:100%;height:auto;background:#fbfcfd;border:1px solid #e5e7eb}
.chart .axis{stroke:#9ca3af}.chart .tick{stroke:#eef0f3}.chart .grid{stroke:#eef0f3}
.chart .label{font:11px system-ui,sans-serif;fill:#6b7280}
.chart .segment{stroke:#2563eb;stroke-width:5;stroke-linecap:round}
.chart .phase{fill:#2563eb;fill-opacity:.12;stroke:none}
.chart .jump{stroke:#2563eb;stroke-width:1.5;stroke-dasharray:2 2}
.chart .undo{stroke:#b45309;stroke-width:3;stroke-dasharray:6 3}
.chart .mark{stroke-width:1.5;stroke-dasharray:3 3}.chart .mark-abort{stroke:#b91c1c}.chart .mark-undo{stroke:#b45309}
.chart .mark-control{stroke:#7c3aed}.chart .mark-end{stroke:#6b7280}
.chart .band{fill:#eef2ff;fill-opacity:.6}.chart .threshold{stroke:#b91c1c;stroke-width:1.5;stroke-dasharray:6 4}
.chart .line{fill:none;stroke:#0f766e;stroke-width:2}.chart .dot{stroke:#fff;stroke-width:1}
.v-pass{fill:#15803d}.v-fail{fill:#b91c1c}.v-inconclusive{fill:#9ca3af}.v-error{fill:#d97706}
figure{margin:10px 0 16px}figcaption{font-weight:600;margin-bottom:4px}figcaption span{font-weight:400;color:#4b5563}
ol.events{padding-left:0;list-style:none}ol.events li{padding:2px 0;border-bottom:1px dotted #e5e7eb}
ol.events time{color:#6b7280;font:12px ui-monospace,monospace;margin-right:8px}
.kind{display:inline-block;min-width:64px;font-size:12px;color:#374151}
.ev-abort .kind,.ev-gate .kind{color:#b91c1c}.ev-undo .kind{color:#b45309}.ev-control .kind{color:#7c3aed}
.who{color:#7c3aed}.reason{color:#b91c1c}footer{margin-top:32px;color:#6b7280;font-size:12px}
]]

local STATUS_TEXT = { succeeded = "succeeded", rolled_back = "rolled back", rollback_failed = "rollback failed",
  running = "did not end (killed?)", unknown = "did not end (killed?)" }

local function clock(t) return t and os.date("!%Y-%m-%d %H:%M:%S UTC", math.floor(t)) or "—" end
local function hms(t) return t and os.date("!%H:%M:%S", math.floor(t)) or "" end
local function dur(s) return s and duration.format(s) or "—" end

local function value(v, unit)
  if v == nil then return "—" end
  return string.format("%.4g", v) .. (unit and (" " .. unit) or "")
end

local function row(label, v) return "<tr><th>" .. esc(label) .. "</th><td>" .. v .. "</td></tr>" end

local function status_badge(status)
  return string.format('<span class="status status-%s" data-status="%s">%s</span>', esc(status), esc(status),
    esc(STATUS_TEXT[status] or status))
end

local function summary(report)
  local run = report.run
  local args = {}
  local names = {}
  for k in pairs(run.args or {}) do names[#names + 1] = k end
  table.sort(names)
  for _, k in ipairs(names) do args[#args + 1] = "<code>" .. esc(k .. "=" .. run.args[k]) .. "</code>" end
  local out = { '<section id="summary"><table class="summary">',
    row("status", status_badge(run.status)),
    row("exit code", run.exit_code ~= nil and ('<span data-exit-code="' .. esc(run.exit_code) .. '">'
      .. esc(run.exit_code) .. "</span>") or "—"),
    row("run", "<code>" .. esc(run.id or "—") .. "</code>"),
    row("playbook", "<code>" .. esc(run.playbook or "—") .. "</code>"),
    row("arguments", #args > 0 and table.concat(args, " ") or "—"),
    row("command", esc(run.command or "report")),
    row("started", esc(clock(run.started))), row("ended", esc(clock(run.ended))),
    row("duration", esc(dur(run.duration))),
    row("new version", "<code>" .. esc(run.versions.new or "—") .. "</code>"),
    row("previous version", "<code>" .. esc(run.versions.previous or "—") .. "</code>") }
  if run.endpoint then out[#out + 1] = row("endpoint", "<code>" .. esc(run.endpoint) .. "</code>") end
  if run.region then out[#out + 1] = row("region", esc(run.region)) end
  if run.message and run.message ~= "" then out[#out + 1] = row("message", '<span class="reason">'
    .. esc(run.message) .. "</span>") end
  out[#out + 1] = "</table></section>"
  return table.concat(out)
end

local function gate_caption(g)
  local parts = {}
  if g.threshold then parts[#parts + 1] = "want " .. g.threshold end
  parts[#parts + 1] = "last " .. value(g.last, g.unit)
  if g.min then parts[#parts + 1] = "min " .. value(g.min, g.unit) .. ", max " .. value(g.max, g.unit) end
  local counts = {}
  for _, k in ipairs { "pass", "fail", "inconclusive", "error" } do
    if g.counts[k] then counts[#counts + 1] = g.counts[k] .. " " .. k end
  end
  parts[#parts + 1] = table.concat(counts, ", ")
  return esc(table.concat(parts, " · "))
end

local function steps_table(r)
  local out = { '<table class="grid steps"><tr><th>step</th><th>weight</th><th>started</th><th>held</th>' }
  for _, g in ipairs(r.gates) do
    out[#out + 1] = "<th>" .. esc(g.name) .. "<br><small>min / max / last</small></th>"
  end
  out[#out + 1] = "</tr>"
  for _, s in ipairs(r.steps) do
    out[#out + 1] = string.format('<tr data-step-row="%d"><td>%s</td><td class="num">%s</td><td>%s</td>'
      .. '<td class="num">%s</td>', s.index, esc(s.message or ("step " .. s.index)),
      s.weight and esc(s.weight .. "%") or "—", esc(hms(s.started)), esc(dur(s.held)))
    for _, g in ipairs(r.gates) do
      local cell = "—"
      for _, sg in ipairs(s.gates) do
        if sg.name == g.name then
          cell = string.format('<span class="v-text-%s">%s / %s / %s</span>', esc(sg.verdict or ""),
            esc(value(sg.min)), esc(value(sg.max)), esc(value(sg.last, g.unit)))
        end
      end
      out[#out + 1] = '<td class="num">' .. cell .. "</td>"
    end
    out[#out + 1] = "</tr>"
  end
  out[#out + 1] = "</table>"
  return table.concat(out)
end

local function events_list(r)
  local out = { '<ol class="events">' }
  for _, e in ipairs(r.events) do
    local kind = e.kind == "control" and (e.action or "control") or e.kind
    out[#out + 1] = string.format('<li class="ev-%s" data-event="%s"><time>%s</time><span class="kind">%s</span>'
      .. ' %s%s</li>', esc(e.kind), esc(kind), esc(hms(e.time)), esc(kind), esc(e.text or ""),
      e.who and (' <span class="who">by ' .. esc(e.who) .. "</span>") or "")
  end
  out[#out + 1] = "</ol>"
  return table.concat(out)
end

local function rollout_section(r)
  local out = { string.format('<section class="rollout" data-rollout="%s"><h2>%s <small>%s · <code>%s</code>'
    .. '</small></h2>', esc(r.name or r.run or "rollout"), esc(r.name or "rollout"), esc(r.strategy or "?"),
    esc(r.run or "")) }
  out[#out + 1] = "<p>" .. status_badge(r.status) .. " in " .. esc(dur(r.duration))
    .. (r.reason and (' — <span class="reason">' .. esc(r.reason) .. "</span>") or "")
    .. (r.journal and (" · journal <code>" .. esc(r.journal) .. "</code>") or "") .. "</p>"
  out[#out + 1] = "<h3>Timeline: weight on the new version</h3>" .. svg.timeline(r)
  if #r.gates > 0 then
    out[#out + 1] = "<h3>Gates</h3>"
    for _, g in ipairs(r.gates) do
      out[#out + 1] = string.format('<figure class="gate" data-gate-chart="%s"><figcaption>%s <span>%s</span>'
        .. '</figcaption>%s</figure>', esc(g.name), esc(g.name), gate_caption(g), svg.gate_chart(r, g))
    end
  end
  out[#out + 1] = "<h3>Steps</h3>" .. steps_table(r)
  out[#out + 1] = "<h3>Events</h3>" .. events_list(r) .. "</section>"
  return table.concat(out)
end

function M.render(report)
  local run = report.run
  local out = { "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">",
    "<meta http-equiv=\"Content-Security-Policy\" content=\"default-src 'none'; style-src 'unsafe-inline'\">",
    '<meta name="viewport" content="width=device-width,initial-scale=1">',
    "<title>ecsplay report: " .. esc(run.id or run.playbook or "run") .. " (" .. esc(run.status) .. ")</title>",
    "<style>" .. CSS .. "</style></head>\n<body>",
    "<header><h1>ecsplay run " .. (run.id and ("<code>" .. esc(run.id) .. "</code>") or "") .. "</h1></header>",
    summary(report) }
  if #report.rollouts == 0 then
    out[#out + 1] = "<p>No rollout of this run wrote a journal: there is no timeline to show.</p>"
  end
  for _, r in ipairs(report.rollouts) do out[#out + 1] = rollout_section(r) end
  local rebuild = report.rollouts[1] and report.rollouts[1].journal
  out[#out + 1] = "<footer>Written by ecsplay " .. esc(core.version) .. (rebuild and
    (" · rebuild it with <code>ecsplay report " .. esc(rebuild) .. " -o FILE.html</code>") or "")
    .. "</footer>\n</body></html>\n"
  return table.concat(out, "\n")
end

return M
