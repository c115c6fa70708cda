-- The run report (ecsplay.report, `--report`, `ecsplay report`): its JSON and JUnit contents
-- from rehearsed runs' journals — a canary that succeeds, one whose gate fails (its own
-- rollback), and a succeeded run reverted by `ecsplay rollback` — checked against what the
-- strategy itself reported in memory (run.report) and the world read back; the HTML page's
-- escaping and secrets; the command line: --report on a run (also on bad input), `ecsplay
-- report JOURNAL` rebuilding the same report, `ecsplay rollback --report` against `sim serve`.
local T = require "harness"
local R = require "rollout_sim"
local json = require "ecsplay.json"
local xml = require "ecsplay.core.xml"
local context = require "ecsplay.context"
local gate = require "ecsplay.gate"
local report = require "ecsplay.report"

local real_getenv = os.getenv
local STEPS = { 10, 25, 50, 100 }

local function q(s) return "'" .. tostring(s):gsub("'", "'\\''") .. "'" end

local function read(path)
  local f = io.open(path, "rb")
  if not f then return nil end
  local s = f:read("a")
  f:close()
  return s
end

local function journal_in(dir)
  local p = io.popen("ls " .. q(dir) .. "/*.jsonl 2>/dev/null")
  local path = p:read("l")
  p:close()
  return path
end

-- Runs fn (in a fresh simulated world) with its journal in a new folder → journal path, fn's results.
local function journaled(fn)
  local dir = T.tmpdir()
  context.journal_group = nil
  os.getenv = function(k) if k == "ECSPLAY_RUNS_DIR" then return dir end return real_getenv(k) end -- luacheck: ignore
  local ok, a, b, c, d = pcall(fn)
  os.getenv = real_getenv -- luacheck: ignore
  if not ok then error(a, 0) end
  return T.ok(journal_in(dir), "a journal in " .. dir), a, b, c, d
end

local function canary(image)
  R.fresh()
  return journaled(function()
    return R.call(function()
      return require("ecsplay.rollout").canary { image = image, container = "api", steps = STEPS, bake = "4m",
        interval = "1m", gates = {
          gate.alb_5xx_rate { target_group = "api-canary", below = 1.0 },
          gate.alb_latency { target_group = "api-canary", p = 99, below_ms = 300 },
          gate.alarm { "api-5xx-high" } } }
    end)
  end)
end

local GATES = { "5xx rate api-canary", "p99 latency api-canary", "alarm api-5xx-high" }

