--[[
The report as JUnit XML, for CI test tabs (GitLab, Jenkins, GitHub actions
that read JUnit): junit.render(report) → text; report: report/model.lua.

  <testsuites>            the run (name = run id)
    <testsuite>           one per rollout, its properties (strategy, run,
                          status, exit code, versions) and its events as
                          <system-out>
      <testcase>          one per step ("step N: W%"): a <failure> on the step
                          the rollout failed in, with the reason
      <testcase>          one per gate (classname ROLLOUT.gates): a <failure>
                          when the gate's last verdict was fail or error in a
                          rollout that did not succeed
      <testcase>          "rollback", when something was undone: an <error>
                          when the rollback did not complete
      <testcase>          "result": fails unless the rollout succeeded
]]
local svg = require "ecsplay.report.svg"

local M = {}

local esc = svg.esc

local function seconds(s) return string.format("%.3f", s or 0) end

local function case(out, classname, name, time, body)
  out[#out + 1] = string.format('    <testcase classname="%s" name="%s" time="%s"%s', esc(classname), esc(name),
    seconds(time), body and (">\n      " .. body .. "\n    </testcase>") or "/>")
end

local function failure(tag, type_, message, text)
  return string.format('<%s type="%s" message="%s">%s</%s>', tag, esc(type_), esc(message), esc(text or message), tag)
end

local function failed(r) return r.status ~= "succeeded" end

local function failure_type(r)
  for _, e in ipairs(r.events) do if e.kind == "abort" then return "GateFailed" end end
  return r.status == "rollback_failed" and "RollbackFailed" or "RolloutFailed"
end

local function reason(r, run)
  return r.reason or run.message or ("the rollout ended " .. tostring(r.status))
end

local function gate_text(g)
  return string.format("last verdict %s, last value %s%s (want %s)", tostring(g.verdict),
    g.last and string.format("%.4g", g.last) or "none", g.unit and (" " .. g.unit) or "", g.threshold or "?")
end

-- testcases, failures, errors of one rollout.
local function suite(out, r, run)
  local body, counts = {}, { tests = 0, failures = 0, errors = 0 }
  local function add(name, time, fail, classname)
    counts.tests = counts.tests + 1
    if fail and fail:find("^<failure") then counts.failures = counts.failures + 1 end
    if fail and fail:find("^<error") then counts.errors = counts.errors + 1 end
    case(body, classname or (r.name or "rollout"), name, time, fail)
  end
  for i, s in ipairs(r.steps) do
    local last = i == #r.steps
    add(string.format("step %d%s", s.index, s.weight and (": " .. s.weight .. "%") or
      (s.message and (": " .. s.message) or "")), s.held,
      (last and failed(r)) and failure("failure", failure_type(r), reason(r, run)) or nil)
  end
  for _, g in ipairs(r.gates) do
    local bad = failed(r) and (g.verdict == "fail" or g.verdict == "error")
    add("gate " .. g.name, nil, bad and failure("failure", "GateFailed", gate_text(g)) or nil,
      (r.name or "rollout") .. ".gates")
  end
  local undone = 0
  for _, e in ipairs(r.events) do if e.kind == "undo" then undone = undone + 1 end end
  if undone > 0 or r.status == "rollback_failed" then
    add("rollback", nil, r.status == "rollback_failed"
      and failure("error", "RollbackFailed", "the rollback did not complete: " .. reason(r, run)) or nil)
  end
  add("result: " .. tostring(r.status), r.duration,
    failed(r) and failure("failure", failure_type(r), reason(r, run)) or nil)
  local events = {}
  for _, e in ipairs(r.events) do
    events[#events + 1] = (e.time and os.date("!%H:%M:%S ", math.floor(e.time)) or "") .. e.kind .. ": "
      .. (e.text or "") .. (e.who and (" (by " .. e.who .. ")") or "")
  end
  out[#out + 1] = string.format('  <testsuite name="%s" tests="%d" failures="%d" errors="%d" skipped="0" time="%s"%s>',
    esc(r.name or "rollout"), counts.tests, counts.failures, counts.errors, seconds(r.duration),
    r.started and (' timestamp="' .. os.date("!%Y-%m-%dT%H:%M:%S", math.floor(r.started)) .. '"') or "")
  out[#out + 1] = "    <properties>"
  for _, p in ipairs { { "strategy", r.strategy }, { "run", r.run }, { "status", r.status },
    { "exit_code", run.exit_code }, { "new_version", r.versions.new }, { "previous_version", r.versions.previous },
    { "journal", r.journal } } do
    if p[2] ~= nil then
      out[#out + 1] = string.format('      <property name="%s" value="%s"/>', p[1], esc(p[2]))
    end
  end
  out[#out + 1] = "    </properties>"
  for _, line in ipairs(body) do out[#out + 1] = line end
  out[#out + 1] = "    <system-out>" .. esc(table.concat(events, "\n")) .. "</system-out>"
  out[#out + 1] = "  </testsuite>"
  return counts
end

function M.render(report)
  local run = report.run
  local out, total = {}, { tests = 0, failures = 0, errors = 0 }
  for _, r in ipairs(report.rollouts) do
    local c = suite(out, r, run)
    for k, v in pairs(c) do total[k] = total[k] + v end
  end
  if #report.rollouts == 0 then
    -- a run with no rollout: one case for the run itself
    local bad = run.exit_code ~= nil and run.exit_code ~= 0
    out[#out + 1] = string.format('  <testsuite name="%s" tests="1" failures="%d" errors="0" skipped="0" time="0">',
      esc(run.playbook or "run"), bad and 1 or 0)
    case(out, run.playbook or "run", "result", nil, bad and failure("failure", "RunFailed",
      run.message or ("exit code " .. tostring(run.exit_code))) or nil)
    out[#out + 1] = "  </testsuite>"
    total.tests, total.failures = 1, bad and 1 or 0
  end
  table.insert(out, 1, string.format('<?xml version="1.0" encoding="UTF-8"?>\n<testsuites name="%s" tests="%d" '
    .. 'failures="%d" errors="%d" time="%s">', esc("ecsplay " .. (run.id or run.playbook or "run")), total.tests,
    total.failures, total.errors, seconds(run.duration)))
  out[#out + 1] = "</testsuites>\n"
  return table.concat(out, "\n")
end

return M
