-- Steering, in process (--simulate, the scenario's `controls` and `approvals`), where the
-- commands meet a strategy's own service or a resumed run (rollout/control.lua, bake.lua,
-- approval.lua, rolling.lua, ecs_native.lua, codedeploy.lua):
--   - while ECS or CodeDeploy moves the traffic, a command that cannot act there is answered
--     "not applicable now: ..." (output and journal), never ignored; abort still rolls back;
--     a pause between ECS pause hooks holds at the next hook;
--   - `ecsplay resume` of a run killed after `promote --full` goes straight to 100 % and
--     promotes (the skipped steps are not redone); one killed while paused stays paused; one
--     killed in an approval step counts the approvals already given.
-- The real-time paths against `sim serve`: tests/py/test_steer.py.
local T = require "harness"
local json = require "ecsplay.json"

local BIN = os.getenv("ECSPLAY_BIN") or "./ecsplay"
local START = 1795687200 -- the default scenario start, 2026-11-26T10:00:00Z

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

-- `ecsplay --simulate=SCENARIO ARGS` with a runs folder in dir; → rc, output, journal path.
local function simulate(dir, scenario, args)
  local sc = dir .. "/scenario-" .. tostring(#args) .. "-" .. tostring(math.random(1e9)) .. ".lua"
  write(sc, scenario)
  local out, rc = T.sh("ECSPLAY_RUNS_DIR=" .. q(dir .. "/runs") .. " USER=tester " .. BIN .. " --simulate="
    .. q(sc) .. " " .. args)
  local jl = T.sh("ls " .. q(dir .. "/runs") .. "/*.jsonl 2>/dev/null | grep -v control | head -1"):gsub("%s+$", "")
  return rc, out, jl
end

local function controls(journal)
  local out = {}
  for _, j in ipairs(journal) do
    if j.t == "control" then out[#out + 1] = { command = j.command, effect = j.effect, after = j.after } end
  end
  return out
end

local function first(journal, t, key)
  for _, j in ipairs(journal) do if j.t == t and j.key == key then return j end end
end

-- The rollout's end line (the runner may write lines after it, e.g. the playbook's own end).
local function end_line(journal)
  for i = #journal, 1, -1 do if journal[i].t == "end" then return journal[i] end end
  return {}
end

local function count(journal, t, key)
  local n = 0
  for _, j in ipairs(journal) do if j.t == t and j.key == key then n = n + 1 end end
  return n
end

T.test("rolling: pause and promote during ECS's update are not applicable; abort rolls back", function()
  local rc, out, jl = simulate(T.tmpdir(), [[return {
    images = { ["api:slowstart"] = { start = "6m" } },
    controls = { { at = "2m", command = "pause" }, { at = "2m10s", command = "promote" },
                 { at = "2m20s", command = "promote", full = true },
                 { at = "3m", command = "abort", by = "carol" } } }]],
    "playbooks/rolling.lua image=api:slowstart bake=2m")
  T.eq(rc, 1, out)
  local c = controls(lines_of(jl))
  T.eq(#c, 4, out)
  T.ok(c[1].effect:find("^not applicable now: ECS has no pause for a rolling update %(ECS rolls api over to api:2%); "
    .. "send it again during the bake that follows the update %(2m%)"), c[1].effect)
  T.ok(c[2].effect:find("^not applicable now: no bake to end while ECS rolls api over to api:2 %(promote %-%-full "
    .. "skips the bake that follows%)"), c[2].effect)
  T.eq(c[3].effect, "promoting: the bake after ECS's rolling update is skipped (the update itself runs to its end)")
  T.eq(c[3].after.full, true)
  T.eq(c[4].effect, "rolling back now")
  T.ok(out:find("pause by scenario@simulator: not applicable now: ", 1, true), out)
  T.ok(out:find("rolled back: aborted by carol@simulator %(scenario%)"), out)
end)

T.test("rolling: promote --full during ECS's update skips the bake after it", function()
  local rc, out, jl = simulate(T.tmpdir(), [[return {
    images = { ["api:slowstart"] = { start = "6m" } },
    controls = { { at = "2m", command = "promote", full = true } } }]],
    "playbooks/rolling.lua image=api:slowstart bake=30m")
  T.eq(rc, 0, out)
  local j = lines_of(jl)
  T.eq(end_line(j).status, "succeeded")
  -- the run ended with ECS's update, long before a 30-minute bake could
  T.ok(j[#j].time < START + 20 * 60, tostring(j[#j].time - START))
  T.ok(not out:find("baking 30m", 1, true), out)
end)

T.test("ecs_native: promote before a hook is not applicable; a pause holds at the next hook", function()
  local rc, out, jl = simulate(T.tmpdir(), [[return { controls = {
    { at = "10s", command = "promote" }, { at = "20s", command = "pause", by = "bob" },
    { at = "30m", command = "unpause", by = "bob" } } }]], "playbooks/ecs_native.lua bake=3m")
  T.eq(rc, 0, out)
  local j = lines_of(jl)
  local c = controls(j)
  T.eq(#c, 3, out)
  T.ok(c[1].effect:find("^not applicable now: no pause hook awaits action %(ECS is at stage [%u_]+, green 0%%%); "
    .. "promote answers the next one %(PRODUCTION_TRAFFIC_SHIFT%) with CONTINUE"), c[1].effect)
  T.eq(c[2].effect, "paused: ECS moves on to its next pause hook (PRODUCTION_TRAFFIC_SHIFT), where the run holds "
    .. "until unpause or promote (ECS cannot be held between its hooks)")
  T.eq(c[2].after.paused, true)
  T.eq(c[3].effect, "unpaused")
  -- the first hook was answered CONTINUE only after the unpause (its bake: 3 minutes)
  local continued
  for _, l in ipairs(j) do
    if l.t == "done" and tostring(l.key):match("^continue:") then continued = continued or l.time end
  end
  T.ok(continued and continued >= START + 30 * 60, tostring(continued and continued - START))
end)

T.test("codedeploy: pause and promote while CodeDeploy shifts are not applicable", function()
  local rc, out, jl = simulate(T.tmpdir(), [[return { controls = {
    { at = "4m", command = "pause" }, { at = "4m10s", command = "promote" },
    { at = "4m20s", command = "unpause" } } }]],
    "playbooks/codedeploy.lua")
  T.eq(rc, 0, out)
  local c = controls(lines_of(jl))
  T.eq(#c, 3, out)
  T.eq(c[1].effect, "not applicable now: CodeDeploy has no way to hold a deployment (only to stop it: `ecsplay "
    .. "abort` rolls back)")
  T.ok(c[2].effect:find("^not applicable now: CodeDeploy moves the traffic on CodeDeployDefault%.ECSCanary10Percent"
    .. "5Minutes's schedule %(deployment d%-%w+, InProgress%) and cannot end an interval early"), c[2].effect)
  T.eq(c[3].effect, "not paused: nothing to do")
end)

-- A canary without gates (a resumed run's fresh in-process world has none of the first
-- run's traffic to measure) that, the first time only (a marker file), stops dead at
-- `exit_at` seconds or after weight step `exit_after_step`, as kill -9 would: nothing
-- after it is journaled.
local function killing_playbook(dir)
  local pb = dir .. "/killed.lua"
  write(pb, [[
local rollout = require "ecsplay.rollout"
local a = ecsplay.args
local function die_once()
  local f = io.open(a.marker, "r")
  if f then f:close() return end
  io.open(a.marker, "w"):close()
  io.stdout:flush()
  os.exit(137)
end
if a.exit_at then
  ecsplay.spawn(function() ecsplay.sleep(tonumber(a.exit_at)) die_once() end)
end
local steps = {}
for x in a.steps:gmatch("[^,]+") do steps[#steps + 1] = tonumber(x) end
if a.approval then
  table.insert(steps, tonumber(a.approval), { approval = { timeout = "30m", approvers = { "alice", "bob" }, min = 2 } })
end
local r = rollout.canary { image = "api:v2", steps = steps, bake = a.bake, interval = "1m",
  after_step = function(s) if s.index == tonumber(a.exit_after_step) then die_once() end end }
print("canary: " .. r.status)
]])
  return pb .. " marker=" .. q(dir .. "/killed-once")
end

-- The resumed run's world: a fresh one, with the version the first run registered (api:2).
local REGISTERED = [[
  setup = function(aws)
    aws.ecs.register_task_definition { family = "api", requiresCompatibilities = { "FARGATE" },
      networkMode = "awsvpc", cpu = "256", memory = "512", containerDefinitions = { { name = "api",
      image = "api:v2", essential = true, portMappings = { { containerPort = 8080, protocol = "tcp" } } } } }
  end,
]]

-- `ecsplay resume JOURNAL` in process, on a fresh world of `scenario` (the command itself
-- resumes against AWS or `sim serve`; under --simulate the playbook asks for it).
local function resume(dir, scenario, journal)
  local sc, driver = dir .. "/resume-scenario.lua", dir .. "/resume.lua"
  write(sc, scenario)
  write(driver, 'return require("ecsplay.rollout.journal").resume(ecsplay.args.journal, { simulate = true })\n')
  local out, rc = T.sh("ECSPLAY_RUNS_DIR=" .. q(dir .. "/runs") .. " USER=tester " .. BIN .. " --simulate=" .. q(sc)
    .. " " .. q(driver) .. " journal=" .. q(journal))
  return rc, out, lines_of(journal)
end

T.test("resume after promote --full: straight to 100 % and promoted, the skipped steps not redone", function()
  local dir = T.tmpdir()
  local rc, out, jl = simulate(dir, [[return { controls = { { at = "4m", command = "promote", full = true } } }]],
    killing_playbook(dir) .. " exit_after_step=1 steps=10,25,50,90 bake=10m")
  T.eq(rc, 137, out)
  local j = lines_of(jl)
  T.ok(first(j, "control") and first(j, "control").after.full == true, out)
  T.ok(not first(j, "do", "weight:4"), "killed right after step 1's bake, ended by the promote")
  local rrc, rout, rj = resume(dir, "return {" .. REGISTERED .. "}", jl)
  T.eq(rrc, 0, rout)
  T.ok(rout:find("resumed after `promote --full` by scenario@simulator: going straight to 100% and promoting",
    1, true), rout)
  T.eq({ count(rj, "do", "weight:2"), count(rj, "do", "weight:3") }, { 0, 0 }, "the skipped steps stay skipped")
  T.ok(first(rj, "done", "weight:4") and first(rj, "done", "home"), rout)
  T.eq(end_line(rj).status, "succeeded")
end)

T.test("resume of a paused run: it stays paused until unpause", function()
  local dir = T.tmpdir()
  local rc, out, jl = simulate(dir, [[return { controls = { { at = "4m", command = "pause", by = "bob" } } }]],
    killing_playbook(dir) .. " exit_at=900 steps=10,100 bake=5m")
  T.eq(rc, 137, out)
  T.ok(not first(lines_of(jl), "do", "weight:2"), "killed while held at step 1")
  local rrc, rout, rj = resume(dir, "return {" .. REGISTERED
    .. [[ controls = { { at = "25m", command = "unpause", by = "bob" } } }]], jl)
  T.eq(rrc, 0, rout)
  T.ok(rout:find("resumed paused: paused by bob@simulator (before the run was resumed)", 1, true), rout)
  -- the resumed run's clock starts again at the scenario's start: held until the unpause at 25m
  T.eq(first(rj, "do", "weight:2").time, START + 25 * 60)
end)

T.test("resume in an approval step: the wait starts again with the approvals already given", function()
  local dir = T.tmpdir()
  local rc, out, jl = simulate(dir, [[return { approvals = { { at = "8m", by = "alice" } } }]],
    killing_playbook(dir) .. " exit_at=600 steps=10,100 bake=2m approval=2")
  T.eq(rc, 137, out)
  local c = controls(lines_of(jl))
  T.eq(#c, 1, out)
  T.eq(c[1].effect, "approval 1 of 2")
  -- bob alone is not enough: alice's approval from before the kill counts
  local rrc, rout, rj = resume(dir, "return {" .. REGISTERED .. [[ approvals = { { at = "12m", by = "bob" } } }]], jl)
  T.eq(rrc, 0, rout)
  T.ok(rout:find("before step 2/2: resumed: the approval wait starts again (up to 30m) with 1 of 2 approval(s) "
    .. "already given (alice)", 1, true), rout)
  local rc2 = controls(rj)
  T.eq(rc2[#rc2].effect, "approved (2 of 2)")
  T.eq(end_line(rj).status, "succeeded")
end)
