-- ecsplay.sim.dump: the whole state of the simulated worlds, the in-process half of `ecsplay
-- plan --simulate --world-dump` (tests/py/test_plan_iam.py runs it on every shipped playbook).
-- It must see what GET /_sim/world's summary leaves out, and nothing that only looking changes.
local T = require "harness"
local sim_lib = require "ecsplay.sim"
local dump = require "ecsplay.sim.dump"

local function world_body(sim) return sim:handle { method = "GET", path = "/_sim/world", headers = {} }.body end

T.test("a task definition registered changes the state dump, not the /_sim/world summary", function()
  local sim = sim_lib.new(nil)
  local summary, state = world_body(sim), dump.state(sim)
  T.eq(dump.state(sim), state, "the same world dumps the same bytes")
  sim:call("ecs", "RegisterTaskDefinition", { family = "api", containerDefinitions = {
    { name = "api", image = "api:v9", essential = true, memory = 512 } } }, "control")
  T.eq(world_body(sim), summary, "the summary shows no task definitions")
  T.ok(dump.state(sim) ~= state, "the state dump does")
  T.ok(dump.state(sim):find("api:v9", 1, true), "the new revision is in it")
end)

T.test("reading changes nothing; two worlds of one scenario dump the same bytes", function()
  local a, b = sim_lib.new { seed = 7 }, sim_lib.new { seed = 7 }
  local before = dump.state(a)
  a:call("ecs", "DescribeServices", { cluster = "production", services = { "api" } }, "control")
  a:call("elbv2", "DescribeTargetGroups", {}, "control")
  T.eq(dump.state(a), before)
  T.eq(dump.state(b), before)
end)

T.test("shared tables, cycles, functions and odd numbers are written, not followed forever", function()
  local sim = sim_lib.new(nil)
  local shared = { n = 1 }
  sim.world.state.probe = { a = shared, b = shared, fn = print, inf = math.huge, half = 0.5 }
  sim.world.state.probe.self = sim.world.state.probe
  local text = dump.state(sim)
  T.ok(text:find('"b":{"$ref":"/us-east-1/123456789012/state/probe/a"}', 1, true), text:sub(1, 200))
  T.ok(text:find('"self":{"$ref":"/us-east-1/123456789012/state/probe"}', 1, true), "cycle as a reference")
  T.ok(text:find('"fn":"<function>"', 1, true) and text:find('"inf":"Infinity"', 1, true)
    and text:find('"half":0.5', 1, true), "values")
end)