-- The JUnit XML parsed: { suites = { { attrs, cases = { { name, failure, error } } } }, attrs }.
local function junit_of(rep)
  local root = assert(xml.parse(report.render(rep, "xml")))
  T.eq(root.name, "testsuites")
  local out = { attrs = root.attrs, suites = {} }
  for _, s in ipairs(root.children) do
    local suite = { attrs = s.attrs, cases = {}, props = {} }
    for _, c in ipairs(s.children) do
      if c.name == "testcase" then
        local tc = { name = c.attrs.name, classname = c.attrs.classname }
        for _, f in ipairs(c.children or {}) do tc[f.name] = f.attrs.message or true end
        suite.cases[#suite.cases + 1] = tc
      elseif c.name == "properties" then
        for _, p in ipairs(c.children) do suite.props[p.attrs.name] = p.attrs.value end
      end
    end
    out.suites[#out.suites + 1] = suite
  end
  return out
end

local function case_named(suite, name)
  for _, c in ipairs(suite.cases) do if c.name == name then return c end end
end

-- Every measurement the strategy reported in memory (step → gate → values) against the report's.
local function same_measurements(mem_report, r)
  for i, step in ipairs(mem_report.steps) do
    for _, round in ipairs(step.measurements) do
      for _, m in ipairs(round) do
        local g
        for _, rg in ipairs(r.gates) do if rg.name == m.gate then g = rg end end
        T.ok(g, "gate " .. m.gate .. " in the report")
        local found = false
        for _, rm in ipairs(g.measurements) do
          if rm.step == i and rm.time == m.time and rm.verdict == m.result
            and (m.value == nil or (rm.value and math.abs(rm.value - m.value) < 1e-9)) then found = true end
        end
        T.ok(found, string.format("step %d %s at %s (%s %s) in the report", i, m.gate, m.time, m.result,
          tostring(m.value)))
      end
    end
  end
end

T.test("a canary that succeeds: steps, weights, every gate round, JSON and JUnit", function()
  local path, code, err, mem = canary("api:v2")
  T.eq(code, 0, err)
  local rep = report.build(path, { exit_code = 0, command = "run" })
  T.eq(rep.run.status, "succeeded")
  T.eq(rep.run.exit_code, 0)
  T.eq(#rep.rollouts, 1)
  local r = rep.rollouts[1]
  T.eq(#r.steps, #STEPS)
  for i, s in ipairs(r.steps) do
    T.eq(s.index, i)
    T.eq(s.weight, STEPS[i])
    T.near(s.started, mem.steps[i].started, 0, "step " .. i .. " started as the strategy saw it")
    T.ok(s.held >= 4 * 60, "step " .. i .. " held its 4m bake, got " .. tostring(s.held))
    if i > 1 then T.eq(r.steps[i - 1].ended, s.started, "steps follow each other") end
    T.eq(#s.gates, #GATES, "step " .. i .. " has min/max/last for every gate")
  end
  local names = {}
  for i, g in ipairs(r.gates) do names[i] = g.name end
  T.eq(names, GATES, "one series per gate, in the declared order")
  same_measurements(mem, r)
  T.eq(r.gates[1].threshold, "< 1%")
  T.eq(r.gates[1].threshold_value, 1)
  T.eq(r.gates[2].threshold_value, 300)
  T.ok(r.gates[2].min > 0 and r.gates[2].max < 300, "p99 within the threshold")
  T.ok(r.versions.new:find("task%-definition/api:2$"), r.versions.new)
  T.ok(r.versions.previous:find("task%-definition/api:1$"), tostring(r.versions.previous))
  -- JSON: the same report, decodable
  local back = json.decode(report.render(rep, "json"))
  T.eq(back.format, "ecsplay-report/1")
  T.eq(#back.rollouts[1].steps, #STEPS)
  T.eq(#back.rollouts[1].gates[3].measurements, #r.gates[3].measurements)
  T.eq(back.run.status, "succeeded")
  -- JUnit: one case per step and per gate, and the result; nothing failed
  local j = junit_of(rep)
  T.eq(#j.suites, 1)
  local s = j.suites[1]
  T.eq(#s.cases, #STEPS + #GATES + 1)
  T.eq(tonumber(s.attrs.tests), #s.cases)
  T.eq(s.attrs.failures, "0")
  T.eq(j.attrs.failures, "0")
  for _, c in ipairs(s.cases) do T.eq(c.failure, nil, c.name) end
  T.ok(case_named(s, "step 3: 50%"), "a case per step")
  T.ok(case_named(s, "gate alarm api-5xx-high"), "a case per gate")
  T.eq(s.props.status, "succeeded")
end)

T.test("a gate failure: the failing step, the abort, the rollback's undo steps", function()
  local path, code, err = canary("api:flaky")
  T.eq(code, 1, err)
  local rep = report.build(path)
  local r = rep.rollouts[1]
  T.eq(r.status, "rolled_back")
  T.eq(rep.run.exit_code, 1, "from the journal's end status")
  T.ok(#r.steps >= 1 and #r.steps < #STEPS, "stopped before the last step: " .. #r.steps)
  T.eq(R.weights(), { ["api-stable"] = 100, ["api-canary"] = 0 })
  local kinds = {}
  for _, e in ipairs(r.events) do kinds[e.kind] = (kinds[e.kind] or 0) + 1 end
  T.eq(kinds.abort, 1)
  T.ok((kinds.undo or 0) >= 2, "traffic and the canary service undone")
  T.eq(kinds["end"], 1)
  T.ok(r.reason and r.reason:find("failed"), tostring(r.reason))
  local failing
  for _, g in ipairs(r.gates) do if g.verdict == "fail" then failing = g.name end end
  T.ok(failing, "a gate whose last verdict failed")
  local s = junit_of(rep).suites[1]
  local last_step = r.steps[#r.steps]
  local step_case = case_named(s, string.format("step %d: %d%%", last_step.index, last_step.weight))
  T.ok(step_case and step_case.failure, "the failing step is a failed case")
  T.ok(step_case.failure:find("failed"), step_case.failure)
  T.ok(case_named(s, "gate " .. failing).failure, "the failing gate is a failed case")
  T.eq(case_named(s, "rollback").failure, nil, "the rollback completed")
  T.ok(case_named(s, "result: rolled_back").failure)
  for i = 1, #r.steps - 1 do
    T.eq(case_named(s, string.format("step %d: %d%%", i, r.steps[i].weight)).failure, nil, "step " .. i)
  end
  T.eq(tonumber(s.attrs.failures), 3)
  T.eq(tonumber(junit_of(rep).attrs.failures), 3)
end)

T.test("a succeeded run reverted by `ecsplay rollback`: the undo after the end", function()
  local path, code, err = canary("api:v2")
  T.eq(code, 0, err)
  local rcode, rerr = R.call(function()
    return require("ecsplay.rollout.journal").rollback(path, { simulate = true })
  end)
  T.eq(rcode, 0, rerr)
  T.eq(R.service("api").td, "api:1", "reverted")
  local rep = report.build(path, { exit_code = 0, command = "rollback" })
  local r = rep.rollouts[1]
  T.eq(r.status, "rolled_back", "the last end line")
  T.eq(rep.run.command, "rollback")
  T.eq(rep.run.exit_code, 0, "the rollback command's own exit code")
  T.eq(#r.steps, #STEPS, "the run's steps are still there")
  local ends, undos, after_end = 0, 0, false
  for _, e in ipairs(r.events) do
    if e.kind == "end" then ends = ends + 1 end
    if e.kind == "undo" then
      undos = undos + 1
      after_end = after_end or ends == 1
      T.ok(e.text:find("^undone: "), e.text)
    end
  end
  T.eq(ends, 2, "the run's end and the rollback's")
  T.ok(after_end and undos >= 2, "undo steps after the run's end")
  local s = junit_of(rep).suites[1]
  T.ok(case_named(s, "rollback"), "a rollback case")
  T.eq(case_named(s, "rollback").failure, nil)
  T.ok(case_named(s, "result: rolled_back").failure, "a reverted run is not a success")
end)

-- A journal written by hand: names, descriptions and arguments that try HTML and carry secrets.
local HOSTILE = {
  { t = "start", run = "r-1", group = "r-1", name = "<script>alert(1)</script>", strategy = "canary",
    playbook = "p\"><img src=x onerror=alert(2)>.lua", time = 1000,
    args = { image = "api:<b>v2</b>", db_password = "hunter2-secret", api_token = "tok-9876-secret" },
    config = { endpoint_url = "https://admin:s3cr3t-pass@sim.example/x?X-Amz-Signature=abcdef0123" } },
  { t = "do", key = "weight:1", desc = "shift </li><li data-event=\"abort\">fake", time = 1010, undo = json.null },
  { t = "done", key = "weight:1", result = json.null, time = 1010 },
  { t = "step", step = 1, weight = 10, message = "step 1 <svg onload=alert(3)>", time = 1010 },
  { t = "gate", step = 1, weight = 10, phase = "step 1", time = 1070, gates = {
    { name = "g<1>\" data-gate=\"x", verdict = "pass", value = 0.5, unit = "%", threshold = "< 1%" },
    { name = "g2 & co", verdict = "fail", value = 7, unit = "ms", threshold = "< 5 ms" } } },
  { t = "control", command = "pause", user = "<i>eve</i>", host = "h", effect = "paused <b>now</b>", time = 1080 },
  { t = "end", status = "succeeded", time = 1200 },
}

T.test("HTML: everything from the journal is escaped, secrets never appear, nothing is fetched", function()
  local rep = require("ecsplay.report.model").from_lines(HOSTILE, { journal = "x.jsonl" })
  for _, format in ipairs { "html", "json", "xml" } do
    local text = report.render(rep, format)
    for _, secret in ipairs { "hunter2-secret", "tok-9876-secret", "s3cr3t-pass", "abcdef0123" } do
      T.eq(text:find(secret, 1, true), nil, format .. " shows " .. secret)
    end
  end
  local html = report.render(rep, "html")
  T.eq(html:find("<script", 1, true), nil, "no script element")
  T.eq(html:find("<img", 1, true), nil, "no injected img")
  T.eq(html:find("<i>eve", 1, true), nil, "no injected markup")
  T.ok(html:find("&lt;script&gt;alert(1)&lt;/script&gt;", 1, true), "the name shown escaped")
  T.eq(select(2, html:gsub('data%-event="abort"', "")), 0, "an injected event is text, not an element")
  T.eq(select(2, html:gsub('data%-gate="', "")), 2, "one series per gate (an injected attribute stays text)")
  T.eq(select(2, html:gsub('data%-step="', "")), 1, "one segment per step")
  for tag in html:gmatch("<[^>]+>") do
    local lower = tag:lower()
    T.ok(not lower:find("%ssrc%s*=") and not lower:find("%shref%s*=") and not lower:find("^<link")
      and not lower:find("^<iframe") and not lower:find("^<object"), "nothing the page could fetch: " .. tag)
  end
  local css = html:match("<style>(.-)</style>")
  T.ok(css and not css:find("url(", 1, true) and not css:find("@import", 1, true), "inline CSS fetches nothing")
  T.ok(html:find("default-src 'none'", 1, true), "a CSP that forbids fetching")
  T.ok(html:find('data-event="pause"', 1, true) and html:find("&lt;i&gt;eve&lt;/i&gt;@h", 1, true),
    "the pause and who decided")
  local j = junit_of(rep)
  T.eq(j.suites[1].attrs.name, "<script>alert(1)</script>", "the XML parses back to the name")
end)

T.test("--report on a run: the file its extension asks for; `ecsplay report` rebuilds the same", function()
  local dir = T.tmpdir()
  local env = "env ECSPLAY_RUNS_DIR=" .. q(dir .. "/runs") .. " "
  local out, rc = T.sh(env .. R.bin .. " --simulate --report " .. q(dir .. "/run.json")
    .. " playbooks/canary.lua image=api:flaky bake=3m")
  T.eq(rc, 1, out)
  T.ok(out:find("report: " .. dir .. "/run.json", 1, true), out)
  local live = json.decode(T.ok(read(dir .. "/run.json"), "the report"))
  T.eq(live.run.exit_code, 1)
  T.eq(live.run.command, "run")
  T.ok(live.run.message:find("rolled back", 1, true), live.run.message)
  local journal = T.ok(journal_in(dir .. "/runs"))
  local xout, xrc = T.sh(R.bin .. " report " .. q(journal) .. " -o " .. q(dir .. "/again.xml"))
  T.eq(xrc, 0, xout)
  T.ok(xml.parse(read(dir .. "/again.xml")), "JUnit XML that parses")
  local jout, jrc = T.sh(R.bin .. " report " .. q(journal) .. " 2>/dev/null")
  T.eq(jrc, 0, jout)
  local rebuilt = json.decode(jout)
  T.eq(rebuilt.rollouts, live.rollouts, "the journal holds the whole report")
  T.eq(rebuilt.run.status, live.run.status)
  T.eq(rebuilt.run.exit_code, 1)
  -- the HTML too, without a journal folder given: --simulate keeps one for the report
  local hdir = T.tmpdir()
  local bin = T.bin:sub(1, 1) == "/" and T.bin or (real_getenv("PWD") .. "/" .. T.bin)
  local hout, hrc = T.sh("cd " .. q(hdir) .. " && " .. q(bin)
    .. " --simulate --report=r.html " .. q(real_getenv("PWD") .. "/playbooks/canary.lua") .. " bake=2m")
  T.eq(hrc, 0, hout)
  local html = T.ok(read(hdir .. "/r.html"))
  T.eq(select(2, html:gsub('data%-step="', "")), #STEPS)
  T.ok(journal_in(hdir .. "/.ecsplay/runs"), "the journal the report was read from")
  os.execute("rm -rf " .. q(dir) .. " " .. q(hdir))
end)

T.test("--report refuses a name that chooses no format, before anything runs (exit 2)", function()
  local dir = T.tmpdir()
  local out, rc = T.sh("env ECSPLAY_RUNS_DIR=" .. q(dir .. "/runs") .. " " .. R.bin
    .. " --simulate --report " .. q(dir .. "/r.txt") .. " playbooks/canary.lua")
  T.eq(rc, 2, out)
  T.ok(out:find(".html, .json or .xml", 1, true), out)
  T.eq(journal_in(dir .. "/runs"), nil, "nothing ran")
  out, rc = T.sh(R.bin .. " --simulate --report /nonexistent-dir/r.html playbooks/canary.lua")
  T.eq(rc, 2, out)
  T.ok(out:find("cannot write the report", 1, true), out)
  out, rc = T.sh(R.bin .. " report " .. q(dir .. "/missing.jsonl"))
  T.eq(rc, 2, out)
  T.ok(out:find("missing.jsonl", 1, true), out)
  -- a run that fails on bad input still gets its report: no rollout, exit 2
  out, rc = T.sh("env ECSPLAY_RUNS_DIR=" .. q(dir .. "/runs") .. " " .. R.bin .. " --simulate --report "
    .. q(dir .. "/bad.json") .. " playbooks/canary.lua imag=api:v2")
  T.eq(rc, 2, out)
  local rep = json.decode(T.ok(read(dir .. "/bad.json"), "a report of the refused run"))
  T.eq(rep.run.exit_code, 2)
  T.eq(#rep.rollouts, 0)
  T.ok(rep.run.message:find("imag", 1, true), rep.run.message)
  os.execute("rm -rf " .. q(dir))
end)

-- `ecsplay rollback JOURNAL --report`: against `sim serve --lockstep` (a rollback needs the world
-- the run changed), the report written after the rollback holds its undo steps.
T.test("`ecsplay rollback --report` writes the report after the rollback", function()
  local dir = T.tmpdir()
  os.execute(string.format("%s sim serve --port 0 --lockstep > %s/serve.out 2>&1 & echo $! > %s/serve.pid",
    q(T.bin), q(dir), q(dir)))
  local pid, port
  local ok, e = pcall(function()
    for _ = 1, 100 do
      pid = pid or tonumber((read(dir .. "/serve.pid") or ""):match("%d+"))
      port = tonumber((read(dir .. "/serve.out") or ""):match("listening on http://127%.0%.0%.1:(%d+)"))
      if port then break end
      os.execute("sleep 0.1")
    end
    T.ok(port, "sim serve listens")
    local env = "env -u AWS_PROFILE AWS_ACCESS_KEY_ID=AKIDSIMULATOR AWS_SECRET_ACCESS_KEY=simulator-secret-key "
      .. "ECSPLAY_RUNS_DIR=" .. q(dir .. "/runs") .. " "
    local out, rc = T.sh(env .. T.bin .. " --endpoint-url http://127.0.0.1:" .. port
      .. " --region us-east-1 playbooks/canary.lua bake=2m")
    T.eq(rc, 0, out)
    local journal = T.ok(journal_in(dir .. "/runs"))
    out, rc = T.sh(env .. T.bin .. " rollback " .. q(journal) .. " --report " .. q(dir .. "/rb.json"))
    T.eq(rc, 0, out)
    local written = json.decode(T.ok(read(dir .. "/rb.json"), "the report written after the rollback"))
    T.eq(written.run.command, "rollback")
    T.eq(written.run.exit_code, 0, "the rollback's exit code")
    T.eq(written.run.status, "rolled_back")
    local undos = 0
    for _, e in ipairs(written.rollouts[1].events) do if e.kind == "undo" then undos = undos + 1 end end
    T.ok(undos >= 2, "the rollback's undo steps")
    T.eq(#written.rollouts[1].steps, #STEPS, "and the run's steps before them")
    local s = junit_of(report.build(journal)).suites[1]
    T.ok(case_named(s, "rollback"))
    T.eq(s.props.status, "rolled_back")
  end)
  if pid then os.execute("kill " .. pid .. " 2>/dev/null") end
  os.execute("rm -rf " .. q(dir))
  if not ok then error(e, 0) end
end)
