-- Steering a rollout (rollout/control.lua, cli/steer.lua, cli/commands/{status,promote,pause,
-- unpause,abort}.lua) without a clock to wait on: RUN resolution (id, unique prefix, journal
-- path; ambiguous and unknown runs), `ecsplay status` of ended, gone and live runs (text and
-- JSON), every bad-input message of the commands (exit 2), the Lua API
-- (ecsplay.rollout.control) and the scenario's `controls` under --simulate, read back from
-- the output and the journal. The real-time paths against `sim serve`: tests/py/test_steer.py.
local T = require "harness"
local json = require "ecsplay.json"
local core = require "ecsplay.core"
local errors = require "ecsplay.errors"
local control = require "ecsplay.rollout.control"

local BIN = os.getenv("ECSPLAY_BIN") or "./ecsplay"
local PLAYBOOK = "tests/scenarios/steer_canary.lua"

local function q(s) return "'" .. tostring(s):gsub("'", "'\\''") .. "'" end
local function write(path, text)
  local f = assert(io.open(path, "w"))
  f:write(text)
  f:close()
end
local function lines_of(path)
  local out = {}
  for line in io.lines(path) do out[#out + 1] = json.decode(line) end
  return out
end

-- A runs folder with journals: ids → { ended = status | nil, state = table | nil }.
local function runs_folder(runs)
  local dir = T.tmpdir()
  for id, r in pairs(runs) do
    local lines = { json.encode { t = "start", run = id, name = "canary api", strategy = "canary", group = id,
      playbook = "pb.lua", time = 1 } }
    lines[#lines + 1] = json.encode { t = "do", key = "weight:1", desc = "shift", time = 2,
      undo = { op = "set_weights", point = { kind = "rule", arn = "x" }, weights = {} } }
    lines[#lines + 1] = json.encode { t = "done", key = "weight:1", time = 3 }
    if r.ended then lines[#lines + 1] = json.encode { t = "end", status = r.ended, time = 4 } end
    write(dir .. "/" .. id .. ".jsonl", table.concat(lines, "\n") .. "\n")
    if r.state then write(dir .. "/" .. id .. ".state.json", json.encode(r.state)) end
  end
  return dir
end

local function cli(dir, args)
  return T.sh("ECSPLAY_RUNS_DIR=" .. q(dir) .. " USER=tester " .. BIN .. " " .. args)
end

-- this test process is alive: a state file naming it is a live run
local function live_state(extra)
  local st = { pid = core.pid(), host = control.hostname(), proc_start = control.proc_start("self"),
    state = "running", step = { index = 2, of = 4, weight = 25 }, weights = { ["api-canary"] = 25, ["api-stable"] = 75 },
    gates = { { name = "5xx", result = "pass", value = 0.2, threshold = "< 1%" } }, updated = core.realtime() }
  for k, v in pairs(extra or {}) do st[k] = v end
  return st
end

local RUNS = {
  ["20261126T100000Z-canary-aaaaaa"] = { ended = "succeeded" },
  ["20261126T100000Z-canary-aaaabb"] = { ended = "rolled_back" },
  ["20261126T110000Z-canary-cccccc"] = { state = { pid = 999999, host = control.hostname(), state = "running" } },
  ["20261126T120000Z-canary-dddddd"] = {},
}

-- The rollout's end line (the runner may write lines after it: the playbook's own end).
local function end_line(journal)
  for i = #journal, 1, -1 do if journal[i].t == "end" then return journal[i] end end
  return {}
end

T.test("RUN: an id, a unique prefix or a journal path; not the state and control files", function()
  local dir = runs_folder(RUNS)
  write(dir .. "/20261126T120000Z-canary-dddddd.control.jsonl", "")
  T.eq(#control.list_runs(dir), 4)
  T.eq(control.resolve("20261126T100000Z-canary-aaaaaa", dir), dir .. "/20261126T100000Z-canary-aaaaaa.jsonl")
  T.eq(control.resolve("20261126T12", dir), dir .. "/20261126T120000Z-canary-dddddd.jsonl")
  T.eq(control.resolve(dir .. "/20261126T100000Z-canary-aaaabb.jsonl", dir),
    dir .. "/20261126T100000Z-canary-aaaabb.jsonl")
  local ok, err = pcall(control.resolve, "20261126T1000", dir)
  T.ok(not ok and errors.is(err, "AmbiguousRun"), tostring(err))
  T.ok(err.message:find("it starts 2 runs: 20261126T100000Z%-canary%-aaaaaa, 20261126T100000Z%-canary%-aaaabb"),
    err.message)
  ok, err = pcall(control.resolve, "2027", dir)
  T.ok(not ok and errors.is(err, "RunNotFound") and err.message:find("no run \"2027\" in"), tostring(err))
  ok, err = pcall(control.resolve, dir .. "/nope.jsonl", dir)
  T.ok(not ok and err.message:find("no such file"), tostring(err))
end)

T.test("status: ended, gone (with the rollback/resume command), no state file, live", function()
  local dir = runs_folder(RUNS)
  local s = control.status(dir .. "/20261126T100000Z-canary-aaaaaa.jsonl")
  T.eq({ s.state, s.run, s.strategy, s.name, s.playbook }, { "succeeded", "20261126T100000Z-canary-aaaaaa", "canary",
    "canary api", "pb.lua" })
  T.eq(control.status(dir .. "/20261126T100000Z-canary-aaaabb.jsonl").state, "rolled-back")
  for _, id in ipairs { "20261126T110000Z-canary-cccccc", "20261126T120000Z-canary-dddddd" } do
    s = control.status(dir .. "/" .. id .. ".jsonl")
    T.eq(s.state, "gone", id)
    T.ok(s.hint:find("ecsplay rollback " .. dir .. "/" .. id .. ".jsonl", 1, true), s.hint)
    T.ok(s.hint:find("ecsplay resume", 1, true), s.hint)
  end
  write(dir .. "/20261126T120000Z-canary-dddddd.state.json", json.encode(live_state()))
  s = control.status(dir .. "/20261126T120000Z-canary-dddddd.jsonl")
  T.eq({ s.state, s.step.index, s.weights["api-canary"], s.gates[1].name }, { "running", 2, 25, "5xx" })
  -- the same pid with another start time: a reused pid, not our run
  write(dir .. "/20261126T120000Z-canary-dddddd.state.json", json.encode(live_state { proc_start = "1" }))
  T.eq(control.status(dir .. "/20261126T120000Z-canary-dddddd.jsonl").state, "gone")
end)

T.test("ecsplay status: every run, one run, JSON with the fields of the contract", function()
  local dir = runs_folder(RUNS)
  write(dir .. "/20261126T120000Z-canary-dddddd.state.json", json.encode(live_state { state = "paused",
    paused_reason = "paused by tester@x" }))
  local out, rc = cli(dir, "status")
  T.eq(rc, 0, out)
  local n = 0
  for line in out:gmatch("[^\n]+") do if line:match("^2026") then n = n + 1 end end
  T.eq(n, 4, out)
  T.ok(out:find("20261126T120000Z%-canary%-dddddd  canary api  paused  step 2/4  25%%  api%-canary=25 api%-stable=75"
    .. "  5xx pass 0.2 %(want < 1%%%)  %(paused by tester@x%)"), out)
  T.ok(out:find("20261126T110000Z%-canary%-cccccc  canary api  gone\n  the process is gone"), out)
  out, rc = cli(dir, "status 20261126T12 --log-format json")
  T.eq(rc, 0, out)
  local s = json.decode(out)
  T.eq({ s.run, s.playbook, s.strategy, s.state, s.step.index, s.weights["api-stable"], s.gates[1].result },
    { "20261126T120000Z-canary-dddddd", "pb.lua", "canary", "paused", 2, 75, "pass" })
  out, rc = cli(dir, "status --log-format=json")
  T.eq({ rc, select(2, out:gsub("\n", "")) }, { 0, 4 }, out)
  out, rc = cli(T.tmpdir(), "status")
  T.eq(rc, 0)
  T.ok(out:find("^no runs in "), out)
  -- --watch ends by itself once every run shown has ended
  out, rc = cli(dir, "status 20261126T100000Z-canary-aaaaaa --watch")
  T.eq(rc, 0, out)
  T.ok(out:find("succeeded"), out)
end)

T.test("every bad input of status/promote/pause/unpause/abort: exit 2, one clear message", function()
  local dir = runs_folder(RUNS)
  local cases = {
    { "promote", "promote: which run%? %(RUN: a run id, a unique prefix of one, or a journal path" },
    { "pause a b", "unexpected argument b" },
    { "abort 2026 --bogus", "unexpected argument %-%-bogus" },
    { "promote 2026 --as", "%-%-as needs a value" },
    { "promote 2026 --as 'a b'", "%-%-as: expected a name" },
    { "unpause 2026 --log-format xml", "%-%-log%-format: expected text or json, got xml" },
    { "status --log-format yaml", "%-%-log%-format: expected text or json, got yaml" },
    { "status --as bob", "status: %-%-as is for promote, pause, unpause and abort" },
    { "status a b", "unexpected argument b" },
    { "status 2027", "no run \"2027\" in .* %(4 run%(s%) there" },
    { "pause 20261126T1000", "\"20261126T1000\" is ambiguous in .*: it starts 2 runs: 20261126T100000Z%-canary%-aaaaaa, "
      .. "20261126T100000Z%-canary%-aaaabb" },
    { "promote 20261126T100000Z-canary-aaaaaa", "promote: run 20261126T100000Z%-canary%-aaaaaa is succeeded: nothing to "
      .. "promote" },
    { "abort 20261126T100000Z-canary-aaaabb", "is rolled%-back: nothing to abort" },
    { "unpause 20261126T11", "is gone: nothing to unpause; the process is gone with 1 change%(s%) not undone: "
      .. "`ecsplay rollback .*cccccc.jsonl` to undo them, or `ecsplay resume" },
    { "pause /nonexistent/x.jsonl", "no run journal /nonexistent/x.jsonl %(no such file%)" },
  }
  for _, c in ipairs(cases) do
    local out, rc = cli(dir, c[1])
    T.eq(rc, 2, c[1] .. ": " .. out)
    T.ok(out:find(c[2]), c[1] .. ": " .. out)
    T.ok(not out:find("traceback"), out)
  end
  -- nothing was sent to a run that cannot take it
  T.ok(not io.open(dir .. "/20261126T100000Z-canary-aaaaaa.control.jsonl"), "no control file")
  local out, rc = cli(dir, "help promote")
  T.eq(rc, 0)
  T.ok(out:find("usage: ecsplay promote RUN %[%-%-full%] %[%-%-as NAME%]"), out)
end)

T.test("a command to a live run: one control line with who and when; acknowledged or queued", function()
  local dir = runs_folder(RUNS)
  local id = "20261126T120000Z-canary-dddddd"
  write(dir .. "/" .. id .. ".state.json", json.encode(live_state()))
  -- nothing takes it here: the command says it is queued (after its wait for an acknowledgement)
  local t0 = core.monotonic()
  local out, rc = cli(dir, "promote 20261126T12 --full --as alice --log-format json")
  T.eq(rc, 0, out)
  T.ok(core.monotonic() - t0 < 15)
  local r = json.decode(out)
  T.eq({ r.run, r.command, r.full, r.acknowledged }, { id, "promote", true, false })
  local lines = lines_of(dir .. "/" .. id .. ".control.jsonl")
  T.eq(#lines, 1)
  T.eq({ lines[1].command, lines[1].full, lines[1].as, lines[1].user, lines[1].source, lines[1].id },
    { "promote", true, "alice", "tester", "cli", r.id })
  T.ok(lines[1].host == control.hostname() and type(lines[1].sent) == "number")
end)

-- Runs the steering playbook under --simulate with a journal; → rc, output, journal lines.
local function simulate(scenario, args, playbook)
  local dir = T.tmpdir()
  local sc = dir .. "/scenario.lua"
  write(sc, scenario)
  local out, rc = T.sh("ECSPLAY_RUNS_DIR=" .. q(dir .. "/runs") .. " " .. BIN .. " --simulate=" .. q(sc) .. " "
    .. (playbook or PLAYBOOK) .. " " .. (args or ""))
  local jl = T.sh("ls " .. q(dir .. "/runs") .. "/*.jsonl 2>/dev/null | grep -v control | head -1"):gsub("%s+$", "")
  return rc, out, jl ~= "" and lines_of(jl) or {}, dir
end

local function controls(journal)
  local out = {}
  for _, j in ipairs(journal) do
    if j.t == "control" then out[#out + 1] = { j.command, j.as or j.user, j.effect } end
  end
  return out
end

local function done(journal, key)
  for _, j in ipairs(journal) do if j.t == "done" and j.key == key then return j.time end end
end
local function started(journal, key)
  for _, j in ipairs(journal) do if j.t == "do" and j.key == key then return j.time end end
end

T.test("--simulate: the scenario's controls pause, unpause, promote and abort", function()
  -- pause during step 1's bake (it ends about 10:07), unpause at 10:20: step 2 starts then
  local rc, out, j = simulate([[return { controls = {
    { at = "5m", command = "pause", by = "bob" }, { at = "20m", command = "unpause", by = "bob" },
    { at = "22m", command = "promote" }, { at = "30m", command = "abort", by = "carol" } } }]], "bake=10m")
  T.eq(rc, 1, out)
  local c = controls(j)
  T.eq({ c[1][1], c[1][2], c[2][1], c[3][1], c[4][1], c[4][2] }, { "pause", "bob", "unpause", "promote", "abort", "carol" })
  local start = 1795687200
  T.eq(started(j, "weight:2"), start + 20 * 60, "held until the unpause")
  T.eq(started(j, "weight:3"), start + 22 * 60, "promote ended step 2's bake at once")
  T.ok(out:find("canary api rolled back: aborted by carol@simulator %(scenario%)"), out)
  T.eq(end_line(j).status, "rolled_back")
end)

T.test("--simulate: promote --full from the scenario skips to the last step and promotes", function()
  local rc, out, j = simulate([[return { controls = { { at = "4m", command = "promote", full = true } } }]],
    "steps=10,25,50,90 bake=10m")
  T.eq(rc, 0, out)
  T.ok(started(j, "weight:4") and not started(j, "weight:2") and not started(j, "weight:3"), out)
  T.ok(done(j, "home"), "promoted")
  T.ok(out:find("promote %-%-full by scenario@simulator: promoting: skipping the remaining steps to 100%%"), out)
end)

T.test("--simulate: the playbook steers itself through ecsplay.rollout.control", function()
  local dir = T.tmpdir()
  local pb = dir .. "/self.lua"
  write(pb, [[
local rollout = require "ecsplay.rollout"
local ctl = rollout.control()
local seen = {}
ecsplay.spawn(function()
  ecsplay.sleep(300)
  seen.state = ctl:state().state
  ctl:pause()
  ecsplay.sleep(900)
  seen.paused = ctl:state().state
  ctl:promote { full = true, by = "ci" }
end)
local r = rollout.canary { image = "api:v2", steps = { 10, 50, 100 }, bake = "5m", interval = "1m" }
print("result", r.status, seen.state, seen.paused, #r.steps)
local ok, err = pcall(ctl.pause, ctl)
print("after", ok, err.message)
]])
  local out, rc = T.sh("ECSPLAY_RUNS_DIR=" .. q(dir .. "/runs") .. " " .. BIN .. " --simulate " .. q(pb))
  T.eq(rc, 0, out)
  T.ok(out:find("result\tsucceeded\trunning\tpaused\t3"), out)
  T.ok(out:find("pause by tester") or out:find("pause by [%w_-]+@"), out)
  T.ok(out:find("promote %-%-full by ci %("), out)
  T.ok(out:find("after\tfalse\tecsplay.rollout.control: no rollout is running in this process"), out)
end)

T.test("the Lua API's bad input", function()
  local rollout = require "ecsplay.rollout"
  T.raises(function() rollout.control(42) end, "expected a run id or rollout name %(a string%), got integer 42")
  T.raises(function() rollout.control(""):pause() end, "expected a run id or rollout name")
  T.raises(function() rollout.control():pause() end, "no rollout is running in this process")
  T.raises(function() rollout.control("nope"):abort() end, "no rollout \"nope\" is running in this process")
  T.raises(function() rollout.control():promote("now") end, "promote: expected { full = true|false, by = NAME }")
end)

T.test("scenario controls and approvals: every bad field, with file and line", function()
  local cases = {
    { "return { controls = { { at = \"5m\", command = \"paus\" } } }",
      "controls%[1%]%.command: expected one of promote, pause, unpause, abort, got string \"paus\"; did you mean \"pause\"%?" },
    { "return { controls = { { command = \"pause\" } } }", "controls%[1%]%.at: missing" },
    { "return { controls = { { at = \"5m\", command = \"pause\", full = true } } }",
      "controls%[1%]%.full: only a promote can be full" },
    { "return { controls = { { at = \"400d\", command = \"pause\" } } }", "controls%[1%]%.at: .* is too long" },
    { "return { controls = { { at = \"5m\", command = \"abort\", who = \"x\" } } }",
      "controls%[1%]%.who: unknown field \"who\"" },
    { "return { approvals = { { at = \"5m\", by = 7 } } }", "approvals%[1%]%.by: expected a name" },
    { "return { approvals = { { at = \"5m\", reject = \"yes\" } } }", "approvals%[1%]%.reject: expected true or false" },
    { "return { approvals = { x = 1 } }", "approvals: expected a list" },
    { "return { approvals = \"alice\" }", "approvals: expected a list of tables" },
  }
  for _, c in ipairs(cases) do
    local rc, out = simulate(c[1])
    T.eq(rc, 2, c[1] .. ": " .. out)
    T.ok(out:find("scenario%.lua:1: " .. c[2]), c[1] .. ": " .. out)
  end
end)
