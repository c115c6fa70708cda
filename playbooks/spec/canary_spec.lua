-- playbooks/canary.lua: promotes, rolls back on a failing gate, refuses a bad rule before any change.
local testing = require "ecsplay.testing"

local PLAYBOOK = testing.relative("../canary.lua")
local HOME = { ["api-stable"] = 100, ["api-canary"] = 0 }

describe("playbooks/canary.lua", function()
  it("promotes api:v2 through 10, 25, 50 and 100 % and hands the traffic back to stable", function()
    local r = testing.run(PLAYBOOK, { image = "api:v2" })
    assert.equals(0, r.code)
    assert.equals("succeeded", r.report.status)
    assert.same({ 10, 25, 50, 100 }, testing.step_weights(r.report))
    assert.same({ 10, 25, 50, 100, 0 }, r.world:weight_changes("api-canary"))
    assert.same(HOME, r.world:weights())
    local api, canary = r.world:service("api"), r.world:service("api-canary")
    assert.equals("api:2", api.task_definition)
    assert.equals("api:v2", api.image)
    assert.equals(4, api.desired)
    assert.equals(0, canary.desired)
    assert.matches("canary: succeeded, api:v2 promoted in 4 steps", r.output, 1, true)
  end)

  it("rolls back api:flaky when the 5xx alarm goes off: exit 1, stable keeps api:1", function()
    local r = testing.run(PLAYBOOK, { image = "api:flaky" })
    assert.equals(1, r.code)
    assert.equals("rollout", r.error.kind)
    assert.equals("rolled_back", r.report.status)
    assert.matches("GateFailed", r.report.reason, 1, true)
    assert.same(HOME, r.world:weights())
    assert.equals("api:1", r.world:service("api").task_definition)
    r.world:advance("5m")
    assert.equals(0, r.world:service("api-canary").running)
  end)

  it("rolls back at the 50 % step in a world where the new image fails under half the traffic", function()
    local r = testing.run(PLAYBOOK, { image = "api:fail50" }, { scenario = {
      metrics = { delay = "3m" },
      images = { ["api:fail50"] = { error_rate = function(ctx) return (ctx.weight or 0) >= 50 and 0.2 or 0.001 end } },
    } })
    assert.equals(1, r.code)
    assert.equals("rolled_back", r.report.status)
    assert.same({ 10, 25, 50, 0 }, r.world:weight_changes("api-canary"))
    assert.same(HOME, r.world:weights())
    assert.equals("api:1", r.world:service("api").task_definition)
  end)

  it("refuses a rule that does not exist: exit 2 and no change sent", function()
    local r = testing.run(PLAYBOOK, { rule = "arn:aws:elasticloadbalancing:us-east-1:123456789012:"
      .. "listener-rule/app/web/0/1/2" })
    assert.equals(2, r.code)
    assert.is_nil(r.report)
    assert.same({}, r.world:calls { operation = "RegisterTaskDefinition" })
    assert.same({}, r.world:calls { operation = "ModifyRule" })
    assert.same(HOME, r.world:weights())
  end)

  it("refuses an undeclared argument with a did-you-mean: exit 2", function()
    local r = testing.run(PLAYBOOK, { imag = "api:v2" })
    assert.equals(2, r.code)
    assert.matches("image", r.message, 1, true)
    assert.same({}, r.world:calls { operation = "RegisterTaskDefinition" })
  end)
end)
