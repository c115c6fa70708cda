-- playbooks/multi_service.lua: api (house canary) and app (CodeDeploy) together, with a fleet-wide abort.
local testing = require "ecsplay.testing"

local PLAYBOOK = testing.relative("../multi_service.lua")

local function by_strategy(reports)
  local out = {}
  for _, rep in ipairs(reports) do out[rep.strategy] = rep end
  return out
end

describe("playbooks/multi_service.lua", function()
  it("deploys both services", function()
    local r = testing.run(PLAYBOOK, {})
    assert.equals(0, r.code)
    assert.equals(2, #r.reports)
    local reports = by_strategy(r.reports)
    assert.equals("succeeded", reports.canary.status)
    assert.equals("succeeded", reports.codedeploy.status)
    assert.same({ 5, 25, 50, 100 }, testing.step_weights(reports.canary)) -- the house steps
    assert.equals("api:2", r.world:service("api").task_definition)
    assert.equals("app:2", r.world:service("app").task_definition)
    assert.matches("multi_service: api succeeded, app succeeded", r.output, 1, true)
  end)

  it("rolls app back too when api:flaky fails: both rolled back, exit 1", function()
    local r = testing.run(PLAYBOOK, { image = "api:flaky" })
    assert.equals(1, r.code)
    local reports = by_strategy(r.reports)
    assert.equals("rolled_back", reports.canary.status)
    assert.equals("rolled_back", reports.codedeploy.status)
    assert.matches("5xx rate api-canary", reports.canary.reason, 1, true)
    assert.matches("gate `fleet`", reports.codedeploy.reason, 1, true)
    assert.equals(1, #r.world:calls { operation = "StopDeployment" })
    assert.same({ ["api-stable"] = 100, ["api-canary"] = 0 }, r.world:weights())
    assert.same({ ["app-blue"] = 1 }, r.world:listener_weights(443))
    assert.equals("api:1", r.world:service("api").task_definition)
    assert.equals("app:1", r.world:service("app").task_definition)
  end)
end)
