-- playbooks/linear.lua: 20 % more every 2 minutes; a slow image fails its latency gate.
local testing = require "ecsplay.testing"

local PLAYBOOK = testing.relative("../linear.lua")
local HOME = { ["api-stable"] = 100, ["api-canary"] = 0 }

describe("playbooks/linear.lua", function()
  it("promotes api:v2 in five 20 % steps", function()
    local r = testing.run(PLAYBOOK, {})
    assert.equals(0, r.code)
    assert.equals("succeeded", r.report.status)
    assert.equals("linear", r.report.strategy)
    assert.same({ 20, 40, 60, 80, 100 }, testing.step_weights(r.report))
    assert.same(HOME, r.world:weights())
    assert.equals("api:2", r.world:service("api").task_definition)
    -- each step waited its 2 minutes before the next one
    local steps = r.report.steps
    for i = 2, #steps do assert.is_true(steps[i].started - steps[i - 1].started >= 120) end
  end)

  it("step=25 takes four steps", function()
    local r = testing.run(PLAYBOOK, { step = 25 })
    assert.equals(0, r.code)
    assert.same({ 25, 50, 75, 100 }, testing.step_weights(r.report))
  end)

  it("rolls back api:slow on p99 latency at the first step", function()
    local r = testing.run(PLAYBOOK, { image = "api:slow" })
    assert.equals(1, r.code)
    assert.equals("rolled_back", r.report.status)
    assert.matches("p99 latency", r.report.reason, 1, true)
    assert.same({}, testing.step_weights(r.report)) -- no step passed
    assert.same({ 20, 0 }, r.world:weight_changes("api-canary"))
    assert.same(HOME, r.world:weights())
    assert.equals("api:1", r.world:service("api").task_definition)
    assert.equals("api:1", r.world:service("api-canary").task_definition)
  end)
end)
