-- Approval steps and on_failure = "pause" under --simulate, where the scenario scripts who
-- approves when (rollout/approval.lua, bake.lua hold_after_failure, sim/scenario.lua
-- `approvals`/`controls`): approvals by the listed approvers only, a minimum of two, a
-- rejection, the timeout's two actions, an approval given before its step, a gate that pauses
-- instead of rolling back (on the strategy and on the gate) and the pause's own timeout; then
-- every bad option (exit 2, naming the field). Read back from the journal and the output.
-- The same against `sim serve` in real time: tests/py/test_steer.py.
local T = require "harness"
local json = require "ecsplay.json"
local errors = require "ecsplay.errors"

local BIN = os.getenv("ECSPLAY_BIN") or "./ecsplay"
local PLAYBOOK = "tests/scenarios/steer_canary.lua"
local START = 1795687200 -- the default world's start

local function q(s) return "'" .. tostring(s):gsub("'", "'\\''") .. "'" end
local function write(path, text)
  local f = assert(io.open(path, "w"))
  f:write(text)
  f:close()
end

local function simulate(scenario, args)
  local dir = T.tmpdir()
  write(dir .. "/scenario.lua", scenario or "return {}")
  local out, rc = T.sh("ECSPLAY_RUNS_DIR=" .. q(dir .. "/runs") .. " " .. BIN .. " --simulate=" .. q(dir .. "/scenario.lua")
    .. " " .. PLAYBOOK .. " " .. (args or ""))
  local path = T.sh("ls " .. q(dir .. "/runs") .. "/*.jsonl | grep -v control | head -1"):gsub("%s+$", "")
  local j = {}
  for line in io.lines(path) do j[#j + 1] = json.decode(line) end
  return rc, out, j
end

local function controls(j)
  local out = {}
  for _, l in ipairs(j) do if l.t == "control" then out[#out + 1] = { l.command, l.as, l.effect, l.time } end end
  return out
end
local function time_of(j, t, key)
  for _, l in ipairs(j) do if l.t == t and l.key == key then return l.time end end
end

-- The rollout's end line (the runner may write lines after it: the playbook's own end).
local function end_line(journal)
  for i = #journal, 1, -1 do if journal[i].t == "end" then return journal[i] end end
  return {}
end

T.test("only listed approvers count; the step goes on at the approval", function()
  local rc, out, j = simulate([[return { approvals = { { at = "20m", by = "carol" }, { at = "25m", by = "alice" } } }]],
    "approval=2 approvers=alice,bob timeout=30m")
  T.eq(rc, 0, out)
  local c = controls(j)
  T.eq({ c[1][1], c[1][2], c[1][3] }, { "approve", "carol", "refused: carol is not one of the approvers (alice, bob)" })
  T.eq({ c[2][2], c[2][3] }, { "alice", "approved (1 of 1)" })
  T.eq(time_of(j, "done", "approval:2"), START + 25 * 60)
  T.eq(time_of(j, "do", "weight:2"), START + 25 * 60)
end)

T.test("min = 2 needs two different approvers", function()
  local rc, out, j = simulate([[return { approvals = { { at = "15m", by = "alice" }, { at = "16m", by = "alice" },
    { at = "18m", by = "bob" } } }]], "approval=2 approvers=alice,bob min=2 timeout=30m")
  T.eq(rc, 0, out)
  local c = controls(j)
  T.eq({ c[1][3], c[2][3], c[3][3] }, { "approval 1 of 2", "approval 1 of 2", "approved (2 of 2)" })
  T.eq(time_of(j, "do", "weight:2"), START + 18 * 60)
end)

T.test("a rejection rolls back at once, naming who", function()
  local rc, out, j = simulate([[return { approvals = { { at = "15m", by = "bob", reject = true } } }]],
    "approval=2 timeout=30m")
  T.eq(rc, 1, out)
  T.ok(out:find("canary api rolled back: approval rejected by bob@simulator %(scenario%)"), out)
  T.eq(end_line(j).status, "rolled_back")
  -- at once: the first undo (traffic home) is done at the rejection; the run ends once the
  -- canary's scale-in has finished (waited for: no deployment left in progress)
  local first_undone
  for _, l in ipairs(j) do if l.t == "undone" and not first_undone then first_undone = l end end
  T.eq(first_undone and first_undone.time, START + 15 * 60)
  T.ok(end_line(j).time >= first_undone.time, "ends after its undos")
end)

T.test("timeout: rollback (default) and promote", function()
  local rc, out, j = simulate(nil, "approval=2 timeout=5m")
  T.eq(rc, 1, out)
  T.ok(out:find("the approval before step 2/3 timed out after 5m with 0 of 1 approval%(s%) %(on_timeout = rollback%)"),
    out)
  T.eq(controls(j)[1][1], "timeout")
  T.eq(end_line(j).status, "rolled_back")
  rc, out, j = simulate(nil, "approval=4 timeout=5m on_timeout=promote")
  T.eq(rc, 0, out)
  T.ok(controls(j)[1][3]:find("before the promotion: no decision after 5m with 0 of 1 approval%(s%): going on"),
    controls(j)[1][3])
  T.ok(time_of(j, "do", "promote") - time_of(j, "done", "approval:4") < 5)
end)

T.test("an approval scripted before its step is kept for it; an approval before step 1", function()
  -- at 3m step 1 bakes: the approval waits for the approval step (about 10:07) and counts then
  local rc, out, j = simulate([[return { approvals = { { at = "3m", by = "alice" } } }]], "approval=2 timeout=5m")
  T.eq(rc, 0, out)
  local c = controls(j)
  T.eq({ c[1][3], c[1][4], c[2][3] }, { "kept for the next approval step", START + 180, "approved (1 of 1)" })
  T.eq(c[2][4], time_of(j, "do", "approval:2"))
  -- before step 1 the canary has no traffic: no gate measures (it would be inconclusive)
  rc, out, j = simulate([[return { approvals = { { at = "20m", by = "alice" } } }]], "approval=1 timeout=30m")
  T.eq(rc, 0, out)
  T.eq(time_of(j, "do", "weight:1"), START + 20 * 60)
  for _, l in ipairs(j) do
    T.ok(not (l.t == "gate" and l.time < START + 20 * 60), "no gate round before step 1")
  end
end)

T.test("on_failure = pause on the strategy: held, then unpaused by the scenario; on the pause's timeout", function()
  -- api:flaky fails the 5xx gate at 50 %: paused, not rolled back; the scenario's promote goes on
  local rc, out, j = simulate([[return { controls = { { at = "20m", command = "promote", by = "ops" } } }]],
    "steps=50,100 image=api:flaky on_failure=pause bake=3m")
  T.ok(out:find("paused instead of rolling back: gate `5xx rate api%-canary` failed"), out)
  T.ok(out:find("promote by ops@simulator: promoted past the failure: the run goes on"), out)
  T.eq(time_of(j, "do", "weight:2"), START + 20 * 60, "held until the promote")
  -- at 100 % it fails again: paused again, and the pause's default timeout (1h) rolls back
  T.eq(rc, 1, out)
  T.ok(out:find("paused 1h with no decision %(on_timeout = rollback%)"), out)
  rc, out, j = simulate(nil, "steps=50 image=api:flaky on_failure=pause pause_timeout=10m pause_on_timeout=promote")
  T.eq(rc, 0, out)
  T.ok(controls(j)[1][3]:find("paused 10m with no decision: going on %(on_timeout = promote%)"), out)
end)

T.test("on_failure on a gate: that gate pauses, another still rolls back", function()
  local dir = T.tmpdir()
  write(dir .. "/pb.lua", [[
local rollout, gate = require "ecsplay.rollout", require "ecsplay.gate"
rollout.canary { image = "api:flaky", steps = { 50, 100 }, bake = "3m", interval = "1m",
  gates = { gate.alb_5xx_rate { target_group = "api-canary", below = 1.0, on_failure = { pause = { timeout = "1h" } } },
            -- passes until 15 minutes in, then fails: a gate that rolls back, while the other holds
            gate.check("later", function() return ecsplay.now() < ]] .. START .. [[ + 900 end) } }
]])
  local out, rc = T.sh(BIN .. " --simulate " .. q(dir .. "/pb.lua"))
  T.eq(rc, 1, out)
  T.ok(out:find("paused instead of rolling back: gate `5xx rate api%-canary`"), out)
  T.ok(out:find("rolled back: GateFailed: gate `later` failed"), out)
end)

-- The message a bad option gives (checked before anything is sent).
local function bad(o)
  local rollout = require "ecsplay.rollout"
  local opts = { image = "api:v2", steps = { 10, 100 }, journal = false }
  for k, v in pairs(o) do opts[k] = v end
  local ok, err = pcall(rollout.canary, opts)
  T.ok(not ok and errors.is(err, "bad_input"), tostring(err))
  return err.message
end

T.test("every bad approval step and on_failure: bad input naming the field", function()
  local A = function(a) return { steps = { 10, { approval = a }, 100 } } end
  local cases = {
    { A { timeout = "soon" }, "rollout%.canary: steps%[2%]%.approval%.timeout: bad duration" },
    { A { timeout = 0 }, "steps%[2%]%.approval%.timeout: expected a duration above 0" },
    { A { on_timeout = "continue" }, "steps%[2%]%.approval%.on_timeout: expected \"rollback\" or \"promote\", got string \"continue\"" },
    { A { approvers = {} }, "steps%[2%]%.approval%.approvers: expected a non%-empty list of names" },
    { A { approvers = { "alice", 3 } }, "approvers%[2%]: expected a name %(a non%-empty string%), got integer 3" },
    { A { approvers = { "alice", "alice" } }, "approvers%[2%]: \"alice\" is listed twice" },
    { A { approvers = { "alice" }, min = 2 }, "approval%.min: expected an integer from 1 to 1, got integer 2 %(the number of approvers%)" },
    { A { min = 0 }, "approval%.min: expected an integer from 1 to inf, got integer 0" },
    { A { timout = "5m" }, "approval%.timout: unknown option; did you mean `timeout`%?" },
    { A { http = { port = 70000 } }, "approval%.http%.port: expected a port number from 0 to 65535" },
    { A { http = { host = "0.0.0.0" } }, "approval%.http%.host: expected a loopback address" },
    { A { http = "yes" }, "approval%.http: expected true or { port = N" },
    { A(true), "steps%[2%]%.approval: expected a table" },
    { { steps = { 10, { aproval = {} }, 100 } }, "steps%[2%]: expected a percentage or { approval = { %.%.%. } }; unknown key `aproval`; did you mean `approval`%?" },
    { { steps = { 10, { approval = {} }, { approval = {} }, 100 } }, "steps%[3%]: two approval steps in a row" },
    { { steps = { { approval = {} } } }, "steps: expected at least one percentage besides the approval steps" },
    { { steps = { 50, { approval = {} }, 20 } }, "steps%[3%]: weights must rise: 20 follows 50" },
    { { steps = { 10, { approval = {} }, "x" } }, "steps%[3%]: expected a percentage or { approval = {%.%.%.} }, got string \"x\"" },
    { { on_failure = "hold" }, "rollout%.canary: on_failure: expected \"rollback\", \"pause\" or { pause = " },
    { { on_failure = { pause = { timeout = "1x" } } }, "on_failure%.pause%.timeout: bad duration" },
    { { on_failure = { pause = { on_timeout = "wait" } } }, "on_failure%.pause%.on_timeout: expected \"rollback\" or \"promote\"" },
    { { on_failure = { pause = { timeot = "1m" } } }, "on_failure%.pause: unknown option `timeot`; did you mean `timeout`%?" },
    { { on_failure = { paus = {} } }, "on_failure: unknown option `paus`; did you mean `pause`%?" },
  }
  for _, c in ipairs(cases) do
    local msg = bad(c[1])
    T.ok(msg:find(c[2]), msg .. "\n  does not match " .. c[2])
  end
  local gate = require "ecsplay.gate"
  T.raises(function() gate.alarm { "x", on_failure = "stop" } end,
    "gate%.alarm: on_failure: expected \"rollback\", \"pause\" or { pause = ")
  T.eq(gate.alarm { "x", on_failure = "pause" }.on_failure, { action = "pause", timeout = 3600, on_timeout = "rollback" })
end)
